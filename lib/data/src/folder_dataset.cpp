// Folder datasets: a ModelScope dataset config (<name>.json: subset -> split -> {meta, file},
// files local, zipped or URLs), else table files named by split, else an imagefolder.
#include <algorithm>
#include <system_error>

#include "dataset_formats.h"
#include "ms/config/config.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/data/archive.h"
#include "ms/hub/repo_id.h"
#include "ms/hub/sha256.h"
#include "ms/io/resource.h"

namespace fs = std::filesystem;

namespace ms::data::detail {
namespace {

// The folder's own name, also for "ds/" and "./ds/." (whose last component is empty or ".").
std::string folder_name(const fs::path& dir) {
  std::error_code ec;
  fs::path normal = fs::absolute(dir, ec).lexically_normal();
  if (normal.filename().empty()) normal = normal.parent_path();
  return normal.filename().string();
}

std::optional<fs::path> find_dataset_config(const fs::path& dir, const std::string& name_hint) {
  std::error_code ec;
  // ModelScope names the structure file after the dataset: <name>.json.
  if (!name_hint.empty() && fs::is_regular_file(dir / (name_hint + ".json"), ec)) {
    return dir / (name_hint + ".json");
  }
  const std::string name = folder_name(dir);
  if (!name.empty() && fs::is_regular_file(dir / (name + ".json"), ec))
    return dir / (name + ".json");
  std::vector<fs::path> jsons;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec) && entry.path().extension() == ".json" &&
        entry.path().filename() != "dataset_infos.json" &&
        entry.path().filename() != "configuration.json") {
      jsons.push_back(entry.path());
    }
  }
  if (jsons.size() == 1) {
    // Only a file shaped like a dataset config counts.
    try {
      const Config c = Config::from_file(jsons[0]);
      const Json& root = c.root();
      bool shaped = root.is_object() && !root.empty();
      for (auto it = root.begin(); shaped && it != root.end(); ++it) {
        shaped = it.value().is_object();
        for (auto s = it.value().begin(); shaped && s != it.value().end(); ++s) {
          shaped = s.value().is_object() || s.value().is_null();
        }
      }
      if (shaped) return jsons[0];
    } catch (const Error&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void load_config_folder(const fs::path& dir, const fs::path& config_path, Dataset& ds,
                        const LoadOptions& options, const std::optional<std::string>& subset_choice,
                        const std::optional<std::string>& wanted_split) {
  const Config config = Config::from_file(config_path);
  const std::string source = config_path.string();
  const Json& root = config.root();
  MS_CHECK(root.is_object() && !root.empty(), ErrorCode::kConfig,
           "{}: a dataset config maps subset -> split -> {{meta, file}}", source);
  ds.subsets.clear();
  for (auto it = root.begin(); it != root.end(); ++it) ds.subsets.push_back(it.key());
  std::string subset;
  if (subset_choice) {
    if (!root.contains(*subset_choice))
      unknown_choice("subset", *subset_choice, source, ds.subsets);
    subset = *subset_choice;
  } else {
    if (ds.subsets.size() != 1) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("{} has {} subsets: {}; choose one", source, ds.subsets.size(),
                              join(ds.subsets, ", ")),
                  "pass --subset NAME (or hub:OWNER/NAME:SUBSET)");
    }
    subset = ds.subsets[0];
  }
  ds.subset = subset;
  const Json& splits = root.at(subset);
  MS_CHECK(splits.is_object(), ErrorCode::kConfig, "{}: key '{}' must map split -> {{meta, file}}",
           source, subset);
  // Splits without meta and file are dropped, as ModelScope does.
  std::vector<std::string> available;
  for (auto it = splits.begin(); it != splits.end(); ++it) {
    const Json& s = it.value();
    if (!s.is_object()) continue;
    const bool has_meta =
        s.contains("meta") && s["meta"].is_string() && !s["meta"].get<std::string>().empty();
    const bool has_file =
        s.contains("file") && s["file"].is_string() && !s["file"].get<std::string>().empty();
    if (has_meta || has_file) available.push_back(it.key());
  }
  if (wanted_split &&
      std::find(available.begin(), available.end(), *wanted_split) == available.end()) {
    unknown_choice("split", *wanted_split, fmt::format("subset '{}' of {}", subset, source),
                   available);
  }
  for (const std::string& name : available) {
    if (wanted_split && name != *wanted_split) continue;
    const Json& s = splits.at(name);
    const std::string key = subset + "." + name;
    const std::string meta =
        s.contains("meta") && s["meta"].is_string() ? s["meta"].get<std::string>() : "";
    const std::string file =
        s.contains("file") && s["file"].is_string() ? s["file"].get<std::string>() : "";
    char delimiter = ',';
    if (s.contains("args") && s["args"].is_object() && s["args"].contains("delimiter")) {
      const Json& d = s["args"]["delimiter"];
      MS_CHECK(d.is_string() && d.get<std::string>().size() == 1, ErrorCode::kConfig,
               "{}: key '{}.args.delimiter' must be one character", source, key);
      delimiter = d.get<std::string>()[0];
    }
    fs::path data_dir = dir;
    if (!file.empty())
      data_dir = materialize_file(dir, file, options.cache_root, source + ": " + key);
    Split split;
    split.name = name;
    split.selection = name;
    if (!meta.empty()) {
      fs::path meta_path;
      if (io::is_url(meta)) {
        const std::string text = io::read_resource(meta);
        meta_path = options.cache_root / "meta" /
                    (hub::sha256_hex(meta).substr(0, 16) + fs::path(meta).extension().string());
        write_file_atomic(meta_path, text);
      } else {
        MS_CHECK(hub::is_safe_repo_path(meta), ErrorCode::kConfig,
                 "{}: key '{}.meta' must be a relative path inside the dataset, got '{}'", source,
                 key, meta);
        meta_path = dir / meta;
      }
      split.table = read_table(meta_path, delimiter);
      resolve_file_columns(split.table, data_dir, meta_path.string());
      ds.splits.push_back(std::move(split));
    } else {
      // No meta: the archive's content is the split (an imagefolder or a table file).
      Dataset inner;
      load_folder(unwrap_single_folder(data_dir), inner, options, std::nullopt, std::nullopt);
      MS_CHECK(inner.splits.size() == 1, ErrorCode::kIntegrity,
               "{}: split '{}' archive holds several splits ({}); give it a meta file", source, key,
               join(split_names(inner.splits), ", "));
      Split only = std::move(inner.splits[0]);
      only.name = name;
      only.selection = name;
      if (!inner.labels.empty()) {
        MS_CHECK(ds.labels.empty() || ds.labels == inner.labels, ErrorCode::kIntegrity,
                 "{}: split '{}' has other classes than the splits before it", source, key);
        ds.labels = inner.labels;
      }
      ds.splits.push_back(std::move(only));
    }
  }
  ds.root = dir;
}

}  // namespace

void load_folder(const fs::path& dir, Dataset& ds, const LoadOptions& options,
                 const std::optional<std::string>& subset_choice,
                 const std::optional<std::string>& wanted_split, const std::string& name_hint) {
  std::error_code ec;
  MS_CHECK(fs::is_directory(dir, ec), ErrorCode::kNotFound, "dataset folder '{}' does not exist",
           dir.string());
  if (auto config = find_dataset_config(dir, name_hint)) {
    ds.kind = SourceKind::kFolder;
    load_config_folder(dir, *config, ds, options, subset_choice, wanted_split);
    return;
  }
  if (load_dataset_card(dir, ds, subset_choice, wanted_split, options.max_rows)) {
    ds.kind = SourceKind::kFolder;
    return;
  }
  if (subset_choice && *subset_choice != "default") {
    unknown_choice("subset", *subset_choice, dir.string(), {"default"});
  }
  // A loading script named after the dataset (<name>.py, at the top) decides what its files
  // mean, and ms runs no Python: reading the files as plain data would give other rows than the
  // script (MsDataset.load refuses it too unless trusted).
  const std::string name = !name_hint.empty() ? name_hint : folder_name(dir);
  MS_CHECK(name.empty() || !fs::is_regular_file(dir / (name + ".py"), ec),
           ErrorCode::kMissingComponent,
           "{}: the dataset is made by its loading script {}.py, which ms does not run",
           dir.string(), name);
  if (load_table_folder(dir, ds, options.max_rows)) return;
  ds.kind = SourceKind::kImageFolder;
  load_imagefolder(dir, ds);
}

}  // namespace ms::data::detail

// Folder datasets: a ModelScope dataset config (<name>.json: subset -> split -> {meta, file},
// files local, zipped or URLs), else table files named by split, else an imagefolder.
#include <algorithm>
#include <system_error>

#include "dataset_formats.h"
#include "ms/config/config.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/data/archive.h"
#include "ms/hub/download.h"
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

// The `configs` of README.md's YAML front matter (a Hugging Face dataset card, which ModelScope
// 1.40's MsDataset.load reads too), or nullopt when there are none. A card whose front matter is
// not YAML is prose, not a config: it is passed over with a warning.
std::optional<Json> readme_configs(const fs::path& dir, bool warn) {
  const fs::path readme = dir / "README.md";
  std::error_code ec;
  if (!fs::is_regular_file(readme, ec) || fs::file_size(readme, ec) > (4u << 20))
    return std::nullopt;
  const std::string text = read_file(readme);
  if (text.rfind("---\n", 0) != 0 && text.rfind("---\r\n", 0) != 0) return std::nullopt;
  const std::size_t start = text.find('\n') + 1;
  std::size_t end = start;
  while (text.compare(end, 3, "---") != 0) {
    end = text.find('\n', end);
    // No closing line: not front matter.
    if (end == std::string::npos || end + 1 >= text.size()) return std::nullopt;
    ++end;
  }
  try {
    // A newline for the opening line, so that YAML errors give the file's line numbers.
    const Config card =
        Config::parse("\n" + text.substr(start, end - start), "yaml", readme.string());
    if (card.has("configs") && card.at("configs").is_array()) return card.at("configs");
  } catch (const Error& e) {
    if (warn) log::warn("{}: its front matter is not read ({})", readme.string(), e.what());
  }
  return std::nullopt;
}

// A scalar of the card as text: YAML makes `config_name: 2020` a number, `split: 1` too.
std::string card_text(const Json& value, const std::string& key, const std::string& where) {
  if (value.is_string()) return value.get<std::string>();
  MS_CHECK(value.is_number() || value.is_boolean(), ErrorCode::kConfig,
           "{}: {} must be a name, got {}", where, key, Config::type_name(value));
  return value.dump();
}

// A config's data_files as split -> path patterns: a path or list of paths (the train split), a
// list of {split, path}, or a map split -> path(s).
std::vector<std::pair<std::string, std::vector<std::string>>> data_files_of(
    const Json& files, const std::string& where) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  auto paths = [&where](const Json& v) {
    std::vector<std::string> list;
    for (const Json& p : v.is_array() ? v : Json::array({v})) {
      MS_CHECK(p.is_string(), ErrorCode::kConfig, "{}: a data_files path must be a string, got {}",
               where, Config::type_name(p));
      list.push_back(p.get<std::string>());
    }
    return list;
  };
  if (files.is_string() || (files.is_array() && !files.empty() && files[0].is_string())) {
    out.emplace_back("train", paths(files));
  } else if (files.is_array()) {
    for (const Json& entry : files) {
      MS_CHECK(entry.is_object() && entry.contains("path"), ErrorCode::kConfig,
               "{}: each data_files entry needs a path (and a split)", where);
      out.emplace_back(
          entry.contains("split") ? card_text(entry["split"], "split", where) : "train",
          paths(entry["path"]));
    }
  } else if (files.is_object()) {
    for (auto it = files.begin(); it != files.end(); ++it)
      out.emplace_back(it.key(), paths(it.value()));
  } else {
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: data_files must be a path, a list or a map", where));
  }
  return out;
}

// The files of `dir` a data_files pattern names (a path, or an fnmatch pattern: *, ?, [...]),
// sorted; none is an error naming the pattern.
std::vector<fs::path> files_matching(const fs::path& dir, const std::string& pattern,
                                     const std::string& where) {
  MS_CHECK(hub::is_safe_repo_path(pattern), ErrorCode::kConfig,
           "{}: data_files path '{}' must be relative, inside the dataset", where, pattern);
  std::vector<fs::path> out;
  std::error_code ec;
  if (pattern.find_first_of("*?[") == std::string::npos) {
    if (fs::is_regular_file(dir / pattern, ec)) out.push_back(dir / pattern);
  } else {
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code status_ec;
      if (is_hidden(it->path())) {
        if (it->is_directory(status_ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(status_ec) &&
          hub::path_matches(it->path().lexically_relative(dir).generic_string(), pattern))
        out.push_back(it->path());
    }
    std::sort(out.begin(), out.end());
  }
  MS_CHECK(!out.empty(), ErrorCode::kNotFound, "{}: no file of the dataset matches '{}'", where,
           pattern);
  return out;
}

void load_readme_configs(const fs::path& dir, const Json& configs, Dataset& ds,
                         const std::optional<std::string>& subset_choice,
                         const std::optional<std::string>& wanted_split, std::size_t max_rows) {
  const std::string source = (dir / "README.md").string() + ": configs";
  ds.subsets.clear();
  const Json* chosen = nullptr;
  const Json* marked_default = nullptr;
  for (const Json& c : configs) {
    MS_CHECK(c.is_object(), ErrorCode::kConfig, "{}: each config must be a mapping", source);
    const std::string name =
        c.contains("config_name") ? card_text(c["config_name"], "config_name", source) : "default";
    ds.subsets.push_back(name);
    if (subset_choice && name == *subset_choice) chosen = &c;
    if (c.contains("default") && c["default"] == Json(true)) marked_default = &c;
  }
  if (subset_choice && !chosen) unknown_choice("subset", *subset_choice, source, ds.subsets);
  if (!chosen) chosen = marked_default;
  if (!chosen && configs.size() == 1) chosen = &configs[0];
  if (!chosen) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} has {} subsets: {}; choose one", source, ds.subsets.size(),
                            join(ds.subsets, ", ")),
                "pass --subset NAME (or hub:OWNER/NAME:SUBSET)");
  }
  ds.subset = ds.subsets[static_cast<std::size_t>(chosen - &configs[0])];
  const std::string where = fmt::format("{} '{}'", source, ds.subset);
  MS_CHECK(chosen->contains("data_files"), ErrorCode::kConfig, "{}: no data_files", where);
  const auto splits = data_files_of((*chosen)["data_files"], where);
  std::vector<std::string> available;
  for (const auto& [name, _] : splits) available.push_back(name);
  if (wanted_split &&
      std::find(available.begin(), available.end(), *wanted_split) == available.end())
    unknown_choice("split", *wanted_split, where, available);
  for (const auto& [name, patterns] : splits) {
    if (wanted_split && name != *wanted_split) continue;
    std::vector<fs::path> files;
    for (const std::string& pattern : patterns) {
      for (fs::path& f : files_matching(dir, pattern, where)) {
        const std::string ext = data_file_extension(f);
        MS_CHECK(is_table_file(f) || ext == ".json" || ext == ".parquet", ErrorCode::kConfig,
                 "{}: split '{}' file '{}' is not a table ms reads (.csv, .tsv, .json, .jsonl, "
                 ".parquet)",
                 where, name, f.string());
        // One format per split, as Hugging Face reads a split's files with one builder.
        MS_CHECK(files.empty() ||
                     (ext == ".parquet") == (data_file_extension(files.front()) == ".parquet"),
                 ErrorCode::kConfig, "{}: split '{}' mixes Parquet and other files ('{}', '{}')",
                 where, name, files.front().string(), f.string());
        files.push_back(std::move(f));
      }
    }
    Split split;
    split.name = split.selection = name;
    split.table = read_tables(files, max_rows);
    resolve_file_columns(split.table, dir, files.front().string());
    ds.splits.push_back(std::move(split));
  }
  ds.root = dir;
}

}  // namespace

bool has_readme_configs(const fs::path& dir) { return readme_configs(dir, false).has_value(); }

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
  if (auto configs = readme_configs(dir, true)) {
    ds.kind = SourceKind::kFolder;
    load_readme_configs(dir, *configs, ds, subset_choice, wanted_split, options.max_rows);
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

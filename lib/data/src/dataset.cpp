// Dataset loading: CSV / JSON lines files, imagefolders, ModelScope dataset-config folders, zip
// archives (local or URL, extracted once into the cache) and hub snapshots.
#include "ms/data/dataset.h"

#include <algorithm>
#include <map>
#include <set>
#include <system_error>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/data/archive.h"
#include "ms/data/csv.h"
#include "ms/data/hub_source.h"
#include "ms/data/image.h"
#include "ms/hub/repo_id.h"
#include "ms/hub/sha256.h"
#include "ms/io/resource.h"

namespace fs = std::filesystem;

namespace ms::data {

std::string split_name_of(std::string_view name) {
  std::string n(name);
  for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n == "train" || n == "training") return "train";
  if (n == "validation" || n == "valid" || n == "val" || n == "dev") return "validation";
  if (n == "test" || n == "testing" || n == "eval" || n == "evaluation") return "test";
  return "";
}

std::string split_of_file(std::string_view stem) {
  std::string whole = split_name_of(stem);
  if (!whole.empty()) return whole;
  const auto end = stem.find_first_of("-._ 0123456789");
  if (end == std::string_view::npos || end == 0) return "";
  return split_name_of(stem.substr(0, end));
}

namespace {

std::vector<std::string> split_names(const std::vector<Split>& splits) {
  std::vector<std::string> names;
  for (const auto& s : splits) names.push_back(s.name);
  return names;
}

[[noreturn]] void unknown_choice(const char* what, const std::string& name,
                                 const std::string& where,
                                 const std::vector<std::string>& available) {
  std::string hint = did_you_mean(name, available);
  hint += hint.empty() ? "" : " ";
  hint += fmt::format("(pass one with --{})", what);
  throw Error(ErrorCode::kNotFound,
              fmt::format("{} '{}' not found in {}; available: {}", what, name, where,
                          available.empty() ? std::string("none") : join(available, ", ")),
              hint);
}

// Dot files and macOS archive debris (__MACOSX/ folders) are not data.
bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return (!name.empty() && name[0] == '.') || name == "__MACOSX";
}

// ---- imagefolder -------------------------------------------------------------------------------

Table read_table(const fs::path& path, char delimiter);

struct RawSplit {
  std::string name;
  fs::path dir;
  std::optional<fs::path> metadata;  // HF's metadata.csv / metadata.jsonl with a file_name column
  std::vector<std::pair<std::string, std::string>> files;  // path, class ("" = none)
  std::size_t non_image = 0;
};

void collect_images(const fs::path& dir, const std::string& label, RawSplit& out) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (fs::recursive_directory_iterator
           // Symlinked sub-folders are not followed: a link to "." would recurse forever.
           it(dir, fs::directory_options::none, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    if (is_hidden(it->path())) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) entries.push_back(it->path());
  }
  if (ec)
    throw Error(ErrorCode::kIo, fmt::format("cannot list '{}': {}", dir.string(), ec.message()));
  std::sort(entries.begin(), entries.end());
  for (const auto& p : entries) {
    if (has_image_extension(p.filename().string())) {
      out.files.emplace_back(p.string(), label);
    } else {
      ++out.non_image;
    }
  }
}

// One split folder: class sub-folders hold images; files directly inside have no class.
RawSplit scan_split_dir(const fs::path& dir, const std::string& name) {
  RawSplit split;
  split.name = name;
  split.dir = dir;
  for (const char* meta : {"metadata.csv", "metadata.jsonl"}) {
    std::error_code ec;
    if (fs::is_regular_file(dir / meta, ec)) split.metadata = dir / meta;
  }
  std::vector<fs::path> class_dirs;
  std::vector<fs::path> loose;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (is_hidden(entry.path())) continue;
    if (entry.is_directory())
      class_dirs.push_back(entry.path());
    else if (entry.is_regular_file())
      loose.push_back(entry.path());
  }
  std::sort(class_dirs.begin(), class_dirs.end());
  std::sort(loose.begin(), loose.end());
  for (const auto& p : loose) {
    // With class folders present, loose files cannot be labelled: they are counted as skipped.
    if (has_image_extension(p.filename().string()) && class_dirs.empty()) {
      split.files.emplace_back(p.string(), "");
    } else {
      ++split.non_image;
    }
  }
  for (const auto& c : class_dirs) collect_images(c, c.filename().string(), split);
  return split;
}

void verify_split_images(Split& split, bool skip_bad) {
  const int image_col = split.table.column_index("image");
  if (image_col < 0) return;
  std::vector<std::vector<Value>> kept;
  kept.reserve(split.table.rows.size());
  for (auto& row : split.table.rows) {
    const std::string& path = std::get<std::string>(row[image_col]);
    try {
      read_image(path, 3);
    } catch (const Error& e) {
      if (!skip_bad ||
          (e.code() != ErrorCode::kIntegrity && e.code() != ErrorCode::kMissingComponent)) {
        throw;
      }
      ++split.skipped_bad;
      if (split.bad_files.size() < 100) split.bad_files.push_back(path);
      log::warn("skipping bad image: {}", e.what());
      continue;
    }
    kept.push_back(std::move(row));
  }
  split.table.rows = std::move(kept);
}

void load_imagefolder(const fs::path& root, Dataset& ds) {
  std::error_code ec;
  MS_CHECK(fs::is_directory(root, ec), ErrorCode::kNotFound, "imagefolder '{}' is not a folder",
           root.string());
  // Top-level train/ validation/ (val/) test/ folders are splits; otherwise the folder is "train".
  std::map<std::string, fs::path> split_dirs;
  std::vector<std::string> others;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (!entry.is_directory() || is_hidden(entry.path())) continue;
    const std::string name = entry.path().filename().string();
    const std::string split = split_name_of(name);
    if (!split.empty()) {
      MS_CHECK(!split_dirs.count(split), ErrorCode::kIntegrity,
               "imagefolder '{}' has two folders for split '{}' ('{}' and '{}')", root.string(),
               split, split_dirs[split].filename().string(), name);
      split_dirs[split] = entry.path();
    } else {
      others.push_back(name);
    }
  }
  std::vector<RawSplit> raw;
  if (split_dirs.empty()) {
    raw.push_back(scan_split_dir(root, "train"));
  } else {
    if (!others.empty()) {
      log::warn("imagefolder {}: ignoring folders that are not splits: {}", root.string(),
                join(others, ", "));
    }
    for (const char* name : {"train", "validation", "test"}) {
      if (split_dirs.count(name)) raw.push_back(scan_split_dir(split_dirs[name], name));
    }
  }
  std::size_t total = 0;
  for (const auto& r : raw) total += r.files.size() + (r.metadata ? 1 : 0);
  if (total == 0) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("no images, tables or dataset config found in '{}'", root.string()),
                "an imagefolder holds <class>/<image> (optionally under train/ validation/ test/); "
                "tables are .csv, .tsv, .jsonl files; parquet is not supported");
  }
  // Label ids: sorted class names over all splits, so train and test share one map.
  std::set<std::string> classes;
  for (const auto& r : raw)
    for (const auto& f : r.files)
      if (!f.second.empty()) classes.insert(f.second);
  // One class folder is not a labelling (HF datasets #5153): no label column then. A metadata
  // file turns labels off too, as in HF's imagefolder.
  bool any_metadata = false;
  for (const auto& r : raw) any_metadata = any_metadata || r.metadata.has_value();
  if (classes.size() > 1 && !any_metadata) ds.labels.assign(classes.begin(), classes.end());
  std::map<std::string, std::int64_t> ids;
  for (std::size_t i = 0; i < ds.labels.size(); ++i)
    ids[ds.labels[i]] = static_cast<std::int64_t>(i);
  for (auto& r : raw) {
    Split split;
    split.name = r.name;
    split.selection = r.name;
    split.skipped_non_image = r.non_image;
    if (r.metadata) {
      // Rows come from the metadata file; its file_name column (relative to the folder) becomes
      // the image column and the other columns come along.
      split.skipped_non_image = r.non_image > 0 ? r.non_image - 1 : 0;
      split.table = read_table(*r.metadata, ',');
      const int col = split.table.column_index("file_name");
      MS_CHECK(col >= 0, ErrorCode::kIntegrity, "{}: metadata needs a 'file_name' column",
               r.metadata->string());
      split.table.columns[col] = {"image", ColumnType::kImage};
      for (std::size_t i = 0; i < split.table.rows.size(); ++i) {
        Value& v = split.table.rows[i][col];
        const auto* rel = std::get_if<std::string>(&v);
        if (!rel || !hub::is_safe_repo_path(*rel)) {
          throw Error(ErrorCode::kIntegrity,
                      fmt::format("{}: row {}: file_name must be a relative path inside the folder",
                                  r.metadata->string(), i + 1));
        }
        const fs::path full = r.dir / *rel;
        std::error_code ec;
        MS_CHECK(fs::is_regular_file(full, ec), ErrorCode::kNotFound,
                 "{}: row {}: image '{}' does not exist", r.metadata->string(), i + 1, *rel);
        v = full.string();
      }
      ds.splits.push_back(std::move(split));
      continue;
    }
    split.table.columns.push_back({"image", ColumnType::kImage});
    if (!ds.labels.empty()) split.table.columns.push_back({"label", ColumnType::kInt});
    split.table.rows.reserve(r.files.size());
    for (auto& [path, label] : r.files) {
      std::vector<Value> row;
      row.emplace_back(std::move(path));
      if (!ds.labels.empty()) {
        if (label.empty())
          row.emplace_back(std::monostate{});
        else
          row.emplace_back(ids[label]);
      }
      split.table.rows.push_back(std::move(row));
    }
    ds.splits.push_back(std::move(split));
  }
  ds.root = root;
}

// ---- CSV / JSON lines
// ----------------------------------------------------------------------------

Table read_table(const fs::path& path, char delimiter) {
  std::string ext = path.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") return read_jsonl(path);
  CsvOptions options;
  options.delimiter = ext == ".tsv" ? '\t' : delimiter;
  return read_csv(path, options);
}

// ModelScope's convention: a column named "x:FILE" holds paths inside the extracted archive.
void resolve_file_columns(Table& table, const fs::path& base, const std::string& source) {
  for (std::size_t c = 0; c < table.columns.size(); ++c) {
    const std::string& name = table.columns[c].name;
    if (name.size() < 5 || name.compare(name.size() - 5, 5, ":FILE") != 0) continue;
    bool all_images = true;
    for (std::size_t r = 0; r < table.rows.size(); ++r) {
      Value& v = table.rows[r][c];
      if (std::holds_alternative<std::monostate>(v)) continue;
      std::string rel = std::visit(
          [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string>)
              return x;
            else if constexpr (std::is_same_v<T, std::monostate>)
              return "";
            else
              return fmt::format("{}", x);
          },
          v);
      if (!hub::is_safe_repo_path(rel)) {
        throw Error(
            ErrorCode::kIntegrity,
            fmt::format("{}: row {}: column '{}' holds unsafe path '{}'", source, r + 1, name, rel),
            "paths in :FILE columns are relative to the extracted archive, without '..'");
      }
      const fs::path full = base / rel;
      std::error_code ec;
      if (!fs::exists(full, ec)) {
        throw Error(ErrorCode::kNotFound,
                    fmt::format("{}: row {}: file '{}' of column '{}' is not in '{}'", source,
                                r + 1, rel, name, base.string()),
                    "check that the split's archive matches its meta file");
      }
      all_images = all_images && has_image_extension(rel);
      v = full.string();
    }
    table.columns[c].type =
        all_images && !table.rows.empty() ? ColumnType::kImage : ColumnType::kFile;
  }
}

void load_single_file(const fs::path& path, const CsvOptions& csv, Dataset& ds) {
  Split split;
  split.name = "train";
  split.selection = "train";
  split.table = read_csv(path, csv);
  resolve_file_columns(split.table, path.parent_path(), path.string());
  ds.splits.push_back(std::move(split));
  ds.root = path;
}

// ---- dataset-config folders (ModelScope: <name>.json = subset -> split -> {meta, file}) -------

std::optional<fs::path> find_dataset_config(const fs::path& dir, const std::string& name_hint) {
  std::error_code ec;
  // ModelScope names the structure file after the dataset: <name>.json.
  if (!name_hint.empty() && fs::is_regular_file(dir / (name_hint + ".json"), ec)) {
    return dir / (name_hint + ".json");
  }
  const std::string name = fs::absolute(dir, ec).lexically_normal().filename().string();
  if (!name.empty() && fs::is_regular_file(dir / (name + ".json"), ec))
    return dir / (name + ".json");
  std::vector<fs::path> jsons;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json" &&
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

fs::path fetch_to_cache(const std::string& location, const fs::path& cache_root) {
  if (!io::is_url(location) || io::scheme_of(location) == "file")
    return io::local_path_of(location);
  const fs::path target =
      cache_root / "downloads" / (hub::sha256_hex(location).substr(0, 16) + ".zip");
  std::error_code ec;
  if (fs::is_regular_file(target, ec)) {
    log::info("reusing downloaded {} at {}", location, target.string());
    return target;
  }
  log::info("downloading {}", location);
  const std::string bytes = io::read_resource(location);
  write_file_atomic(target, bytes);
  return target;
}

fs::path materialize_file(const fs::path& folder, const std::string& file,
                          const fs::path& cache_root, const std::string& source) {
  fs::path local;
  if (io::is_url(file)) {
    local = fetch_to_cache(file, cache_root);
  } else {
    MS_CHECK(hub::is_safe_repo_path(file), ErrorCode::kConfig,
             "{}: file '{}' must be a relative path inside the dataset", source, file);
    local = folder / file;
  }
  std::string ext = local.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".zip") {
    MS_CHECK(fs::exists(local), ErrorCode::kNotFound, "{}: archive '{}' does not exist", source,
             local.string());
    return extract_zip_cached(local, cache_root / "extracted");
  }
  MS_CHECK(fs::is_directory(local), ErrorCode::kNotFound, "{}: data folder '{}' does not exist",
           source, local.string());
  return local;
}

// A folder whose only content is one folder (zips often wrap everything in a top folder).
fs::path unwrap_single_folder(fs::path dir) {
  for (int depth = 0; depth < 4; ++depth) {
    std::vector<fs::path> entries;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!is_hidden(e.path()) && e.path().filename() != "__MACOSX") entries.push_back(e.path());
    }
    if (entries.size() != 1 || !fs::is_directory(entries[0]) ||
        !split_name_of(entries[0].filename().string()).empty()) {
      return dir;
    }
    dir = entries[0];
  }
  return dir;
}

void load_folder(const fs::path& dir, Dataset& ds, const LoadOptions& options,
                 const std::optional<std::string>& subset_choice,
                 const std::optional<std::string>& wanted_split, const std::string& name_hint = "");

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

bool is_table_file(const fs::path& path) {
  std::string ext = path.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".csv" || ext == ".tsv" || ext == ".jsonl" || ext == ".ndjson";
}

// Tables of one split read from several files (train-00000-of-00002.csv, ...): same columns in
// the same order; CSV types are inferred over all of them together.
Table read_tables(const std::vector<fs::path>& files) {
  if (files.size() == 1) return read_table(files[0], ',');
  Table all;
  bool csv = true;
  for (const auto& f : files) csv = csv && f.extension() != ".jsonl" && f.extension() != ".ndjson";
  for (const auto& f : files) {
    Table t;
    if (csv) {
      CsvOptions o;
      o.delimiter = f.extension() == ".tsv" ? '\t' : ',';
      o.infer_types = false;
      t = read_csv(f, o);
    } else {
      t = read_table(f, ',');
    }
    if (all.columns.empty() && all.rows.empty()) {
      all = std::move(t);
      continue;
    }
    bool same = t.columns.size() == all.columns.size();
    for (std::size_t c = 0; same && c < t.columns.size(); ++c) {
      same = t.columns[c].name == all.columns[c].name &&
             (csv || t.columns[c].type == all.columns[c].type);
    }
    if (!same) {
      throw Error(ErrorCode::kIntegrity,
                  fmt::format("'{}' has other columns (or column types) than '{}'", f.string(),
                              files[0].string()),
                  "files of one split must share their columns");
    }
    all.rows.insert(all.rows.end(), std::make_move_iterator(t.rows.begin()),
                    std::make_move_iterator(t.rows.end()));
  }
  if (csv) infer_table_types(all);
  return all;
}

// Table files named by split keywords (train.csv, test.jsonl, train-00000-of-00002.csv), at the
// top of the folder or, HF style, in its data/ sub-folder. Files without a keyword form one
// split each (named by the file), or "train" when there is only one.
bool load_table_folder(const fs::path& dir, Dataset& ds) {
  fs::path where = dir;
  std::vector<fs::path> found;
  for (const fs::path& candidate : {dir, dir / "data"}) {
    std::error_code ec;
    if (!fs::is_directory(candidate, ec)) continue;
    for (const auto& e : fs::directory_iterator(candidate)) {
      if (e.is_regular_file() && !is_hidden(e.path()) && is_table_file(e.path()))
        found.push_back(e.path());
    }
    if (!found.empty()) {
      where = candidate;
      break;
    }
  }
  if (found.empty()) return false;
  std::sort(found.begin(), found.end());
  std::map<std::string, std::vector<fs::path>> files;
  for (const auto& f : found) {
    std::string split = split_of_file(f.stem().string());
    if (split.empty()) split = found.size() == 1 ? "train" : f.stem().string();
    files[split].push_back(f);
  }
  for (auto& [name, paths] : files) {
    Split split;
    split.name = name;
    split.selection = name;
    split.table = read_tables(paths);
    resolve_file_columns(split.table, where, paths[0].string());
    ds.splits.push_back(std::move(split));
  }
  // train, validation, test first, in that order; other splits after them by name.
  auto rank = [](const std::string& n) {
    return n == "train" ? 0 : n == "validation" ? 1 : n == "test" ? 2 : 3;
  };
  std::stable_sort(ds.splits.begin(), ds.splits.end(),
                   [&](const Split& a, const Split& b) { return rank(a.name) < rank(b.name); });
  ds.kind = SourceKind::kCsv;
  ds.root = where;
  return true;
}

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
  if (subset_choice && *subset_choice != "default") {
    unknown_choice("subset", *subset_choice, dir.string(), {"default"});
  }
  if (load_table_folder(dir, ds)) return;
  ds.kind = SourceKind::kImageFolder;
  load_imagefolder(dir, ds);
}

void select_split(Dataset& ds, const std::string& choice) {
  const SplitSelector sel = parse_split(choice);
  auto it = std::find_if(ds.splits.begin(), ds.splits.end(),
                         [&](const Split& s) { return s.name == sel.name; });
  if (it == ds.splits.end()) unknown_choice("split", sel.name, ds.spec, split_names(ds.splits));
  Split chosen = std::move(*it);
  const auto [begin, end] = sel.resolve(chosen.table.rows.size());
  if (begin != 0 || end != chosen.table.rows.size()) {
    std::vector<std::vector<Value>> rows(std::make_move_iterator(chosen.table.rows.begin() + begin),
                                         std::make_move_iterator(chosen.table.rows.begin() + end));
    chosen.table.rows = std::move(rows);
  }
  chosen.selection = sel.str();
  ds.splits.clear();
  ds.splits.push_back(std::move(chosen));
}

}  // namespace

const Split& Dataset::split(const std::string& name) const {
  for (const auto& s : splits)
    if (s.name == name) return s;
  unknown_choice("split", name, spec, split_names(splits));
}

const Split& Dataset::only_split() const {
  MS_CHECK(!splits.empty(), ErrorCode::kNotFound, "dataset {} has no splits", spec);
  if (splits.size() > 1) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} has {} splits ({}): choose one with --split", spec, splits.size(),
                            join(split_names(splits), ", ")),
                "pass --split NAME (a slice such as test[:100] works too)");
  }
  return splits.front();
}

Json Dataset::info() const {
  Json out = Json::object();
  out["spec"] = spec;
  out["kind"] = source_kind_name(kind);
  out["root"] = root.string();
  out["subset"] = subset;
  out["subsets"] = subsets;
  Json splits_json = Json::array();
  for (const auto& s : splits) {
    Json sj = Json::object();
    sj["name"] = s.name;
    if (s.selection != s.name) sj["selection"] = s.selection;
    sj["rows"] = s.table.rows.size();
    Json cols = Json::array();
    for (const auto& c : s.table.columns)
      cols.push_back({{"name", c.name}, {"type", column_type_name(c.type)}});
    sj["columns"] = cols;
    if (s.skipped_non_image) sj["skipped_non_image"] = s.skipped_non_image;
    if (s.skipped_bad) {
      sj["skipped_bad"] = s.skipped_bad;
      sj["bad_files"] = s.bad_files;
    }
    splits_json.push_back(sj);
  }
  out["splits"] = splits_json;
  out["labels"] = labels;
  out["num_labels"] = labels.size();
  return out;
}

namespace {
Dataset load_dataset_impl(const DatasetSpec& spec, const LoadOptions& options_in);
}  // namespace

Dataset load_dataset(const DatasetSpec& spec, const LoadOptions& options) {
  // Filesystem failures (permissions, vanished files) become I/O errors naming the path.
  try {
    return load_dataset_impl(spec, options);
  } catch (const fs::filesystem_error& e) {
    throw Error(ErrorCode::kIo,
                fmt::format("cannot read '{}': {}", e.path1().string(), e.code().message()),
                "check that the dataset files are readable");
  }
}

namespace {

Dataset load_dataset_impl(const DatasetSpec& spec, const LoadOptions& options_in) {
  LoadOptions options = options_in;
  if (options.cache_root.empty()) options.cache_root = cache_dir() / "datasets";
  Dataset ds;
  ds.kind = spec.kind;
  ds.spec = !spec.text.empty() ? spec.text
                               : std::string(source_kind_name(spec.kind)) + ":" + spec.location;
  ds.subsets = {"default"};
  const std::optional<std::string> subset = options.subset ? options.subset : spec.subset;
  const std::optional<std::string> split = options.split ? options.split : spec.split;
  std::optional<std::string> split_name;
  if (split) split_name = parse_split(*split).name;

  auto local_only_subset = [&](const std::string& where) {
    if (subset && *subset != "default") unknown_choice("subset", *subset, where, {"default"});
  };
  switch (spec.kind) {
    case SourceKind::kCsv:
    case SourceKind::kText:
    case SourceKind::kJsonl: {
      const fs::path path = io::local_path_of(spec.location);
      local_only_subset(path.string());
      MS_CHECK(!io::is_url(spec.location) || io::scheme_of(spec.location) == "file",
               ErrorCode::kUsage, "{} datasets are read from local files; got URL '{}'",
               source_kind_name(spec.kind), spec.location);
      if (spec.kind == SourceKind::kText) {
        Split s;
        s.name = s.selection = "train";
        s.table = parse_text_lines(read_file(path), path.string());
        ds.splits.push_back(std::move(s));
        ds.root = path;
      } else if (spec.kind == SourceKind::kJsonl) {
        Split s;
        s.name = s.selection = "train";
        s.table = read_jsonl(path);
        resolve_file_columns(s.table, path.parent_path(), path.string());
        ds.splits.push_back(std::move(s));
        ds.root = path;
      } else {
        CsvOptions csv;
        csv.delimiter = options.delimiter ? *options.delimiter : spec.delimiter;
        csv.header = options.header;
        load_single_file(path, csv, ds);
      }
      break;
    }
    case SourceKind::kImageFolder: {
      const fs::path dir = io::local_path_of(spec.location);
      local_only_subset(dir.string());
      load_imagefolder(dir, ds);
      break;
    }
    case SourceKind::kFolder:
      load_folder(io::local_path_of(spec.location), ds, options, subset, split_name);
      break;
    case SourceKind::kZip: {
      const fs::path zip = fetch_to_cache(spec.location, options.cache_root);
      MS_CHECK(fs::exists(zip), ErrorCode::kNotFound, "zip dataset '{}' does not exist",
               spec.location);
      const fs::path dir = extract_zip_cached(zip, options.cache_root / "extracted");
      const SourceKind kind = ds.kind;
      load_folder(unwrap_single_folder(dir), ds, options, subset, split_name);
      ds.kind = kind;
      break;
    }
    case SourceKind::kHub: {
      const hub::RepoId repo = hub::parse_repo_id(spec.location);
      const std::string revision = options.revision ? *options.revision : spec.revision;
      const fs::path dir = dataset_snapshot(repo, revision);
      load_folder(dir, ds, options, subset, split_name, repo.name);
      ds.kind = SourceKind::kHub;
      break;
    }
  }
  if (split) select_split(ds, *split);
  if (options.verify_images) {
    for (auto& s : ds.splits) verify_split_images(s, options.skip_bad);
  }
  return ds;
}

}  // namespace

Dataset load_dataset(std::string_view spec, const LoadOptions& options) {
  return load_dataset(parse_dataset_spec(spec), options);
}

}  // namespace ms::data

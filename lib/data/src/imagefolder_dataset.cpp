// imagefolder datasets: <class>/<image> folders, optionally under train/ validation/ test/, or
// HF's metadata.csv / metadata.jsonl / metadata.parquet naming the images.
#include <algorithm>
#include <map>
#include <set>
#include <system_error>

#include "dataset_formats.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/data/archive.h"
#include "ms/data/image.h"
#include "ms/data/parquet.h"
#include "ms/hub/repo_id.h"

namespace fs = std::filesystem;

namespace ms::data::detail {
namespace {

struct RawSplit {
  std::string name;
  fs::path dir;
  std::optional<fs::path> metadata;  // HF's metadata.csv / .jsonl / .parquet: a file_name column
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
      std::error_code status_ec;
      if (it->is_directory(status_ec)) it.disable_recursion_pending();
      continue;
    }
    // A link that leads nowhere (dangling, or a loop) is skipped as a folder is, not an error.
    std::error_code entry_ec;
    if (it->is_regular_file(entry_ec)) entries.push_back(it->path());
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
  for (const char* meta : {"metadata.csv", "metadata.jsonl", "metadata.parquet"}) {
    std::error_code ec;
    if (!fs::is_regular_file(dir / meta, ec)) continue;
    // HF's imagefolder refuses metadata files of different formats ("Found metadata files with
    // different extensions"); taking one of them would drop the other's rows without a word.
    MS_CHECK(!split.metadata, ErrorCode::kIntegrity,
             "{}: holds two metadata files, {} and {}, which Hugging Face's datasets refuses too",
             dir.string(), split.metadata->filename().string(), meta);
    split.metadata = dir / meta;
  }
  std::vector<fs::path> class_dirs;
  std::vector<fs::path> loose;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (is_hidden(entry.path())) continue;
    std::error_code ec;  // a link that leads nowhere (dangling, or a loop) is neither
    if (entry.is_directory(ec))
      class_dirs.push_back(entry.path());
    else if (entry.is_regular_file(ec))
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

}  // namespace

void load_imagefolder(const fs::path& root, Dataset& ds) {
  std::error_code ec;
  MS_CHECK(fs::is_directory(root, ec), ErrorCode::kNotFound, "imagefolder '{}' is not a folder",
           root.string());
  // Top-level train/ validation/ (val/) test/ folders are splits; otherwise the folder is "train".
  std::map<std::string, fs::path> split_dirs;
  std::vector<std::string> others;
  for (const auto& entry : fs::directory_iterator(root)) {
    std::error_code ec;
    if (!entry.is_directory(ec) || is_hidden(entry.path())) continue;
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
                "tables are .csv, .tsv, .json, .jsonl and .parquet files");
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
      split.table = data_file_extension(*r.metadata) == ".parquet" ? read_parquet(*r.metadata)
                                                                   : read_table(*r.metadata, ',');
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

}  // namespace ms::data::detail

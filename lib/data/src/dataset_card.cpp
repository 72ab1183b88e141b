// Hugging Face dataset cards: the `configs` of a README.md's YAML front matter, each a subset
// whose splits are data_files patterns (as `datasets`' load_dataset and ModelScope 1.40's
// MsDataset.load read them).
#include <algorithm>
#include <set>
#include <system_error>

#include "dataset_formats.h"
#include "ms/config/config.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/data/archive.h"
#include "ms/hub/repo_id.h"

namespace fs = std::filesystem;

namespace ms::data::detail {
namespace {

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

// The files of `dir` a data_files pattern names (a path, or a glob: *, ?, [...] within a
// folder, ** for any folders; data_files_pattern_matches), sorted; none is an error naming the
// pattern.
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
          data_files_pattern_matches(it->path().lexically_relative(dir).generic_string(), pattern))
        out.push_back(it->path());
    }
    std::sort(out.begin(), out.end());
  }
  MS_CHECK(!out.empty(), ErrorCode::kNotFound, "{}: no file of the dataset matches '{}'", where,
           pattern);
  return out;
}

// The config `load_dataset(DIR)` reads without a name, as datasets picks it: the one marked
// `default: true`, else the one named "default", else the only one; nullptr when there is none.
const Json* default_config(const Json& configs, const std::vector<std::string>& names) {
  for (const Json& c : configs)
    if (c.contains("default") && c["default"] == Json(true)) return &c;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == "default") return &configs[i];
  return configs.size() == 1 ? &configs[0] : nullptr;
}

// The CSV separator of a config: pandas' read_csv `sep` or its alias `delimiter`, which datasets
// passes on; nullopt for neither.
std::optional<char> config_separator(const Json& config, const std::string& where) {
  std::optional<char> out;
  for (const char* key : {"sep", "delimiter"}) {
    if (!config.contains(key) || config[key].is_null()) continue;
    MS_CHECK(!out, ErrorCode::kConfig,
             "{}: both sep and delimiter are given (pandas' read_csv refuses them together)",
             where);
    const Json& v = config[key];
    if (!v.is_string() || v.get<std::string>().size() != 1 || v.get<std::string>() == "\"" ||
        v.get<std::string>() == "\n" || v.get<std::string>() == "\r") {
      throw Error(ErrorCode::kConfig,
                  fmt::format("{}: key '{}' must be one character other than a quote or a line "
                              "break, got {}",
                              where, key, v.dump()),
                  "ms reads no regular-expression or multi-character separators; use \"\\t\" "
                  "for tabs");
    }
    out = v.get<std::string>()[0];
  }
  return out;
}

// A config's keys that ms does not read (pandas / pyarrow options, features, drop_labels, ...)
// may change the rows datasets reads; a card that carries one is still read, with a warning
// naming each, since many real cards carry keys that change nothing for their files.
void warn_unread_keys(const Json& config, const std::string& where) {
  static const std::set<std::string> read = {"config_name", "data_files", "data_dir",
                                             "default",     "sep",        "delimiter"};
  for (auto it = config.begin(); it != config.end(); ++it) {
    if (read.count(it.key()) == 0)
      log::warn(
          "{}: key '{}' is not read by ms (the files are read as without it); its rows may "
          "differ from those of Hugging Face's datasets",
          where, it.key());
  }
}

void load_readme_configs(const fs::path& dir, const Json& configs, Dataset& ds,
                         const std::optional<std::string>& subset_choice,
                         const std::optional<std::string>& wanted_split, std::size_t max_rows) {
  const std::string source = (dir / "README.md").string() + ": configs";
  ds.subsets.clear();
  const Json* chosen = nullptr;
  for (const Json& c : configs) {
    MS_CHECK(c.is_object(), ErrorCode::kConfig, "{}: each config must be a mapping", source);
    const std::string name =
        c.contains("config_name") ? card_text(c["config_name"], "config_name", source) : "default";
    ds.subsets.push_back(name);
    if (subset_choice && name == *subset_choice) chosen = &c;
  }
  if (subset_choice && !chosen) unknown_choice("subset", *subset_choice, source, ds.subsets);
  if (!chosen) chosen = default_config(configs, ds.subsets);
  if (!chosen) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} has {} subsets: {}; choose one", source, ds.subsets.size(),
                            join(ds.subsets, ", ")),
                "pass --subset NAME (or hub:OWNER/NAME:SUBSET)");
  }
  ds.subset = ds.subsets[static_cast<std::size_t>(chosen - &configs[0])];
  const std::string where = fmt::format("{} '{}'", source, ds.subset);
  warn_unread_keys(*chosen, where);
  const std::optional<char> separator = config_separator(*chosen, where);
  // data_dir: the folder the config's files are in (data_files patterns are relative to it).
  fs::path base = dir;
  if (chosen->contains("data_dir") && !(*chosen)["data_dir"].is_null()) {
    const std::string data_dir = card_text((*chosen)["data_dir"], "data_dir", where);
    MS_CHECK(hub::is_safe_repo_path(data_dir), ErrorCode::kConfig,
             "{}: data_dir '{}' must be a relative path inside the dataset", where, data_dir);
    base = dir / data_dir;
    std::error_code ec;
    MS_CHECK(fs::is_directory(base, ec), ErrorCode::kNotFound,
             "{}: data_dir '{}' is not a folder of the dataset", where, data_dir);
  }
  if (!chosen->contains("data_files")) {
    // No data_files: the folder's files by split as load_dataset(DIR) finds them.
    Dataset inner;
    if (!load_table_folder(base, inner, max_rows, separator)) load_imagefolder(base, inner);
    if (wanted_split) {
      const std::vector<std::string> available = split_names(inner.splits);
      if (std::find(available.begin(), available.end(), *wanted_split) == available.end())
        unknown_choice("split", *wanted_split, where, available);
    }
    for (Split& split : inner.splits)
      if (!wanted_split || split.name == *wanted_split) ds.splits.push_back(std::move(split));
    ds.labels = std::move(inner.labels);
    ds.root = dir;
    return;
  }
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
      for (fs::path& f : files_matching(base, pattern, where)) {
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
    split.table = read_tables(files, max_rows, separator);
    resolve_file_columns(split.table, dir, files.front().string());
    ds.splits.push_back(std::move(split));
  }
  ds.root = dir;
}

}  // namespace

bool has_readme_configs(const fs::path& dir) { return readme_configs(dir, false).has_value(); }

bool load_dataset_card(const fs::path& dir, Dataset& ds,
                       const std::optional<std::string>& subset_choice,
                       const std::optional<std::string>& wanted_split, std::size_t max_rows) {
  const std::optional<Json> configs = readme_configs(dir, true);
  if (!configs) return false;
  load_readme_configs(dir, *configs, ds, subset_choice, wanted_split, max_rows);
  return true;
}

}  // namespace ms::data::detail

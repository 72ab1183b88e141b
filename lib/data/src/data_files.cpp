// Which files of a folder are a dataset's data, and which split each belongs to, as Hugging Face
// `datasets` (4.x, data_files.py and load.py) decides for `load_dataset(DIR)` and ModelScope's
// MsDataset.load for a hub dataset without a configuration. Facts from there:
//  - every file below the folder counts but hidden ones (a name starting with '.', anywhere in
//    the path), those under folders starting with "__", and README.md, config.json,
//    dataset_info.json, dataset_infos.json, dataset_dict.json and dummy_data.zip;
//  - splits, first rule that finds files wins: shards `data/<split>-NNNNN-of-NNNNN*.*` (any
//    split name); a split keyword naming a folder on the path (`train/`, `train-2/`, `my_train/`);
//    a keyword in the file name (`train.csv`, `dataset-test.jsonl`); else every file is "train".
//    Keywords: train, training / validation, valid, dev, val / test, testing, eval, evaluation,
//    bounded by one of "-._ " or a digit, case as written;
//  - the format is the most common file suffix among a split's files (metadata files last;
//    ties: .parquet, .jsonl, .json, .csv, then by name), and only files of that format are read.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <system_error>
#include <tuple>

#include "dataset_formats.h"
#include "ms/core/error.h"
#include "ms/core/text.h"
#include "ms/data/image.h"

namespace fs = std::filesystem;

namespace ms::data::detail {
namespace {

const std::vector<std::pair<std::string, std::vector<std::string>>>& split_keywords() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> k = {
      {"train", {"train", "training"}},
      {"validation", {"validation", "valid", "dev", "val"}},
      {"test", {"test", "testing", "eval", "evaluation"}}};
  return k;
}

bool is_separator(char c) {
  return c == '-' || c == '.' || c == '_' || c == ' ' || (c >= '0' && c <= '9');
}

// Hugging Face's patterns for a keyword K, in its order, each asking one thing of a path
// component (sep: one of "-._ " or a digit; `*` any text without '/'):
//   on a folder of the path: K, K[sep]*, *[sep]K, *[sep]K[sep]*
//   on the file name:        K[sep]*, *[sep]K[sep]*
bool starts_with_keyword(std::string_view c, std::string_view k) {  // K[sep]*
  return c.size() > k.size() && c.substr(0, k.size()) == k && is_separator(c[k.size()]);
}
bool ends_with_keyword(std::string_view c, std::string_view k) {  // *[sep]K
  return c.size() > k.size() && c.substr(c.size() - k.size()) == k &&
         is_separator(c[c.size() - k.size() - 1]);
}
bool holds_keyword(std::string_view c, std::string_view k) {  // *[sep]K[sep]*
  for (std::size_t at = c.find(k, 1); at != std::string_view::npos; at = c.find(k, at + 1)) {
    if (is_separator(c[at - 1]) && at + k.size() < c.size() && is_separator(c[at + k.size()]))
      return true;
  }
  return false;
}

using ComponentTest = bool (*)(std::string_view, std::string_view);

const std::vector<ComponentTest>& folder_patterns() {
  static const std::vector<ComponentTest> p = {
      [](std::string_view c, std::string_view k) { return c == k; }, starts_with_keyword,
      ends_with_keyword, holds_keyword};
  return p;
}

const std::vector<ComponentTest>& file_patterns() {
  static const std::vector<ComponentTest> p = {starts_with_keyword, holds_keyword};
  return p;
}

std::vector<std::string> components(const std::string& relative) { return split(relative, '/'); }

// `data/<split>-NNNNN-of-NNNNN<anything>.<anything>`: the split, or "" when the path is not one.
std::string shard_split(const std::string& relative) {
  const auto parts = components(relative);
  if (parts.size() != 2 || parts[0] != "data") return "";
  const std::string& name = parts[1];
  // <split>-DDDDD-of-DDDDD then a '.' somewhere after.
  for (std::size_t dash = name.find('-'); dash != std::string::npos;
       dash = name.find('-', dash + 1)) {
    const std::string_view rest = std::string_view(name).substr(dash);
    if (rest.size() < 15 || rest.substr(6, 4) != "-of-") continue;
    bool digits = true;
    for (std::size_t i : {1, 2, 3, 4, 5, 10, 11, 12, 13, 14})
      digits = digits && std::isdigit(static_cast<unsigned char>(rest[i]));
    if (digits && rest.find('.', 15) != std::string_view::npos) return name.substr(0, dash);
  }
  return "";
}

std::vector<std::string> suffixes(const std::string& file_name) {
  std::vector<std::string> out;
  const auto parts = split(file_name, '.');
  for (std::size_t i = 1; i < parts.size(); ++i) out.push_back("." + ascii_lower(parts[i]));
  return out;
}

// Hugging Face's format of a suffix ("" when it has none).
std::string format_of(const std::string& suffix) {
  static const std::map<std::string, std::string> known = {{".csv", "csv"},
                                                           {".tsv", "csv"},
                                                           {".json", "json"},
                                                           {".jsonl", "json"},
                                                           {".ndjson", "json"},
                                                           {".parquet", "parquet"},
                                                           {".geoparquet", "parquet"},
                                                           {".gpq", "parquet"},
                                                           {".arrow", "arrow"},
                                                           {".txt", "text"},
                                                           {".tar", "webdataset"},
                                                           {".xml", "xml"},
                                                           {".h5", "hdf5"},
                                                           {".hdf5", "hdf5"},
                                                           {".lance", "lance"},
                                                           {".eval", "eval"},
                                                           {".wav", "audiofolder"},
                                                           {".mp3", "audiofolder"},
                                                           {".flac", "audiofolder"},
                                                           {".ogg", "audiofolder"},
                                                           {".opus", "audiofolder"},
                                                           {".mp4", "videofolder"},
                                                           {".avi", "videofolder"},
                                                           {".mkv", "videofolder"},
                                                           {".mov", "videofolder"},
                                                           {".webm", "videofolder"},
                                                           {".pdf", "pdffolder"},
                                                           {".nii", "niftifolder"},
                                                           {".zip", "zip"}};
  if (const auto it = known.find(suffix); it != known.end()) return it->second;
  if (has_image_extension("x" + suffix)) return "imagefolder";
  return "";
}

bool is_metadata(const std::string& file_name) {
  return file_name == "metadata.csv" || file_name == "metadata.jsonl" ||
         file_name == "metadata.parquet";
}

// The format of a split's files: the most common suffix that names one.
std::string infer_format(const std::vector<std::string>& files) {
  std::map<std::pair<std::string, bool>, std::size_t> counts;
  for (const std::string& f : files) {
    const std::string name = components(f).back();
    for (const std::string& s : suffixes(name)) ++counts[{s, is_metadata(name)}];
  }
  std::vector<std::pair<std::pair<std::string, bool>, std::size_t>> ranked(counts.begin(),
                                                                           counts.end());
  auto key = [](const std::pair<std::pair<std::string, bool>, std::size_t>& e) {
    const std::string& ext = e.first.first;
    return std::make_tuple(!e.first.second, e.second, ext == ".parquet", ext == ".jsonl",
                           ext == ".json", ext == ".csv", ext);
  };
  std::stable_sort(ranked.begin(), ranked.end(),
                   [&](const auto& a, const auto& b) { return key(a) > key(b); });
  for (const auto& e : ranked)
    if (const std::string format = format_of(e.first.first); !format.empty()) return format;
  return "";
}

// Whether a file is of `format`: a suffix of it, possibly followed by one more (HF's filter,
// which lets "train.csv.gz" through as csv).
bool file_of_format(const std::string& file_name, const std::string& format) {
  const auto s = suffixes(file_name);
  for (std::size_t i = 0; i < s.size(); ++i)
    if (i + 2 >= s.size() && format_of(s[i]) == format) return true;
  return false;
}

}  // namespace

std::optional<DataFiles> find_data_files(const fs::path& dir) {
  static const std::set<std::string> ignored = {"README.md",         "config.json",
                                                "dataset_info.json", "dataset_infos.json",
                                                "dummy_data.zip",    "dataset_dict.json"};
  std::vector<std::string> all;  // relative paths with '/', sorted
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
       !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      // Symlinked folders are not followed (a link to "." would never end).
      if (name.empty() || name[0] == '.' || name.rfind("__", 0) == 0 || it->is_symlink(type_ec))
        it.disable_recursion_pending();
      continue;
    }
    if (name.empty() || name[0] == '.' || ignored.count(name) != 0) continue;
    if (!it->is_regular_file(type_ec)) continue;  // a dangling link, a socket
    all.push_back(it->path().lexically_relative(dir).generic_string());
  }
  MS_CHECK(!ec, ErrorCode::kIo, "cannot list dataset folder '{}': {}", dir.string(), ec.message());
  std::sort(all.begin(), all.end());

  DataFiles found;
  // 1. Shards in data/, any split name.
  std::map<std::string, std::vector<std::string>> shards;
  for (const std::string& f : all)
    if (std::string s = shard_split(f); !s.empty()) shards[s].push_back(f);
  if (!shards.empty()) {
    for (const auto& [name, files] : split_keywords())
      if (auto it = shards.find(name); it != shards.end())
        found.splits.emplace_back(name, it->second);
    for (const auto& [name, files] : shards)
      if (name != "train" && name != "validation" && name != "test")
        found.splits.emplace_back(name, files);
  }
  // 2. A keyword naming a folder on the path, then 3. one in the file name. A split's files are
  // its patterns' matches one pattern after another (each sorted), so a file two patterns take
  // is read twice, as Hugging Face reads it.
  for (const bool in_folder : {true, false}) {
    if (!found.splits.empty()) break;
    for (const auto& [split_name, keywords] : split_keywords()) {
      std::vector<std::string> files;
      for (const std::string& k : keywords) {
        for (const ComponentTest test : in_folder ? folder_patterns() : file_patterns()) {
          for (const std::string& f : all) {
            const auto parts = components(f);
            bool taken = false;
            if (in_folder) {
              for (std::size_t i = 0; i + 1 < parts.size() && !taken; ++i)
                taken = test(parts[i], k);
            } else {
              taken = test(parts.back(), k);
            }
            if (taken) files.push_back(f);
          }
        }
      }
      if (!files.empty()) found.splits.emplace_back(split_name, std::move(files));
    }
  }
  // 4. Everything is the training split.
  if (found.splits.empty() && !all.empty()) found.splits.emplace_back("train", all);
  if (found.splits.empty()) return std::nullopt;

  for (auto& [split_name, files] : found.splits) {
    const std::string format = infer_format(files);
    if (format.empty()) return std::nullopt;
    if (found.format.empty()) {
      found.format = format;
    } else if (format != found.format) {
      throw Error(
          ErrorCode::kIntegrity,
          fmt::format("{}: the splits hold data of different formats ({} of split '{}', "
                      "{} of split '{}'), as Hugging Face's datasets refuses too",
                      dir.string(), found.format, found.splits.front().first, format, split_name),
          "describe the files in a dataset card's configs (README.md) or a dataset "
          "config <name>.json");
    }
    std::vector<std::string> kept;
    for (const std::string& f : files)
      if (file_of_format(components(f).back(), format)) kept.push_back(f);
    files = std::move(kept);
  }
  return found;
}

}  // namespace ms::data::detail

// Which files of a folder are a dataset's data, and which split each belongs to, as Hugging Face
// `datasets` (4.8, data_files.py, load.py and packaged_modules) decides for `load_dataset(DIR)`
// and ModelScope's MsDataset.load for a hub dataset without a configuration. Facts from there:
//  - a file counts when one of its suffixes (case as written) is a data extension HF knows; hidden
//    names (starting with '.', but for names of dots only) and folders starting with "__" are
//    skipped, and so are README.md, config.json, dataset_info(s).json, dataset_dict.json,
//    dummy_data.zip; symlinked folders are not followed;
//  - splits, first rule that finds files wins: shards `data/<split>-NNNNN-of-NNNNN*.*`;
//    `*.eval` files (a "logs" split); a split keyword naming a folder on the path (`train/`,
//    `train-2/`, `my_train/`); a keyword in the file name (`train.csv`, `dataset-test.jsonl`);
//    else every file is "train". Keywords: train, training / validation, valid, dev, val / test,
//    testing, eval, evaluation, bounded by one of "-._ " or a digit, case as written. A split's
//    files are each pattern's matches in turn, so a file two patterns take is there twice;
//  - a split's format is its most common suffix (lower-cased; metadata files last; ties:
//    .parquet, .jsonl, .json, .csv, then by name); every split must have the same one; only
//    files with a suffix of that format's family (or .zip), followed by nothing or by '.' and
//    anything, are read, all with the format's options (a majority of .tsv reads .csv files
//    with tabs too).
#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <system_error>
#include <tuple>

#include "dataset_formats.h"
#include "ms/core/error.h"
#include "ms/core/text.h"

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

// HF's data extensions (datasets 4.8.4 packaged_modules) and the format each says. The folder
// formats' extensions count in lower and in upper case, the others as written here only.
const std::map<std::string, std::string>& extension_formats() {
  static const std::map<std::string, std::string> table = [] {
    std::map<std::string, std::string> t = {{".csv", "csv"},
                                            {".tsv", "tsv"},
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
                                            {".eval", "eval"}};
    const auto add_folder = [&t](const char* format, std::initializer_list<const char*> exts) {
      for (const char* e : exts) {
        t.emplace(e, format);
        t.emplace(ascii_upper(e), format);
      }
    };
    add_folder(
        "imagefolder",
        {".apng", ".blp",  ".bmp",  ".bufr", ".bw",  ".cur",  ".dcx", ".dds",  ".dib",  ".emf",
         ".eps",  ".fit",  ".fits", ".flc",  ".fli", ".ftc",  ".ftu", ".gbr",  ".gif",  ".grib",
         ".icb",  ".icns", ".ico",  ".iim",  ".im",  ".j2c",  ".j2k", ".jfif", ".jp2",  ".jpc",
         ".jpe",  ".jpeg", ".jpf",  ".jpg",  ".jpx", ".msp",  ".pbm", ".pcd",  ".pcx",  ".pgm",
         ".png",  ".pnm",  ".ppm",  ".ps",   ".psd", ".pxr",  ".ras", ".rgb",  ".rgba", ".sgi",
         ".tga",  ".tif",  ".tiff", ".vda",  ".vst", ".webp", ".wmf", ".xbm",  ".xpm"});
    add_folder(
        "audiofolder",
        {".3g2", ".3gp",   ".aiff", ".asf",  ".au",    ".avr",  ".caf",   ".f4v",  ".flac", ".flv",
         ".htk", ".ircam", ".m4v",  ".mat4", ".mat5",  ".mp3",  ".mpc2k", ".mpg",  ".mxf",  ".nist",
         ".nut", ".ogg",   ".ogm",  ".opus", ".paf",   ".pvf",  ".raw",   ".rf64", ".sd2",  ".sds",
         ".svx", ".voc",   ".w64",  ".wav",  ".wavex", ".webm", ".wma",   ".wmv",  ".wve",  ".xi"});
    add_folder("videofolder", {".avi", ".mkv", ".mov", ".mp4", ".mpeg"});
    add_folder("pdffolder", {".pdf"});
    add_folder("niftifolder", {".nii"});
    return t;
  }();
  return table;
}

std::string format_of(const std::string& suffix) {
  const auto& t = extension_formats();
  const auto it = t.find(suffix);
  return it == t.end() ? "" : it->second;
}

// The extensions HF reads for a format: csv and tsv are one module (csv) with two separators.
bool in_family(const std::string& suffix, const std::string& format) {
  if (suffix == ".zip") return true;  // an archive of such files (ms refuses it when read)
  const std::string f = format_of(suffix);
  if (format == "csv" || format == "tsv") return f == "csv" || f == "tsv";
  return !f.empty() && f == format;
}

struct DataFile {
  std::string path;                  // relative, with '/'
  std::vector<std::string> folders;  // the folders on the path
  std::string name;
  std::vector<std::string> suffixes;  // ".csv", ".gz": every dot-separated part after the first
};

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

// For `data/<split>-NNNNN-of-NNNNN*.*` (the glob that makes a file a shard): the split, as HF
// reads it with the regex `(.+)-\d{5}-of-\d{4}` (greedy: the longest name before such a
// number, which may then be refused), or "" when the path is not a shard.
std::string shard_split(const DataFile& f) {
  if (f.folders.size() != 1 || f.folders[0] != "data") return "";
  const std::string& n = f.name;
  const auto shard_number_at = [&n](std::size_t dash, std::size_t last_digits) {
    const std::string_view rest = std::string_view(n).substr(dash);
    return rest.size() >= 10 + last_digits && is_decimal(rest.substr(1, 5)) &&
           rest.substr(6, 4) == "-of-" && is_decimal(rest.substr(10, last_digits));
  };
  bool shard = false;  // the glob: 5 digits after "-of-", then a '.' somewhere after
  for (std::size_t dash = n.find('-'); dash != std::string::npos && !shard;
       dash = n.find('-', dash + 1))
    shard = dash > 0 && shard_number_at(dash, 5) && n.find('.', dash + 15) != std::string::npos;
  if (!shard) return "";
  for (std::size_t dash = n.rfind('-'); dash != std::string::npos && dash > 0;
       dash = n.rfind('-', dash - 1)) {
    if (shard_number_at(dash, 4)) return n.substr(0, dash);
  }
  return "";
}

// HF's split names: `\w+(\.\w+)*` (letters, digits, '_'; non-ASCII taken as letters).
bool valid_split_name(const std::string& s) {
  bool word = false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '_' || u >= 0x80) {
      word = true;
    } else if (c == '.' && word) {
      word = false;
    } else {
      return false;
    }
  }
  return word;
}

bool is_metadata(const std::string& file_name) {
  return file_name == "metadata.csv" || file_name == "metadata.jsonl" ||
         file_name == "metadata.parquet";
}

// A split's format: the most common suffix that names one.
std::string infer_format(const std::vector<const DataFile*>& files) {
  std::map<std::pair<std::string, bool>, std::size_t> counts;
  for (const DataFile* f : files)
    for (const std::string& s : f->suffixes) ++counts[{ascii_lower(s), is_metadata(f->name)}];
  std::vector<std::pair<std::pair<std::string, bool>, std::size_t>> ranked(counts.begin(),
                                                                           counts.end());
  auto key = [](const std::pair<std::pair<std::string, bool>, std::size_t>& e) {
    const std::string& ext = e.first.first;
    return std::make_tuple(!e.first.second, e.second, ext == ".parquet", ext == ".jsonl",
                           ext == ".json", ext == ".csv", ext);
  };
  std::stable_sort(ranked.begin(), ranked.end(),
                   [&](const auto& a, const auto& b) { return key(a) > key(b); });
  for (const auto& e : ranked) {
    if (e.first.first == ".zip") return "zip";  // HF looks inside; ms does not
    if (const std::string format = format_of(e.first.first); !format.empty()) return format;
  }
  return "";
}

// Whether path[p..] matches pattern[q..], segment by segment; `memo` (one entry per (p, q),
// 0 unknown, 1 no, 2 yes) keeps patterns of many `**` linear in what they are tried against.
bool segments_match(const std::vector<std::string>& path, std::size_t p,
                    const std::vector<std::string>& pattern, std::size_t q,
                    std::vector<char>& memo) {
  char& known = memo[p * (pattern.size() + 1) + q];
  if (known != 0) return known == 2;
  bool match = false;
  if (q == pattern.size()) {
    match = p == path.size();
  } else if (pattern[q] == "**") {
    for (std::size_t k = p; k <= path.size() && !match; ++k)
      match = segments_match(path, k, pattern, q + 1, memo);
  } else {
    // Inside one segment: fnmatch's `*`, `?`, `[...]` (a backslash is a character, as in
    // Python's glob).
    match = p < path.size() && ::fnmatch(pattern[q].c_str(), path[p].c_str(), FNM_NOESCAPE) == 0 &&
            segments_match(path, p + 1, pattern, q + 1, memo);
  }
  known = match ? 2 : 1;
  return match;
}

}  // namespace

bool data_files_pattern_matches(std::string_view path, std::string_view pattern) {
  const std::vector<std::string> path_parts = split(std::string(path), '/');
  const std::vector<std::string> pattern_parts = split(std::string(pattern), '/');
  std::vector<char> memo((path_parts.size() + 1) * (pattern_parts.size() + 1), 0);
  return segments_match(path_parts, 0, pattern_parts, 0, memo);
}

std::optional<DataFiles> find_data_files(const fs::path& dir) {
  static const std::set<std::string> ignored = {"README.md",         "config.json",
                                                "dataset_info.json", "dataset_infos.json",
                                                "dummy_data.zip",    "dataset_dict.json"};
  const auto hidden = [](const std::string& name) {
    return !name.empty() && name[0] == '.' && name.find_first_not_of('.') != std::string::npos;
  };
  std::vector<DataFile> all;  // sorted by path
  std::error_code ec;
  // A folder that cannot be read is skipped, as HF's walk skips it.
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      // Symlinked folders are not followed (HF's walk does not; a link to "." would not end).
      if (name.empty() || hidden(name) || name.rfind("__", 0) == 0 || it->is_symlink(type_ec))
        it.disable_recursion_pending();
      continue;
    }
    if (name.empty() || hidden(name) || ignored.count(name) != 0) continue;
    if (!it->is_regular_file(type_ec)) continue;  // a dangling link, a socket
    DataFile f;
    f.path = it->path().lexically_relative(dir).generic_string();
    f.folders = split(f.path, '/');
    f.folders.pop_back();
    f.name = name;
    const auto parts = split(name, '.');
    for (std::size_t i = 1; i < parts.size(); ++i) f.suffixes.push_back("." + parts[i]);
    all.push_back(std::move(f));
  }
  MS_CHECK(!ec, ErrorCode::kIo, "cannot list dataset folder '{}': {}", dir.string(), ec.message());
  std::sort(all.begin(), all.end(),
            [](const DataFile& a, const DataFile& b) { return a.path < b.path; });

  std::vector<std::pair<std::string, std::vector<const DataFile*>>> splits;
  // 1. Shards in data/.
  std::map<std::string, std::vector<const DataFile*>> shards;
  for (const DataFile& f : all)
    if (std::string s = shard_split(f); !s.empty()) shards[s].push_back(&f);
  for (const auto& [name, files] : shards) {
    MS_CHECK(valid_split_name(name), ErrorCode::kIntegrity,
             "{}: data/{}: the split name '{}' of a shard is not letters, digits and '_' "
             "(with dots between), which Hugging Face's datasets refuses too",
             dir.string(), files.front()->name, name);
  }
  for (const auto& [name, files] : split_keywords())
    if (auto it = shards.find(name); it != shards.end()) splits.emplace_back(name, it->second);
  for (const auto& [name, files] : shards)
    if (name != "train" && name != "validation" && name != "test") splits.emplace_back(name, files);
  // 2. Evaluation logs (`**/*.eval`): a split of their own, alone.
  if (splits.empty()) {
    std::vector<const DataFile*> logs;
    for (const DataFile& f : all)
      if (f.name.size() > 5 && f.name.compare(f.name.size() - 5, 5, ".eval") == 0)
        logs.push_back(&f);
    if (!logs.empty()) splits.emplace_back("logs", logs);
  }
  // 3. A keyword naming a folder on the path, then 4. one in the file name: for each split its
  // keywords in order, each keyword's patterns in order, each pattern's files in path order.
  for (const bool in_folder : {true, false}) {
    if (!splits.empty()) break;
    for (const auto& [split_name, keywords] : split_keywords()) {
      std::vector<const DataFile*> files;
      for (const std::string& k : keywords) {
        for (const ComponentTest test : in_folder ? folder_patterns() : file_patterns()) {
          for (const DataFile& f : all) {
            bool taken = false;
            if (in_folder) {
              for (const std::string& folder : f.folders)
                if ((taken = test(folder, k))) break;
            } else {
              taken = test(f.name, k);
            }
            if (taken) files.push_back(&f);
          }
        }
      }
      if (!files.empty()) splits.emplace_back(split_name, std::move(files));
    }
  }
  // 5. Everything is the training split.
  if (splits.empty() && !all.empty()) {
    std::vector<const DataFile*> files;
    for (const DataFile& f : all) files.push_back(&f);
    splits.emplace_back("train", std::move(files));
  }
  if (splits.empty()) return std::nullopt;

  // The splits are decided on every file; each then keeps those with a data extension (as
  // written), and its format is theirs. A split left with none has no format (as in HF, where
  // "test.md" makes a test split that cannot be read).
  std::vector<std::string> formats;
  for (auto& [split_name, files] : splits) {
    files.erase(std::remove_if(files.begin(), files.end(),
                               [](const DataFile* f) {
                                 return std::none_of(f->suffixes.begin(), f->suffixes.end(),
                                                     [](const std::string& x) {
                                                       return x == ".zip" || !format_of(x).empty();
                                                     });
                               }),
                files.end());
    formats.push_back(infer_format(files));
  }
  if (std::all_of(formats.begin(), formats.end(), [](const std::string& f) { return f.empty(); }))
    return std::nullopt;
  DataFiles found;
  for (std::size_t i = 0; i < splits.size(); ++i) {
    const auto& [split_name, files] = splits[i];
    const std::string format = formats[i].empty() ? "no data file" : formats[i];
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
    // HF's filter: a suffix of the family, then nothing or '.' and anything ("train.csv.gz",
    // "train.csv.bak" are CSV files; an upper-case ".CSV" is not).
    std::vector<std::string> kept;
    for (const DataFile* f : files)
      if (std::any_of(f->suffixes.begin(), f->suffixes.end(),
                      [&](const std::string& s) { return in_family(s, format); }))
        kept.push_back(f->path);
    found.splits.emplace_back(split_name, std::move(kept));
  }
  return found;
}

}  // namespace ms::data::detail

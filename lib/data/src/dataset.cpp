// Dataset loading, the shared part: the spec dispatch to one loader per format (table_dataset,
// imagefolder_dataset, folder_dataset, zip_dataset, hub_source), split selection and slicing,
// image verification (--verify), and the Dataset summary.
#include "ms/data/dataset.h"

#include <algorithm>
#include <system_error>

#include "dataset_formats.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/data/archive.h"
#include "ms/data/image.h"
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

namespace detail {

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
  hint += fmt::format("(--{} takes one of those)", what);
  throw Error(ErrorCode::kNotFound,
              fmt::format("{} '{}' not found in {}; available: {}", what, name, where,
                          available.empty() ? std::string("none") : join(available, ", ")),
              hint);
}

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return (!name.empty() && name[0] == '.') || name == "__MACOSX";
}

std::string lower_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

bool is_table_file(const fs::path& path) {
  const std::string ext = data_file_extension(path);
  return ext == ".csv" || ext == ".tsv" || ext == ".jsonl" || ext == ".ndjson";
}

}  // namespace detail

namespace {

using detail::split_names;
using detail::unknown_choice;

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
  if (split) {
    const SplitSelector selector = parse_split(*split);
    split_name = selector.name;
    // A slice's bounds count the split's rows: all of them are read.
    if (selector.sliced) options.max_rows = SIZE_MAX;
  }

  auto local_only_subset = [&](const std::string& where) {
    if (subset && *subset != "default") unknown_choice("subset", *subset, where, {"default"});
  };
  switch (spec.kind) {
    case SourceKind::kCsv:
    case SourceKind::kText:
    case SourceKind::kJsonl:
    case SourceKind::kParquet:
      local_only_subset(io::local_path_of(spec.location));
      detail::load_table_file(spec, options, ds);
      break;
    case SourceKind::kImageFolder: {
      const fs::path dir = io::local_path_of(spec.location);
      local_only_subset(dir.string());
      detail::load_imagefolder(dir, ds);
      break;
    }
    case SourceKind::kFolder:
      detail::load_folder(io::local_path_of(spec.location), ds, options, subset, split_name);
      break;
    case SourceKind::kZip:
      detail::load_zip(spec, options, subset, split_name, ds);
      break;
    case SourceKind::kHub:
      detail::load_hub(spec, options, subset, split_name, ds);
      break;
  }
  if (split) select_split(ds, *split);
  if (options.verify_images) {
    for (auto& s : ds.splits) verify_split_images(s, options.skip_bad);
  }
  return ds;
}

}  // namespace

const Split& Dataset::split(const std::string& name) const {
  for (const auto& s : splits)
    if (s.name == name) return s;
  unknown_choice("split", name, spec, split_names(splits));
}

const Split& Dataset::only_split(const char* option) const {
  MS_CHECK(!splits.empty(), ErrorCode::kNotFound, "dataset {} has no splits", spec);
  if (splits.size() > 1) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} has {} splits ({}): choose one with {}", spec, splits.size(),
                            join(split_names(splits), ", "), option),
                fmt::format("pass {} NAME (a slice such as test[:100] works too)", option));
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
    for (const auto& c : s.table.columns) {
      Json col = {{"name", c.name}, {"type", column_type_name(c.type)}};
      if (!c.class_names.empty()) col["names"] = c.class_names;  // a ClassLabel's, by id
      cols.push_back(std::move(col));
    }
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

Dataset load_dataset(std::string_view spec, const LoadOptions& options) {
  return load_dataset(parse_dataset_spec(spec), options);
}

}  // namespace ms::data

// Loading datasets from a spec: splits of typed rows, the label map, and a JSON summary.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ms/config/config.h"
#include "ms/core/export.h"
#include "ms/data/spec.h"
#include "ms/data/table.h"

namespace ms::data {

/// One split of a dataset.
struct Split {
  std::string name;       ///< "train", "validation", "test", ...
  std::string selection;  ///< the split as asked, with its slice ("train[:10%]"), else the name
  Table table;
  std::size_t skipped_non_image = 0;   ///< imagefolder: files that are not images
  std::size_t skipped_bad = 0;         ///< images that failed to decode (with verify + skip_bad)
  std::vector<std::string> bad_files;  ///< their paths (first 100)
};

/// A loaded dataset: one subset, its splits, and the label map shared by them.
struct MS_API Dataset {
  std::string spec;  ///< the spec text it was loaded from
  SourceKind kind = SourceKind::kCsv;
  std::filesystem::path root;  ///< local folder or file the rows come from
  std::string subset = "default";
  std::vector<std::string> subsets;  ///< all subsets the source offers
  std::vector<Split> splits;
  std::vector<std::string> labels;  ///< label id -> class name (imagefolder); empty otherwise

  /// The split named `name`; ms::Error(kNotFound) listing the available ones otherwise.
  const Split& split(const std::string& name) const;

  /// The one split of a dataset loaded for a single split (`--split`, or a source with only one);
  /// ms::Error(kUsage) listing the splits when there are several, kNotFound when there are none.
  /// `option` is the command-line option that picks a split, for the message ("--eval-split").
  const Split& only_split(const char* option = "--split") const;

  /// Summary: kind, subset(s), per split its rows and columns with types (and a ClassLabel
  /// column's class names), labels, skip counts.
  Json info() const;
};

/// Load-time choices. `subset` and `split` override those in the spec.
struct LoadOptions {
  std::optional<std::string> subset;
  std::optional<std::string> split;     ///< one split, optionally sliced: "train[:10%]"
  std::optional<std::string> revision;  ///< hub revision (overrides spec's @REV)
  bool verify_images = false;           ///< decode every image now (errors name the file)
  bool skip_bad = false;                ///< with verify_images: drop and count bad images
  std::filesystem::path cache_root;     ///< default: ms::cache_dir() / "datasets"
  std::optional<char> delimiter;        ///< CSV files named by the spec: overrides ',' / tsv's tab
  bool header = true;                   ///< CSV files named by the spec: first row names columns
  /// A look at the first rows (`ms dataset head`): CSV, TSV and JSON lines files stop being
  /// parsed after this many rows of a split (later files of the split are not read), so their
  /// columns are typed from those rows. Not with a slice in the split (its bounds need them all).
  std::size_t max_rows = SIZE_MAX;
};

/// Loads a dataset. Errors: kNotFound for missing files and unknown subsets or splits (listing the
/// available ones), kIntegrity for malformed data (naming file and line), kUsage for bad specs and
/// slices, kMissingComponent for hub: specs without a hub client and for missing decoders.
MS_API Dataset load_dataset(const DatasetSpec& spec, const LoadOptions& options = {});
MS_API Dataset load_dataset(std::string_view spec, const LoadOptions& options = {});

/// Maps a folder or file name to a split name by HF's keywords: train/training -> "train",
/// validation/valid/val/dev -> "validation", test/testing/eval/evaluation -> "test"; else "".
MS_API std::string split_name_of(std::string_view name);

}  // namespace ms::data

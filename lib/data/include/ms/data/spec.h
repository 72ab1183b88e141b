// Dataset specs ("csv:PATH", "hub:OWNER/NAME@REV:SUBSET/SPLIT", a bare path) and split slices.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "ms/core/export.h"

namespace ms::data {

/// Where a dataset comes from.
enum class SourceKind {
  kCsv,          ///< one CSV/TSV file -> split "train"
  kJsonl,        ///< one JSON lines file -> split "train"
  kText,         ///< one text file, a row per line -> split "train"
  kParquet,      ///< one Parquet file -> split "train"
  kImageFolder,  ///< class folders, optionally under train/ validation/ test/
  kFolder,       ///< a folder holding a dataset config <name>.json (ModelScope layout)
  kZip,          ///< a zip file or URL, extracted into the cache, then loaded as a folder
  kHub,          ///< OWNER/NAME on the hub, through the registered snapshot provider
};

/// "csv", "jsonl", "text", "parquet", "imagefolder", "folder", "zip", "hub".
MS_API const char* source_kind_name(SourceKind kind);

/// A parsed dataset spec.
struct DatasetSpec {
  std::string text;  ///< the spec as given
  SourceKind kind = SourceKind::kCsv;
  std::string location;  ///< path, URL, or OWNER/NAME for kHub
  char delimiter = ',';  ///< CSV delimiter ('\t' for tsv: specs and .tsv files)
  std::string revision;  ///< hub revision (empty = master)
  std::optional<std::string> subset;
  std::optional<std::string> split;  ///< may carry a slice: "train[:10%]"
};

/// Parses a spec: `csv:PATH`, `tsv:PATH`, `jsonl:PATH` (or `json:`), `text:PATH`, `parquet:PATH`,
/// `imagefolder:DIR`, `folder:DIR`, `zip:PATH_OR_URL`, `hub:OWNER/NAME[@REV][:SUBSET[/SPLIT]]`, or
/// a bare path whose kind is inferred from its extension (.csv .tsv .jsonl .json .txt .parquet
/// .zip) or, for a folder, its layout (a dataset config json or top-level .csv/.tsv/.jsonl tables
/// -> folder, else imagefolder). Throws kUsage for an unknown prefix or an empty location and
/// kNotFound for a bare path that does not exist.
MS_API DatasetSpec parse_dataset_spec(std::string_view text);

/// A split name with an optional slice, as in HF datasets: "train", "train[:10%]",
/// "test[100:200]", "train[-50:]". Percent and absolute bounds cannot be mixed.
struct MS_API SplitSelector {
  std::string name;
  bool sliced = false;
  bool percent = false;
  std::optional<long long> from;
  std::optional<long long> to;

  /// The [begin, end) rows this slice selects from `rows` rows. Bounds are clamped like Python
  /// slices and percentages round to the closest row; an empty result from a non-empty split is a
  /// kUsage error naming the slice.
  std::pair<std::size_t, std::size_t> resolve(std::size_t rows) const;

  /// The text form ("train[:10%]").
  std::string str() const;
};

/// Parses "NAME" or "NAME[FROM:TO]"; throws kUsage for a malformed slice (naming it).
MS_API SplitSelector parse_split(std::string_view text);

}  // namespace ms::data

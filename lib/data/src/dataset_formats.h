// Private to ms_data: the per-format dataset loaders that load_dataset() dispatches to (one file
// each) and the helpers they share.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ms/data/csv.h"
#include "ms/data/dataset.h"

namespace ms::data::detail {

// ---- shared (dataset.cpp) ----------------------------------------------------------------------

/// The names of `splits`, in order.
std::vector<std::string> split_names(const std::vector<Split>& splits);

/// kNotFound: "<what> '<name>' not found in <where>; available: ...", with close matches and the
/// option that picks one (--subset, --split) as the hint.
[[noreturn]] void unknown_choice(const char* what, const std::string& name,
                                 const std::string& where,
                                 const std::vector<std::string>& available);

/// Dot files and macOS archive debris (__MACOSX/ folders) are not data.
bool is_hidden(const std::filesystem::path& p);

/// The extension, lower-cased (".csv").
std::string lower_extension(const std::filesystem::path& path);

/// .csv, .tsv, .jsonl or .ndjson: a table file a folder dataset reads as a split.
bool is_table_file(const std::filesystem::path& path);

// ---- table files: csv, tsv, jsonl, text (table_dataset.cpp) ------------------------------------

/// A CSV (with `delimiter`; .tsv files use tabs) or JSON lines (.jsonl, .json, .ndjson) file.
/// `max_rows` (here and below): stop after that many rows (LoadOptions::max_rows).
Table read_table(const std::filesystem::path& path, char delimiter,
                 std::size_t max_rows = SIZE_MAX);

/// The tables of one split read from several files (train-00000-of-00002.csv, ...): same columns
/// in the same order; CSV types are inferred over all of them together. `delimiter`: the
/// separator of every CSV / TSV file (a dataset card's `sep`), else ',' (tabs for .tsv).
Table read_tables(const std::vector<std::filesystem::path>& files, std::size_t max_rows = SIZE_MAX,
                  std::optional<char> delimiter = std::nullopt);
/// The files of one split, all read as JSON (lines or an array) or as CSV with `delimiter`.
Table read_tables_as(const std::vector<std::filesystem::path>& files, bool json, char delimiter,
                     std::size_t max_rows = SIZE_MAX);

/// ModelScope's convention: a column named "x:FILE" holds paths relative to `base`; they are
/// checked, made absolute, and the column becomes kImage (all images) or kFile.
void resolve_file_columns(Table& table, const std::filesystem::path& base,
                          const std::string& source);

/// A csv:, tsv:, jsonl: or text: spec: one local file, split "train".
void load_table_file(const DatasetSpec& spec, const LoadOptions& options, Dataset& ds);

/// A folder's data files by split, as Hugging Face's load_dataset(DIR) finds them (data_files.cpp).
struct DataFiles {
  /// Hugging Face's format of the files: "csv", "tsv" (its csv module with tabs), "json"
  /// (.json, .jsonl, .ndjson), "imagefolder", "zip", or another it reads and ms does not
  /// ("parquet", "text", "eval", ...).
  std::string format;
  /// Split name -> the files of that format, relative to the folder with '/', in reading order;
  /// train, validation, test first.
  std::vector<std::pair<std::string, std::vector<std::string>>> splits;
};

/// Whether `path` (relative, with '/') matches a dataset card's data_files `pattern` as
/// Hugging Face's datasets resolves it (fsspec's glob): `*`, `?` and `[...]` match within one
/// path component, never across '/'; a component `**` matches zero or more folders
/// ("data/**/*.csv" takes data/a.csv too). Not fnmatch's rules, which hub allow/ignore patterns
/// keep (hub::path_matches, as ModelScope's snapshot_download): there `*` crosses '/'.
bool data_files_pattern_matches(std::string_view path, std::string_view pattern);

/// nullopt when the folder holds no file of a format Hugging Face knows. kIntegrity when the
/// splits' formats differ.
std::optional<DataFiles> find_data_files(const std::filesystem::path& dir);

/// The folder's CSV / JSON / Parquet tables by split (find_data_files); false when its data are
/// images or there are none; kMissingComponent for data ms does not read (arrow, text, zip
/// archives among the files, ...). `delimiter`: the separator of its CSV / TSV files, else
/// ',' (tabs for a majority of .tsv).
bool load_table_folder(const std::filesystem::path& dir, Dataset& ds,
                       std::size_t max_rows = SIZE_MAX,
                       std::optional<char> delimiter = std::nullopt);

// ---- imagefolder (imagefolder_dataset.cpp) -----------------------------------------------------

/// <class>/<image> folders, optionally under train/ validation/ test/ (or with HF's metadata
/// file).
void load_imagefolder(const std::filesystem::path& root, Dataset& ds);

// ---- Hugging Face dataset cards (dataset_card.cpp) ----------------------------------------------

/// Whether `dir` holds a README.md whose YAML front matter declares `configs` (a Hugging Face
/// dataset card: subsets and their split files).
bool has_readme_configs(const std::filesystem::path& dir);

/// Loads the subset `subset_choice` (else the card's default) of the card's configs into `ds`;
/// false when `dir` has no card with configs.
bool load_dataset_card(const std::filesystem::path& dir, Dataset& ds,
                       const std::optional<std::string>& subset_choice,
                       const std::optional<std::string>& wanted_split, std::size_t max_rows);

// ---- folders: ModelScope dataset config, else tables, else imagefolder (folder_dataset.cpp) -----

/// Loads a local folder: a ModelScope dataset config (<name>.json: subset -> split -> {meta,
/// file}), else table files, else an imagefolder. `name_hint` names the config file for hub
/// snapshots (the repo name).
void load_folder(const std::filesystem::path& dir, Dataset& ds, const LoadOptions& options,
                 const std::optional<std::string>& subset_choice,
                 const std::optional<std::string>& wanted_split, const std::string& name_hint = "");

// ---- zip archives, local or URL (zip_dataset.cpp) ----------------------------------------------

/// A local path as is; a URL downloaded once into `cache_root`/downloads.
std::filesystem::path fetch_to_cache(const std::string& location,
                                     const std::filesystem::path& cache_root);

/// A dataset config's split `file`: a folder inside the dataset, or a zip (inside it or a URL)
/// extracted into the cache; returns the folder holding the split's data.
std::filesystem::path materialize_file(const std::filesystem::path& folder, const std::string& file,
                                       const std::filesystem::path& cache_root,
                                       const std::string& source);

/// `dir`, or the folder it only wraps (zips often put everything under one top folder).
std::filesystem::path unwrap_single_folder(std::filesystem::path dir);

/// A zip: spec: the archive (local or URL) extracted once into the cache, loaded as a folder.
void load_zip(const DatasetSpec& spec, const LoadOptions& options,
              const std::optional<std::string>& subset,
              const std::optional<std::string>& wanted_split, Dataset& ds);

// ---- hub snapshots (hub_source.cpp) ------------------------------------------------------------

/// A hub: spec: the snapshot of OWNER/NAME at the revision, loaded as a folder.
void load_hub(const DatasetSpec& spec, const LoadOptions& options,
              const std::optional<std::string>& subset,
              const std::optional<std::string>& wanted_split, Dataset& ds);

}  // namespace ms::data::detail

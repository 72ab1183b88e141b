// Safe zip extraction into the dataset cache (libzip, CMake option MS_WITH_ZIP).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "ms/core/export.h"

namespace ms::data {

/// Bounds on what one archive may extract to (zip bombs, runaway archives).
struct MS_API ExtractLimits {
  std::uint64_t max_bytes = 64ULL << 30;  ///< total uncompressed bytes
  std::uint64_t max_entries = 2'000'000;  ///< files, folders and links
  /// Most bytes written per compressed byte, per entry (its compressed size) and per archive (the
  /// zip file's size), counted while inflating; 0 turns the check off. Deflate reaches about 1030:1
  /// on zeros, so only bombs and degenerate files come near 200:1.
  std::uint64_t max_ratio = 200;
  std::uint64_t ratio_floor = 1ULL << 20;  ///< outputs up to this many bytes pass any ratio

  /// Defaults, overridden by MS_DATASET_MAX_EXTRACT_BYTES / MS_DATASET_MAX_EXTRACT_ENTRIES /
  /// MS_DATASET_MAX_EXTRACT_RATIO.
  static ExtractLimits from_env();
};

/// Whether this build can read zip files (and gzip-compressed data files).
MS_API bool zip_supported();

/// The bytes of a data file; one whose name ends in ".gz" is decompressed (gzip, of one member or
/// several), within `limits`' bytes and ratio, as Hugging Face's datasets reads `train.csv.gz`.
/// ms::Error: kIntegrity for a corrupt or over-limit file, kMissingComponent without zlib (a
/// build with MS_WITH_ZIP off), kIo when it cannot be read.
MS_API std::string read_data_file(const std::filesystem::path& path,
                                  const ExtractLimits& limits = ExtractLimits::from_env());

/// A data file's bytes, read already (`path` names them in errors), as read_data_file() makes
/// them: gzip decompressed, other compression and UTF-16 refused, by the first bytes.
MS_API std::string decode_data_file(std::string packed, const std::filesystem::path& path,
                                    const ExtractLimits& limits = ExtractLimits::from_env());

/// The start of a data file, for a look at its first rows.
struct DataFileStart {
  std::string bytes;
  bool complete = false;  ///< `bytes` is the whole file's content
};

/// At most `max_bytes` of a regular file holding plain text, cut anywhere (mid-line, mid-UTF-8
/// character); a file that fits, a compressed file or a pipe is read_data_file()'s whole
/// content, `complete`.
MS_API DataFileStart read_data_file_start(const std::filesystem::path& path, std::size_t max_bytes,
                                          const ExtractLimits& limits = ExtractLimits::from_env());

/// The extension that says a data file's format, lower case: ".csv" for "train.CSV" and for
/// "train.csv.gz".
MS_API std::string data_file_extension(const std::filesystem::path& path);

/// Extracts `zip_path` into `dest`, which must not exist: entries go into a temporary sibling
/// folder that is renamed to `dest` at the end, so `dest` is complete or absent. Rejects, as
/// ms::Error(kIntegrity) naming the archive and entry: absolute paths, ".." segments, backslashes,
/// symlinks whose target is absolute or climbs with "..", and archives over `limits` (sizes and
/// compression ratios are counted from the bytes actually inflated, not from the headers' claims).
/// Without libzip: kMissingComponent.
MS_API void extract_zip(const std::filesystem::path& zip_path, const std::filesystem::path& dest,
                        const ExtractLimits& limits = ExtractLimits::from_env());

/// Extracts once into the cache and returns the folder: `cache_root`/<first 16 hex of the
/// archive's sha256>. An existing folder is reused (it only exists when complete). The digest is
/// remembered per (path, size, mtime) under `cache_root`/.digests, so a reload does not re-hash.
MS_API std::filesystem::path extract_zip_cached(const std::filesystem::path& zip_path,
                                                const std::filesystem::path& cache_root);

}  // namespace ms::data

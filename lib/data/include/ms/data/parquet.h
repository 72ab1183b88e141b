// Apache Parquet files (as pyarrow writes them and Hugging Face's datasets stores them) read into
// typed tables.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "ms/core/export.h"
#include "ms/data/table.h"

namespace ms::data {

/// Parses a whole Parquet file held in memory: its top-level columns, every row group, in order.
/// Read: BOOLEAN, INT32, INT64, FLOAT, DOUBLE, BYTE_ARRAY and FIXED_LEN_BYTE_ARRAY columns,
/// required or optional (nulls), PLAIN, dictionary, RLE and DELTA_* encodings, data pages v1 and
/// v2, UNCOMPRESSED / SNAPPY / GZIP / ZSTD pages. Types as Hugging Face's datasets shows them:
/// (u)int8..64 -> kInt, float / double -> kFloat (NaN stays NaN: a missing value, shown as null),
/// bool -> kBool, strings (STRING / UTF8, ENUM, JSON) -> kString, DATE -> kString "YYYY-MM-DD",
/// TIMESTAMP -> kString "YYYY-MM-DD HH:MM:SS[.ffffff]" ("+00:00" when UTC-adjusted), and one
/// level of lists (`list<T>` of the types above) -> kJson cells holding the JSON array. The
/// file's "huggingface" metadata (Hugging Face's datasets' features) is applied as datasets reads
/// it: a Json feature column's JSON text -> kJson values, ClassLabel names -> Column::class_names;
/// metadata that is not JSON of that shape is passed over with a warning.
/// ms::Error naming `source` (and the column): kMissingComponent for what ms does not read
/// (structs, maps, nested lists, binary without a string type, DECIMAL, TIME, INT96, FLOAT16,
/// LZ4 / BROTLI / LZO pages, BYTE_STREAM_SPLIT, a uint64 beyond int64), kIntegrity for a
/// malformed or truncated file, two columns of one name, invalid UTF-8 in a string column (naming
/// the row) and a file that decodes to more memory than MS_DATASET_MAX_EXTRACT_RATIO allows (5
/// times that per byte of the file, at least 1 GiB), a decompression bomb's signature.
/// `max_rows`: row groups after the one that reaches it are not read (a look at the first rows).
MS_API Table parse_parquet(std::string_view bytes, const std::string& source,
                           std::size_t max_rows = SIZE_MAX);

/// Whether this build reads SNAPPY, GZIP and ZSTD pages (CMake option MS_WITH_PARQUET_CODECS);
/// without them only UNCOMPRESSED files are read.
MS_API bool parquet_codecs_supported();

/// Reads and parses a Parquet file (kNotFound when it does not exist).
MS_API Table read_parquet(const std::filesystem::path& path, std::size_t max_rows = SIZE_MAX);

}  // namespace ms::data

// Private to ms_data: the parts of Parquet's footer and page headers (parquet-format's
// parquet.thrift) that the reader uses, decoded from the Thrift compact protocol, and the page
// decompressors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ms::data::parquet {

// Numbers as parquet.thrift gives them.
enum PhysicalType : int {
  kBoolean = 0,
  kInt32 = 1,
  kInt64 = 2,
  kInt96 = 3,
  kFloat = 4,
  kDouble = 5,
  kByteArray = 6,
  kFixedLenByteArray = 7
};
enum Repetition : int { kRequired = 0, kOptional = 1, kRepeated = 2 };
enum Codec : int {
  kUncompressed = 0,
  kSnappy = 1,
  kGzip = 2,
  kLzo = 3,
  kBrotli = 4,
  kLz4 = 5,
  kZstd = 6,
  kLz4Raw = 7
};
enum Encoding : int {
  kPlain = 0,
  kPlainDictionary = 2,
  kRle = 3,
  kBitPacked = 4,
  kDeltaBinaryPacked = 5,
  kDeltaLengthByteArray = 6,
  kDeltaByteArray = 7,
  kRleDictionary = 8,
  kByteStreamSplit = 9
};
enum PageType : int { kDataPage = 0, kIndexPage = 1, kDictionaryPage = 2, kDataPageV2 = 3 };

/// ConvertedType (the older annotation) numbers used here.
enum Converted : int {
  kUtf8 = 0,
  kMap = 1,
  kMapKeyValue = 2,
  kList = 3,
  kEnum = 4,
  kDecimal = 5,
  kDate = 6,
  kTimeMillis = 7,
  kTimeMicros = 8,
  kTimestampMillis = 9,
  kTimestampMicros = 10,
  kUint8 = 11,
  kUint16 = 12,
  kUint32 = 13,
  kUint64 = 14,
  kInt8 = 15,
  kInt16 = 16,
  kInt32Converted = 17,
  kInt64Converted = 18,
  kJson = 19,
  kBson = 20,
  kInterval = 21
};

/// Which member of the LogicalType union is set: its field id in parquet.thrift (0 for none).
enum LogicalKind : int {
  kNoLogicalType = 0,
  kLogicalString = 1,
  kLogicalMap = 2,
  kLogicalList = 3,
  kLogicalEnum = 4,
  kLogicalDecimal = 5,
  kLogicalDate = 6,
  kLogicalTime = 7,
  kLogicalTimestamp = 8,
  kLogicalInteger = 10,
  kLogicalNull = 11,
  kLogicalJson = 12,
  kLogicalBson = 13,
  kLogicalUuid = 14,
  kLogicalFloat16 = 15
};

/// The LogicalType union, flattened: which member is set and the members' fields this reader
/// uses.
struct LogicalType {
  int kind = kNoLogicalType;  ///< a LogicalKind (or a newer member's field id)
  int bit_width = 0;          ///< INTEGER
  bool is_signed = true;      ///< INTEGER
  int time_unit = 0;          ///< TIME / TIMESTAMP: 1 millis, 2 micros, 3 nanos
  bool adjusted_to_utc = false;
  int scale = 0, precision = 0;  ///< DECIMAL
};

struct SchemaElement {
  std::optional<int> type;  ///< PhysicalType; absent for groups
  int type_length = 0;
  int repetition = kRequired;
  std::string name;
  int num_children = 0;
  std::optional<int> converted;
  LogicalType logical;
  int scale = 0, precision = 0;
};

struct ColumnMetaData {
  int type = 0;
  std::vector<std::string> path;
  int codec = 0;
  std::int64_t num_values = 0;
  std::int64_t total_compressed_size = 0;
  std::int64_t data_page_offset = 0;
  std::optional<std::int64_t> dictionary_page_offset;
};

struct ColumnChunk {
  bool has_file_path = false;  ///< its data in another file (not read)
  std::optional<ColumnMetaData> meta;
};

struct RowGroup {
  std::vector<ColumnChunk> columns;
  std::int64_t num_rows = 0;
};

struct FileMetaData {
  std::vector<SchemaElement> schema;
  std::int64_t num_rows = 0;
  std::vector<RowGroup> row_groups;
  /// key_value_metadata: what writers store beside the schema ("ARROW:schema", "huggingface").
  std::vector<std::pair<std::string, std::string>> key_value;
};

struct PageHeader {
  int type = -1;
  std::int32_t uncompressed_size = 0;
  std::int32_t compressed_size = 0;
  // DATA_PAGE, DATA_PAGE_V2, DICTIONARY_PAGE (which one the type says)
  std::int32_t num_values = 0;
  int encoding = 0;
  int definition_level_encoding = kRle;
  int repetition_level_encoding = kRle;
  bool has_page_header = false;  ///< the header for `type` was there
  // DATA_PAGE_V2 only
  std::int32_t num_nulls = 0;
  std::int32_t num_rows = 0;
  std::int32_t definition_levels_length = 0;
  std::int32_t repetition_levels_length = 0;
  bool is_compressed = true;
};

/// The footer's FileMetaData (kIntegrity naming `source` when malformed).
FileMetaData parse_file_metadata(std::string_view bytes, const std::string& source);

/// A page header at the front of `bytes`; `header_size` is set to the bytes it took.
PageHeader parse_page_header(std::string_view bytes, const std::string& source,
                             std::size_t& header_size);

/// "SNAPPY", "GZIP", ... for messages.
const char* codec_name(int codec);

/// Decompresses a page of `codec` into exactly `uncompressed_size` bytes; kIntegrity when the
/// data do not decompress to that size, kMissingComponent (naming `what`, the file and column)
/// for a codec ms does not read or was built without.
std::string decompress(int codec, std::string_view compressed, std::size_t uncompressed_size,
                       const std::string& what);

}  // namespace ms::data::parquet

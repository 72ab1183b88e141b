// The building blocks of the Parquet reader (parquet.h): the Thrift compact protocol its metadata
// is written in, and the level / index / integer encodings of its pages. Public so that the unit
// tests and the fuzz target reach them; nothing else needs them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ms/core/export.h"

namespace ms::data::parquet {

/// Thrift compact protocol field / element types (the low nibble of a field header).
enum class ThriftType : std::uint8_t {
  kStop = 0,
  kTrue = 1,  ///< a bool field whose value is true (the type carries it); any bool in a list
  kFalse = 2,
  kByte = 3,
  kI16 = 4,
  kI32 = 5,
  kI64 = 6,
  kDouble = 7,
  kBinary = 8,
  kList = 9,
  kSet = 10,
  kMap = 11,
  kStruct = 12,
};

/// Reads Thrift compact protocol values from a byte range. Every read is checked against the
/// end: truncated or malformed bytes are ms::Error(kIntegrity) naming `source` and what was being
/// read, never a read past the end. Unknown fields are skipped with skip() whatever their type,
/// so metadata written by newer writers (with fields this reader does not know) is read.
class MS_API ThriftCompactReader {
 public:
  ThriftCompactReader(std::string_view bytes, std::string source);

  /// Next field header of the current struct: false at its stop byte. `id` is absolute (the
  /// compact protocol writes deltas from the previous field of the same struct).
  bool next_field(std::int16_t& id, ThriftType& type);
  /// Enters / leaves a nested struct (field ids restart at 0 inside; the outer one is kept).
  void begin_struct();
  void end_struct();

  std::int32_t read_i32();         ///< an i8 / i16 / i32 (zigzag varint; a byte for i8)
  std::int64_t read_i64();         ///< zigzag varint
  double read_double();            ///< 8 bytes, little-endian
  std::string_view read_binary();  ///< varint length, then the bytes (checked to lie inside)
  /// A bool field's value: carried by its type (kTrue / kFalse); an element of a list is a byte.
  bool read_bool(ThriftType field_type);
  /// A list or set header: the element type and the count, checked against the bytes left (every
  /// element takes at least one byte but bools packed in a type nibble, which lists do not use).
  std::uint32_t read_list_header(ThriftType& element_type);
  /// Skips one value of `type` (structs, lists and maps to any depth up to a fixed limit).
  void skip(ThriftType type);

  std::size_t position() const { return pos_; }
  const std::string& source() const { return source_; }
  [[noreturn]] void corrupt(const std::string& what) const;

 private:
  std::uint64_t read_varint();
  std::uint8_t read_byte();

  std::string_view bytes_;
  std::string source_;
  std::size_t pos_ = 0;
  std::vector<std::int16_t> last_ids_;  // the last field id of each open struct
  std::int16_t last_id_ = 0;
  int skip_depth_ = 0;
};

/// Decodes `count` values of the RLE / bit-packed hybrid encoding (definition and repetition
/// levels, dictionary indices, RLE booleans) of `bit_width` bits (0..32) from `data`. Runs may
/// hold more values than asked (bit-packed groups pad to 8); fewer is ms::Error(kIntegrity)
/// naming `what` ("file: column 'x': definition levels"), as are a bit width over 32 and runs
/// that end early.
MS_API std::vector<std::uint32_t> decode_rle_hybrid(std::string_view data, int bit_width,
                                                    std::size_t count, const std::string& what);

/// DELTA_BINARY_PACKED integers: decodes `count` values from the front of `data` and returns the
/// number of bytes they took (DELTA_LENGTH_BYTE_ARRAY and DELTA_BYTE_ARRAY put their data after).
/// Arithmetic wraps as the format says (64-bit two's complement).
MS_API std::size_t decode_delta_binary_packed(std::string_view data, std::size_t count,
                                              std::vector<std::int64_t>& out,
                                              const std::string& what);

}  // namespace ms::data::parquet

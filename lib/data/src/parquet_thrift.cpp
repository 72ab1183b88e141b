// The Thrift compact protocol, read side only, as Parquet's footer and page headers use it
// (thrift/doc/specs/thrift-compact-protocol.md): zigzag varints, field-id deltas in the header
// byte's high nibble, bools in the type nibble, lists with the count in the high nibble (15: a
// varint follows).
#include <cstring>

#include "ms/core/error.h"
#include "ms/data/parquet_format.h"

namespace ms::data::parquet {

namespace {
// Nested structs and lists in a footer go a few levels deep; far deeper is a hostile file that
// would otherwise exhaust the stack in skip().
constexpr int kMaxDepth = 64;
}  // namespace

ThriftCompactReader::ThriftCompactReader(std::string_view bytes, std::string source)
    : bytes_(bytes), source_(std::move(source)) {}

void ThriftCompactReader::corrupt(const std::string& what) const {
  throw Error(ErrorCode::kIntegrity,
              fmt::format("{}: corrupt Parquet metadata at byte {} of {}: {}", source_, pos_,
                          bytes_.size(), what),
              "the file is not a whole Parquet file: download or write it again");
}

std::uint8_t ThriftCompactReader::read_byte() {
  if (pos_ >= bytes_.size()) corrupt("it ends early");
  return static_cast<std::uint8_t>(bytes_[pos_++]);
}

std::uint64_t ThriftCompactReader::read_varint() {
  std::uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    const std::uint8_t b = read_byte();
    value |= static_cast<std::uint64_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return value;
  }
  corrupt("a varint longer than 10 bytes");
}

std::int64_t ThriftCompactReader::read_i64() {
  const std::uint64_t u = read_varint();
  return static_cast<std::int64_t>(u >> 1) ^ -static_cast<std::int64_t>(u & 1);
}

std::int32_t ThriftCompactReader::read_i32() {
  const std::int64_t v = read_i64();
  if (v < INT32_MIN || v > INT32_MAX) corrupt(fmt::format("{} does not fit a 32-bit field", v));
  return static_cast<std::int32_t>(v);
}

double ThriftCompactReader::read_double() {
  if (bytes_.size() - pos_ < 8) corrupt("it ends inside a double");
  std::uint64_t bits = 0;
  for (int i = 7; i >= 0; --i) bits = (bits << 8) | static_cast<std::uint8_t>(bytes_[pos_ + i]);
  pos_ += 8;
  double d = 0;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

std::string_view ThriftCompactReader::read_binary() {
  const std::uint64_t n = read_varint();
  if (n > bytes_.size() - pos_)
    corrupt(fmt::format("a string of {} bytes where {} are left", n, bytes_.size() - pos_));
  const std::string_view s = bytes_.substr(pos_, static_cast<std::size_t>(n));
  pos_ += static_cast<std::size_t>(n);
  return s;
}

bool ThriftCompactReader::read_bool(ThriftType field_type) {
  if (field_type == ThriftType::kTrue) return true;
  if (field_type == ThriftType::kFalse) return false;
  corrupt("a bool field of another type");
}

bool ThriftCompactReader::next_field(std::int16_t& id, ThriftType& type) {
  const std::uint8_t header = read_byte();
  const int t = header & 0x0F;
  if (t == 0) return false;
  if (t > static_cast<int>(ThriftType::kStruct)) corrupt(fmt::format("unknown field type {}", t));
  type = static_cast<ThriftType>(t);
  const int delta = header >> 4;
  if (delta != 0) {
    id = static_cast<std::int16_t>(last_id_ + delta);
  } else {
    const std::int64_t v = read_i64();
    if (v < INT16_MIN || v > INT16_MAX) corrupt("a field id beyond 16 bits");
    id = static_cast<std::int16_t>(v);
  }
  last_id_ = id;
  return true;
}

void ThriftCompactReader::begin_struct() {
  if (last_ids_.size() >= static_cast<std::size_t>(kMaxDepth)) corrupt("structs nested too deep");
  last_ids_.push_back(last_id_);
  last_id_ = 0;
}

void ThriftCompactReader::end_struct() {
  if (last_ids_.empty()) return;
  last_id_ = last_ids_.back();
  last_ids_.pop_back();
}

std::uint32_t ThriftCompactReader::read_list_header(ThriftType& element_type) {
  const std::uint8_t header = read_byte();
  const int t = header & 0x0F;
  std::uint64_t n = header >> 4;
  if (n == 15) n = read_varint();
  // fastparquet writes an empty list as the byte 0 (no element type): nothing to read.
  if (n == 0 && t == 0) {
    element_type = ThriftType::kStruct;
    return 0;
  }
  if (t == 0 || t > static_cast<int>(ThriftType::kStruct))
    corrupt(fmt::format("a list of unknown element type {}", t));
  element_type = static_cast<ThriftType>(t);
  // Each element takes a byte or more: a count beyond the bytes left is a lie, and checking it
  // here keeps a caller's reserve() honest.
  if (n > bytes_.size() - pos_)
    corrupt(fmt::format("a list of {} elements where {} bytes are left", n, bytes_.size() - pos_));
  return static_cast<std::uint32_t>(n);
}

void ThriftCompactReader::skip(ThriftType type) {
  if (++skip_depth_ > kMaxDepth) corrupt("values nested too deep");
  switch (type) {
    case ThriftType::kTrue:
    case ThriftType::kFalse:
      break;  // the value is the type nibble (in a list, skip_list_element reads the byte)
    case ThriftType::kByte:
      read_byte();
      break;
    case ThriftType::kI16:
    case ThriftType::kI32:
    case ThriftType::kI64:
      read_varint();
      break;
    case ThriftType::kDouble:
      read_double();
      break;
    case ThriftType::kBinary:
      read_binary();
      break;
    case ThriftType::kList:
    case ThriftType::kSet: {
      ThriftType element{};
      const std::uint32_t n = read_list_header(element);
      for (std::uint32_t i = 0; i < n; ++i) {
        if (element == ThriftType::kTrue || element == ThriftType::kFalse)
          read_byte();
        else
          skip(element);
      }
      break;
    }
    case ThriftType::kMap: {
      const std::uint64_t n = read_varint();
      if (n > bytes_.size() - pos_) corrupt("a map longer than the bytes left");
      if (n == 0) break;
      const std::uint8_t kinds = read_byte();
      const auto key = static_cast<ThriftType>(kinds >> 4);
      const auto value = static_cast<ThriftType>(kinds & 0x0F);
      if ((kinds >> 4) > 12 || (kinds & 0x0F) > 12 || (kinds >> 4) == 0 || (kinds & 0x0F) == 0)
        corrupt("a map of unknown types");
      for (std::uint64_t i = 0; i < n; ++i) {
        for (const ThriftType t : {key, value}) {
          if (t == ThriftType::kTrue || t == ThriftType::kFalse)
            read_byte();
          else
            skip(t);
        }
      }
      break;
    }
    case ThriftType::kStruct: {
      begin_struct();
      std::int16_t id = 0;
      ThriftType field{};
      while (next_field(id, field)) skip(field);
      end_struct();
      break;
    }
    case ThriftType::kStop:
      corrupt("a stop where a value belongs");
  }
  --skip_depth_;
}

}  // namespace ms::data::parquet

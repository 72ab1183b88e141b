// Parquet files into tables: the footer (parquet_metadata.cpp), the schema into top-level
// columns (flat ones, and one level of lists), then each row group's column chunks page by page:
// levels, values (parquet_encodings.cpp), decompression (parquet_codecs.cpp). The whole file is in
// memory; every offset, length and count a file states is checked against the bytes there before
// it is used, so a hostile file is an ms::Error, never a read outside it or a huge allocation.
#include "ms/data/parquet.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <set>

#include "hf_features.h"
#include "ms/config/config.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/data/archive.h"
#include "ms/data/csv.h"
#include "ms/data/parquet_format.h"
#include "parquet_metadata.h"

namespace ms::data {

using namespace parquet;

namespace {

constexpr std::string_view kMagic = "PAR1";
// The memory a file's table may take, per byte of the file: RLE runs make millions of nulls out
// of a few bytes, and a dictionary page repeats one long string for every row that names it (a
// 500-byte file asked for 20 GB), so what a file decodes to is bounded by its size. The limit is
// this many times MS_DATASET_MAX_EXTRACT_RATIO (the one knob against decompression bombs; 0
// turns it off), and at least kMinTableBudget: a cell costs about kCellBytes in ms's table, so
// real files (a few bytes a cell on disk) stay far below.
constexpr std::uint64_t kTableBytesPerRatio = 5;
constexpr std::uint64_t kMinTableBudget = 1ULL << 30;
constexpr std::uint64_t kCellBytes = sizeof(Value) + 8;
// A page's uncompressed size may be this many times its compressed size, or this much, whichever
// is more (gzip reaches ~1000:1, zstd more on constant data; pyarrow's pages are ~1 MiB).
constexpr std::uint64_t kMaxPageRatio = 1100;
constexpr std::uint64_t kMinPageLimit = 64ULL << 20;

[[noreturn]] void corrupt(const std::string& what, const std::string& why) {
  throw Error(ErrorCode::kIntegrity, fmt::format("{}: {}", what, why),
              "the file is not a whole Parquet file: download or write it again");
}

[[noreturn]] void unsupported(const std::string& what, const std::string& why,
                              const std::string& hint) {
  throw Error(ErrorCode::kMissingComponent, fmt::format("{}: {}", what, why), hint);
}

// ---- schema ------------------------------------------------------------------------------------

struct SchemaNode {
  const SchemaElement* element = nullptr;
  std::vector<SchemaNode> children;
  bool is_group() const { return !element->type.has_value(); }
};

SchemaNode build_tree(const std::vector<SchemaElement>& flat, std::size_t& next, int depth,
                      const std::string& source) {
  if (next >= flat.size()) corrupt(source, "the schema lists fewer elements than it says");
  if (depth > 64) corrupt(source, "the schema nests too deep");
  SchemaNode node;
  node.element = &flat[next++];
  const int n = node.element->type ? 0 : node.element->num_children;
  if (n < 0 || static_cast<std::size_t>(n) > flat.size() - next)
    corrupt(source, fmt::format("schema element '{}' claims {} children", node.element->name, n));
  for (int i = 0; i < n; ++i) node.children.push_back(build_tree(flat, next, depth + 1, source));
  return node;
}

bool is_list_group(const SchemaElement& e) {
  return e.logical.kind == kLogicalList || (e.converted && *e.converted == kList);
}

// The type as pyarrow names it, for messages ("struct<bytes: binary, path: string>").
std::string describe(const SchemaNode& n) {
  const SchemaElement& e = *n.element;
  if (n.is_group()) {
    if (is_list_group(e) && n.children.size() == 1) {
      const SchemaNode& rep = n.children[0];
      const SchemaNode& item = rep.is_group() && rep.children.size() == 1 ? rep.children[0] : rep;
      return "list<" + describe(item) + ">";
    }
    if (e.logical.kind == kLogicalMap ||
        (e.converted && (*e.converted == kMap || *e.converted == kMapKeyValue)))
      return "map";
    std::string s = "struct<";
    for (std::size_t i = 0; i < n.children.size(); ++i)
      s += (i ? ", " : "") + n.children[i].element->name + ": " + describe(n.children[i]);
    return s + ">";
  }
  const int lk = e.logical.kind;
  const int conv = e.converted.value_or(-1);
  if (lk == kLogicalString || conv == kUtf8) return "string";
  if (lk == kLogicalEnum || conv == kEnum) return "enum";
  if (lk == kLogicalJson || conv == kJson) return "json";
  if (lk == kLogicalDecimal || conv == kDecimal) return "decimal";
  if (lk == kLogicalDate || conv == kDate) return "date32";
  if (lk == kLogicalTime || conv == kTimeMillis || conv == kTimeMicros) return "time";
  if (lk == kLogicalTimestamp || conv == kTimestampMillis || conv == kTimestampMicros)
    return "timestamp";
  if (lk == kLogicalInteger)
    return fmt::format("{}int{}", e.logical.is_signed ? "" : "u", e.logical.bit_width);
  if (lk == kLogicalFloat16) return "float16";
  if (lk == kLogicalUuid) return "uuid";
  switch (*e.type) {
    case kBoolean:
      return "bool";
    case kInt32:
      return "int32";
    case kInt64:
      return "int64";
    case kInt96:
      return "int96";
    case kFloat:
      return "float";
    case kDouble:
      return "double";
    case kByteArray:
      return "binary";
    case kFixedLenByteArray:
      return fmt::format("fixed_size_binary[{}]", e.type_length);
    default:
      return fmt::format("physical type {}", *e.type);
  }
}

// How a leaf's physical values become ms values.
enum class LeafKind { kInt, kUint32, kUint64, kFloat, kBool, kString, kDate, kTimestamp };

// One top-level column and the leaf its values come from.
struct ColumnPlan {
  std::string name;
  const SchemaElement* leaf = nullptr;
  LeafKind kind = LeafKind::kInt;
  int max_def = 0;
  int max_rep = 0;
  bool is_list = false;
  int list_def = 0;  // the definition level of a list that is there and empty (less: null)
  std::string what;  // "file: column 'x'" for messages
};

LeafKind leaf_kind(const SchemaNode& node, const std::string& what, const std::string& type_text) {
  const SchemaElement& e = *node.element;
  const int lk = e.logical.kind;
  const int conv = e.converted.value_or(-1);
  const auto refuse = [&](const std::string& why) -> LeafKind {
    unsupported(what, fmt::format("its type is {}, which ms does not read{}", type_text, why),
                "ms reads integer, float, bool, string, date and timestamp columns and lists of "
                "them: cast the column (pyarrow: table.cast(...)), or drop it");
  };
  switch (*e.type) {
    case kBoolean:
      return LeafKind::kBool;
    case kFloat:
    case kDouble:
      if (lk == kLogicalFloat16) return refuse("");
      return LeafKind::kFloat;
    case kInt32:
    case kInt64: {
      if (lk == kLogicalDecimal || conv == kDecimal)
        return refuse(" (decimals: cast to float64 or string)");
      if (lk == kLogicalTime || conv == kTimeMillis || conv == kTimeMicros) return refuse("");
      if (lk == kLogicalDate || conv == kDate)
        return *e.type == kInt32 ? LeafKind::kDate : refuse("");
      if (lk == kLogicalTimestamp || conv == kTimestampMillis || conv == kTimestampMicros)
        return *e.type == kInt64 ? LeafKind::kTimestamp : refuse("");
      const bool is_unsigned = (lk == kLogicalInteger && !e.logical.is_signed) || conv == kUint8 ||
                               conv == kUint16 || conv == kUint32 || conv == kUint64;
      if (!is_unsigned) return LeafKind::kInt;
      return *e.type == kInt32 ? LeafKind::kUint32 : LeafKind::kUint64;
    }
    case kByteArray:
    case kFixedLenByteArray:
      if (lk == kLogicalFloat16 || lk == kLogicalUuid) return refuse("");
      if (lk == kLogicalString || lk == kLogicalEnum || lk == kLogicalJson || conv == kUtf8 ||
          conv == kEnum || conv == kJson)
        return LeafKind::kString;
      if (lk == kLogicalDecimal || conv == kDecimal)
        return refuse(" (decimals: cast to float64 or string)");
      return refuse(
          " (binary data: ms reads text columns; images as HF's Image feature are "
          "struct columns, not read either)");
    default:
      return refuse("");
  }
}

ColumnType column_type_of(LeafKind k) {
  switch (k) {
    case LeafKind::kInt:
    case LeafKind::kUint32:
    case LeafKind::kUint64:
      return ColumnType::kInt;
    case LeafKind::kFloat:
      return ColumnType::kFloat;
    case LeafKind::kBool:
      return ColumnType::kBool;
    default:
      return ColumnType::kString;
  }
}

ColumnPlan plan_column(const SchemaNode& field, const std::string& source) {
  ColumnPlan plan;
  const SchemaElement& e = *field.element;
  plan.name = e.name;
  plan.what = fmt::format("{}: column '{}'", source, e.name);
  const std::string type_text = describe(field);
  const auto def_of = [](const SchemaElement& s) { return s.repetition == kRequired ? 0 : 1; };
  if (!field.is_group()) {
    if (e.repetition == kRepeated)
      unsupported(plan.what, "a repeated column outside a list, which ms does not read",
                  "write it as a list (pyarrow does)");
    plan.leaf = &e;
    plan.max_def = def_of(e);
    plan.kind = leaf_kind(field, plan.what, type_text);
    return plan;
  }
  const auto nested = [&]() {
    unsupported(plan.what,
                fmt::format("its type is {}, which ms does not read (ms reads flat columns and "
                            "lists of integers, floats, bools and strings)",
                            type_text),
                "flatten the column (pyarrow: table.flatten()), or drop it; image datasets as "
                "folders of image files are read as imagefolder");
  };
  // A list: `<opt> group x (LIST) { repeated group list { <opt> T element } }`, or the older
  // two-level form `group x (LIST) { repeated T element }`.
  if (!is_list_group(e) || e.repetition == kRepeated || field.children.size() != 1) nested();
  const SchemaNode& repeated = field.children[0];
  if (repeated.element->repetition != kRepeated) nested();
  const SchemaNode* item = &repeated;
  if (repeated.is_group()) {
    if (repeated.children.size() != 1 || repeated.children[0].is_group()) nested();
    item = &repeated.children[0];
    if (item->element->repetition == kRepeated) nested();
  }
  plan.is_list = true;
  plan.leaf = item->element;
  plan.list_def = def_of(e);
  plan.max_def = plan.list_def + 1 + (item == &repeated ? 0 : def_of(*item->element));
  plan.max_rep = 1;
  plan.kind = leaf_kind(*item, plan.what, type_text);
  return plan;
}

// The leaf columns under a schema node: a row group holds one column chunk per leaf.
std::size_t leaf_count(const SchemaNode& node) {
  if (!node.is_group()) return 1;
  std::size_t n = 0;
  for (const SchemaNode& child : node.children) n += leaf_count(child);
  return n;
}

// Warns that a column is left out of the table, once per column name and reason in a process: a
// dataset of many shards would say it for each.
void warn_left_out(const std::string& column, const Error& e) {
  static std::mutex mutex;
  static std::set<std::string> said;
  const std::string what = e.what();
  // The reason without the file it was found in ("F: column 'x': its type is ...").
  const std::string key =
      column + "\n" + what.substr(std::min(what.find(": column '"), what.size()));
  {
    const std::lock_guard<std::mutex> lock(mutex);
    if (!said.insert(key).second) return;
  }
  log::warn("{}; the column is left out ({})", what, e.hint());
}

// ---- values ------------------------------------------------------------------------------------

std::uint32_t le32(const char* p) {
  std::uint32_t v = 0;
  std::memcpy(&v, p, 4);  // little-endian hosts only, as the rest of ms
  return v;
}

// What decoding may still allocate (see kTableBytesPerRatio): cells and string bytes.
struct Budget {
  std::uint64_t bytes_left;
  std::uint64_t limit;

  static Budget for_file(std::uint64_t file_size) {
    const std::uint64_t ratio = ExtractLimits::from_env().max_ratio;
    if (ratio == 0) return {UINT64_MAX, UINT64_MAX};
    const std::uint64_t per_byte = ratio * kTableBytesPerRatio;
    const std::uint64_t limit = file_size > (UINT64_MAX / per_byte)
                                    ? UINT64_MAX
                                    : std::max(kMinTableBudget, file_size * per_byte);
    return {limit, limit};
  }
  void take_bytes(std::uint64_t n, const std::string& what) {
    if (n <= bytes_left) {
      bytes_left -= n;
      return;
    }
    throw Error(
        ErrorCode::kIntegrity,
        fmt::format("{}: it decodes to more than {} bytes, the limit for a file of its size "
                    "(a decompression bomb, or a genuine file past the limit)",
                    what, limit),
        "if the file is to be trusted, raise MS_DATASET_MAX_EXTRACT_RATIO (a Parquet "
        "file may take 5 times that per byte of it, at least 1 GiB; 0 turns the check "
        "off)");
  }
  void take_cells(std::uint64_t n, const std::string& what) {
    take_bytes(n > UINT64_MAX / kCellBytes ? UINT64_MAX : n * kCellBytes, what);
  }
};

// The bytes of a string value (what the budget counts beyond its cell).
std::uint64_t string_bytes(const Value& v) {
  const auto* s = std::get_if<std::string>(&v);
  return s ? s->size() : 0;
}

// A page's decoded, non-null values (physical: int64 for INT32 / INT64, double, bool, bytes).
using Values = std::vector<Value>;

// `count` little-endian values of type Stored (the caller checked they fit), as Held cells.
template <typename Stored, typename Held>
void read_fixed_width(std::string_view data, std::size_t count, Values& out) {
  for (std::size_t i = 0; i < count; ++i) {
    Stored v{};
    std::memcpy(&v, &data[sizeof(Stored) * i], sizeof(Stored));
    out.emplace_back(static_cast<Held>(v));
  }
}

void decode_plain(std::string_view data, const SchemaElement& leaf, std::size_t count, Values& out,
                  const std::string& what) {
  const int type = *leaf.type;
  const auto need = [&](std::uint64_t per_value) {
    if (per_value != 0 && count > data.size() / per_value)
      corrupt(what,
              fmt::format("{} PLAIN values do not fit the page's {} bytes", count, data.size()));
  };
  std::size_t pos = 0;
  switch (type) {
    case kBoolean:
      if (count > data.size() * 8)
        corrupt(what,
                fmt::format("{} booleans do not fit the page's {} bytes", count, data.size()));
      for (std::size_t i = 0; i < count; ++i)
        out.emplace_back(((static_cast<std::uint8_t>(data[i / 8]) >> (i % 8)) & 1) != 0);
      return;
    case kInt32:
      need(4);
      for (std::size_t i = 0; i < count; ++i)
        out.emplace_back(static_cast<std::int64_t>(static_cast<std::int32_t>(le32(&data[4 * i]))));
      return;
    case kInt64:
      need(8);
      return read_fixed_width<std::int64_t, std::int64_t>(data, count, out);
    case kFloat:
      need(4);
      return read_fixed_width<float, double>(data, count, out);
    case kDouble:
      need(8);
      return read_fixed_width<double, double>(data, count, out);
    case kByteArray:
      need(4);
      for (std::size_t i = 0; i < count; ++i) {
        if (data.size() - pos < 4) corrupt(what, "a PLAIN string runs past the page");
        const std::uint32_t n = le32(&data[pos]);
        pos += 4;
        if (n > data.size() - pos) corrupt(what, "a PLAIN string runs past the page");
        out.emplace_back(std::string(data.substr(pos, n)));
        pos += n;
      }
      return;
    case kFixedLenByteArray: {
      if (leaf.type_length <= 0) corrupt(what, "a fixed-length column of no length");
      const auto n = static_cast<std::size_t>(leaf.type_length);
      need(n);
      for (std::size_t i = 0; i < count; ++i) out.emplace_back(std::string(data.substr(i * n, n)));
      return;
    }
    default:
      corrupt(what, fmt::format("unknown physical type {}", type));
  }
}

const char* encoding_name(int e) {
  switch (e) {
    case kPlain:
      return "PLAIN";
    case kPlainDictionary:
      return "PLAIN_DICTIONARY";
    case kRle:
      return "RLE";
    case kBitPacked:
      return "BIT_PACKED";
    case kDeltaBinaryPacked:
      return "DELTA_BINARY_PACKED";
    case kDeltaLengthByteArray:
      return "DELTA_LENGTH_BYTE_ARRAY";
    case kDeltaByteArray:
      return "DELTA_BYTE_ARRAY";
    case kRleDictionary:
      return "RLE_DICTIONARY";
    case kByteStreamSplit:
      return "BYTE_STREAM_SPLIT";
    default:
      return "unknown";
  }
}

[[noreturn]] void unsupported_encoding(const std::string& what, int encoding) {
  unsupported(what,
              fmt::format("its pages are {}-encoded (encoding {}), which ms does not read",
                          encoding_name(encoding), encoding),
              "ms reads PLAIN, dictionary, RLE and DELTA_* encodings: rewrite the file with "
              "pyarrow's defaults");
}

// Strings made from a dictionary or from the value before (DELTA_BYTE_ARRAY's prefixes) can be
// far more bytes than the page: each is counted in `budget` before it is made.
void decode_values(std::string_view data, int encoding, const SchemaElement& leaf,
                   std::size_t count, const Values* dictionary, Values& out, Budget& budget,
                   const std::string& what) {
  out.clear();
  out.reserve(std::min<std::size_t>(count, data.size() * 8 + 8));
  const int type = *leaf.type;
  switch (encoding) {
    case kPlain:
      return decode_plain(data, leaf, count, out, what);
    case kPlainDictionary:
    case kRleDictionary: {
      if (dictionary == nullptr) corrupt(what, "dictionary-encoded values without a dictionary");
      if (data.empty()) {
        if (count == 0) return;
        corrupt(what, "dictionary indices missing");
      }
      const auto width = static_cast<std::uint8_t>(data[0]);
      const auto indices = decode_rle_hybrid(data.substr(1), width, count, what + ": indices");
      // Every index checked and the copies' bytes counted before any is made: a page of a few
      // bytes may name a long entry millions of times.
      std::uint64_t copied_bytes = 0;
      for (const std::uint32_t i : indices) {
        if (i >= dictionary->size())
          corrupt(what,
                  fmt::format("dictionary index {} of a dictionary of {}", i, dictionary->size()));
        copied_bytes += string_bytes((*dictionary)[i]);
      }
      budget.take_bytes(copied_bytes, what);
      for (const std::uint32_t i : indices) out.push_back((*dictionary)[i]);
      return;
    }
    case kRle: {
      if (type != kBoolean) unsupported_encoding(what, encoding);
      if (data.size() < 4) corrupt(what, "RLE booleans without their length");
      const std::uint32_t n = le32(data.data());
      if (n > data.size() - 4) corrupt(what, "RLE booleans longer than the page");
      for (const std::uint32_t b : decode_rle_hybrid(data.substr(4, n), 1, count, what))
        out.emplace_back(b != 0);
      return;
    }
    case kDeltaBinaryPacked: {
      if (type != kInt32 && type != kInt64) unsupported_encoding(what, encoding);
      std::vector<std::int64_t> ints;
      decode_delta_binary_packed(data, count, ints, what);
      for (const std::int64_t v : ints)
        out.emplace_back(type == kInt32 ? static_cast<std::int64_t>(static_cast<std::int32_t>(v))
                                        : v);
      return;
    }
    case kDeltaLengthByteArray:
    case kDeltaByteArray: {
      if (type != kByteArray && !(encoding == kDeltaByteArray && type == kFixedLenByteArray))
        unsupported_encoding(what, encoding);
      std::vector<std::int64_t> prefixes;
      std::size_t pos = 0;
      if (encoding == kDeltaByteArray)
        pos = decode_delta_binary_packed(data, count, prefixes, what);
      std::vector<std::int64_t> lengths;
      pos += decode_delta_binary_packed(data.substr(pos), count, lengths, what);
      std::string previous;
      for (std::size_t i = 0; i < count; ++i) {
        const std::int64_t n = lengths[i];
        if (n < 0 || static_cast<std::uint64_t>(n) > data.size() - pos)
          corrupt(what, "a DELTA string runs past the page");
        std::string value;
        if (encoding == kDeltaByteArray) {
          const std::int64_t p = prefixes[i];
          if (p < 0 || static_cast<std::uint64_t>(p) > previous.size())
            corrupt(what, "a DELTA_BYTE_ARRAY prefix longer than the value before");
          budget.take_bytes(static_cast<std::uint64_t>(p), what);
          value.assign(previous, 0, static_cast<std::size_t>(p));
        }
        value.append(data.substr(pos, static_cast<std::size_t>(n)));
        pos += static_cast<std::size_t>(n);
        if (encoding == kDeltaByteArray) previous = value;
        out.emplace_back(std::move(value));
      }
      return;
    }
    default:
      unsupported_encoding(what, encoding);
  }
}

// Days since 1970-01-01 to a civil date (Howard Hinnant's days_from_civil inverse, the
// proleptic Gregorian calendar Python's date uses).
std::string format_date(std::int64_t days, std::int64_t* year_out = nullptr) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const std::int64_t doe = days - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = yoe + era * 400;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  if (year_out) *year_out = y;
  return fmt::format("{:04}-{:02}-{:02}", y, m, d);
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

// As Python's str(datetime): "2024-01-02 03:04:05", ".ffffff" when there are microseconds
// (nanoseconds: 9 digits, as pandas prints them), "+00:00" when adjusted to UTC.
std::string format_timestamp(std::int64_t v, int unit, bool utc) {
  const std::int64_t per_second = unit == 1 ? 1000 : unit == 3 ? 1000000000 : 1000000;
  const std::int64_t seconds = floor_div(v, per_second);
  const std::int64_t fraction = v - seconds * per_second;
  const std::int64_t days = floor_div(seconds, 86400);
  const std::int64_t in_day = seconds - days * 86400;
  std::string s = fmt::format("{} {:02}:{:02}:{:02}", format_date(days), in_day / 3600,
                              in_day / 60 % 60, in_day % 60);
  // Microseconds as Python's datetime prints them; nanoseconds (9 digits, as pandas' Timestamp)
  // only where there are some below the microsecond.
  if (fraction != 0) {
    if (unit == 3 && fraction % 1000 != 0)
      s += fmt::format(".{:09}", fraction);
    else
      s += fmt::format(".{:06}", unit == 1   ? fraction * 1000
                                 : unit == 3 ? fraction / 1000
                                             : fraction);
  }
  if (utc) s += "+00:00";
  return s;
}

// Physical value -> ms value for the leaf's kind (strings' UTF-8 is checked per row, where the
// row is known: fill_column).
// `index`: the dictionary entry or the value (1-based) in the chunk, for the message (formatted
// only when there is one: this runs for every value).
void convert(Value& v, const ColumnPlan& plan, bool dictionary_entry, std::size_t index) {
  switch (plan.kind) {
    case LeafKind::kUint32:
      v = static_cast<std::int64_t>(static_cast<std::uint32_t>(std::get<std::int64_t>(v)));
      return;
    case LeafKind::kUint64: {
      const auto u = static_cast<std::uint64_t>(std::get<std::int64_t>(v));
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        unsupported(fmt::format("{} ({} {})", plan.what,
                                dictionary_entry ? "dictionary entry" : "value", index),
                    fmt::format("the uint64 value {} is beyond the int64 values ms holds", u),
                    "cast the column to float64 or string (pyarrow: table.cast(...))");
      }
      return;
    }
    case LeafKind::kDate:
      v = format_date(std::get<std::int64_t>(v));
      return;
    case LeafKind::kTimestamp: {
      const SchemaElement& e = *plan.leaf;
      int unit = e.logical.time_unit;
      bool utc = e.logical.adjusted_to_utc;
      if (e.logical.kind != kLogicalTimestamp) {  // ConvertedType only: UTC-adjusted by definition
        unit = e.converted == kTimestampMillis ? 1 : 2;
        utc = true;
      }
      v = format_timestamp(std::get<std::int64_t>(v), unit == 0 ? 2 : unit, utc);
      return;
    }
    default:
      return;
  }
}

// ---- column chunks -----------------------------------------------------------------------------

// One column chunk's levels and values, page by page.
struct ChunkData {
  std::vector<std::uint32_t> def, rep;  // empty when the max level is 0
  Values values;                        // the non-null leaf values, in order
  std::size_t level_count = 0;
};

// The bits a level takes in the RLE / bit-packed hybrid: enough for the column's highest level.
int level_bit_width(int max_level) {
  return max_level == 0 ? 0 : 32 - __builtin_clz(static_cast<unsigned>(max_level));
}

std::vector<std::uint32_t> decode_levels_v1(std::string_view& data, int max_level, int encoding,
                                            std::size_t count, const std::string& what) {
  if (encoding != kRle)
    unsupported(
        what,
        fmt::format("its levels are {}-encoded, which ms does not read", encoding_name(encoding)),
        "rewrite the file with pyarrow");
  if (data.size() < 4) corrupt(what, "a page ends before its levels");
  const std::uint32_t n = le32(data.data());
  if (n > data.size() - 4) corrupt(what, "levels longer than their page");
  const int width = level_bit_width(max_level);
  auto levels = decode_rle_hybrid(data.substr(4, n), width, count, what + ": levels");
  data.remove_prefix(4 + n);
  return levels;
}

void check_levels(const std::vector<std::uint32_t>& levels, int max_level,
                  const std::string& what) {
  for (const std::uint32_t l : levels)
    if (l > static_cast<std::uint32_t>(max_level))
      corrupt(what, fmt::format("a level of {} where the most is {}", l, max_level));
}

// Where the reader takes a Parquet file's bytes from: the file in memory, or ranges of it read
// when needed (a look at the first rows of a 2 GB file reads its footer and the column chunks of
// the row groups that hold them).
class ParquetBytes {
 public:
  virtual ~ParquetBytes() = default;
  virtual std::uint64_t size() const = 0;
  // Bytes [offset, offset + length), within size(); valid until the next read.
  virtual std::string_view read(std::uint64_t offset, std::uint64_t length) = 0;
};

class BytesInMemory final : public ParquetBytes {
 public:
  explicit BytesInMemory(std::string_view bytes) : bytes_(bytes) {}
  std::uint64_t size() const override { return bytes_.size(); }
  std::string_view read(std::uint64_t offset, std::uint64_t length) override {
    return bytes_.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
  }

 private:
  std::string_view bytes_;
};

class BytesOfFile final : public ParquetBytes {
 public:
  BytesOfFile(const std::filesystem::path& path, std::uint64_t size)
      : path_(path), in_(path, std::ios::binary), size_(size) {
    MS_CHECK(in_.is_open(), ErrorCode::kIo, "{}: cannot open: {}", path.string(),
             std::strerror(errno));
  }
  std::uint64_t size() const override { return size_; }
  std::string_view read(std::uint64_t offset, std::uint64_t length) override {
    buffer_.resize(static_cast<std::size_t>(length));
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(buffer_.data(), static_cast<std::streamsize>(length));
    MS_CHECK(!in_.bad(), ErrorCode::kIo, "{}: read failed at byte {}: {}", path_.string(), offset,
             std::strerror(errno));
    // Shorter than it was when its size was taken: what the whole file's read would find cut.
    if (static_cast<std::uint64_t>(in_.gcount()) != length) {
      throw Error(
          ErrorCode::kIntegrity,
          fmt::format("{}: the file ends at byte {}, before the {} bytes it had when "
                      "its reading began",
                      path_.string(), offset + static_cast<std::uint64_t>(in_.gcount()), size_),
          "it changed while read: read it again once it is written whole");
    }
    return buffer_;
  }

 private:
  std::filesystem::path path_;
  std::ifstream in_;
  std::uint64_t size_;
  std::string buffer_;
};

ChunkData read_chunk(ParquetBytes& file, std::uint64_t data_end, const ColumnMetaData& meta,
                     const ColumnPlan& plan, Budget& budget) {
  const std::string& what = plan.what;
  if (meta.type != *plan.leaf->type)
    corrupt(what, "a column chunk of another type than the schema's");
  // An empty chunk (a 0-row file: pyarrow writes offset 0 for it) has no pages to find.
  if (meta.num_values == 0) return {};
  std::int64_t start = meta.data_page_offset;
  if (meta.dictionary_page_offset && *meta.dictionary_page_offset > 0 &&
      *meta.dictionary_page_offset < start)
    start = *meta.dictionary_page_offset;
  if (start < 4 || static_cast<std::uint64_t>(start) >= data_end ||
      meta.total_compressed_size < 0 ||
      static_cast<std::uint64_t>(meta.total_compressed_size) >
          data_end - static_cast<std::uint64_t>(start))
    corrupt(what, fmt::format("a column chunk at bytes {}..+{} outside the file's data", start,
                              meta.total_compressed_size));
  if (meta.num_values < 0) corrupt(what, "a negative value count");
  budget.take_cells(static_cast<std::uint64_t>(meta.num_values), what);
  const std::string_view chunk = file.read(static_cast<std::uint64_t>(start),
                                           static_cast<std::uint64_t>(meta.total_compressed_size));
  ChunkData out;
  const auto levels_wanted = static_cast<std::size_t>(meta.num_values);
  if (plan.max_def > 0) out.def.reserve(levels_wanted);
  if (plan.max_rep > 0) out.rep.reserve(levels_wanted);
  std::optional<Values> dictionary;
  Values page_values;
  std::size_t pos = 0;
  while (out.level_count < levels_wanted) {
    if (pos >= chunk.size())
      corrupt(what,
              fmt::format("the pages end after {} of {} values", out.level_count, levels_wanted));
    std::size_t header_size = 0;
    const PageHeader h = parse_page_header(chunk.substr(pos), what, header_size);
    pos += header_size;
    if (h.compressed_size < 0 || static_cast<std::size_t>(h.compressed_size) > chunk.size() - pos)
      corrupt(what, fmt::format("a page of {} bytes where the chunk has {} left", h.compressed_size,
                                chunk.size() - pos));
    if (h.uncompressed_size < 0 ||
        static_cast<std::uint64_t>(h.uncompressed_size) >
            std::max(kMinPageLimit, static_cast<std::uint64_t>(h.compressed_size) * kMaxPageRatio))
      corrupt(what, fmt::format("a page of {} bytes that claims {} uncompressed", h.compressed_size,
                                h.uncompressed_size));
    const std::string_view body = chunk.substr(pos, static_cast<std::size_t>(h.compressed_size));
    pos += static_cast<std::size_t>(h.compressed_size);
    const auto size = static_cast<std::size_t>(h.uncompressed_size);
    if (h.type == kIndexPage) continue;
    if (!h.has_page_header &&
        (h.type == kDataPage || h.type == kDataPageV2 || h.type == kDictionaryPage))
      corrupt(what, "a page without its page header");
    if (h.num_values < 0) corrupt(what, "a page of a negative value count");
    if (h.type == kDictionaryPage) {
      if (dictionary) corrupt(what, "a second dictionary page");
      if (h.encoding != kPlain && h.encoding != kPlainDictionary)
        unsupported_encoding(what, h.encoding);
      const std::string raw = decompress(meta.codec, body, size, what);
      budget.take_cells(static_cast<std::uint64_t>(h.num_values), what);
      dictionary.emplace();
      decode_plain(raw, *plan.leaf, static_cast<std::size_t>(h.num_values), *dictionary, what);
      for (std::size_t i = 0; i < dictionary->size(); ++i) {
        budget.take_bytes(string_bytes((*dictionary)[i]), what);
        convert((*dictionary)[i], plan, true, i);
      }
      continue;
    }
    if (h.type != kDataPage && h.type != kDataPageV2) continue;  // unknown page types: skipped
    const auto n = static_cast<std::size_t>(h.num_values);
    if (n > levels_wanted - out.level_count)
      corrupt(what, fmt::format("pages of more values than the chunk's {}", levels_wanted));
    std::string raw;  // owns the decompressed bytes the views below look at
    std::string_view values_data;
    std::vector<std::uint32_t> def, rep;
    if (h.type == kDataPage) {
      raw = decompress(meta.codec, body, size, what);
      std::string_view rest = raw;
      if (plan.max_rep > 0)
        rep = decode_levels_v1(rest, plan.max_rep, h.repetition_level_encoding, n, what);
      if (plan.max_def > 0)
        def = decode_levels_v1(rest, plan.max_def, h.definition_level_encoding, n, what);
      values_data = rest;
    } else {
      const std::int32_t rl = h.repetition_levels_length, dl = h.definition_levels_length;
      if (rl < 0 || dl < 0 ||
          static_cast<std::uint64_t>(rl) + static_cast<std::uint64_t>(dl) >
              std::min<std::uint64_t>(body.size(), size))
        corrupt(what, "page levels longer than their page");
      if (plan.max_rep > 0)
        rep = decode_rle_hybrid(body.substr(0, rl), level_bit_width(plan.max_rep), n,
                                what + ": levels");
      if (plan.max_def > 0)
        def = decode_rle_hybrid(body.substr(rl, dl), level_bit_width(plan.max_def), n,
                                what + ": levels");
      const std::string_view packed = body.substr(static_cast<std::size_t>(rl) + dl);
      const std::size_t values_size = size - static_cast<std::size_t>(rl) - dl;
      if (h.is_compressed) {
        raw = decompress(meta.codec, packed, values_size, what);
        values_data = raw;
      } else {
        if (packed.size() != values_size) corrupt(what, "a page of another size than it says");
        values_data = packed;
      }
    }
    check_levels(def, plan.max_def, what);
    check_levels(rep, plan.max_rep, what);
    std::size_t present = n;
    if (plan.max_def > 0)
      present = static_cast<std::size_t>(
          std::count(def.begin(), def.end(), static_cast<std::uint32_t>(plan.max_def)));
    if (h.type == kDataPageV2 && plan.max_def > 0 &&
        static_cast<std::size_t>(h.num_nulls) != n - present && plan.max_rep == 0)
      corrupt(what,
              fmt::format("a page of {} nulls whose levels say {}", h.num_nulls, n - present));
    decode_values(values_data, h.encoding, *plan.leaf, present, dictionary ? &*dictionary : nullptr,
                  page_values, budget, what);
    if (page_values.size() != present)
      corrupt(what, fmt::format("a page of {} values where its levels say {}", page_values.size(),
                                present));
    const bool dictionary_encoded = h.encoding == kPlainDictionary || h.encoding == kRleDictionary;
    for (std::size_t i = 0; i < page_values.size(); ++i) {
      // Dictionary values were converted and counted once, in the dictionary (decode_values
      // counts each copy).
      if (!dictionary_encoded) {
        budget.take_bytes(string_bytes(page_values[i]), what);
        convert(page_values[i], plan, false, out.values.size() + 1);
      }
      out.values.push_back(std::move(page_values[i]));
    }
    out.def.insert(out.def.end(), def.begin(), def.end());
    out.rep.insert(out.rep.end(), rep.begin(), rep.end());
    out.level_count += n;
  }
  return out;
}

// A list element as JSON. NaN is a missing value (null), as in a float column; an infinity has
// no JSON form and no missing-value reading, so it is refused rather than made null.
Json json_of(const Value& v, const ColumnPlan& plan) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
  if (const auto* d = std::get_if<double>(&v)) {
    if (std::isinf(*d))
      unsupported(plan.what, "a list holds an infinity, which ms's JSON rows cannot carry",
                  "replace infinities in the lists (pyarrow.compute.if_else), or keep them in a "
                  "float column of their own (read as text)");
    return std::isnan(*d) ? Json() : Json(*d);
  }
  if (const auto* b = std::get_if<bool>(&v)) return *b;
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  return nullptr;
}

void check_utf8(const Value& v, const ColumnPlan& plan, std::size_t row) {
  if (plan.kind != LeafKind::kString) return;
  if (first_invalid_utf8_line(std::get<std::string>(v)) != 0)
    corrupt(plan.what, fmt::format("row {}: a string that is not valid UTF-8", row + 1));
}

std::size_t rows_in(const ChunkData& chunk, const ColumnPlan& plan) {
  if (!plan.is_list) return chunk.level_count;
  return static_cast<std::size_t>(std::count(chunk.rep.begin(), chunk.rep.end(), 0u));
}

// A float as Python's str() writes it ("2.0", "0.1", "1e+20", "inf"): the text of a float column
// that holds infinities.
std::string python_float_text(double d) {
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", d);
  if (s.find_first_not_of("-0123456789") == std::string::npos) s += ".0";
  return s;
}

// A float column holding an infinity becomes text, as a CSV column of them does: JSON has no
// infinity, and a null would lose the value and its sign (NaN stays a missing value).
void infinities_as_text(Table& table) {
  for (std::size_t c = 0; c < table.columns.size(); ++c) {
    if (table.columns[c].type != ColumnType::kFloat) continue;
    const bool any_inf = std::any_of(table.rows.begin(), table.rows.end(), [c](const auto& row) {
      const auto* d = std::get_if<double>(&row[c]);
      return d != nullptr && std::isinf(*d);
    });
    if (!any_inf) continue;
    table.columns[c].type = ColumnType::kString;
    for (auto& row : table.rows) {
      if (const auto* d = std::get_if<double>(&row[c]))
        row[c] = std::isnan(*d) ? Value() : Value(python_float_text(*d));
    }
  }
}

// The chunk's rows into table cells rows[first + r][column].
void fill_column(ChunkData& chunk, const ColumnPlan& plan, Table& table, std::size_t first,
                 std::size_t rows, std::size_t column) {
  const auto wrong_rows = [&](std::size_t got) {
    corrupt(plan.what, fmt::format("a row group of {} rows whose column holds {}", rows, got));
  };
  std::size_t next_value = 0;
  if (!plan.is_list) {
    if (chunk.level_count != rows) wrong_rows(chunk.level_count);
    for (std::size_t r = 0; r < rows; ++r) {
      if (plan.max_def == 0 || chunk.def[r] == static_cast<std::uint32_t>(plan.max_def)) {
        check_utf8(chunk.values[next_value], plan, first + r);
        table.rows[first + r][column] = std::move(chunk.values[next_value++]);
      }
    }
    return;
  }
  std::size_t row = 0;
  Json list;
  bool open = false;
  const auto close = [&]() {
    if (!open) return;
    if (row >= rows) wrong_rows(row + 1);
    // A null list is a null cell, as a JSON lines `null` is (not the text "null", which a
    // token or text column would read as the word).
    if (list.is_null()) {
      table.rows[first + row][column] = std::monostate{};
    } else {
      table.rows[first + row][column] = list.dump();
    }
    ++row;
    open = false;
  };
  for (std::size_t i = 0; i < chunk.level_count; ++i) {
    const auto d = static_cast<int>(chunk.def[i]);
    if (chunk.rep[i] == 0) {
      close();
      open = true;
      list = d < plan.list_def ? Json() : Json::array();
    } else if (!open || list.is_null()) {
      corrupt(plan.what, "a list element continues a list that is not there");
    }
    if (d > plan.list_def && d < plan.max_def) {
      list.push_back(Json());
    } else if (d == plan.max_def) {
      check_utf8(chunk.values[next_value], plan, first + row);
      list.push_back(json_of(chunk.values[next_value++], plan));
    }
  }
  close();
  if (row != rows) wrong_rows(row);
}

Table parse_parquet_bytes(ParquetBytes& file, const std::string& source, std::size_t max_rows) {
  if (file.size() < 12 || file.read(0, 4) != kMagic || file.read(file.size() - 4, 4) != kMagic) {
    throw Error(ErrorCode::kIntegrity,
                fmt::format("{}: not a Parquet file (it does not begin and end with PAR1{})",
                            source, file.size() < 12 ? ", and is too short" : ""),
                "the file is truncated or of another format: download or write it again");
  }
  const std::uint32_t footer_length = le32(file.read(file.size() - 8, 4).data());
  if (footer_length > file.size() - 12)
    corrupt(source, fmt::format("its metadata length {} is beyond the file's {} bytes",
                                footer_length, file.size()));
  const std::uint64_t data_end = file.size() - 8 - footer_length;
  const FileMetaData meta = parse_file_metadata(file.read(data_end, footer_length), source);
  if (meta.schema.empty()) corrupt(source, "an empty schema");
  std::size_t next = 0;
  const SchemaNode root = build_tree(meta.schema, next, 0, source);
  if (next != meta.schema.size())
    corrupt(source, "the schema holds more elements than its root's children");
  if (!root.is_group()) corrupt(source, "a schema whose root is not a group");

  std::vector<ColumnPlan> plans;
  std::vector<std::size_t> first_chunk;  // of each plan, in a row group's column chunks (leaves)
  std::size_t leaves = 0;
  Table table;
  for (const SchemaNode& field : root.children) {
    const std::size_t field_leaves = leaf_count(field);
    leaves += field_leaves;
    try {
      plans.push_back(plan_column(field, source));
    } catch (const Error& e) {
      // A column of a type ms does not read (a struct such as datasets' Image feature, binary
      // data, decimals) is left out with a warning, rather than failing jobs that never read it:
      // one that does says the column is missing, after the warning that says why.
      if (e.code() != ErrorCode::kMissingComponent) throw;
      warn_left_out(field.element->name, e);
      continue;
    }
    first_chunk.push_back(leaves - field_leaves);
    // pyarrow's dataset reader and Hugging Face refuse two columns of one name too (rows as JSON
    // objects would keep one of them).
    if (table.column_index(plans.back().name) >= 0)
      corrupt(source, fmt::format("two columns are named '{}'", plans.back().name));
    // pyarrow's null type (every value missing) is a null column, as for CSV and JSON lines.
    const bool null_type = !plans.back().is_list && plans.back().leaf->logical.kind == kLogicalNull;
    table.columns.push_back({plans.back().name, plans.back().is_list ? ColumnType::kJson
                                                : null_type          ? ColumnType::kNull
                                                            : column_type_of(plans.back().kind)});
  }
  Budget budget = Budget::for_file(file.size());
  std::uint64_t total_rows = 0;
  bool all_groups = true;
  for (std::size_t g = 0; g < meta.row_groups.size(); ++g) {
    if (table.rows.size() >= max_rows) {
      all_groups = false;
      break;
    }
    const RowGroup& group = meta.row_groups[g];
    const std::string where = fmt::format("{}: row group {}", source, g);
    if (group.columns.size() != leaves)
      corrupt(where,
              fmt::format("{} column chunks for {} leaf columns", group.columns.size(), leaves));
    if (group.num_rows < 0) corrupt(where, "a negative row count");
    const auto rows = static_cast<std::uint64_t>(group.num_rows);
    // Every column's chunk first: the rows are made only once each column has held as many.
    std::vector<ChunkData> chunks;
    for (std::size_t c = 0; c < plans.size(); ++c) {
      const ColumnChunk& chunk = group.columns[first_chunk[c]];
      if (chunk.has_file_path)
        unsupported(plans[c].what, "its data are in another file, which ms does not read",
                    "write the table as one file");
      if (!chunk.meta) corrupt(plans[c].what, "a column chunk without its metadata");
      const std::vector<std::string> expected =
          plans[c].is_list ? std::vector<std::string>{} : std::vector<std::string>{plans[c].name};
      if (!plans[c].is_list && chunk.meta->path != expected)
        corrupt(plans[c].what, "a column chunk of another column");
      chunks.push_back(read_chunk(file, data_end, *chunk.meta, plans[c], budget));
      const std::size_t held = rows_in(chunks.back(), plans[c]);
      if (held != rows)
        corrupt(plans[c].what,
                fmt::format("row group {} of {} rows where the column holds {}", g, rows, held));
    }
    budget.take_cells(rows * std::max<std::size_t>(plans.size(), 1), where);
    const std::size_t first = table.rows.size();
    table.rows.resize(first + rows, std::vector<Value>(plans.size()));
    for (std::size_t c = 0; c < plans.size(); ++c)
      fill_column(chunks[c], plans[c], table, first, static_cast<std::size_t>(rows), c);
    total_rows += rows;
  }
  if (table.rows.size() > max_rows) table.rows.resize(max_rows);
  infinities_as_text(table);
  // What datasets' features say of the columns (Json values, ClassLabel names).
  for (const auto& [key, value] : meta.key_value)
    if (key == "huggingface") detail::apply_hf_features(table, value, source);
  if (all_groups && meta.num_rows >= 0 && total_rows != static_cast<std::uint64_t>(meta.num_rows))
    corrupt(source, fmt::format("its row groups hold {} rows where its metadata says {}",
                                total_rows, meta.num_rows));
  return table;
}

}  // namespace

Table parse_parquet(std::string_view file, const std::string& source, std::size_t max_rows) {
  BytesInMemory bytes(file);
  return parse_parquet_bytes(bytes, source, max_rows);
}

Table read_parquet(const std::filesystem::path& path, std::size_t max_rows) {
  // A look at the first rows of a plain file: its footer and the row groups that hold them.
  if (max_rows != SIZE_MAX) {
    std::error_code ec;
    const std::filesystem::file_status status = std::filesystem::status(path, ec);
    const std::uintmax_t size = ec ? 0 : std::filesystem::file_size(path, ec);
    if (!ec && std::filesystem::is_regular_file(status) && size >= 12) {
      BytesOfFile bytes(path, size);
      // Else compressed as a whole (gzip), or not Parquet: read_data_file's way says which.
      if (bytes.read(0, 4) == kMagic) return parse_parquet_bytes(bytes, path.string(), max_rows);
    }
  }
  // Through the one reader of data files: a device named as one is refused before any read.
  return parse_parquet(read_data_file(path), path.string(), max_rows);
}

}  // namespace ms::data

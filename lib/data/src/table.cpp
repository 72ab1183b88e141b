// Column types and per-column type inference.
#include "ms/data/table.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

namespace ms::data {

const char* column_type_name(ColumnType type) {
  switch (type) {
    case ColumnType::kNull:
      return "null";
    case ColumnType::kInt:
      return "int";
    case ColumnType::kFloat:
      return "float";
    case ColumnType::kBool:
      return "bool";
    case ColumnType::kString:
      return "string";
    case ColumnType::kJson:
      return "json";
    case ColumnType::kFile:
      return "file";
    case ColumnType::kImage:
      return "image";
  }
  return "?";
}

int Table::column_index(const std::string& name) const {
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::uint64_t Table::content_hash() const {
  std::uint64_t hash = 14695981039346656037ULL;  // FNV-1a's offset basis and prime
  auto mix = [&hash](const void* data, std::size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i) {
      hash ^= bytes[i];
      hash *= 1099511628211ULL;
    }
  };
  // Each item's size goes in before it, so that no two tables run together alike ("ab","c"
  // against "a","bc").
  auto mix_text = [&mix](const std::string& text) {
    const std::uint64_t size = text.size();
    mix(&size, sizeof size);
    mix(text.data(), text.size());
  };
  for (const Column& c : columns) mix_text(c.name);
  for (const auto& row : rows) {
    for (const Value& v : row) {
      const auto kind = static_cast<unsigned char>(v.index());
      mix(&kind, 1);
      if (const auto* s = std::get_if<std::string>(&v)) mix_text(*s);
      if (const auto* i = std::get_if<std::int64_t>(&v)) mix(i, sizeof *i);
      if (const auto* d = std::get_if<double>(&v)) mix(d, sizeof *d);
      if (const auto* b = std::get_if<bool>(&v)) mix(b, sizeof *b);
    }
  }
  return hash;
}

namespace {

bool parse_int(const std::string& s, std::int64_t& out) {
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (begin != end && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, out);
  return ec == std::errc() && ptr == end;
}

// "nan" reads as a float (NaN, shown as null: a missing value, as pandas reads it); "inf" and
// "-inf" do not, so that a column holding them keeps them as text rather than as nulls that
// would lose their sign and look missing.
bool parse_float(const std::string& s, double& out) {
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (begin != end && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, out);
  return ec == std::errc() && ptr == end && !std::isinf(out);
}

// pandas' default missing-value markers (read_csv's na_values), which ModelScope's CSV loading
// (through pandas) reads as missing: in a column of numbers or booleans they are nulls, not a
// reason to read the whole column as text. A text column keeps them as written ("NA" may be a
// country, "None" a word), where pandas would drop them.
bool is_missing_marker(const std::string& s) {
  static const std::array<std::string_view, 18> kMarkers = {
      "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
      "<NA>", "N/A",      "NA",  "NULL",    "NaN",      "None", "n/a",  "nan",    "null"};
  return s.size() <= 8 && std::find(kMarkers.begin(), kMarkers.end(), s) != kMarkers.end();
}

bool parse_bool(const std::string& s, bool& out) {
  if (s.size() < 4 || s.size() > 5) return false;
  if (s.size() == 4 && strncasecmp(s.data(), "true", 4) == 0) {
    out = true;
    return true;
  }
  if (s.size() == 5 && strncasecmp(s.data(), "false", 5) == 0) {
    out = false;
    return true;
  }
  return false;
}

}  // namespace

ColumnType infer_and_convert(std::vector<Value*>& cells) {
  // One parsing pass that keeps the parsed numbers, then one assignment pass.
  bool all_int = true, all_float = true, all_bool = true, any = false;
  std::vector<std::int64_t> ints;
  std::vector<double> floats;
  std::vector<char> bools;
  ints.reserve(cells.size());
  std::size_t markers = 0;
  for (Value* cell : cells) {
    auto* s = std::get_if<std::string>(cell);
    if (!s) continue;
    if (is_missing_marker(*s)) {
      ++markers;
      continue;
    }
    any = true;
    std::int64_t i = 0;
    double f = 0;
    bool b = false;
    if (all_int) {
      if (parse_int(*s, i)) {
        ints.push_back(i);
      } else {
        all_int = false;
        // Earlier integers are exact in double up to 2^53; re-read them as floats.
        floats.reserve(cells.size());
        for (std::int64_t v : ints) floats.push_back(static_cast<double>(v));
        ints.clear();
      }
    }
    if (!all_int && all_float) {
      if (parse_float(*s, f))
        floats.push_back(f);
      else
        all_float = false;
    }
    if (all_bool) {
      if (parse_bool(*s, b))
        bools.push_back(b);
      else
        all_bool = false;
    }
    if (!all_int && !all_float && !all_bool) return ColumnType::kString;
  }
  if (!any) {
    // Nothing but markers (a column of nan, NA...): missing values, as pandas reads it.
    if (markers > 0)
      for (Value* cell : cells) *cell = std::monostate{};
    return ColumnType::kNull;
  }
  std::size_t k = 0;
  for (Value* cell : cells) {
    const auto* s = std::get_if<std::string>(cell);
    if (s == nullptr) continue;
    if (is_missing_marker(*s)) {
      *cell = std::monostate{};
      continue;
    }
    if (all_int)
      *cell = ints[k];
    else if (all_float)
      *cell = floats[k];
    else
      *cell = bools[k] != 0;
    ++k;
  }
  return all_int ? ColumnType::kInt : all_float ? ColumnType::kFloat : ColumnType::kBool;
}

void infer_table_types(Table& table) {
  // Row-major passes: rows are separate allocations, so walking one column at a time over a
  // large table would miss the cache on every cell.
  const std::size_t width = table.columns.size();
  std::vector<char> all_int(width, 1), all_float(width, 1), all_bool(width, 1), any(width, 0),
      markers(width, 0);
  for (const auto& row : table.rows) {
    for (std::size_t c = 0; c < width; ++c) {
      const auto* s = std::get_if<std::string>(&row[c]);
      if (!s) continue;
      if (is_missing_marker(*s)) {
        markers[c] = 1;
        continue;
      }
      any[c] = 1;
      std::int64_t i;
      double f;
      bool b;
      if (all_int[c] && !parse_int(*s, i)) all_int[c] = 0;
      if (!all_int[c] && all_float[c] && !parse_float(*s, f)) all_float[c] = 0;
      if (all_bool[c] && !parse_bool(*s, b)) all_bool[c] = 0;
    }
  }
  std::vector<ColumnType> types(width);
  bool convert = false;
  for (std::size_t c = 0; c < width; ++c) {
    // A column of nothing but markers (nan, NA...) is missing values, as pandas reads it.
    types[c] = !any[c]        ? ColumnType::kNull
               : all_int[c]   ? ColumnType::kInt
               : all_float[c] ? ColumnType::kFloat
               : all_bool[c]  ? ColumnType::kBool
                              : ColumnType::kString;
    table.columns[c].type = types[c];
    convert = convert || types[c] == ColumnType::kInt || types[c] == ColumnType::kFloat ||
              types[c] == ColumnType::kBool || markers[c];
  }
  if (!convert) return;
  for (auto& row : table.rows) {
    for (std::size_t c = 0; c < width; ++c) {
      auto* s = std::get_if<std::string>(&row[c]);
      if (!s) continue;
      if (types[c] != ColumnType::kString && is_missing_marker(*s)) {
        row[c] = std::monostate{};
        continue;
      }
      switch (types[c]) {
        case ColumnType::kInt: {
          std::int64_t i = 0;
          parse_int(*s, i);
          row[c] = i;
          break;
        }
        case ColumnType::kFloat: {
          double f = 0;
          parse_float(*s, f);
          row[c] = f;
          break;
        }
        case ColumnType::kBool: {
          bool b = false;
          parse_bool(*s, b);
          row[c] = b;
          break;
        }
        default:
          break;
      }
    }
  }
}

}  // namespace ms::data

// Column types and per-column type inference.
#include "ms/data/table.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ms/core/error.h"
#include "ms/core/text.h"

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

// The digits of a number cell, after an optional sign, as pandas reads numbers: white space
// around them is skipped (" 7 " is 7: `a, b` CSV headers come with such cells; ms::trim), and a
// cell of nothing but spaces is no number. Empty when what follows the sign is not a digit or a
// decimal point: from_chars would take a '-' after a '+' ("+-1", text to pandas) as the sign,
// and read "nan", "NAN" or "nan(12)" as NaN (pandas' missing values are the exact markers below,
// and other spellings are text to it).
std::string_view number_text(const std::string& s, bool& negative) {
  std::string_view t = trim(s);
  negative = !t.empty() && t.front() == '-';
  if (!t.empty() && (t.front() == '+' || t.front() == '-')) t.remove_prefix(1);
  if (t.empty() || !(std::isdigit(static_cast<unsigned char>(t.front())) || t.front() == '.'))
    return {};
  return t;
}

bool parse_int(const std::string& s, std::int64_t& out) {
  bool negative = false;
  const std::string_view t = number_text(s, negative);
  if (t.empty()) return false;
  // The sign is read back with the digits: -9223372036854775808 has no positive counterpart.
  const std::string digits = negative ? "-" + std::string(t) : std::string(t);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
  return ec == std::errc() && ptr == digits.data() + digits.size();
}

// "inf" and "-inf" are no floats here, so that a column holding them keeps them as text rather
// than as nulls that would lose their sign and look missing (JSON has no infinity); a number
// below the smallest double (1e-400) is 0 with its sign, as pandas reads it, and one beyond the
// largest (1e400) is text as infinities are.
bool parse_float(const std::string& s, double& out) {
  bool negative = false;
  const std::string_view t = number_text(s, negative);
  if (t.empty()) return false;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
  if (ec == std::errc::result_out_of_range && ptr == t.data() + t.size()) {
    const std::string copy(t);  // strtod needs the terminating NUL
    errno = 0;
    out = std::strtod(copy.c_str(), nullptr);
    if (!std::isfinite(out)) return false;
    ec = std::errc();
  }
  if (negative) out = -out;
  return ec == std::errc() && ptr == t.data() + t.size() && std::isfinite(out);
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

namespace {

// An integer written in digits that no int64 holds (a 20-digit id). A column of such integers is
// read as text: as floats they would lose digits without a word, its neighbours' too.
bool is_huge_int(const std::string& text) {
  // With the spaces around it that parse_int skips too (" 12345678901234567891").
  const std::string_view s = trim(text);
  const std::size_t first = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
  return s.size() > first + 18 && is_decimal(s.substr(first));
}

// What the text cells of one column can all be read as.
struct ColumnScan {
  bool all_int = true, all_float = true, all_bool = true, any = false, markers = false;
  bool huge_int = false;
  bool missing = false;  // an empty field or a missing-value marker

  void add_missing() { missing = true; }

  void add(const std::string& s) {
    if (is_missing_marker(s)) {
      markers = missing = true;
      return;
    }
    any = true;
    std::int64_t i = 0;
    double f = 0;
    bool b = false;
    if (all_int && !parse_int(s, i)) {
      if (is_huge_int(s))
        huge_int = true;  // still a column of integers; parse_float reads it if floats follow
      else
        all_int = false;
    }
    // Integers are numbers too: a column of integers and floats is a float column.
    if (all_float && !parse_float(s, f)) all_float = false;
    if (all_bool && !parse_bool(s, b)) all_bool = false;
  }

  ColumnType type() const {
    if (!any) return ColumnType::kNull;  // nothing but markers (nan, NA...): missing, as pandas
    // pandas has no missing integer: a column of integers with a missing value is float64
    // (1.0, NaN, 3.0), which Hugging Face's datasets then gives as 1.0, None, 3.0.
    if (all_int && missing && !huge_int) return ColumnType::kFloat;
    if (all_int) return huge_int ? ColumnType::kString : ColumnType::kInt;
    if (all_float) return ColumnType::kFloat;
    return all_bool ? ColumnType::kBool : ColumnType::kString;
  }
};

// One text cell as a value of the column's type (text stays text, markers included).
void convert_cell(Value& cell, ColumnType type) {
  const auto* s = std::get_if<std::string>(&cell);
  if (s == nullptr || type == ColumnType::kString) return;
  if (is_missing_marker(*s)) {
    cell = std::monostate{};
    return;
  }
  switch (type) {
    case ColumnType::kInt: {
      std::int64_t i = 0;
      parse_int(*s, i);
      cell = i;
      break;
    }
    case ColumnType::kFloat: {
      double f = 0;
      parse_float(*s, f);
      cell = f;
      break;
    }
    case ColumnType::kBool: {
      bool b = false;
      parse_bool(*s, b);
      cell = b;
      break;
    }
    default:
      break;
  }
}

}  // namespace

ColumnType infer_and_convert(std::vector<Value*>& cells) {
  ColumnScan scan;
  for (Value* cell : cells) {
    if (const auto* s = std::get_if<std::string>(cell))
      scan.add(*s);
    else if (std::holds_alternative<std::monostate>(*cell))
      scan.add_missing();
  }
  const ColumnType type = scan.type();
  if (type == ColumnType::kNull) {
    if (scan.markers)
      for (Value* cell : cells) *cell = std::monostate{};
    return type;
  }
  for (Value* cell : cells) convert_cell(*cell, type);
  return type;
}

void infer_table_types(Table& table) {
  // Row-major passes: rows are separate allocations, so walking one column at a time over a
  // large table would miss the cache on every cell.
  const std::size_t width = table.columns.size();
  std::vector<ColumnScan> scans(width);
  for (const auto& row : table.rows) {
    for (std::size_t c = 0; c < width; ++c) {
      if (const auto* s = std::get_if<std::string>(&row[c]))
        scans[c].add(*s);
      else if (std::holds_alternative<std::monostate>(row[c]))
        scans[c].add_missing();
    }
  }
  std::vector<ColumnType> types(width);
  bool convert = false;
  for (std::size_t c = 0; c < width; ++c) {
    types[c] = scans[c].type();
    table.columns[c].type = types[c];
    convert = convert || (types[c] != ColumnType::kString && scans[c].markers) ||
              types[c] == ColumnType::kInt || types[c] == ColumnType::kFloat ||
              types[c] == ColumnType::kBool;
  }
  if (!convert) return;
  for (auto& row : table.rows) {
    for (std::size_t c = 0; c < width; ++c) {
      if (types[c] == ColumnType::kNull) {
        if (std::holds_alternative<std::string>(row[c])) row[c] = std::monostate{};
      } else {
        convert_cell(row[c], types[c]);
      }
    }
  }
}

Value cell_value(const Value& cell, ColumnType type) {
  const auto* text = std::get_if<std::string>(&cell);
  if (text == nullptr || type != ColumnType::kJson) return cell;
  const nlohmann::json parsed = nlohmann::json::parse(*text, nullptr, false);
  if (parsed.is_string()) return parsed.get<std::string>();
  if (parsed.is_boolean()) return parsed.get<bool>();
  // nlohmann reads an integer past 2^64 as a float and one in [2^63, 2^64) as unsigned: both
  // stay their text rather than become a rounded float or wrap.
  const bool whole_digits =
      !text->empty() && text->find_first_not_of("-0123456789") == std::string::npos;
  if ((parsed.is_number_unsigned() &&
       parsed.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) ||
      (parsed.is_number_float() && whole_digits))
    return cell;
  if (parsed.is_number_integer()) return parsed.get<std::int64_t>();
  if (parsed.is_number()) return parsed.get<double>();
  return cell;
}

std::string cell_structure(const Value& cell, ColumnType type) {
  // A kJson cell holds its value's JSON text as a reader dumped it (a string quoted): its first
  // character tells the kind, without parsing the cell again.
  const auto* text = std::get_if<std::string>(&cell);
  if (text == nullptr || type != ColumnType::kJson || text->empty()) return {};
  if (text->front() == '[') return "list";
  if (text->front() == '{') return "object";
  return {};
}

std::string cell_text(const Value& cell, ColumnType type) {
  const Value value = cell_value(cell, type);
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  if (const auto* i = std::get_if<std::int64_t>(&value)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&value)) return fmt::format("{}", *d);
  if (const auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  return {};
}

}  // namespace ms::data

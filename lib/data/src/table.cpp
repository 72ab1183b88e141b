// Column types and per-column type inference.
#include "ms/data/table.h"

#include <charconv>
#include <cstring>

namespace ms::data {

const char* column_type_name(ColumnType type) {
  switch (type) {
    case ColumnType::kNull: return "null";
    case ColumnType::kInt: return "int";
    case ColumnType::kFloat: return "float";
    case ColumnType::kBool: return "bool";
    case ColumnType::kString: return "string";
    case ColumnType::kJson: return "json";
    case ColumnType::kFile: return "file";
    case ColumnType::kImage: return "image";
  }
  return "?";
}

int Table::column_index(const std::string& name) const {
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

namespace {

bool parse_int(const std::string& s, std::int64_t& out) {
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (begin != end && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, out);
  return ec == std::errc() && ptr == end;
}

bool parse_float(const std::string& s, double& out) {
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (begin != end && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, out);
  return ec == std::errc() && ptr == end;
}

bool parse_bool(const std::string& s, bool& out) {
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
  bool all_int = true, all_float = true, all_bool = true, any = false;
  std::int64_t i = 0;
  double f = 0;
  bool b = false;
  for (Value* cell : cells) {
    auto* s = std::get_if<std::string>(cell);
    if (!s) continue;
    any = true;
    if (all_int && !parse_int(*s, i)) all_int = false;
    if (!all_int && all_float && !parse_float(*s, f)) all_float = false;
    if (all_bool && !parse_bool(*s, b)) all_bool = false;
    if (!all_int && !all_float && !all_bool) return ColumnType::kString;
  }
  if (!any) return ColumnType::kNull;
  for (Value* cell : cells) {
    auto* s = std::get_if<std::string>(cell);
    if (!s) continue;
    if (all_int) {
      parse_int(*s, i);
      *cell = i;
    } else if (all_float) {
      parse_float(*s, f);
      *cell = f;
    } else {
      parse_bool(*s, b);
      *cell = b;
    }
  }
  return all_int ? ColumnType::kInt : all_float ? ColumnType::kFloat : ColumnType::kBool;
}

}  // namespace ms::data

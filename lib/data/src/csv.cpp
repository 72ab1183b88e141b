// RFC 4180 CSV, JSON lines and text-line parsing.
#include "ms/data/csv.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/core/utf8.h"
#include "ms/data/archive.h"

namespace ms::data {

std::size_t first_invalid_utf8_line(std::string_view text) {
  const std::size_t bad = first_invalid_utf8(text);
  if (bad == std::string_view::npos) return 0;
  return 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + bad, '\n'));
}

namespace {

[[noreturn]] void bad_line(const std::string& source, std::size_t line, const std::string& what) {
  throw Error(ErrorCode::kIntegrity, fmt::format("{}:{}: {}", source, line, what),
              "fix the file or choose the right format and delimiter");
}

[[noreturn]] void bad_json(const std::string& source, std::size_t line, std::size_t column,
                           const std::string& reason, bool over_limit) {
  JsonParseError e;
  e.line = line;
  e.column = column;
  e.reason = reason;
  e.over_limit = over_limit;
  throw json_parse_error(source, e, ErrorCode::kIntegrity, "bad JSON",
                         "fix the file: it must be JSON lines or one array of objects");
}

// nlohmann keeps integers in [2^63, 2^64) as unsigned: no int64 holds them.
bool too_big_for_int64(const Json& v) {
  return v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX);
}

// Column names from a header record, repeated names renamed as pandas' read_csv does (its
// mangle_dupe_names), so every column stays addressable under the name ModelScope's pandas loader
// gives it: the second "a" becomes "a.1", the third "a.2", skipping a generated name that the
// header already has ("a,a,a.1" gives a, a.2, a.1). Empty names become column_<k> and are renamed
// after the named columns, so that a named column keeps its name. Hash lookups keep this linear
// (pandas' own `in` test on the list of names is quadratic).
std::vector<Column> header_columns(const std::vector<Value>& record) {
  std::vector<std::string> names(record.size());
  std::vector<std::size_t> order;
  order.reserve(record.size());
  for (std::size_t k = 0; k < record.size(); ++k) {
    if (const auto* s = std::get_if<std::string>(&record[k]); s && !s->empty()) {
      names[k] = *s;
      order.push_back(k);
    }
  }
  for (std::size_t k = 0; k < record.size(); ++k) {
    if (names[k].empty()) {
      names[k] = "column_" + std::to_string(k);
      order.push_back(k);
    }
  }
  std::unordered_map<std::string, std::size_t> present;  // how many columns hold each name now
  std::unordered_map<std::string, std::size_t> counts;   // pandas' `counts`
  present.reserve(names.size());
  counts.reserve(names.size());
  for (const std::string& name : names) ++present[name];
  for (std::size_t k : order) {
    const std::string old = names[k];
    std::string name = old;
    std::size_t count = counts[old];
    while (count > 0) {
      counts[old] = count + 1;
      name = old + "." + std::to_string(count);
      auto it = present.find(name);
      if (it != present.end() && it->second > 0) {
        ++count;
      } else {
        auto c = counts.find(name);
        count = c == counts.end() ? 0 : c->second;
      }
    }
    if (name != old) {
      --present[old];
      ++present[name];
      names[k] = name;
    }
    counts[name] = count + 1;
  }
  std::vector<Column> columns;
  columns.reserve(names.size());
  for (std::string& name : names) columns.push_back({std::move(name), ColumnType::kString});
  return columns;
}

}  // namespace

std::vector<JsonLine> parse_json_lines(std::string_view text, std::size_t max_lines) {
  text = without_bom(text);
  std::vector<JsonLine> out;
  // Line by line rather than through split_lines: a look at the first lines of a large file
  // (max_lines) stops there.
  std::size_t number = 0;
  for (std::size_t pos = 0; pos < text.size() && out.size() < max_lines;) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view text_line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++number;
    if (text_line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    JsonLine& line = out.emplace_back();
    line.line = number;
    JsonParseError e;
    if (!try_parse_json(text_line, line.value, e)) {
      line.value = nullptr;
      line.column = e.column;
      line.error = std::move(e.reason);
      line.over_limit = e.over_limit;
    }
  }
  return out;
}

Table parse_csv(std::string_view text, const std::string& source, const CsvOptions& options) {
  text = without_bom(text);
  if (std::size_t bad = first_invalid_utf8_line(text)) bad_line(source, bad, "invalid UTF-8");
  const char delim = options.delimiter;
  MS_CHECK(delim != '"' && delim != '\n' && delim != '\r', ErrorCode::kUsage,
           "CSV delimiter {:?} is not allowed", delim);

  Table table;
  std::vector<Value> record;
  std::string field;
  std::size_t line = 1;         // current physical line
  std::size_t record_line = 1;  // line where the current record started
  bool have_header = !options.header;
  std::size_t width = 0;
  const std::size_t n = text.size();
  std::size_t i = 0;
  bool stop[256] = {};
  stop[static_cast<unsigned char>(delim)] = stop['\n'] = stop['\r'] = true;

  auto end_record = [&]() {
    // A blank line is one empty unquoted field: skip it, as pandas does.
    if (record.size() == 1 && std::holds_alternative<std::monostate>(record[0])) {
      record.clear();
      return;
    }
    if (!have_header) {
      table.columns = header_columns(record);
      width = record.size();
      have_header = true;
    } else {
      if (width == 0) {
        width = record.size();
        for (std::size_t k = 0; k < width; ++k)
          table.columns.push_back({"column_" + std::to_string(k), ColumnType::kString});
      }
      // Fewer fields than the header: the missing ones are missing values, as pandas (so
      // ModelScope and Hugging Face) reads them; more is an error there too.
      if (record.size() < width && options.fill_short_rows) record.resize(width);
      if (record.size() != width) {
        bad_line(source, record_line,
                 fmt::format("ragged row: {} fields, expected {} (as in the header)", record.size(),
                             width));
      }
      // A quoted empty field ("") is a missing value as an unquoted one is: pandas reads both
      // as NaN (so ModelScope and Hugging Face give None), not as empty text.
      for (Value& cell : record)
        if (const auto* s = std::get_if<std::string>(&cell); s && s->empty())
          cell = std::monostate{};
      table.rows.push_back(std::move(record));
    }
    record.clear();
    record.reserve(width);
  };

  // The header is read whatever max_rows is (0 rows still name the columns).
  while (i < n && !(have_header && table.rows.size() >= options.max_rows)) {
    record_line = line;
    // One record.
    while (true) {
      field.clear();
      if (i < n && text[i] == '"') {
        const std::size_t quote_line = line;
        ++i;
        while (true) {
          if (i >= n) bad_line(source, quote_line, "unterminated quoted field");
          const char c = text[i];
          if (c == '"') {
            if (i + 1 < n && text[i + 1] == '"') {
              field.push_back('"');
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (c == '\n') ++line;
          field.push_back(c);
          ++i;
        }
        if (i < n && text[i] != delim && text[i] != '\n' && text[i] != '\r') {
          bad_line(source, line, "unexpected text after a closing quote");
        }
        record.emplace_back(std::in_place_type<std::string>, std::move(field));
      } else {
        const std::size_t start = i;
        while (i < n && !stop[static_cast<unsigned char>(text[i])]) ++i;
        if (i == start) {
          record.emplace_back(std::monostate{});
        } else {
          record.emplace_back(std::in_place_type<std::string>, text.data() + start, i - start);
        }
      }
      if (i >= n) break;
      const char c = text[i];
      if (c == delim) {
        ++i;
        if (i >= n) record.emplace_back(std::monostate{});
        continue;
      }
      // End of record: LF, CRLF or a lone CR.
      if (c == '\r') ++i;
      if (i < n && text[i] == '\n') ++i;
      ++line;
      break;
    }
    end_record();
  }
  if (options.header && table.columns.empty()) bad_line(source, 1, "empty file: no header row");
  if (!table.columns.empty() && options.infer_types) infer_table_types(table);
  return table;
}

Table read_csv(const std::filesystem::path& path, const CsvOptions& options) {
  return parse_csv(read_data_file(path), path.string(), options);
}

bool holds_json_array(std::string_view text) {
  text = without_bom(text);
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] == '[';
}

Table parse_jsonl(std::string_view text, const std::string& source, std::size_t max_rows) {
  text = without_bom(text);
  if (std::size_t bad = first_invalid_utf8_line(text)) bad_line(source, bad, "invalid UTF-8");
  Table table;
  std::unordered_map<std::string, std::size_t> index;
  // Per column, which JSON kinds occur: 0 int, 1 float, 2 bool, 3 string, 4 array/object, 5 an
  // integer no int64 holds.
  std::vector<std::array<bool, 6>> seen;
  std::vector<Json> objects;
  auto add = [&](Json obj) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      auto [slot, inserted] = index.emplace(it.key(), table.columns.size());
      if (inserted) {
        table.columns.push_back({it.key(), ColumnType::kNull});
        seen.push_back({false, false, false, false, false, false});
      }
      auto& s = seen[slot->second];
      const Json& v = it.value();
      if (v.is_boolean())
        s[2] = true;
      else if (v.is_number_integer() && !too_big_for_int64(v))
        s[0] = true;
      else if (too_big_for_int64(v))
        s[5] = true;
      else if (v.is_number())
        s[1] = true;
      else if (v.is_string())
        s[3] = true;
      else if (!v.is_null())
        s[4] = true;
    }
    objects.push_back(std::move(obj));
  };
  if (holds_json_array(text)) {
    // A .json file holding one array of objects (HF's json builder reads these too).
    Json doc;
    JsonParseError e;
    if (!try_parse_json(text, doc, e)) bad_json(source, e.line, e.column, e.reason, e.over_limit);
    for (std::size_t k = 0; k < doc.size() && k < max_rows; ++k) {
      if (!doc[k].is_object()) {
        throw Error(ErrorCode::kIntegrity,
                    fmt::format("{}: element {} of the top-level array is {}, expected an object",
                                source, k, doc[k].type_name()));
      }
      add(std::move(doc[k]));
    }
  } else {
    std::vector<JsonLine> lines = parse_json_lines(text, max_rows);
    // One object written over several lines (a pretty-printed record, SQuAD's {"version": ...,
    // "data": [...]}): Hugging Face's json builder reads the whole file as one row, so ms does.
    // A first line that does not parse otherwise is reported as it was.
    if (!lines.empty() && !lines.front().error.empty() &&
        text[text.find_first_not_of(" \t\r\n")] == '{') {
      Json doc;
      JsonParseError e;
      if (try_parse_json(text, doc, e) && doc.is_object()) {
        add(std::move(doc));
        lines.clear();
      }
    }
    for (JsonLine& line : lines) {
      if (!line.error.empty())
        bad_json(source, line.line, line.column, line.error, line.over_limit);
      if (!line.value.is_object()) {
        bad_line(source, line.line,
                 "expected a JSON object, got " + std::string(line.value.type_name()));
      }
      add(std::move(line.value));
    }
  }
  // One type per column: ints widen to float; any other mix becomes JSON text. Integers that no
  // int64 holds, among integers only, make JSON text too, which keeps every digit (as floats
  // they lost digits without a word, their neighbours' too); among floats they are floats.
  for (std::size_t c = 0; c < table.columns.size(); ++c) {
    auto s = seen[c];
    if (s[5]) {
      if (s[1] || s[2] || s[3] || s[4])
        s[1] = true;
      else
        s[4] = true;
    }
    const int kinds = s[0] + s[1] + s[2] + s[3] + s[4];
    ColumnType type = ColumnType::kNull;
    if (kinds == 0)
      type = ColumnType::kNull;
    else if (s[4] || kinds > 2 || (kinds == 2 && !(s[0] && s[1])))
      type = ColumnType::kJson;
    else if (s[1])
      type = ColumnType::kFloat;
    else if (s[0])
      type = ColumnType::kInt;
    else if (s[2])
      type = ColumnType::kBool;
    else
      type = ColumnType::kString;
    table.columns[c].type = type;
  }
  table.rows.reserve(objects.size());
  for (const Json& obj : objects) {
    std::vector<Value> row(table.columns.size());
    // By the object's own keys: looking each column up in the object would be quadratic in the
    // number of columns (ordered_json searches linearly).
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (it->is_null()) continue;
      const std::size_t c = index.at(it.key());
      switch (table.columns[c].type) {
        case ColumnType::kInt:
          row[c] = it->get<std::int64_t>();
          break;
        case ColumnType::kFloat:
          row[c] = it->get<double>();
          break;
        case ColumnType::kBool:
          row[c] = it->get<bool>();
          break;
        case ColumnType::kString:
          row[c] = it->get<std::string>();
          break;
        default:
          row[c] = it->dump();
          break;
      }
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

Table parse_text_lines(std::string_view text, const std::string& source) {
  text = without_bom(text);
  if (std::size_t bad = first_invalid_utf8_line(text)) bad_line(source, bad, "invalid UTF-8");
  Table table;
  table.columns.push_back({"text", ColumnType::kString});
  for (std::string_view line : split_lines(text)) table.rows.push_back({Value(std::string(line))});
  return table;
}

Table read_jsonl(const std::filesystem::path& path, std::size_t max_rows) {
  return parse_jsonl(read_data_file(path), path.string(), max_rows);
}

}  // namespace ms::data

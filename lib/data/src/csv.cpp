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

Error line_error(const std::string& source, std::size_t line, const std::string& what) {
  return Error(ErrorCode::kIntegrity, fmt::format("{}:{}: {}", source, line, what),
               "fix the file or choose the right format and delimiter");
}

[[noreturn]] void bad_line(const std::string& source, std::size_t line, const std::string& what) {
  throw line_error(source, line, what);
}

// An error that is one only because the text ends where it does (inside a quoted CSV field, a
// JSON value left open): a longer start of the file may not have it (parse_first_rows).
class EndsEarly : public Error {
 public:
  explicit EndsEarly(const Error& e) : Error(e) {}
};

Error json_error(const std::string& source, const JsonParseError& e) {
  return json_parse_error(source, e, ErrorCode::kIntegrity, "bad JSON",
                          "fix the file: it must be JSON lines, one array of objects, or "
                          "objects one after another");
}

[[noreturn]] void bad_json(const std::string& source, const JsonParseError& e) {
  if (e.ends_early) throw EndsEarly(json_error(source, e));
  throw json_error(source, e);
}

// One past the end of the JSON value that starts at `begin` (an object or array: its closing
// bracket; anything else: the next blank), or the text's end.
std::size_t end_of_value(std::string_view text, std::size_t begin) {
  if (text[begin] == '{' || text[begin] == '[') return json_container_end(text, begin);
  const std::size_t blank = text.find_first_of(" \t\r\n", begin);
  return blank == std::string_view::npos ? text.size() : blank;
}

[[noreturn]] void not_an_object(const std::string& source, std::size_t k, const Json& element) {
  throw Error(ErrorCode::kIntegrity,
              fmt::format("{}: element {} of the top-level array is {}, expected an object", source,
                          k, element.type_name()));
}

// One past the end of the array element that starts at `begin`, or npos when the text ends first.
std::size_t end_of_element(std::string_view text, std::size_t begin) {
  if (text[begin] == '{' || text[begin] == '[') {
    const std::size_t end = json_container_end(text, begin);
    return end == text.size() ? std::string_view::npos : end;
  }
  if (text[begin] == '"') {
    for (std::size_t i = begin + 1; i < text.size(); ++i) {
      if (text[i] == '\\')
        ++i;
      else if (text[i] == '"')
        return i + 1;
    }
    return std::string_view::npos;
  }
  return text.find_first_of(",] \t\r\n", begin);  // a number, true, false or null
}

// The first `max_rows` elements of the array `text` opens, each an object that parses: a look at
// the first rows of a 1 GB array reads them only. An element among them that parses and is not
// an object is the whole array's error. False for anything else (fewer elements before the text
// ends, one that does not parse): the whole text's parse then finds the rows, or says where the
// error is, or that the text ends early.
bool first_array_objects(std::string_view text, const std::string& source, std::size_t max_rows,
                         std::vector<Json>& out) {
  std::size_t pos = text.find('[') + 1;
  while (out.size() < max_rows) {
    pos = text.find_first_not_of(" \t\r\n", pos);
    // The text's end, the array's (no element: "[]"), or a comma where an element belongs.
    if (pos == std::string_view::npos || text[pos] == ']' || text[pos] == ',') return false;
    const std::size_t end = end_of_element(text, pos);
    if (end == std::string_view::npos) return false;
    // Parsed inside brackets, as in the array: its depth counts against the limit as there.
    const std::string element = "[" + std::string(text.substr(pos, end - pos)) + "]";
    Json value;
    JsonParseError ignored;
    if (!try_parse_json(element, value, ignored, /*refuse_repeated_keys=*/true)) return false;
    if (!value[0].is_object()) not_an_object(source, out.size(), value[0]);
    out.push_back(std::move(value[0]));
    if (out.size() >= max_rows) break;
    pos = text.find_first_not_of(" \t\r\n", end);
    if (pos == std::string_view::npos || text[pos] != ',') return false;
    ++pos;
  }
  return true;
}

// JSON objects one after another, each over any number of lines (`jq .` writes them so; SQuAD's
// file is one), blanks between them: the first `max_rows`. False at the first that does not parse
// or is not an object, `error` saying why (ends_early: the text ends inside it).
bool parse_concatenated_objects(std::string_view text, std::size_t max_rows, std::vector<Json>& out,
                                JsonParseError& error) {
  for (std::size_t pos = text.find_first_not_of(" \t\r\n");
       pos != std::string_view::npos && out.size() < max_rows;
       pos = text.find_first_not_of(" \t\r\n", pos)) {
    const std::size_t end = end_of_value(text, pos);
    Json value;
    if (!try_parse_json(text.substr(pos, end - pos), value, error, /*refuse_repeated_keys=*/true))
      return false;
    if (!value.is_object()) return false;
    out.push_back(std::move(value));
    pos = end;
  }
  return true;
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
    line.end = std::min(pos, text.size());
    JsonParseError e;
    if (!try_parse_json(text_line, line.value, e, /*refuse_repeated_keys=*/true)) {
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
  for (char c : {delim, '\n', '\r'}) stop[static_cast<unsigned char>(c)] = true;
  bool quoted_in_record = false;

  auto end_record = [&]() {
    // A blank line (one unquoted field, empty or only spaces and tabs) is skipped, as pandas
    // and Hugging Face's datasets skip it: as a row it would be a row of missing values whose
    // " " turned its int columns into text.
    if (record.size() == 1 && !quoted_in_record) {
      const auto* text_field = std::get_if<std::string>(&record[0]);
      if (text_field == nullptr || text_field->find_first_not_of(" \t") == std::string::npos) {
        record.clear();
        return;
      }
    }
    quoted_in_record = false;
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
        quoted_in_record = true;
        ++i;
        while (true) {
          if (i >= n) throw EndsEarly(line_error(source, quote_line, "unterminated quoted field"));
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
  // Over the rows read (a look at the first rows does not fail for a byte after them); after
  // them, since where they end is known only then. A bad byte is never a delimiter or a quote.
  if (std::size_t bad = first_invalid_utf8_line(text.substr(0, i))) {
    bad_line(source, bad, "invalid UTF-8");
  }
  if (options.header && table.columns.empty()) bad_line(source, 1, "empty file: no header row");
  if (!table.columns.empty() && options.infer_types) infer_table_types(table);
  return table;
}

bool holds_json_array(std::string_view text) {
  text = without_bom(text);
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] == '[';
}

namespace {

// `text` less a UTF-8 character its end splits (the first bytes of one, at the very end).
std::string_view without_split_character(std::string_view text) {
  for (std::size_t back = 1; back <= 4 && back <= text.size(); ++back) {
    const auto byte = static_cast<unsigned char>(text[text.size() - back]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: the lead is further back
    const std::size_t length = byte < 0x80 ? 1 : byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : 2;
    return length > back ? text.substr(0, text.size() - back) : text;
  }
  return text;
}

// A look at a file's first `max_rows` rows (`ms dataset head` of a 10 GB CSV) reads a start of
// it, doubled until those rows are in it, not the whole file. The start is cut after its last
// line break: a row cut short or a UTF-8 character cut in two are never parsed. A CSV record with
// a quoted line break, or a JSON object written over several lines, may still be cut: the parser
// then meets the end of the text inside it (EndsEarly, before max_rows rows, or it would have
// stopped), which a longer start resolves. So the rows and their inferred types are those the
// whole file gives, and so are its errors among those rows. A JSON array (often one line) is cut
// only where a UTF-8 character would be split: its elements are found by their brackets
// (parse_jsonl).
// `json`: the file may hold a JSON array.
template <class Parse>
Table parse_first_rows(const std::filesystem::path& path, std::size_t max_rows, const Parse& parse,
                       bool json = false) {
  if (max_rows == SIZE_MAX) return parse(read_data_file(path));
  for (std::size_t bytes = std::size_t(1) << 20;; bytes *= 2) {
    const DataFileStart start = read_data_file_start(path, bytes);
    if (start.complete) return parse(start.bytes);
    const std::string_view text =
        json && holds_json_array(start.bytes)
            ? without_split_character(start.bytes)
            : std::string_view(start.bytes)
                  .substr(0, start.bytes.rfind('\n') + 1);  // npos + 1: no line break, nothing
    try {
      Table table = parse(text);
      if (table.rows.size() >= max_rows) return table;
    } catch (const EndsEarly&) {
      // The cut splits a quoted field or a JSON value: read further. (Any other error is in
      // whole records before the cut, and so the whole file's too.)
    }
  }
}

}  // namespace

Table read_csv(const std::filesystem::path& path, const CsvOptions& options) {
  return parse_first_rows(path, options.max_rows, [&](std::string_view text) {
    return parse_csv(text, path.string(), options);
  });
}

Table parse_jsonl(std::string_view text, const std::string& source, std::size_t max_rows) {
  text = without_bom(text);
  // A look at the first rows checks the lines it reads (below); the JSON parser refuses invalid
  // UTF-8 in the values it reads in any case, this names the line.
  if (max_rows == SIZE_MAX) {
    if (std::size_t bad = first_invalid_utf8_line(text)) bad_line(source, bad, "invalid UTF-8");
  }
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
  std::vector<Json> first;
  if (holds_json_array(text) && max_rows != SIZE_MAX &&
      first_array_objects(text, source, max_rows, first)) {
    // The first rows of an array: its first max_rows objects, the rest not read.
    for (Json& object : first) add(std::move(object));
  } else if (holds_json_array(text)) {
    // A .json file holding one array of objects (HF's json builder reads these too).
    Json doc;
    JsonParseError e;
    if (!try_parse_json(text, doc, e, /*refuse_repeated_keys=*/true)) bad_json(source, e);
    for (std::size_t k = 0; k < doc.size() && k < max_rows; ++k) {
      if (!doc[k].is_object()) not_an_object(source, k, doc[k]);
      add(std::move(doc[k]));
    }
  } else {
    std::vector<JsonLine> lines = parse_json_lines(text, max_rows);
    if (max_rows != SIZE_MAX && !lines.empty()) {
      const std::size_t bad = first_invalid_utf8_line(text.substr(0, lines.back().end));
      if (bad != 0) bad_line(source, bad, "invalid UTF-8");
    }
    // Objects written over several lines (pretty-printed records one after another, as `jq .`
    // writes them; SQuAD's one {"version": ..., "data": [...]}): Hugging Face's json builder
    // reads each object as a row, so ms does. A first line that does not parse otherwise is
    // reported as it was (as one the text cut short, when the objects' text ends inside one).
    bool first_line_ends_early = false;
    if (!lines.empty() && !lines.front().error.empty() &&
        text[text.find_first_not_of(" \t\r\n")] == '{') {
      std::vector<Json> several;
      JsonParseError e;
      if (parse_concatenated_objects(text, max_rows, several, e)) {
        for (Json& object : several) add(std::move(object));
        lines.clear();
      }
      first_line_ends_early = e.ends_early;
    }
    for (JsonLine& line : lines) {
      if (!line.error.empty()) {
        JsonParseError e;
        e.line = line.line;
        e.column = line.column;
        e.reason = line.error;
        e.over_limit = line.over_limit;
        e.ends_early = first_line_ends_early && &line == &lines.front();
        bad_json(source, e);
      }
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

Table parse_text_lines(std::string_view text, const std::string& source, std::size_t max_rows) {
  text = without_bom(text);
  Table table;
  table.columns.push_back({"text", ColumnType::kString});
  std::size_t checked = 0;  // the bytes of the lines read
  for (std::string_view line : split_universal_lines(text)) {
    if (table.rows.size() >= max_rows) break;
    table.rows.push_back({Value(std::string(line))});
    checked = static_cast<std::size_t>(line.data() + line.size() - text.data());
  }
  if (max_rows == SIZE_MAX) checked = text.size();
  if (std::size_t bad = first_invalid_utf8_line(text.substr(0, checked)))
    bad_line(source, bad, "invalid UTF-8");
  return table;
}

Table read_text_lines(const std::filesystem::path& path, std::size_t max_rows) {
  return parse_first_rows(path, max_rows, [&](std::string_view text) {
    return parse_text_lines(text, path.string(), max_rows);
  });
}

Table read_jsonl(const std::filesystem::path& path, std::size_t max_rows) {
  return parse_first_rows(
      path, max_rows,
      [&](std::string_view text) { return parse_jsonl(text, path.string(), max_rows); },
      /*json=*/true);
}

}  // namespace ms::data

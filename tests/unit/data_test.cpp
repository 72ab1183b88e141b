// Unit tests of the data module: CSV / JSON lines parsing, specs and slices, shuffling, the
// loader's batching and sharding, PIL-compatible resizing and transform configs.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "catch.h"
#include "error_capture.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/data/archive.h"
#include "ms/data/csv.h"
#include "ms/data/dataset.h"
#include "ms/data/hub_source.h"
#include "ms/data/image.h"
#include "ms/data/loader.h"
#include "ms/data/spec.h"

namespace fs = std::filesystem;
using namespace ms::data;
#ifdef MS_CATCH2_V3
using Catch::Approx;
#endif

namespace {

std::string message_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const ms::Error& e) {
    return e.what();
  }
  return "";
}

// A split "train" of `rows` rows with only a "label" column holding 0, 1, ...
Split label_split(int rows) {
  Split split;
  split.name = "train";
  split.table.columns = {{"label", ColumnType::kInt}};
  for (int i = 0; i < rows; ++i) split.table.rows.push_back({ms::data::Value(std::int64_t{i})});
  return split;
}

}  // namespace

TEST_CASE("CSV: RFC 4180 quoting, embedded newlines, BOM, CRLF and typed columns", "[data]") {
  const std::string text =
      "\xEF\xBB\xBFid,name,score,ok\r\n"
      "1,\"Smith, J\",1.5,true\r\n"
      "2,\"line1\nline2 \"\"q\"\"\",2,FALSE\r\n"
      "\r\n"
      "3,,-3e2,true\r\n";
  const Table t = parse_csv(text, "t.csv");
  REQUIRE(t.columns.size() == 4);
  CHECK(t.columns[0].name == "id");
  CHECK(t.columns[0].type == ColumnType::kInt);
  CHECK(t.columns[1].type == ColumnType::kString);
  CHECK(t.columns[2].type == ColumnType::kFloat);
  CHECK(t.columns[3].type == ColumnType::kBool);
  REQUIRE(t.rows.size() == 3);
  CHECK(std::get<std::string>(t.rows[0][1]) == "Smith, J");
  CHECK(std::get<std::string>(t.rows[1][1]) == "line1\nline2 \"q\"");
  CHECK(std::holds_alternative<std::monostate>(t.rows[2][1]));
  CHECK(std::get<double>(t.rows[2][2]) == -300.0);
  CHECK(std::get<double>(t.rows[1][2]) == 2.0);
  CHECK(std::get<bool>(t.rows[1][3]) == false);
  // A quoted empty field is missing as an unquoted one (pandas: NaN); a line of it is a row.
  const Table quoted = parse_csv("a,b\n1,\n3,\"\"\n", "q.csv");
  CHECK(std::holds_alternative<std::monostate>(quoted.rows[1][1]));
  CHECK(parse_csv("a\n\"\"\n1\n", "q.csv").rows.size() == 2);
}

TEST_CASE("CSV: TSV delimiter, no header, trailing empty field", "[data]") {
  CsvOptions tsv;
  tsv.delimiter = '\t';
  const Table t = parse_csv("a\tb\nx,y\t\n", "t.tsv", tsv);
  REQUIRE(t.rows.size() == 1);
  CHECK(std::get<std::string>(t.rows[0][0]) == "x,y");
  CHECK(t.columns[1].type == ColumnType::kNull);
  CsvOptions headless;
  headless.header = false;
  const Table h = parse_csv("1,2\n3,4\n", "h.csv", headless);
  CHECK(h.rows.size() == 2);
  CHECK(h.columns[1].name == "column_1");
}

TEST_CASE("CSV: lines of only blanks are skipped as pandas skips them, quoted blanks are text",
          "[data]") {
  // As a row, " " was a row of missing values that turned the int columns into text and floats.
  const Table t = parse_csv(" \nid,text,label\n1,good movie,1\n \t \n2,bad movie,0\n \n", "b.csv");
  REQUIRE(t.columns.size() == 3);
  CHECK(t.columns[0].name == "id");
  CHECK(t.rows.size() == 2);
  CHECK(t.columns[0].type == ColumnType::kInt);
  CHECK(t.columns[2].type == ColumnType::kInt);
  // One column: a quoted blank is a value; a blank field beside others is text as before.
  const Table one = parse_csv("t\n\"  \"\n  \nx\n", "one.csv");
  REQUIRE(one.rows.size() == 2);
  CHECK(std::get<std::string>(one.rows[0][0]) == "  ");
  const Table two = parse_csv("a,b\n ,1\n", "two.csv");
  REQUIRE(two.rows.size() == 1);
}

TEST_CASE("CSV: repeated header names are numbered, an empty file is an error", "[data]") {
  const Table t = parse_csv("a,b,a,a\n1,2,3,4\n", "d.csv");
  REQUIRE(t.columns.size() == 4);
  CHECK(t.columns[2].name == "a.1");
  CHECK(t.columns[3].name == "a.2");
  CHECK(message_of([] { parse_csv("", "e.csv"); }).find("e.csv:1: empty file") == 0);
  CHECK(parse_csv("a,b\n", "h.csv").rows.empty());
}

TEST_CASE("CSV: repeated header names follow pandas' read_csv, in linear time", "[data]") {
  auto names = [](const std::string& header) {
    const std::size_t width = std::count(header.begin(), header.end(), ',') + 1;
    std::string row(2 * width - 1, ',');
    for (std::size_t k = 0; k < width; ++k) row[2 * k] = '1';
    std::vector<std::string> out;
    for (const Column& c : parse_csv(header + "\n" + row + "\n", "h.csv").columns)
      out.push_back(c.name);
    return out;
  };
  // Expected names are pandas 3.1's read_csv columns for the same headers (a generated name the
  // header already has is skipped; empty names are column_<k>, renamed after named columns).
  using V = std::vector<std::string>;
  CHECK(names("a,a,a.1,b,a.1,a") == V{"a", "a.2", "a.1", "b", "a.1.1", "a.3"});
  CHECK(names("a,a.1,a") == V{"a", "a.1", "a.2"});
  CHECK(names("a.1,a,a") == V{"a.1", "a", "a.2"});
  CHECK(names("a,a,a.1,a.2,a.3,a") == V{"a", "a.4", "a.1", "a.2", "a.3", "a.5"});
  CHECK(names(",column_0") == V{"column_0.1", "column_0"});
  // 20,000 repeated names: a cubic renaming took minutes here, a linear one is instant.
  std::string header;
  for (int k = 0; k < 20000; ++k) header += k ? ",a" : "a";
  const V many = names(header);
  REQUIRE(many.size() == 20000);
  CHECK(many[1] == "a.1");
  CHECK(many[19999] == "a.19999");
  CHECK(std::set<std::string>(many.begin(), many.end()).size() == many.size());
}

TEST_CASE("CSV errors name the file and line", "[data]") {
  // A short row's missing fields are missing values (pandas); a long one is an error.
  const Table short_row = parse_csv("a,b\n1,2\n3\n", "r.csv");
  REQUIRE(short_row.rows.size() == 2);
  CHECK(std::holds_alternative<std::monostate>(short_row.rows[1][1]));
  CHECK(message_of([] { parse_csv("a,b\n1,2\n3,4,5\n", "r.csv"); }).find("r.csv:3: ragged row") ==
        0);
  CHECK(message_of([] { parse_csv("a,b\n1,2\n4,5,6\n", "r.csv"); }).find("r.csv:3") == 0);
  CHECK(message_of([] {
          parse_csv("a,b\n\"x\ny\",2\n1,\xC3\x28\n", "u.csv");
        }).find("u.csv:4: invalid UTF-8") == 0);
  CHECK(message_of([] { parse_csv("a,b\n\"open,2\n", "q.csv"); }).find("q.csv:2: unterminated") ==
        0);
  CHECK(message_of([] {
          parse_csv("a,b\n\"x\"y,2\n", "j.csv");
        }).find("j.csv:2: unexpected text") == 0);
  CHECK(code_of([] { parse_csv("a\n1\n2,3\n", "x.csv"); }) == ms::ErrorCode::kIntegrity);
}

TEST_CASE("UTF-8 validation rejects overlong forms and surrogates", "[data]") {
  CHECK(first_invalid_utf8_line("h\xC3\xA9llo \xE4\xB8\xAD \xF0\x9F\x98\x80") == 0);
  CHECK(first_invalid_utf8_line("ok\n\xC0\xAF") == 2);    // overlong '/'
  CHECK(first_invalid_utf8_line("\xED\xA0\x80") == 1);    // surrogate
  CHECK(first_invalid_utf8_line("a\nb\n\xE4\xB8") == 3);  // truncated sequence
}

TEST_CASE("CSV: nan is a missing float, inf stays text rather than a null", "[data]") {
  const Table t = parse_csv("x,y\n1.5,inf\nnan,-inf\n", "f.csv");
  REQUIRE(t.columns.size() == 2);
  CHECK(t.columns[0].type == ColumnType::kFloat);
  CHECK(std::holds_alternative<std::monostate>(t.rows[1][0]));
  CHECK(t.columns[1].type == ColumnType::kString);
  CHECK(std::get<std::string>(t.rows[0][1]) == "inf");
  CHECK(std::get<std::string>(t.rows[1][1]) == "-inf");
}

TEST_CASE("CSV: numbers are spelt as pandas reads them", "[data]") {
  // "+-1" is text to pandas (from_chars took the '-' after a skipped '+' as the sign); NaN
  // spelt other than pandas' markers is text; below the smallest double is 0, as pandas reads it.
  const Table t =
      parse_csv("a,b,c,d,e,f\n+-1,Nan,1e-400,+3, -7 ,-0\n2,1.5,-1e-400,4,8,1\n", "n.csv");
  REQUIRE(t.columns.size() == 6);
  CHECK(t.columns[0].type == ColumnType::kString);
  CHECK(std::get<std::string>(t.rows[0][0]) == "+-1");
  CHECK(t.columns[1].type == ColumnType::kString);
  CHECK(t.columns[2].type == ColumnType::kFloat);
  CHECK(std::get<double>(t.rows[0][2]) == 0.0);
  CHECK(std::signbit(std::get<double>(t.rows[1][2])));
  CHECK(t.columns[3].type == ColumnType::kInt);
  CHECK(std::get<std::int64_t>(t.rows[0][3]) == 3);
  CHECK(std::get<std::int64_t>(t.rows[0][4]) == -7);
  CHECK(std::get<std::int64_t>(t.rows[0][5]) == 0);
  for (const char* text : {"x\nnan(12)\n1\n", "x\nNAN\n1\n", "x\n+nan\n1\n", "x\n++1\n1\n",
                           "x\n-+1\n1\n", "x\n-\n1\n", "x\n+.\n1\n"})
    CHECK(parse_csv(text, "n.csv").columns[0].type == ColumnType::kString);
  const Table min = parse_csv("x\n-9223372036854775808\n", "m.csv");
  CHECK(std::get<std::int64_t>(min.rows[0][0]) == INT64_MIN);
  CHECK(parse_csv("x\n1e400\n1\n", "o.csv").columns[0].type == ColumnType::kString);
}

TEST_CASE("CSV: integers no int64 holds keep every digit as text; among floats they are floats",
          "[data]") {
  // As floats, 9223372036854775808 and its neighbours lost digits without a word.
  const Table t = parse_csv(
      "big,mixed,neg\n9223372036854775807,0.5,-9223372036854775809\n"
      "9223372036854775808,18446744073709551615,1\n",
      "b.csv");
  CHECK(t.columns[0].type == ColumnType::kString);
  CHECK(std::get<std::string>(t.rows[0][0]) == "9223372036854775807");
  CHECK(std::get<std::string>(t.rows[1][0]) == "9223372036854775808");
  CHECK(t.columns[1].type == ColumnType::kFloat);
  CHECK(std::get<double>(t.rows[1][1]) == Approx(18446744073709551615.0));
  CHECK(t.columns[2].type == ColumnType::kString);
  // The same rule for one column of cells (infer_and_convert).
  std::vector<ms::data::Value> cells = {std::string("1"), std::string("99999999999999999999")};
  std::vector<ms::data::Value*> pointers = {&cells[0], &cells[1]};
  CHECK(ms::data::infer_and_convert(pointers) == ColumnType::kString);
  // A missing value makes integers floats, as pandas (which has no missing integer) reads them.
  cells = {std::string("1"), std::string("NA"), std::string("2")};
  CHECK(ms::data::infer_and_convert(pointers = {&cells[0], &cells[1], &cells[2]}) ==
        ColumnType::kFloat);
  CHECK(std::holds_alternative<std::monostate>(cells[1]));
  CHECK(std::get<double>(cells[2]) == 2.0);
  cells = {std::string("1"), std::monostate{}, std::string("2")};
  CHECK(ms::data::infer_and_convert(pointers = {&cells[0], &cells[1], &cells[2]}) ==
        ColumnType::kFloat);
}

TEST_CASE("CSV: pandas' missing-value markers are nulls among numbers, text among text", "[data]") {
  // As ModelScope's pandas-read CSVs: NA, N/A, NULL, None... in a column of numbers or booleans
  // are missing values (the column was read as text); in a text column they stay as written.
  const Table t = parse_csv(
      "score,n,name,flag,only\n1.5,1,NA,true,NA\nNA,,Bob,NULL,None\n2,N/A,None,false,n/a\n",
      "f.csv");
  REQUIRE(t.columns.size() == 5);
  CHECK(t.columns[0].type == ColumnType::kFloat);
  CHECK(t.columns[1].type == ColumnType::kFloat);  // integers with missing values, as pandas
  CHECK(t.columns[2].type == ColumnType::kString);
  CHECK(t.columns[3].type == ColumnType::kBool);
  CHECK(t.columns[4].type == ColumnType::kNull);  // nothing but markers: missing, as pandas
  CHECK(std::holds_alternative<std::monostate>(t.rows[1][0]));
  CHECK(std::get<double>(t.rows[2][0]) == 2.0);
  CHECK(std::holds_alternative<std::monostate>(t.rows[2][1]));
  CHECK(std::get<std::string>(t.rows[0][2]) == "NA");
  CHECK(std::get<std::string>(t.rows[2][2]) == "None");
  CHECK(std::holds_alternative<std::monostate>(t.rows[1][3]));
  CHECK(std::holds_alternative<std::monostate>(t.rows[1][4]));
}

TEST_CASE("CSV: integers with a blank are floats, as pandas reads them; JSON lines keep ints",
          "[data]") {
  // pandas (so ModelScope and Hugging Face's datasets) gives 1.0, None, 3.0; pyarrow's JSON
  // reader keeps int64 with a null.
  const Table t = parse_csv("n,m,s\n1,1,a\n,2,\n3,3,c\n", "blank.csv");
  CHECK(t.columns[0].type == ColumnType::kFloat);
  CHECK(std::get<double>(t.rows[0][0]) == 1.0);
  CHECK(std::holds_alternative<std::monostate>(t.rows[1][0]));
  CHECK(t.columns[1].type == ColumnType::kInt);
  CHECK(t.columns[2].type == ColumnType::kString);
  CsvOptions tsv;
  tsv.delimiter = '\t';
  CHECK(parse_csv("n\tm\n1\t\n\t2\n", "blank.tsv", tsv).columns[0].type == ColumnType::kFloat);
  const Table j = parse_jsonl("{\"n\": 1}\n{\"n\": null}\n{}\n", "blank.jsonl");
  CHECK(j.columns[0].type == ColumnType::kInt);
  CHECK(std::get<std::int64_t>(j.rows[0][0]) == 1);
}

TEST_CASE("JSON lines: union of keys, widening, nested values, bad lines", "[data]") {
  const Table t =
      parse_jsonl("{\"a\":1,\"b\":\"x\"}\n\n{\"a\":2.5,\"c\":[1,2]}\n{\"b\":null}\n", "d.jsonl");
  REQUIRE(t.columns.size() == 3);
  CHECK(t.columns[0].type == ColumnType::kFloat);
  CHECK(t.columns[1].type == ColumnType::kString);
  CHECK(t.columns[2].type == ColumnType::kJson);
  REQUIRE(t.rows.size() == 3);
  CHECK(std::get<double>(t.rows[0][0]) == 1.0);
  CHECK(std::get<std::string>(t.rows[1][2]) == "[1,2]");
  CHECK(std::holds_alternative<std::monostate>(t.rows[2][0]));
  CHECK(message_of([] {
          parse_jsonl("{\"a\":1}\n{oops}\n", "b.jsonl");
        }).find("b.jsonl:2:2: bad JSON") == 0);
  CHECK(message_of([] {
          parse_jsonl("{\"a\":1}\n[1]\n", "b.jsonl");
        }).find("b.jsonl:2: expected a JSON object") == 0);
  const Table arr = parse_jsonl(" [{\"z\": 1, \"a\": true},\n {\"z\": 2}]", "a.json");
  CHECK(arr.rows.size() == 2);
  CHECK(arr.columns[0].name == "z");
  CHECK(arr.columns[1].type == ColumnType::kBool);
  CHECK(message_of([] { parse_jsonl("[{\"a\":1}, 3]", "a.json"); }).find("a.json: element 1") == 0);
}

TEST_CASE("JSON lines: a column mixing kinds reads back each row's value", "[data]") {
  // One number among texts types the column json; each cell is still its row's text or number,
  // not the quoted JSON (which `ms infer` embedded, and ids came out as "\"a\"").
  const Table t = parse_jsonl(
      "{\"id\":\"a\",\"text\":\"hello world\"}\n{\"id\":1,\"text\":5}\n"
      "{\"id\":true,\"text\":[1]}\n{\"id\":18446744073709551615,\"text\":2.5}\n",
      "m.jsonl");
  REQUIRE(t.columns.size() == 2);
  CHECK(t.columns[0].type == ColumnType::kJson);
  CHECK(t.columns[1].type == ColumnType::kJson);
  using ms::data::cell_text;
  using ms::data::cell_value;
  CHECK(cell_text(t.rows[0][1], ColumnType::kJson) == "hello world");
  CHECK(cell_text(t.rows[1][1], ColumnType::kJson) == "5");
  CHECK(cell_text(t.rows[2][1], ColumnType::kJson) == "[1]");
  CHECK(cell_text(t.rows[3][1], ColumnType::kJson) == "2.5");
  CHECK(std::get<std::string>(cell_value(t.rows[0][0], ColumnType::kJson)) == "a");
  CHECK(std::get<std::int64_t>(cell_value(t.rows[1][0], ColumnType::kJson)) == 1);
  CHECK(std::get<bool>(cell_value(t.rows[2][0], ColumnType::kJson)) == true);
  // Past int64: the digits as written, not a rounded float.
  CHECK(std::get<std::string>(cell_value(t.rows[3][0], ColumnType::kJson)) ==
        "18446744073709551615");
  // A text column's cell is its text, whatever it looks like.
  CHECK(cell_text(ms::data::Value(std::string("\"q\"")), ColumnType::kString) == "\"q\"");
}

TEST_CASE("JSON: one object over several lines is one row, as Hugging Face reads it", "[data]") {
  const Table t =
      parse_jsonl("{\n  \"version\": 1,\n  \"data\": [\n    {\"a\": 1}\n  ]\n}\n", "squad.json");
  REQUIRE(t.rows.size() == 1);
  CHECK(std::get<std::int64_t>(t.rows[0][0]) == 1);
  CHECK(t.columns[1].type == ColumnType::kJson);
  // A bad first line that is not the start of one object is still reported at its line.
  CHECK(message_of([] { parse_jsonl("{\"a\": \n{\"a\": 2}\n", "b.jsonl"); }).find("b.jsonl:1:") ==
        0);
}

TEST_CASE("JSON: objects over several lines one after another are rows, as Hugging Face reads them",
          "[data]") {
  // As `jq .` writes records (Hugging Face's datasets 5.2 reads two rows from this).
  const std::string pretty =
      "{\n  \"a\": 1,\n  \"t\": \"x }\"\n}\n\n{\n  \"a\": 2,\n  \"t\": \"{y\"\n}\n";
  const Table t = parse_jsonl(pretty, "jq.json");
  REQUIRE(t.rows.size() == 2);
  CHECK(std::get<std::int64_t>(t.rows[1][0]) == 2);
  CHECK(std::get<std::string>(t.rows[1][1]) == "{y");
  CHECK(parse_jsonl(pretty, "jq.json", 1).rows.size() == 1);
  // Cut inside the second: the first line's error, as before.
  CHECK(message_of([&] {
          parse_jsonl(pretty.substr(0, pretty.size() - 4), "cut.json");
        }).find("cut.json:1:") == 0);
  // Something else after an object: the first line's error too.
  CHECK(message_of([] { parse_jsonl("{\n\"a\": 1\n}\n[1]\n", "b.json"); }).find("b.json:1:") == 0);
}

TEST_CASE("JSON data: a key given twice in one object is refused, as Hugging Face refuses it",
          "[data]") {
  // Keeping one value would drop the other without a word (`ms infer` embedded the second text).
  CHECK_THAT(message_of([] {
               parse_jsonl(
                   "{\"id\": 1, \"text\": \"a\"}\n{\"id\": 2, \"text\": \"b\", \"text\": \"c\"}\n",
                   "twice.jsonl");
             }),
             Catch::StartsWith("twice.jsonl:2:") && Catch::Contains("key \"text\" appears twice"));
  CHECK_THAT(message_of([] { parse_jsonl("[{\"a\": 1, \"a\": 2}]", "twice.json"); }),
             Catch::Contains("key \"a\" appears twice"));
  // Nested objects too; the same key in two objects is fine.
  CHECK_THAT(message_of([] { parse_jsonl("{\"m\": {\"k\": 1, \"k\": 1}}\n", "n.jsonl"); }),
             Catch::Contains("key \"k\" appears twice"));
  CHECK(parse_jsonl("{\"a\": {\"k\": 1}, \"b\": {\"k\": 2}}\n", "ok.jsonl").rows.size() == 1);
  // A large object (keys indexed past 32) as well.
  std::string wide = "{";
  for (int k = 0; k < 40; ++k)
    wide += "\"k" + std::to_string(k) + "\": " + std::to_string(k) + ", ";
  wide += "\"k39\": 0}\n";
  CHECK_THAT(message_of([&] { parse_jsonl(wide, "wide.jsonl"); }),
             Catch::Contains("key \"k39\" appears twice"));
}

TEST_CASE("JSON lines reader: line numbers, blank lines, CRLF, BOM; bad lines are reported",
          "[data]") {
  const auto lines = parse_json_lines("\xEF\xBB\xBF{\"a\":1}\r\n\n  \t\r\n\"s\"\n{oops}\n[2]");
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].line == 1);
  CHECK(lines[0].value["a"] == 1);
  CHECK(lines[1].line == 4);
  CHECK(lines[1].value == "s");
  CHECK(lines[2].line == 5);
  CHECK(lines[2].value.is_null());
  CHECK(lines[2].error.find("syntax error") != std::string::npos);
  CHECK(lines[2].column == 2);
  CHECK_FALSE(lines[2].over_limit);
  CHECK(lines[3].line == 6);
  CHECK(lines[3].value.is_array());
  CHECK(lines[3].error.empty());
  CHECK(parse_json_lines("").empty());
}

TEST_CASE("JSON lines: nesting and number limits name file, line and column", "[data]") {
  auto nested = [](std::size_t depth) {
    return "{\"a\":" + std::string(depth, '[') + std::string(depth, ']') + "}";
  };
  // The object itself is one level: 999 arrays inside it reach the limit exactly.
  CHECK(parse_jsonl(nested(999) + "\n", "ok.jsonl").columns[0].type == ColumnType::kJson);
  // 100,000 levels crashed (a recursive dump overflowed the stack); now an error names the
  // bracket that goes one level too deep.
  for (std::size_t depth : {std::size_t{1000}, std::size_t{100000}}) {
    auto run = [&] { parse_jsonl("{\"x\":1}\n" + nested(depth) + "\n", "deep.jsonl"); };
    CHECK(code_of(run) == ms::ErrorCode::kConfig);
    CHECK(message_of(run).find("deep.jsonl:2:1005: JSON nested deeper than 1000 levels") == 0);
    auto array = [&] { parse_jsonl("[\n" + nested(depth) + "]", "deep.json"); };
    CHECK(message_of(array).find("deep.json:2:1004: JSON nested deeper") == 0);  // in an array
  }
  // A number beyond a double (out_of_range 406, an internal error before) names its column.
  for (const std::string& number :
       {std::string("1e999"), std::string(100000, '9'), std::string("-1e400")}) {
    auto run = [&] { parse_jsonl("{\"x\":1}\n{\"x\": " + number + "}\n", "big.jsonl"); };
    CHECK(code_of(run) == ms::ErrorCode::kConfig);
    const std::string message = message_of(run);
    CHECK(message.find("big.jsonl:2:7: number ") == 0);
    CHECK(message.find("beyond the range of a 64-bit float") != std::string::npos);
    CHECK(message.size() < 200);  // the 100,000 digits are not echoed
    CHECK(message_of([&] {
            parse_jsonl("[{\"x\": " + number + "}]", "big.json");
          }).find("big.json:1:8: number") == 0);
  }
  // Integers in [2^63, 2^64) among integers make JSON text that keeps every digit (nlohmann
  // keeps them unsigned: read back through int64 that was -1, and as floats the column lost
  // digits); among floats they are floats. Beyond 2^64 nlohmann reads a float. NaN and Infinity
  // are not JSON, as for HF's json loader.
  const Table big = parse_jsonl(
      "{\"u\":9007199254740993,\"v\":1,\"w\":0.5}\n"
      "{\"u\":18446744073709551615,\"v\":100000000000000000000,\"w\":18446744073709551615}\n",
      "i.jsonl");
  CHECK(big.columns[0].type == ColumnType::kJson);
  CHECK(std::get<std::string>(big.rows[0][0]) == "9007199254740993");
  CHECK(std::get<std::string>(big.rows[1][0]) == "18446744073709551615");
  CHECK(std::get<double>(big.rows[1][1]) == Approx(1e20));
  CHECK(big.columns[2].type == ColumnType::kFloat);
  CHECK(std::get<double>(big.rows[1][2]) == Approx(18446744073709551615.0));
  for (const char* token : {"NaN", "Infinity", "-Infinity"}) {
    auto run = [&] { parse_jsonl(std::string("{\"x\": ") + token + "}", "n.jsonl"); };
    CHECK(code_of(run) == ms::ErrorCode::kIntegrity);
    CHECK(message_of(run).find("n.jsonl:1:") == 0);
  }
  const auto lines = parse_json_lines("1e999\n" + nested(1001));
  REQUIRE(lines.size() == 2);
  CHECK((lines[0].over_limit && lines[0].column == 1 && lines[1].over_limit));
}

TEST_CASE("JSON lines: a line with 100,000 keys is read in linear time", "[data]") {
  std::string line = "{";
  for (int k = 0; k < 100000; ++k) line += (k ? ",\"k" : "\"k") + std::to_string(k) + "\":1";
  const Table t = parse_jsonl(line + ",\"last\":2}", "wide.jsonl");
  REQUIRE(t.columns.size() == 100001);
  CHECK(t.columns[99999].name == "k99999");
  CHECK(std::get<std::int64_t>(t.rows[0][100000]) == 2);
  // A repeated key is found through the same index (and refused, as Hugging Face refuses it).
  CHECK_THAT(message_of([&] { parse_jsonl(line + ",\"k5\":2}", "wide.jsonl"); }),
             Catch::Contains("key \"k5\" appears twice"));
}

TEST_CASE("Dataset specs", "[data]") {
  DatasetSpec s = parse_dataset_spec("hub:owner/name@v1.0:sub/train[:10%]");
  CHECK(s.kind == SourceKind::kHub);
  CHECK(s.location == "owner/name");
  CHECK(s.revision == "v1.0");
  CHECK(*s.subset == "sub");
  CHECK(*s.split == "train[:10%]");
  s = parse_dataset_spec("hub:owner/name");
  CHECK(!s.subset);
  CHECK(s.revision.empty());
  CHECK(parse_dataset_spec("tsv:/x/y.txt").delimiter == '\t');
  CHECK(parse_dataset_spec("zip:https://host/a.zip").kind == SourceKind::kZip);
  CHECK(parse_dataset_spec("https://host/a.zip?x=1").kind == SourceKind::kZip);
  CHECK(code_of([] { parse_dataset_spec("cvs:/x.csv"); }) == ms::ErrorCode::kUsage);
  CHECK(code_of([] { parse_dataset_spec("csv:"); }) == ms::ErrorCode::kUsage);
  CHECK(code_of([] { parse_dataset_spec("hub:a/b@:x"); }) == ms::ErrorCode::kUsage);
  CHECK(code_of([] { parse_dataset_spec("/no/such/file.csv"); }) == ms::ErrorCode::kNotFound);
}

TEST_CASE("Split slices resolve like HF datasets and reject bad input", "[data]") {
  CHECK(parse_split("train").resolve(100) == std::pair<std::size_t, std::size_t>{0, 100});
  CHECK(parse_split("train[:10%]").resolve(200) == std::pair<std::size_t, std::size_t>{0, 20});
  CHECK(parse_split("test[100:200]").resolve(150) == std::pair<std::size_t, std::size_t>{100, 150});
  CHECK(parse_split("train[-10:]").resolve(100) == std::pair<std::size_t, std::size_t>{90, 100});
  CHECK(parse_split("train[10%:-10%]").resolve(10) == std::pair<std::size_t, std::size_t>{1, 9});
  // Bounds on a half round to the even number, as Python's round() in Hugging Face's reader
  // (datasets 5.2.0 gives these rows of 25).
  using Rows = std::pair<std::size_t, std::size_t>;
  CHECK(parse_split("train[:10%]").resolve(25) == Rows{0, 2});
  CHECK(parse_split("train[10%:30%]").resolve(25) == Rows{2, 8});
  CHECK(parse_split("train[-10%:]").resolve(25) == Rows{23, 25});
  CHECK(parse_split("train[:-10%]").resolve(25) == Rows{0, 23});
  CHECK(parse_split("train[:50%]").resolve(7) == Rows{0, 4});
  CHECK(parse_split("train[:10%]").str() == "train[:10%]");
  for (const char* bad : {"train[", "train[1]", "train[a:b]", "train[1:2%]", "train[:200%]",
                          "[1:2]", "train[1:2:3]", "train]"}) {
    INFO(bad);
    CHECK(code_of([&] { parse_split(bad); }) == ms::ErrorCode::kUsage);
  }
  CHECK(code_of([] { parse_split("train[5:2]").resolve(10); }) == ms::ErrorCode::kUsage);
  CHECK(code_of([] { parse_split("train[20:]").resolve(10); }) == ms::ErrorCode::kUsage);
}

TEST_CASE("Shuffling is deterministic and a permutation", "[data]") {
  const auto a = shuffled_indices(1000, 42);
  CHECK(a == shuffled_indices(1000, 42));
  CHECK(a != shuffled_indices(1000, 43));
  std::set<std::size_t> s(a.begin(), a.end());
  CHECK(s.size() == 1000);
  CHECK(*s.rbegin() == 999);
  // Pinned: the order must not change between builds or machines.
  const auto small = shuffled_indices(5, 7);
  CHECK(std::set<std::size_t>(small.begin(), small.end()).size() == 5);
}

TEST_CASE("Loader: batching, drop_last, shards, workers give the same batches", "[data]") {
  const Split split = label_split(103);

  LoaderOptions o;
  o.batch_size = 10;
  {
    DataLoader l(split, o);
    CHECK(l.num_batches() == 11);
    std::size_t n = 0, last = 0;
    while (auto b = l.next()) {
      n += b->size();
      last = b->size();
      CHECK(b->labels.size() == b->size());
    }
    CHECK(n == 103);
    CHECK(last == 3);
  }
  o.drop_last = true;
  CHECK(DataLoader(split, o).num_batches() == 10);
  // A batch size near SIZE_MAX is one batch of everything (the count wrapped to no batches).
  LoaderOptions huge;
  huge.batch_size = std::numeric_limits<std::size_t>::max();
  {
    DataLoader l(split, huge);
    CHECK(l.num_batches() == 1);
    const auto b = l.next();
    REQUIRE(b);
    CHECK(b->size() == 103);
  }
  huge.drop_last = true;
  CHECK(DataLoader(split, huge).num_batches() == 0);

  o.drop_last = false;
  o.shuffle = true;
  o.seed = 9;
  std::vector<std::int64_t> sync_labels, threaded_labels;
  {
    DataLoader l(split, o);
    while (auto b = l.next())
      sync_labels.insert(sync_labels.end(), b->labels.begin(), b->labels.end());
  }
  o.workers = 3;
  o.prefetch = 1;
  {
    DataLoader l(split, o);
    while (auto b = l.next())
      threaded_labels.insert(threaded_labels.end(), b->labels.begin(), b->labels.end());
    // A second epoch reshuffles.
    l.start(1);
    std::vector<std::int64_t> epoch1;
    while (auto b = l.next()) epoch1.insert(epoch1.end(), b->labels.begin(), b->labels.end());
    CHECK(epoch1.size() == 103);
    CHECK(epoch1 != threaded_labels);
  }
  CHECK(sync_labels == threaded_labels);
  CHECK(sync_labels.size() == 103);

  // Shards are disjoint and cover everything.
  std::set<std::size_t> seen;
  std::size_t total = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    o.shard_index = i;
    o.num_shards = 3;
    DataLoader l(split, o);
    for (std::size_t r : l.order()) {
      seen.insert(r);
      ++total;
    }
  }
  CHECK(total == 103);
  CHECK(seen.size() == 103);
  o.shard_index = 3;
  CHECK(code_of([&] { DataLoader(split, o); }) == ms::ErrorCode::kUsage);
  o.shard_index = 0;
  o.batch_size = 0;
  CHECK(code_of([&] { DataLoader(split, o); }) == ms::ErrorCode::kUsage);
}

TEST_CASE("Loader benchmark: counts over epochs, first batch, order, save-batch needs images",
          "[data]") {
  const Split split = label_split(23);
  LoaderOptions o;
  o.batch_size = 10;
  o.shuffle = true;
  o.seed = 3;
  BenchmarkOptions b;
  b.epochs = 2;
  const LoaderBenchmark run = benchmark_loader(split, o, b);
  CHECK(run.batches == 6);
  CHECK(run.samples == 46);
  CHECK(run.skipped_bad == 0);
  CHECK(run.checksum == 0);  // no images
  const auto order = shuffled_indices(23, 3);
  CHECK(run.order == std::vector<std::size_t>(order.begin(), order.begin() + 16));
  CHECK(run.first_batch.rows == std::vector<std::size_t>(order.begin(), order.begin() + 10));
  CHECK(run.first_batch.channels == 0);
  CHECK(run.first_batch.labels.size() == 10);
  o.shard_index = 1;
  o.num_shards = 2;
  b.epochs = 1;
  CHECK(benchmark_loader(split, o, b).samples == 11);
  b.save_batch = "unused.npy";
  CHECK(message_of([&] { benchmark_loader(split, o, b); }).find("has no image column") !=
        std::string::npos);
}

TEST_CASE("Bilinear resize: constant stays constant, identity is a copy, shapes", "[data]") {
  Image img;
  img.height = 7;
  img.width = 5;
  img.channels = 3;
  img.pixels.assign(7 * 5 * 3, 77);
  const Image up = resize_bilinear(img, 20, 13);
  CHECK(up.height == 20);
  CHECK(up.width == 13);
  CHECK(std::all_of(up.pixels.begin(), up.pixels.end(), [](std::uint8_t v) { return v == 77; }));
  const Image down = resize_bilinear(up, 3, 2);
  CHECK(
      std::all_of(down.pixels.begin(), down.pixels.end(), [](std::uint8_t v) { return v == 77; }));
  for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<std::uint8_t>(i);
  CHECK(resize_bilinear(img, 7, 5).pixels == img.pixels);
  // A 2x1 ramp shrunk to 1x1 is the mean (PIL: (0 + 255) / 2 rounds to 128).
  Image ramp;
  ramp.height = 1;
  ramp.width = 2;
  ramp.channels = 1;
  ramp.pixels = {0, 255};
  CHECK(resize_bilinear(ramp, 1, 1).pixels[0] == 128);
}

TEST_CASE("Transform configs: resize, mode, mean/std, errors name file and key", "[data]") {
  const ms::Config c = ms::Config::parse(
      R"({"t": {"resize": [4, 6], "mode": "RGB", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.25, 0.5]}})",
      "json", "x.json");
  const ImageTransform t = ImageTransform::from_config(c, "t");
  CHECK(t.height == 4);
  CHECK(t.width == 6);
  Image img;
  img.height = 2;
  img.width = 3;
  img.channels = 3;
  img.pixels.assign(18, 255);
  std::vector<float> out;
  t.apply(img, out);
  REQUIRE(out.size() == 3 * 4 * 6);
  CHECK(out[0] == Approx(1.0f));
  CHECK(out[24] == Approx(2.0f));
  const ms::Config mm = ms::Config::parse(
      R"({"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]})", "json", "mm.json");
  const ImageTransform t2 = ImageTransform::from_config(mm);
  CHECK(t2.mean_in_255);
  out.clear();
  t2.apply(img, out);
  CHECK(out[0] == Approx((255 - 123.675) / 58.395));
  for (const char* bad : {R"({"resize": [0, 3]})", R"({"resize": "big"})", R"({"mode": "CMYK"})",
                          R"({"mean": [0.5, 0.5]})", R"({"std": [0]})", R"({"resise": [8, 8]})"}) {
    INFO(bad);
    const std::string msg = message_of(
        [&] { ImageTransform::from_config(ms::Config::parse(bad, "json", "bad.json")); });
    CHECK(msg.find("bad.json") != std::string::npos);
  }
  // A misspelt key is an error, not a transform silently left out.
  CHECK(message_of([] {
          ImageTransform::from_config(ms::Config::parse(R"({"resise": [8, 8]})", "json", "t.json"));
        }).find("unknown key 'resise'") != std::string::npos);
  CHECK(message_of([] {
          ImageTransform::from_config(
              ms::Config::parse(R"({"mode": "L", "mean": [0.1, 0.2]})", "json", "t.json"));
        }).find("needs 1 value (mode L)") != std::string::npos);
}

TEST_CASE("Image decoding: real JPEG, garbage and truncation name the file", "[data]") {
  const std::string china = "/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg";
  CHECK(code_of([] { decode_image("not an image", "x.bin"); }) == ms::ErrorCode::kIntegrity);
  CHECK(code_of([] { decode_image("GIF89a....", "x.gif"); }) == ms::ErrorCode::kMissingComponent);
  CHECK(message_of([] {
          decode_image(std::string("RIFF\x10\0\0\0WEBPVP8 ", 16), "x.webp");
        }).find("x.webp: WebP images are not supported") == 0);
  CHECK(message_of([] { decode_image("", "empty.png"); }).find("empty.png") != std::string::npos);
  CHECK(code_of([] { decode_image(std::string("\x89PNG\r\n\x1a\n", 8) + "garbage!", "g.png"); }) ==
        ms::ErrorCode::kIntegrity);
  if (!fs::exists(china) || !jpeg_supported()) {
    WARN("python3-sklearn's china.jpg or JPEG support missing; skipping the real-image part");
    return;
  }
  const std::string bytes = ms::read_file(china);
  const Image rgb = decode_image(bytes, china, 3);
  CHECK(rgb.width == 640);
  CHECK(rgb.height == 427);
  const Image grey = decode_image(bytes, china, 1);
  CHECK(grey.channels == 1);
  CHECK(grey.pixels.size() == 640u * 427u);
  const std::string msg =
      message_of([&] { decode_image(bytes.substr(0, bytes.size() / 3), "cut.jpg"); });
  CHECK(msg.find("cut.jpg: corrupt image") == 0);
}

TEST_CASE("Table folders: split files, shards concatenated, data/ sub-folder", "[data]") {
  const fs::path dir = fs::temp_directory_path() / ("ms-data-tables-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ms::write_file_atomic(dir / "data" / "train-00000-of-00002.csv", "a,b\n1,x\n2,y\n");
  ms::write_file_atomic(dir / "data" / "train-00001-of-00002.csv", "a,b\n3.5,z\n");
  ms::write_file_atomic(dir / "data" / "valid.csv", "a,b\n4,w\n");
  ms::write_file_atomic(dir / "README.md", "# x\n");
  Dataset ds = load_dataset("folder:" + dir.string());
  // Shards in data/ decide the splits: the unsharded file is not read (as in HF).
  REQUIRE(ds.splits.size() == 1);
  CHECK(ds.splits[0].name == "train");
  CHECK(ds.splits[0].table.rows.size() == 3);
  CHECK(ds.splits[0].table.columns[0].type == ColumnType::kFloat);
  fs::remove(dir / "data" / "train-00001-of-00002.csv");
  fs::rename(dir / "data" / "train-00000-of-00002.csv", dir / "data" / "train.csv");
  ds = load_dataset("folder:" + dir.string());
  REQUIRE(ds.splits.size() == 2);
  CHECK(ds.splits[1].name == "validation");
  ms::write_file_atomic(dir / "data" / "valid-2.csv", "a,c\n4,w\n");
  CHECK(message_of([&] { load_dataset("folder:" + dir.string()); }).find("other columns") !=
        std::string::npos);
  fs::remove_all(dir);
  fs::create_directories(dir / "empty");
  CHECK(code_of([&] { load_dataset(dir.string()); }) == ms::ErrorCode::kNotFound);
  fs::remove_all(dir);
}

// Expectations checked against Hugging Face datasets 4.8.4's load_dataset(DIR) on the same
// layouts (the row values give the order).
TEST_CASE("Table folders: splits as Hugging Face's datasets finds them", "[data]") {
  const fs::path root = fs::temp_directory_path() / ("ms-data-hf-" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto splits_of = [&](const std::map<std::string, std::string>& files) {
    fs::remove_all(root);
    for (const auto& [rel, text] : files) ms::write_file_atomic(root / rel, text);
    std::map<std::string, std::vector<std::int64_t>> out;
    for (const Split& s : load_dataset(root.string()).splits)
      for (const auto& row : s.table.rows) out[s.name].push_back(std::get<std::int64_t>(row[0]));
    return out;
  };
  using Splits = std::map<std::string, std::vector<std::int64_t>>;
  // No keyword: one training split of every file.
  CHECK(splits_of({{"a.csv", "x\n1\n"}, {"b.csv", "x\n2\n"}}) == Splits{{"train", {1, 2}}});
  // A keyword anywhere in the name, bounded by -._ space or a digit; the case as written.
  CHECK(splits_of({{"dataset-train.csv", "x\n1\n"}, {"dataset-test.csv", "x\n2\n"}}) ==
        Splits{{"train", {1}}, {"test", {2}}});
  CHECK(splits_of({{"2020-train.csv", "x\n1\n"}, {"trainer.csv", "x\n2\n"}}) ==
        Splits{{"train", {1}}});
  CHECK(splits_of({{"Train.csv", "x\n1\n"}, {"test.csv", "x\n2\n"}}) == Splits{{"test", {2}}});
  CHECK(splits_of({{"train.csv", "x\n1\n"}, {"notes.csv", "x\n2\n"}}) == Splits{{"train", {1}}});
  // Any depth; folders named by a keyword first; hidden and __special__ folders skipped.
  CHECK(splits_of({{"train.csv", "x\n1\n"}, {"data/test.csv", "x\n2\n"}}) ==
        Splits{{"train", {1}}, {"test", {2}}});
  CHECK(splits_of({{"train/a/x.jsonl", "{\"x\":1}\n"},
                   {"train/b/y.jsonl", "{\"x\":2}\n"},
                   {"test/z.jsonl", "{\"x\":3}\n"},
                   {".git/test.jsonl", "{\"x\":4}\n"},
                   {"__pycache__/test.jsonl", "{\"x\":5}\n"}}) ==
        Splits{{"train", {1, 2}}, {"test", {3}}});
  // Pattern after pattern: my_dev/ (keyword dev) before val-2/ (val); a file two patterns take
  // is read twice.
  CHECK(splits_of({{"val-2/a.csv", "x\n1\n"}, {"my_dev/b.csv", "x\n2\n"}, {"c.csv", "x\n3\n"}}) ==
        Splits{{"validation", {2, 1}}});
  CHECK(splits_of({{"train/a-train/x.csv", "x\n1\n"}, {"train/dev/y.csv", "x\n2\n"}}) ==
        Splits{{"train", {1, 2, 1}}, {"validation", {2}}});
  // .json files are tables; the most common format wins, the others are not read.
  CHECK(splits_of({{"train.json", "[{\"x\":1},{\"x\":2}]"}, {"test.json", "[{\"x\":3}]"}}) ==
        Splits{{"train", {1, 2}}, {"test", {3}}});
  CHECK(splits_of({{"train.csv", "x\n1\n"}, {"train_notes.txt", "hello\n"}}) ==
        Splits{{"train", {1}}});
  CHECK(code_of([&] {
          splits_of({{"train.csv", "x\n1\n"}, {"test.jsonl", "{\"x\":2}\n"}});
        }) == ms::ErrorCode::kIntegrity);
  // Extensions as written (".CSV" is no data file), any tail after the format's suffix, CSV and
  // TSV one family read with the majority's separator but different formats across splits.
  CHECK(splits_of({{"a.csv", "x\n1\n"},
                   {"b.CSV", "x\n2\n"},
                   {"c.csv.bak", "x\n3\n"},
                   {"d.csv.1.2", "x\n4\n"}}) == Splits{{"train", {1, 3, 4}}});
  CHECK(splits_of({{"a.tsv", "x\n1\n"}, {"b.tsv", "x\n2\n"}, {"c.csv", "x\n3\n"}}) ==
        Splits{{"train", {1, 2, 3}}});
  CHECK(code_of([&] {
          splits_of({{"train.tsv", "x\n1\n"}, {"test.csv", "x\n2\n"}});
        }) == ms::ErrorCode::kIntegrity);
  // A split found by a file that is no data ("test.md") cannot be read, as in HF.
  CHECK(code_of([&] {
          splits_of({{"train.csv", "x\n1\n"}, {"test.md", "x"}});
        }) == ms::ErrorCode::kIntegrity);
  // Evaluation logs come first and are not read; nor is a zip among the files.
  CHECK(code_of([&] {
          splits_of({{"train.csv", "x\n1\n"}, {"run.eval", "x"}});
        }) == ms::ErrorCode::kMissingComponent);
  CHECK(code_of([&] {
          splits_of({{"train.csv", "x\n1\n"},
                     {"train2.csv", "x\n2\n"},
                     {"train3.zip", std::string("PK\x03\x04zz", 6)}});
        }) == ms::ErrorCode::kMissingComponent);
  // Shards come before evaluation logs.
  CHECK(splits_of({{"data/train-00000-of-00001.csv", "x\n1\n"}, {"run.eval", "x"}}) ==
        Splits{{"train", {1}}});
  // Shard names as HF reads them: the longest name before a shard number, word characters only.
  CHECK(code_of([&] {
          splits_of({{"data/train-00000-of-00001.csv", "x\n1\n"},
                     {"data/train-00000-of-00001.x-00000-of-00002", "x\n2\n"}});
        }) == ms::ErrorCode::kIntegrity);
  CHECK(code_of([&] {
          splits_of({{"data/my-split-00000-of-00001.csv", "x\n1\n"}});
        }) == ms::ErrorCode::kIntegrity);
  // Formats ms does not read are named, not "nothing found".
  CHECK(message_of([&] {
          splits_of({{"train.txt", "a line\n"}});
        }).find("text data") != std::string::npos);
  // Parquet shards are read (parquet.cpp): a 4-byte one is named as no whole Parquet file.
  CHECK(code_of([&] { splits_of({{"train.parquet", "PAR1"}}); }) == ms::ErrorCode::kIntegrity);
  // Compression by the first bytes, whatever the name: bzip2 named, not read as text.
  CHECK(message_of([&] {
          splits_of({{"train.csv.bz2", "BZh91AY&SY"}});
        }).find("bzip2 data") != std::string::npos);
  // Images outnumbering an HF metadata.csv: an image folder, not a table of the metadata.
  fs::remove_all(root);
  ms::write_file_atomic(root / "metadata.csv", "file_name,x\na.png,1\n");
  ms::write_file_atomic(root / "a.png", "x");
  CHECK(load_dataset(root.string()).kind == SourceKind::kImageFolder);
  // A loading script named after the dataset is not bypassed.
  fs::remove_all(root);
  ms::write_file_atomic(root / "train.csv", "x\n1\n");
  ms::write_file_atomic(root / (root.filename().string() + ".py"), "import datasets\n");
  CHECK(code_of([&] { load_dataset(root.string()); }) == ms::ErrorCode::kMissingComponent);
  fs::remove_all(root);
}

TEST_CASE("data files: UTF-16 and devices are said as such, split files name their columns",
          "[data]") {
  using ms::ErrorCode;
  const fs::path dir = fs::temp_directory_path() / ("ms-data-kinds-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "shards");
  ms::write_file_atomic(dir / "u16.csv", std::string("\xFF\xFE"
                                                     "a\0,\0b\0\n\0",
                                                     10));
  const auto error_of = [](const std::string& spec) -> std::pair<ErrorCode, std::string> {
    try {
      load_dataset(spec);
    } catch (const ms::Error& e) {
      return {e.code(), e.what()};
    }
    return {ErrorCode::kInternal, "no error"};
  };
  auto [code, message] = error_of("csv:" + (dir / "u16.csv").string());
  CHECK(code == ErrorCode::kIntegrity);
  CHECK(message.find("is UTF-16 text") != std::string::npos);
  // /dev/zero never ends: refused before reading, not read until memory runs out.
  std::tie(code, message) = error_of("csv:/dev/zero");
  CHECK(code == ErrorCode::kUsage);
  CHECK(message.find("/dev/zero is a device") != std::string::npos);
  ms::write_file_atomic(dir / "shards" / "train-00000-of-00002.jsonl", "{\"a\": 1}\n");
  ms::write_file_atomic(dir / "shards" / "train-00001-of-00002.jsonl", "{\"b\": \"x\"}\n");
  std::tie(code, message) = error_of((dir / "shards").string());
  CHECK(code == ErrorCode::kIntegrity);
  CHECK(message.find("b (string) against a (int)") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("a look at the first rows reads a start of the file, and gives what the whole gives",
          "[data]") {
  const fs::path dir = fs::temp_directory_path() / ("ms-data-head-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto same = [](const Table& a, const Table& b) {
    REQUIRE(a.columns.size() == b.columns.size());
    for (std::size_t i = 0; i < a.columns.size(); ++i)
      CHECK((a.columns[i].name == b.columns[i].name && a.columns[i].type == b.columns[i].type));
    CHECK(a.rows.size() == b.rows.size());
    CHECK(a.content_hash() == b.content_hash());
  };
  // ~1 KB rows, 3,000 of them (~3 MB), then what no reader takes: invalid UTF-8 and a quote that
  // never ends. Row 1,100 sits past the first MiB, and a quoted field with a line break in it
  // straddles the MiB boundary (a start cut there ends inside the quotes). A column holds ints in
  // the first 1,200 rows and text later: typed from the rows read, as the whole file's parse.
  std::string csv = "id,text,kind\n", jsonl;
  for (int i = 0; i < 3000; ++i) {
    const std::string kind = i < 1200 ? std::to_string(i % 7) : "k" + std::to_string(i);
    csv += std::to_string(i) + ",\"" + std::string(1000, 'a' + i % 26) +
           (i % 50 == 0 ? "\nsecond line\"" : "\"") + "," + kind + "\n";
    jsonl += "{\"id\": " + std::to_string(i) + ", \"text\": \"" + std::string(1000, 'x') +
             "\", \"kind\": " + (i < 1200 ? std::to_string(i) : "\"k\"") + "}\n";
  }
  const std::size_t boundary = std::size_t(1) << 20;
  REQUIRE(csv.size() > 2 * boundary);
  const std::string garbage = "\xFF\xFE not text\n\"never closed\n";
  ms::write_file_atomic(dir / "big.csv", csv + garbage);
  ms::write_file_atomic(dir / "big.jsonl", jsonl + garbage);
  for (const std::size_t rows : {std::size_t(3), std::size_t(1100), std::size_t(1500)}) {
    INFO(rows << " rows");
    CsvOptions options;
    options.max_rows = rows;
    const Table head = read_csv(dir / "big.csv", options);
    same(head, parse_csv(csv, "big.csv", options));
    CHECK(head.columns[2].type == (rows <= 1200 ? ColumnType::kInt : ColumnType::kString));
    same(read_jsonl(dir / "big.jsonl", rows), parse_jsonl(jsonl, "big.jsonl", rows));
    LoadOptions look;
    look.max_rows = rows;
    same(load_dataset((dir / "big.csv").string(), look).splits.at(0).table, head);
  }
  // The whole file is what it was: refused for its bad bytes.
  CHECK(code_of([&] { read_csv(dir / "big.csv"); }) == ms::ErrorCode::kIntegrity);
  CHECK(code_of([&] { read_jsonl(dir / "big.jsonl"); }) == ms::ErrorCode::kIntegrity);
  // Rows past the file's valid part, or a bad row among those asked for: the whole file's error.
  CsvOptions all_rows;
  all_rows.max_rows = 5000;
  CHECK(code_of([&] { read_csv(dir / "big.csv", all_rows); }) == ms::ErrorCode::kIntegrity);
  ms::write_file_atomic(dir / "bad-early.jsonl", "{\"a\": 1}\n{oops\n" + jsonl);
  CHECK_THAT(message_of([&] { read_jsonl(dir / "bad-early.jsonl", 3); }),
             Catch::Contains("bad-early.jsonl:2:"));
  // An error among the rows asked for is reported from the start read, not after reading the
  // whole file: here a sparse terabyte, which no memory holds.
  ms::write_file_atomic(dir / "sparse.csv", "id,text\n1,a\n2,b,extra\n");
  fs::resize_file(dir / "sparse.csv", std::uintmax_t(1) << 40);
  CsvOptions five;
  five.max_rows = 5;
  CHECK_THAT(message_of([&] { read_csv(dir / "sparse.csv", five); }),
             Catch::Contains("sparse.csv:3: ragged row"));
  // A bad byte after the rows asked for is not among them.
  ms::write_file_atomic(dir / "late.csv", "a\n1\n2\n\xFF\n");
  CsvOptions two;
  two.max_rows = 2;
  CHECK(parse_csv("a\n1\n2\n\xFF\n", "late.csv", two).rows.size() == 2);
  CHECK(read_csv(dir / "late.csv", two).rows.size() == 2);
  CHECK(parse_jsonl("{\"a\": 1}\n\xFF\n", "late.jsonl", 1).rows.size() == 1);
  CHECK(parse_text_lines("a\nb\n\xFF\n", "late.txt", 2).rows.size() == 2);
  CHECK(code_of([] { parse_text_lines("a\nb\n\xFF\n", "late.txt"); }) == ms::ErrorCode::kIntegrity);
  CHECK(read_text_lines(dir / "big.csv", 1100).rows.size() == 1100);
  // One line longer than the first start: read on until it ends.
  ms::write_file_atomic(dir / "long.jsonl",
                        "{\"t\": \"" + std::string(3 * boundary, 'y') + "\"}\n" + jsonl + garbage);
  const Table long_head = read_jsonl(dir / "long.jsonl", 2);
  REQUIRE(long_head.rows.size() == 2);
  CHECK(std::get<std::string>(long_head.rows[0][0]).size() == 3 * boundary);
  // A JSON array on one line (json.dump's way; it was read whole): its first elements, found by
  // their brackets, with the first start's end splitting a two-byte character ("\u00e9").
  std::vector<std::string> elements;
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    for (int k = 0; k < 500; ++k) text += "\xC3\xA9";
    elements.push_back("{\"id\": " + std::to_string(i) + ", \"text\": \"" + text + "\"}");
  }
  // The array of the first n elements, as the whole-file parse reads it.
  const auto array_of = [&](std::size_t n, const std::string& lead) {
    std::string array = "[" + lead;
    for (std::size_t i = 0; i < n; ++i) array += (i > 0 ? ", " : "") + elements[i];
    return array + "]";
  };
  const std::string lead = array_of(elements.size(), "")[boundary - 1] == '\xC3' ? "" : " ";
  const std::string array = array_of(elements.size(), lead);
  REQUIRE(array[boundary - 1] == '\xC3');
  ms::write_file_atomic(dir / "big.json", array + garbage);
  for (const std::size_t rows : {std::size_t(3), std::size_t(1100), std::size_t(1500)}) {
    INFO(rows << " rows of an array");
    same(read_jsonl(dir / "big.json", rows), parse_jsonl(array_of(rows, lead), "big.json"));
  }
  CHECK(code_of([&] { read_jsonl(dir / "big.json"); }) == ms::ErrorCode::kIntegrity);
  CHECK(parse_jsonl("[{\"a\": 1}, {\"a\": 2}, {\"a\": \"\xC3", "cut.json", 2).rows.size() == 2);
  CHECK(code_of([] { parse_jsonl("[{\"a\": 1}, {\"a\": 2}, {\"a\": \"\xC3", "cut.json", 3); }) ==
        ms::ErrorCode::kIntegrity);
  // An element that is not an object among the rows asked for is the whole array's error, said
  // once the element is read (not after reading on to the end of a sparse terabyte).
  CHECK(parse_jsonl("[{\"a\": 1}, 3]", "a.json", 1).rows.size() == 1);
  CHECK_THAT(message_of([] { parse_jsonl("[{\"a\": 1}, 3]", "a.json", 2); }),
             Catch::Contains("a.json: element 1"));
  ms::write_file_atomic(dir / "sparse.json", "[{\"a\": 1}, \"text\", {\"a\": 3}, ");
  fs::resize_file(dir / "sparse.json", std::uintmax_t(1) << 40);
  CHECK_THAT(message_of([&] { read_jsonl(dir / "sparse.json", 2); }),
             Catch::Contains("element 1 of the top-level array is string"));
  CHECK(read_jsonl(dir / "sparse.json", 0).rows.empty());
  // No element, or a comma where one belongs: the whole array's answer (no rows; bad JSON), not
  // "element 0 is null".
  CHECK(parse_jsonl("[]", "e.json", 5).rows.empty());
  CHECK(parse_jsonl("\xEF\xBB\xBF[ \n]", "e.json", 5).rows.empty());
  for (const char* text : {"[{\"a\": 1},, {\"a\": 2}]", "[{\"a\": 1}, {\"a\": 2},]"}) {
    INFO(text);
    CHECK_THAT(message_of([&] { parse_jsonl(text, "c.json", 3); }), Catch::Contains("bad JSON"));
  }
  fs::remove_all(dir);
}

TEST_CASE("gzip-compressed data files are read as Hugging Face's datasets reads them", "[data]") {
  if (!ms::data::zip_supported()) {
    WARN("built without MS_WITH_ZIP: skipped");
    return;
  }
  const fs::path dir = fs::temp_directory_path() / ("ms-data-gz-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "f");
  // Made by gzip(1): two members, "x,y\n1,a\n" then "2,b\n" (gunzip reads them as one text).
  const auto gz = [](const std::string& text) {
    const fs::path in = fs::temp_directory_path() / ("ms-gz-in-" + std::to_string(::getpid()));
    ms::write_file_atomic(in, text);
    REQUIRE(std::system(("gzip -n -c " + in.string() + " > " + in.string() + ".gz").c_str()) == 0);
    std::string out = ms::read_file(in.string() + ".gz");
    fs::remove(in);
    fs::remove(in.string() + ".gz");
    return out;
  };
  ms::write_file_atomic(dir / "f" / "train.csv.gz", gz("x,y\n1,a\n") + gz("2,b\n"));
  ms::write_file_atomic(dir / "f" / "test.csv.gz", gz("x,y\n3,c\n"));
  const Dataset ds = load_dataset(dir.string() + "/f");
  REQUIRE(ds.splits.size() == 2);
  CHECK(ds.splits[0].table.rows.size() == 2);
  CHECK(std::get<std::int64_t>(ds.splits[0].table.rows[1][0]) == 2);
  CHECK(ds.splits[1].name == "test");
  // A single file by its inner extension; cut short, or past the ratio limit: exit 7.
  ms::write_file_atomic(dir / "one.jsonl.gz", gz("{\"x\": 7}\n"));
  // gzip data under another name is gzip all the same (HF tells it by the first bytes).
  ms::write_file_atomic(dir / "renamed.csv", gz("x\n8\n"));
  CHECK(std::get<std::int64_t>(
            load_dataset((dir / "renamed.csv").string()).splits[0].table.rows[0][0]) == 8);
  CHECK(load_dataset((dir / "one.jsonl.gz").string()).splits[0].table.rows.size() == 1);
  std::string digits = "x\n";  // barely compressible: half of it is within the ratio
  for (std::uint32_t i = 0, v = 1; i < (1u << 20); ++i, v = v * 1103515245u + 12345u)
    digits += static_cast<char>('0' + (v >> 16) % 10);
  const std::string whole = gz(digits + "\n");
  ms::write_file_atomic(dir / "cut.csv.gz", whole.substr(0, whole.size() / 2));
  CHECK(message_of([&] { load_dataset((dir / "cut.csv.gz").string()); }).find("ends early") !=
        std::string::npos);
  ms::write_file_atomic(dir / "bomb.csv.gz", gz("x\n" + std::string(8 << 20, '0') + "\n"));
  CHECK(message_of([&] {
          load_dataset((dir / "bomb.csv.gz").string());
        }).find("MS_DATASET_MAX_EXTRACT_RATIO") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("imagefolder: sorted class ids shared by splits, non-images counted", "[data]") {
  const fs::path dir = fs::temp_directory_path() / ("ms-data-test-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  for (const char* p :
       {"train/zebra/1.png", "train/ant/2.jpg", "train/ant/notes.txt", "val/ant/3.png",
        "val/mole/4.PNG", "train/__MACOSX/ant/._2.jpg", "train/ant/.DS_Store"}) {
    ms::write_file_atomic(dir / p, "x");
  }
  // A symlink loop inside a class folder is not followed.
  fs::create_directory_symlink(".", dir / "train" / "ant" / "loop");
  const Dataset ds = load_dataset("imagefolder:" + dir.string());
  REQUIRE(ds.splits.size() == 2);
  CHECK(ds.splits[0].name == "train");
  CHECK(ds.splits[1].name == "validation");
  CHECK(ds.labels == std::vector<std::string>{"ant", "mole", "zebra"});
  CHECK(ds.splits[0].table.rows.size() == 2);
  CHECK(ds.splits[0].skipped_non_image == 1);
  CHECK(std::get<std::int64_t>(ds.splits[0].table.rows[0][1]) == 0);  // ant
  CHECK(std::get<std::int64_t>(ds.splits[0].table.rows[1][1]) == 2);  // zebra
  CHECK(std::get<std::int64_t>(ds.splits[1].table.rows[1][1]) == 1);  // mole
  LoadOptions only_val;
  only_val.split = "validation[:1]";
  CHECK(load_dataset("imagefolder:" + dir.string(), only_val).splits[0].table.rows.size() == 1);
  only_val.split = "tset";
  const std::string msg =
      message_of([&] { load_dataset("imagefolder:" + dir.string(), only_val); });
  CHECK(msg.find("available: train, validation") != std::string::npos);
  LoadOptions verify;
  verify.verify_images = true;
  CHECK(code_of([&] { load_dataset("imagefolder:" + dir.string(), verify); }) ==
        ms::ErrorCode::kIntegrity);
  verify.skip_bad = true;
  const Dataset skipped = load_dataset("imagefolder:" + dir.string(), verify);
  CHECK(skipped.splits[0].table.rows.empty());
  CHECK(skipped.splits[0].skipped_bad == 2);
  fs::remove_all(dir);
}

TEST_CASE("hub: specs go through the installed snapshot provider", "[data]") {
  const fs::path dir = fs::temp_directory_path() / ("ms-data-hub-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const fs::path snap = dir / "snap";
  ms::write_file_atomic(snap / "ds.json",
                        R"({"en": {"train": {"meta": "train.csv"}, "test": {"meta": "test.jsonl"}},
                            "zh": {"train": {"meta": "zh.csv"}}})");
  ms::write_file_atomic(snap / "train.csv", "text,label\nhello,1\nbye,0\n");
  ms::write_file_atomic(snap / "test.jsonl", "{\"text\": \"hi\", \"label\": 1}\n");
  ms::write_file_atomic(snap / "zh.csv", "text,label\nni hao,1\n");
  // Another JSON file in the repo: the structure file is found by the dataset's name.
  ms::write_file_atomic(snap / "other.json", R"({"a": {"b": {}}})");
  std::string seen_repo, seen_revision;
  set_dataset_snapshot_provider([&](const ms::hub::RepoId& repo, const std::string& revision) {
    seen_repo = repo.str();
    seen_revision = revision;
    if (repo.name == "missing") throw ms::Error(ms::ErrorCode::kNotFound, "no such dataset");
    return snap;
  });
  const Dataset ds = load_dataset("hub:owner/ds@v2:en/train[:1]");
  CHECK(seen_repo == "owner/ds");
  CHECK(seen_revision == "v2");
  CHECK(ds.kind == SourceKind::kHub);
  CHECK(ds.subset == "en");
  CHECK(ds.subsets == std::vector<std::string>{"en", "zh"});
  REQUIRE(ds.splits.size() == 1);
  CHECK(ds.splits[0].table.rows.size() == 1);
  CHECK(ds.splits[0].selection == "train[:1]");
  LoadOptions o;
  o.subset = "en";
  o.revision = "master";
  CHECK(load_dataset("hub:owner/ds", o).splits.size() == 2);
  CHECK(seen_revision == "master");
  const std::string msg = message_of([] { load_dataset("hub:owner/ds:fr"); });
  CHECK(msg.find("subset 'fr' not found") != std::string::npos);
  CHECK(msg.find("available: en, zh") != std::string::npos);
  CHECK(code_of([] { load_dataset("hub:owner/ds"); }) == ms::ErrorCode::kUsage);  // two subsets
  CHECK(code_of([] { load_dataset("hub:owner/ds:en/dev"); }) == ms::ErrorCode::kNotFound);
  CHECK(code_of([] { load_dataset("hub:owner/missing:en"); }) == ms::ErrorCode::kNotFound);
  set_dataset_snapshot_provider(nullptr);
  CHECK(code_of([] { load_dataset("hub:owner/ds:en"); }) == ms::ErrorCode::kMissingComponent);
  fs::remove_all(dir);
}

TEST_CASE("imagefolder with HF metadata.csv, and text files", "[data]") {
  const fs::path dir = fs::temp_directory_path() / ("ms-data-meta-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ms::write_file_atomic(dir / "train" / "a" / "1.png", "x");
  ms::write_file_atomic(dir / "train" / "b" / "2.png", "x");
  ms::write_file_atomic(dir / "train" / "metadata.csv",
                        "file_name,caption\na/1.png,a cat\nb/2.png,a dog\n");
  const Dataset ds = load_dataset("imagefolder:" + dir.string());
  REQUIRE(ds.splits.size() == 1);
  CHECK(ds.labels.empty());
  const Table& t = ds.splits[0].table;
  REQUIRE(t.columns.size() == 2);
  CHECK(t.columns[0].name == "image");
  CHECK(t.columns[0].type == ColumnType::kImage);
  CHECK(std::get<std::string>(t.rows[1][0]) == (dir / "train" / "b" / "2.png").string());
  CHECK(std::get<std::string>(t.rows[1][1]) == "a dog");
  ms::write_file_atomic(dir / "train" / "metadata.csv", "file_name,caption\n../../etc/passwd,x\n");
  CHECK(code_of([&] { load_dataset("imagefolder:" + dir.string()); }) == ms::ErrorCode::kIntegrity);
  ms::write_file_atomic(dir / "train" / "metadata.csv", "file_name,caption\nc/3.png,x\n");
  CHECK(code_of([&] { load_dataset("imagefolder:" + dir.string()); }) == ms::ErrorCode::kNotFound);
  ms::write_file_atomic(dir / "lines.txt", "one\r\n\ntwo\n");
  const Dataset text = load_dataset((dir / "lines.txt").string());
  CHECK(text.kind == SourceKind::kText);
  REQUIRE(text.splits[0].table.rows.size() == 3);
  CHECK(std::get<std::string>(text.splits[0].table.rows[0][0]) == "one");
  CHECK(std::get<std::string>(text.splits[0].table.rows[1][0]).empty());
  fs::remove_all(dir);
}

TEST_CASE("imagefolder with HF metadata.parquet; two metadata files are refused", "[data]") {
  const fs::path dir = fs::temp_directory_path() / ("ms-data-pqmeta-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ms::write_file_atomic(dir / "train" / "a" / "1.png", "x");
  ms::write_file_atomic(dir / "train" / "b" / "2.png", "x");
  fs::copy_file(fs::path(MS_TEST_DATA_DIR) / "parquet" / "imagefolder_metadata.parquet",
                dir / "train" / "metadata.parquet");
  const Dataset ds = load_dataset(dir.string());
  CHECK(ds.kind == SourceKind::kImageFolder);
  CHECK(ds.labels.empty());
  const Table& t = ds.splits.at(0).table;
  REQUIRE(t.columns.size() == 3);
  CHECK(t.columns[0].name == "image");
  CHECK(t.columns[0].type == ColumnType::kImage);
  CHECK(t.columns[1].name == "caption");
  CHECK(t.columns[2].type == ColumnType::kInt);  // Parquet's types, not CSV's inference
  REQUIRE(t.rows.size() == 2);
  CHECK(std::get<std::string>(t.rows[1][0]) == (dir / "train" / "b" / "2.png").string());
  CHECK(std::get<std::string>(t.rows[1][1]) == "a dog");
  CHECK(std::holds_alternative<std::monostate>(t.rows[1][2]));
  ms::write_file_atomic(dir / "train" / "metadata.csv", "file_name,caption\na/1.png,x\n");
  const std::string message = message_of([&] { load_dataset("imagefolder:" + dir.string()); });
  CHECK(message.find("two metadata files, metadata.csv and metadata.parquet") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("a folder's kind is its tables' format; an empty one's hint names what is read",
          "[data]") {
  const fs::path dir = fs::temp_directory_path() / ("ms-data-kind-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ms::write_file_atomic(dir / "train.jsonl", "{\"a\": 1}\n");
  CHECK(load_dataset(dir.string()).kind == SourceKind::kJsonl);  // was kCsv
  fs::remove_all(dir);
  ms::write_file_atomic(dir / "train.csv", "a\n1\n");
  CHECK(load_dataset(dir.string()).kind == SourceKind::kCsv);
  fs::remove_all(dir);
  fs::create_directories(dir / "empty");
  try {
    load_dataset("imagefolder:" + dir.string());
    FAIL("an empty imagefolder loaded");
  } catch (const ms::Error& e) {
    CHECK(e.hint().find(".parquet") != std::string::npos);
    CHECK(e.hint().find("not supported") == std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("a table's content hash tells other rows, order, kinds and splits apart", "[data]") {
  auto table = [](std::vector<std::vector<ms::data::Value>> rows) {
    ms::data::Table t;
    t.columns = {{"text", ms::data::ColumnType::kString}, {"label", ms::data::ColumnType::kInt}};
    t.rows = std::move(rows);
    return t;
  };
  using V = ms::data::Value;
  const auto base = table({{V{std::string("ab")}, V{std::int64_t{1}}}, {V{std::string("c")}, V{}}});
  CHECK(base.content_hash() ==
        table({{V{std::string("ab")}, V{std::int64_t{1}}}, {V{std::string("c")}, V{}}})
            .content_hash());
  for (const auto& other : {
           table(
               {{V{std::string("c")}, V{}}, {V{std::string("ab")}, V{std::int64_t{1}}}}),  // order
           table(
               {{V{std::string("a")}, V{std::int64_t{1}}}, {V{std::string("bc")}, V{}}}),  // split
           table(
               {{V{std::string("ab")}, V{std::string("1")}}, {V{std::string("c")}, V{}}}),  // kind
           table(
               {{V{std::string("ab")}, V{std::int64_t{2}}}, {V{std::string("c")}, V{}}}),  // label
       }) {
    CHECK(other.content_hash() != base.content_hash());
  }
}

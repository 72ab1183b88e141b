// CSV (RFC 4180) and JSON lines readers producing typed tables.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "ms/config/config.h"
#include "ms/core/export.h"
#include "ms/data/table.h"

namespace ms::data {

/// How to read a CSV file.
struct CsvOptions {
  char delimiter = ',';     ///< ',' for CSV, '\t' for TSV
  bool header = true;       ///< the first record names the columns (else column_0, column_1, ...)
  bool infer_types = true;  ///< false: every non-empty cell stays text (typed later by the caller)
  /// A row with fewer fields than the header gets missing values for the rest, as pandas reads
  /// it; false: it is an error, as a row with more fields always is.
  bool fill_short_rows = true;
  /// Stop after this many rows (a look at the first rows): the columns are typed from those.
  std::size_t max_rows = SIZE_MAX;
};

/// Parses CSV text per RFC 4180: quoted fields with embedded delimiters, newlines and doubled
/// quotes; LF or CRLF records; a UTF-8 BOM is dropped; blank lines are skipped. Column types are
/// inferred (see infer_and_convert). Errors are ms::Error(kIntegrity) naming `source` and the line:
/// invalid UTF-8, a row longer than the header (or shorter, without fill_short_rows), an
/// unterminated quote, text after a closing quote.
MS_API Table parse_csv(std::string_view text, const std::string& source,
                       const CsvOptions& options = {});

/// Reads and parses a CSV file (kNotFound when it does not exist).
MS_API Table read_csv(const std::filesystem::path& path, const CsvOptions& options = {});

/// One non-blank line of JSON lines text.
struct JsonLine {
  std::size_t line = 0;     ///< 1-based line number in the text
  std::size_t end = 0;      ///< offset in the text (after a BOM) just past the line's break
  std::size_t column = 0;   ///< 1-based column of the problem when `error` is set
  Json value;               ///< the parsed value (null when `error` is set)
  std::string error;        ///< why the line is not valid JSON (without the location)
  bool over_limit = false;  ///< the line is JSON beyond ms's limits (see try_parse_json)
};

/// The one JSON lines reader: parses every non-blank line of `text` (a UTF-8 BOM is dropped) with
/// try_parse_json(), so the nesting and number limits apply, and a key given twice in one object
/// is an error (Hugging Face's datasets refuse it; keeping one value would drop the other). A line
/// that is not JSON is reported in its `error` rather than thrown, so that each caller decides what
/// a bad line means: parse_jsonl() fails naming the file, line and column, `ms infer` writes an
/// error line for that input, --resume refuses an output file it cannot trust. `max_lines`: stop
/// after that many non-blank lines (the rest is not parsed).
MS_API std::vector<JsonLine> parse_json_lines(std::string_view text,
                                              std::size_t max_lines = SIZE_MAX);

/// Whether JSON text holds one array (its first character after a UTF-8 BOM and blanks is '[')
/// rather than JSON lines: the rule every reader of .json / .jsonl files follows, whatever the
/// file's name says (Hugging Face's to_json and pandas write JSON lines to .json files).
MS_API bool holds_json_array(std::string_view text);

/// Parses JSON lines: one JSON object per non-blank line (or, when holds_json_array(), one JSON
/// array of objects; or objects written over several lines one after another, as `jq .` writes
/// them, a file of one such object being one row). Columns are the union of keys in order of
/// first appearance; a missing key is null; nested arrays and objects become kJson columns;
/// integers beyond int64 are floats. A bad line is ms::Error(kIntegrity) naming `source`, the line
/// and the column; JSON beyond ms's limits (nesting, a number beyond a double) is kConfig.
/// `max_rows`: stop after that many rows (JSON lines after them are not parsed), the columns
/// typed from those.
MS_API Table parse_jsonl(std::string_view text, const std::string& source,
                         std::size_t max_rows = SIZE_MAX);

/// Reads and parses a JSON lines file (`max_rows` as parse_jsonl's).
MS_API Table read_jsonl(const std::filesystem::path& path, std::size_t max_rows = SIZE_MAX);

/// Plain text: one row per line in a "text" column (HF's text builder); a trailing newline does
/// not add an empty row, CRLF endings are trimmed. Invalid UTF-8 is an error naming the line.
/// `max_rows`: the first lines only (those are checked).
MS_API Table parse_text_lines(std::string_view text, const std::string& source,
                              std::size_t max_rows = SIZE_MAX);

/// Reads and parses a plain text file (`max_rows` as parse_text_lines').
MS_API Table read_text_lines(const std::filesystem::path& path, std::size_t max_rows = SIZE_MAX);

/// The line (1-based) of the first invalid UTF-8 byte in `text`, or 0 when it is all valid.
MS_API std::size_t first_invalid_utf8_line(std::string_view text);

}  // namespace ms::data

#include <algorithm>

#include "formats.h"

namespace ms::detail {
namespace {

// Converts a byte offset into 1-based line and column numbers.
std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 3, column 5:
// "; keep only the part after that prefix, since the location is printed in our own form.
std::string reason_of(const nlohmann::json::parse_error& e) {
  std::string what = e.what();
  const std::string marker = ": ";
  std::size_t pos = what.find("parse error");
  if (pos != std::string::npos) {
    std::size_t after = what.find(marker, pos);
    if (after != std::string::npos) return what.substr(after + marker.size());
  }
  return what;
}

}  // namespace

Json parse_json_config(std::string_view text, const std::string& source) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is one past the offending character.
    auto [line, column] = line_and_column(text, e.byte == 0 ? 0 : e.byte - 1);
    throw Error(
        ErrorCode::kConfig,
        fmt::format("{}:{}:{}: invalid JSON: {}", source, line, column, reason_of(e)),
        "fix the syntax at that line (a missing comma, quote or bracket is the usual cause)");
  } catch (const nlohmann::json::out_of_range& e) {
    // A number too large for a double (1e999): nlohmann names the literal, not its offset, so
    // the location is where that literal first appears.
    const std::string what = e.what();
    const std::size_t quote = what.find('\'');
    const std::size_t end = quote == std::string::npos ? quote : what.find('\'', quote + 1);
    std::size_t at = 0;
    if (end != std::string::npos) at = text.find(what.substr(quote + 1, end - quote - 1));
    auto [line, column] = line_and_column(text, at == std::string_view::npos ? 0 : at);
    throw Error(ErrorCode::kConfig,
                fmt::format("{}:{}:{}: invalid JSON: number out of range ({})", source, line,
                            column, end == std::string::npos ? what : what.substr(quote)),
                "write the number within the range of a double (about 1.8e308)");
  }
}

}  // namespace ms::detail

// The one checked JSON parser for text ms did not write itself, and reading a JSON file that may be
// absent (config.json, tokenizer_config.json, modules.json, ...).
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "ms/config/config.h"
#include "ms/core/error.h"
#include "ms/core/export.h"

namespace ms {

/// The deepest nesting of arrays and objects ms accepts in JSON. Python's json module (which
/// ModelScope uses) stops near 1,000 levels too; deeper values would overflow the stack in code
/// that walks them recursively (dumping, copying, comparing).
inline constexpr std::size_t kMaxJsonDepth = 1000;

/// Why a JSON text did not parse.
struct JsonParseError {
  std::size_t line = 0;     ///< 1-based line in the text
  std::size_t column = 0;   ///< 1-based byte column in that line
  std::string reason;       ///< what is wrong, without the location
  bool over_limit = false;  ///< valid JSON beyond ms's limits (kMaxJsonDepth, a number beyond
                            ///< the range of a 64-bit float), rather than text that is not JSON
  bool ends_early = false;  ///< the text ends inside the value: more text might complete it
};

/// Parses `text` as one JSON value into `out`, within ms's limits: nesting at most kMaxJsonDepth
/// deep and finite numbers (integers beyond 64 bits become floats; 1e999 is an error). Returns
/// false and fills `error` when it does not parse; throws nothing but std::bad_alloc.
/// `refuse_repeated_keys`: an object naming a key twice is an error too, as data readers (Hugging
/// Face's, through pyarrow) refuse it; otherwise the last value wins, as in Python's json.
MS_API bool try_parse_json(std::string_view text, Json& out, JsonParseError& error,
                           bool refuse_repeated_keys = false);

/// One past the bracket that closes the object or array opening at `begin` (strings and their
/// escapes skipped), or text.size() when the text ends first: where to cut JSON values written
/// one after another. It only finds the cut: whether the value is JSON is try_parse_json()'s.
MS_API std::size_t json_container_end(std::string_view text, std::size_t begin);

/// try_parse_json() for code that works with nlohmann::json (the hub's wire format): the same
/// limits, the value converted once it is known to be at most kMaxJsonDepth deep.
MS_API bool try_parse_json(std::string_view text, nlohmann::json& out, JsonParseError& error);

/// The error for JSON from `source` that did not parse: "<source>:<line>:<column>: <what>:
/// <reason>" with `syntax_code` and `hint`, or for JSON beyond ms's limits kConfig
/// "<source>:<line>:<column>: <reason>" with a hint about the limits.
MS_API Error json_parse_error(const std::string& source, const JsonParseError& error,
                              ErrorCode syntax_code, const std::string& what,
                              const std::string& hint);

/// try_parse_json() that throws ms::Error "<source>:<line>:<column>: invalid JSON: <reason>" with
/// `syntax_code` for text that is not JSON (an object naming a key twice too, with
/// `refuse_repeated_keys`), and kConfig for JSON beyond ms's limits.
MS_API Json parse_json(std::string_view text, const std::string& source,
                       ErrorCode syntax_code = ErrorCode::kConfig,
                       bool refuse_repeated_keys = false);

/// The parsed content of `path`, or nullopt when it is absent. Throws ms::Error naming the file:
/// kConfig with line and column for text that is not valid JSON, or for a folder or FIFO there;
/// for a link to nowhere or a path that cannot be reached, as check_reachable (ms/core/file.h).
MS_API std::optional<Json> read_json_file(const std::filesystem::path& path);

}  // namespace ms

// Small string helpers shared by modules: edit distance, "did you mean" suggestions, joining,
// splitting.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ms/core/export.h"

namespace ms {

/// Levenshtein distance between two strings (bytes).
MS_API std::size_t edit_distance(std::string_view a, std::string_view b);

/// Candidates close to `word` (by edit distance, or sharing it as a substring), best first, at most
/// `limit`.
MS_API std::vector<std::string> close_matches(std::string_view word,
                                              const std::vector<std::string>& candidates,
                                              std::size_t limit = 3);

/// Joins items with a separator.
MS_API std::string join(const std::vector<std::string>& items, std::string_view separator);

/// Whether `text` is one or more ASCII digits 0-9 (no sign, no spaces).
MS_API bool is_decimal(std::string_view text);

/// `text` as a whole number in [min, max]: decimal digits only (no sign, no spaces), else nullopt.
MS_API std::optional<long long> parse_whole_number(std::string_view text, long long min,
                                                   long long max);

/// `text` without leading and trailing whitespace (a view into it).
MS_API std::string_view trim(std::string_view text);

/// Writes U+0085, U+2028 and U+2029 in JSON text as \u escapes. JSON allows them raw, but
/// Python's str.splitlines() and JavaScript (before ES2019) break lines there, so a JSON-lines
/// reader that splits with them would cut a record in two. They only occur inside strings.
MS_API void escape_unicode_line_breaks(std::string& json_text);

/// `text` without a leading UTF-8 byte-order mark (Windows editors write one; a view into it).
MS_API std::string_view without_bom(std::string_view text);

/// Whether `text` starts with `prefix` (std::string_view::starts_with is C++20).
MS_API bool starts_with(std::string_view text, std::string_view prefix);

/// Whether `text` ends with `suffix`.
MS_API bool ends_with(std::string_view text, std::string_view suffix);

/// `text` with ASCII letters in lower case (other bytes as they are).
MS_API std::string ascii_lower(std::string_view text);
/// ASCII letters upper-cased; other bytes unchanged.
MS_API std::string ascii_upper(std::string_view text);

/// Splits on a single character; empty pieces are kept.
MS_API std::vector<std::string> split(std::string_view text, char separator);

/// The lines of `text` (views into it): split at LF, a CR before it dropped; a trailing newline
/// does not add an empty line. The one line splitter for text, JSON lines and vocabulary files.
MS_API std::vector<std::string_view> split_lines(std::string_view text);
/// The lines of a text file as Python reads them (universal newlines: LF, CRLF or a lone CR end a
/// line), as Hugging Face's text datasets split it: a file saved with classic Mac line ends is
/// several lines, not one. For text whose lines are data; formats that say LF use split_lines().
MS_API std::vector<std::string_view> split_universal_lines(std::string_view text);

/// The first line of `text` that is not blank, or `text` when there is none: an error message's
/// gist (LibTorch's go on with a stack trace; TorchScript's compiler starts with a line break).
MS_API std::string first_line(std::string_view text);

/// "did you mean 'a', 'b'?" or an empty string when there are no suggestions.
MS_API std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

/// The hint for a name that is not among `choices`: its close matches, then every choice under
/// `what` ("did you mean 'accuracy'? metrics: accuracy, ppl", or "metrics: accuracy, ppl").
MS_API std::string choices_hint(std::string_view word, const std::vector<std::string>& choices,
                                std::string_view what);

}  // namespace ms

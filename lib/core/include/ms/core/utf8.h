// Strict UTF-8 validation, decoding and canonical decomposition (NFD), shared by the CSV reader,
// the tokenizers and the hub's repo-path checks.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "ms/core/export.h"

namespace ms {

/// Length (1-4) of the valid UTF-8 sequence starting at byte `i` of `text`, or 0 when it is
/// invalid: a bad lead or continuation byte, a truncated sequence, an overlong form, a surrogate
/// or a code point above U+10FFFF.
MS_API std::size_t utf8_sequence_length(std::string_view text, std::size_t i);

/// Byte offset of the first invalid UTF-8 sequence in `text`, or std::string_view::npos.
MS_API std::size_t first_invalid_utf8(std::string_view text);

/// Whether `text` is valid UTF-8.
MS_API bool is_valid_utf8(std::string_view text);

/// Throws ms::Error(kUsage) naming the first invalid byte and its offset, with a hint to convert
/// the input, when `text` is not valid UTF-8: the one wording every tokenizer gives.
MS_API void require_valid_utf8(std::string_view text);

/// `text` with each byte of an invalid UTF-8 sequence written as the four characters \xHH (as
/// Python's "backslashreplace" does): a file name that is not UTF-8 becomes a JSON-safe id that
/// still tells it from its neighbours.
MS_API std::string escape_invalid_utf8(std::string_view text);

/// Decodes UTF-8 into code points. Throws ms::Error(kUsage) naming the byte offset when `text` is
/// not valid UTF-8 (overlong forms, surrogates and code points above U+10FFFF are invalid).
MS_API std::u32string decode_utf8(std::string_view text);

/// Appends the UTF-8 form of `cp` to `out`.
MS_API void append_utf8(std::string& out, char32_t cp);

/// Encodes code points as UTF-8.
MS_API std::string encode_utf8(std::u32string_view text);

/// Appends the full canonical decomposition (NFD) of one code point.
MS_API void append_nfd(std::u32string& out, char32_t cp);

/// Canonical combining class of `cp` (0 for starters).
MS_API int combining_class(char32_t cp);

/// Normalization Form D of UTF-8 text: every character canonically decomposed, then combining
/// marks put in canonical order. Two strings are canonically equivalent (the same text to a
/// file system that normalises names, such as macOS's) exactly when their NFD forms are equal.
/// Throws like decode_utf8() on invalid UTF-8.
MS_API std::string to_nfd(std::string_view text);

/// The columns `text` takes in a terminal, to pad it in a table: a wide East Asian character or
/// emoji two, a combining mark none, any other character one (an invalid byte one).
MS_API std::size_t terminal_width(std::string_view text);

/// Version of the Unicode data behind append_nfd() and combining_class().
MS_API const char* nfd_unicode_version();

}  // namespace ms

// Unicode helpers for tokenizers: strict UTF-8 decoding/encoding and the character classes and
// per-character mappings (NFD, lower-case) that BERT-style text normalisation needs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ms/core/export.h"

namespace ms::text {

/// Decodes UTF-8 into code points. Throws ms::Error(kUsage) naming the byte offset when `text` is
/// not valid UTF-8 (overlong forms, surrogates and code points above U+10FFFF are invalid).
MS_API std::u32string decode_utf8(std::string_view text);

/// Whether `text` is valid UTF-8.
MS_API bool is_valid_utf8(std::string_view text);

/// Appends the UTF-8 form of `cp` to `out`.
MS_API void append_utf8(std::string& out, char32_t cp);

/// Encodes code points as UTF-8.
MS_API std::string encode_utf8(std::u32string_view text);

/// Punctuation as BERT defines it: Unicode category P*, or any ASCII non-alphanumeric symbol.
MS_API bool is_punctuation(char32_t cp);
/// Whitespace: tab, newline, carriage return or the Unicode White_Space property.
MS_API bool is_whitespace(char32_t cp);
/// Control as BERT's clean-up defines it: category C* except tab, newline and carriage return.
MS_API bool is_control(char32_t cp);
/// Unicode category Mn (non-spacing mark): what accent stripping removes after NFD.
MS_API bool is_nonspacing_mark(char32_t cp);
/// CJK ideographs that BERT surrounds with spaces (the CJK Unified Ideographs blocks).
MS_API bool is_cjk(char32_t cp);

/// Appends the canonical decomposition (NFD) of one code point.
MS_API void append_nfd(std::u32string& out, char32_t cp);
/// Appends the lower-case form of one code point (may be several code points, e.g. U+0130).
MS_API void append_lower(std::u32string& out, char32_t cp);

/// Version of the Unicode data the tables were generated from.
MS_API const char* unicode_version();

}  // namespace ms::text

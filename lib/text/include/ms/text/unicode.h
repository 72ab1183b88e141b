// Unicode helpers for tokenizers: strict UTF-8 decoding/encoding and the character classes and
// per-character mappings (NFD, lower-case) that BERT-style text normalisation needs, and the
// letter / number classes of GPT-2's pre-tokenisation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ms/core/export.h"
#include "ms/core/utf8.h"

namespace ms::text {

// UTF-8 coding and NFD live in core (the hub's path checks need them too); the tokenizers keep
// calling them by their text:: names.
using ms::append_utf8;
using ms::decode_utf8;
using ms::encode_utf8;
using ms::is_valid_utf8;

/// Punctuation as BERT defines it: Unicode category P*, or any ASCII non-alphanumeric symbol.
MS_API bool is_punctuation(char32_t cp);
/// Whitespace: tab, newline, carriage return or the Unicode White_Space property.
MS_API bool is_whitespace(char32_t cp);
/// Control as BERT's clean-up defines it: category C* except tab, newline and carriage return.
MS_API bool is_control(char32_t cp);
/// Unicode category Mn (non-spacing mark): what accent stripping removes after NFD.
MS_API bool is_nonspacing_mark(char32_t cp);
/// Unicode category L* (letters): GPT-2's \p{L}.
MS_API bool is_letter(char32_t cp);
/// Unicode category N* (numbers): GPT-2's \p{N}.
MS_API bool is_number(char32_t cp);
/// CJK ideographs that BERT surrounds with spaces (the CJK Unified Ideographs blocks).
MS_API bool is_cjk(char32_t cp);

using ms::append_nfd;
/// Appends the lower-case form of one code point (may be several code points, e.g. U+0130).
MS_API void append_lower(std::u32string& out, char32_t cp);

/// UTF-8 `text` lower-cased character by character, as Python's str.lower() (without its
/// final-sigma rule: a word-final capital sigma becomes σ, where Python writes ς). Throws like
/// decode_utf8() on invalid UTF-8.
MS_API std::string lower_utf8(std::string_view text);

/// Version of the Unicode data the tables were generated from.
MS_API const char* unicode_version();

}  // namespace ms::text

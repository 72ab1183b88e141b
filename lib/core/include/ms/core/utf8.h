// Strict UTF-8 validation shared by the CSV reader and the tokenizers.
#pragma once

#include <cstddef>
#include <string_view>

#include "ms/core/export.h"

namespace ms {

/// Length (1-4) of the valid UTF-8 sequence starting at byte `i` of `text`, or 0 when it is
/// invalid: a bad lead or continuation byte, a truncated sequence, an overlong form, a surrogate
/// or a code point above U+10FFFF.
MS_API std::size_t utf8_sequence_length(std::string_view text, std::size_t i);

/// Byte offset of the first invalid UTF-8 sequence in `text`, or std::string_view::npos.
MS_API std::size_t first_invalid_utf8(std::string_view text);

}  // namespace ms

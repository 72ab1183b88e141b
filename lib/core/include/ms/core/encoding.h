// Byte encodings shared by modules: lower-case hex, and standard base64 (RFC 4648 section 4).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ms/core/export.h"

namespace ms {

/// Lower-case hex of raw bytes ("\x01\xab" -> "01ab").
MS_API std::string hex_encode(std::string_view bytes);

/// Standard base64 with '=' padding.
MS_API std::string base64_encode(std::string_view bytes);

/// Strict standard base64: line breaks, spaces and tabs are skipped; padding only at the very
/// end; nullopt for anything else (a lenient decoder would turn "YQ==YQ==" into "a\0\0a").
MS_API std::optional<std::string> base64_decode(std::string_view text);

}  // namespace ms

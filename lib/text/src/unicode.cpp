#include "ms/text/unicode.h"

#include <algorithm>
#include <cstdint>

#include "ms/core/error.h"
#include "ms/core/utf8.h"

namespace ms::text {
namespace {

struct FlagRun {
  char32_t first;
  std::uint8_t flags;
};
struct CharMapping {
  char32_t cp;
  std::uint32_t start;
  std::uint32_t length;
};

#include "unicode_tables.inc"

constexpr std::uint8_t kPunct = 1;
constexpr std::uint8_t kControl = 2;
constexpr std::uint8_t kNonspacing = 4;

std::uint8_t flags_of(char32_t cp) {
  // The last run starting at or before cp.
  auto it = std::upper_bound(std::begin(kFlagRuns), std::end(kFlagRuns), cp,
                             [](char32_t value, const FlagRun& run) { return value < run.first; });
  return it == std::begin(kFlagRuns) ? 0 : std::prev(it)->flags;
}

const CharMapping* find_mapping(const CharMapping* begin, const CharMapping* end, char32_t cp) {
  auto it = std::lower_bound(begin, end, cp,
                             [](const CharMapping& m, char32_t value) { return m.cp < value; });
  return (it != end && it->cp == cp) ? it : nullptr;
}

// Hangul syllables decompose by formula (Unicode chapter 3.12), not by table.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = 11172;

}  // namespace

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t len = utf8_sequence_length(text, i);
    if (len == 0) {
      throw Error(
          ErrorCode::kUsage,
          fmt::format("input text is not valid UTF-8 (bad byte 0x{:02X} at offset {})", s[i], i),
          "convert the input to UTF-8 first, e.g. with iconv -t UTF-8");
    }
    char32_t cp = len == 1 ? s[i] : (s[i] & (0xFF >> (len + 1)));
    for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (s[i + k] & 0x3F);
    out.push_back(cp);
    i += len;
  }
  return out;
}

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t len = utf8_sequence_length(text, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(out, cp);
  return out;
}

bool is_punctuation(char32_t cp) { return (flags_of(cp) & kPunct) != 0; }

bool is_whitespace(char32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  return (flags_of(cp) & kControl) != 0;
}

bool is_nonspacing_mark(char32_t cp) { return (flags_of(cp) & kNonspacing) != 0; }

bool is_cjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void append_nfd(std::u32string& out, char32_t cp) {
  if (cp < 0xC0) {
    out.push_back(cp);
    return;
  }
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (const CharMapping* m = find_mapping(std::begin(kNfd), std::end(kNfd), cp)) {
    out.append(kPool + m->start, m->length);
  } else {
    out.push_back(cp);
  }
}

void append_lower(std::u32string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back((cp >= 'A' && cp <= 'Z') ? cp + 32 : cp);
    return;
  }
  if (const CharMapping* m = find_mapping(std::begin(kLower), std::end(kLower), cp)) {
    out.append(kPool + m->start, m->length);
  } else {
    out.push_back(cp);
  }
}

const char* unicode_version() { return kUnicodeVersion; }

}  // namespace ms::text

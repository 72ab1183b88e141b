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
constexpr std::uint8_t kLetter = 8;
constexpr std::uint8_t kNumber = 16;

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

}  // namespace

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

bool is_letter(char32_t cp) { return (flags_of(cp) & kLetter) != 0; }

bool is_number(char32_t cp) { return (flags_of(cp) & kNumber) != 0; }

// The ranges of Hugging Face's tokenizers (Rust), which the fast BERT tokenizers of transformers
// and sentence-transformers use: CJK Extension E's first 256 code points (U+2B820-2B91F) are left
// out there (the original BERT's Python list has them), so they are left out here too, for equal
// ids.
bool is_cjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
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

std::string lower_utf8(std::string_view text) {
  std::u32string lowered;
  for (const char32_t cp : decode_utf8(text)) append_lower(lowered, cp);
  std::string out;
  out.reserve(text.size());
  for (const char32_t cp : lowered) append_utf8(out, cp);
  return out;
}

const char* unicode_version() { return kUnicodeVersion; }

}  // namespace ms::text

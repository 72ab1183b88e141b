#include "ms/core/utf8.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <utility>

#include "ms/core/error.h"

namespace ms {
namespace {

struct CombiningRun {
  char32_t first;
  std::uint8_t ccc;
};
struct CharMapping {
  char32_t cp;
  std::uint32_t start;
  std::uint32_t length;
};

#include "nfd_tables.inc"

// Hangul syllables decompose by formula (Unicode chapter 3.12), not by table.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = 11172;

}  // namespace

std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char c = s[i];
  if (c < 0x80) return 1;
  std::size_t len;
  char32_t cp;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((s[i + k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i + k] & 0x3F);
  }
  // The shortest form is the only valid one; surrogates are not characters.
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

std::size_t first_invalid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // ASCII fast path, eight bytes at a time: big CSV files are mostly ASCII.
    if (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, p + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const std::size_t len = utf8_sequence_length(text, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

bool is_valid_utf8(std::string_view text) {
  return first_invalid_utf8(text) == std::string_view::npos;
}

std::string escape_invalid_utf8(std::string_view text) {
  if (first_invalid_utf8(text) == std::string_view::npos) return std::string(text);
  std::string out;
  out.reserve(text.size() + 16);
  for (std::size_t i = 0; i < text.size();) {
    if (const std::size_t n = utf8_sequence_length(text, i); n > 0) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[i]));
      ++i;
    }
  }
  return out;
}

namespace {

[[noreturn]] void throw_invalid_utf8(std::string_view text, std::size_t at) {
  throw Error(ErrorCode::kUsage,
              fmt::format("input text is not valid UTF-8 (bad byte 0x{:02X} at offset {})",
                          static_cast<unsigned char>(text[at]), at),
              "convert the input to UTF-8 first, e.g. with iconv -t UTF-8");
}

}  // namespace

void require_valid_utf8(std::string_view text) {
  if (const std::size_t at = first_invalid_utf8(text); at != std::string_view::npos) {
    throw_invalid_utf8(text, at);
  }
}

namespace {

// East Asian Wide and Fullwidth blocks (Unicode's EastAsianWidth W/F, by block) and the emoji
// planes terminals draw two columns wide.
bool is_wide(char32_t cp) {
  static constexpr std::pair<char32_t, char32_t> kWide[] = {
      {0x1100, 0x115F},   {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},
      {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},
      {0xFE30, 0xFE4F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x1F300, 0x1F64F},
      {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
  };
  for (const auto& [first, last] : kWide)
    if (cp >= first && cp <= last) return true;
  return false;
}

}  // namespace

std::size_t terminal_width(std::string_view text) {
  std::size_t width = 0;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_sequence_length(text, i);
    if (n == 0) {  // an invalid byte: one column, as a replacement character shows
      ++width;
      ++i;
      continue;
    }
    const char32_t cp = decode_utf8(text.substr(i, n))[0];
    width += combining_class(cp) > 0 ? 0 : is_wide(cp) ? 2 : 1;
    i += n;
  }
  return width;
}

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t len = utf8_sequence_length(text, i);
    if (len == 0) throw_invalid_utf8(text, i);
    char32_t cp = len == 1 ? s[i] : (s[i] & (0xFF >> (len + 1)));
    for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (s[i + k] & 0x3F);
    out.push_back(cp);
    i += len;
  }
  return out;
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
  auto it = std::lower_bound(std::begin(kNfd), std::end(kNfd), cp,
                             [](const CharMapping& m, char32_t value) { return m.cp < value; });
  if (it != std::end(kNfd) && it->cp == cp) {
    out.append(kNfdPool + it->start, it->length);
  } else {
    out.push_back(cp);
  }
}

int combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  // The last run starting at or before cp.
  auto it =
      std::upper_bound(std::begin(kCombiningRuns), std::end(kCombiningRuns), cp,
                       [](char32_t value, const CombiningRun& run) { return value < run.first; });
  return it == std::begin(kCombiningRuns) ? 0 : std::prev(it)->ccc;
}

std::string to_nfd(std::string_view text) {
  std::u32string decomposed;
  for (char32_t cp : decode_utf8(text)) append_nfd(decomposed, cp);
  // Canonical ordering: each run of non-starters sorted by combining class, stably (marks of
  // the same class keep their order, which is significant).
  for (std::size_t i = 0; i < decomposed.size();) {
    if (combining_class(decomposed[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < decomposed.size() && combining_class(decomposed[end]) != 0) ++end;
    std::stable_sort(decomposed.begin() + i, decomposed.begin() + end, [](char32_t a, char32_t b) {
      return combining_class(a) < combining_class(b);
    });
    i = end;
  }
  return encode_utf8(decomposed);
}

const char* nfd_unicode_version() { return kUnicodeVersion; }

}  // namespace ms

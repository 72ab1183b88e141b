// See added_token_matcher.h.
#include "added_token_matcher.h"

#include <algorithm>

#include "ms/core/error.h"
#include "ms/core/utf8.h"
#include "ms/text/unicode.h"

namespace ms::text {
namespace {

// The regex \w of tokenizers' single_word test (Rust's Unicode word class: alphabetic, marks,
// decimal digits, connector punctuation, joiners), from the classes ms's tables hold: letters,
// numbers (all of N*, where \w has Nd and Nl: "²" counts here) and non-spacing marks.
bool is_word_char(char32_t cp) {
  if (is_letter(cp) || is_number(cp) || is_nonspacing_mark(cp)) return true;
  switch (cp) {
    case U'_':
    case 0x200C:  // zero-width non-joiner
    case 0x200D:  // zero-width joiner
    case 0x203F:  // the other connector punctuation (Pc)
    case 0x2040:
    case 0x2054:
    case 0xFE33:
    case 0xFE34:
    case 0xFE4D:
    case 0xFE4E:
    case 0xFE4F:
    case 0xFF3F:
      return true;
    default:
      return false;
  }
}

// The code point that ends text[0, pos) / starts text[pos, ...), both non-empty.
char32_t char_before(std::u32string_view text, std::size_t pos) { return text[pos - 1]; }
char32_t char_at(std::u32string_view text, std::size_t pos) { return text[pos]; }
char32_t char_at(std::string_view text, std::size_t pos) {
  const std::size_t len = std::max<std::size_t>(1, utf8_sequence_length(text, pos));
  const std::u32string cp = decode_utf8(text.substr(pos, len));
  return cp.empty() ? 0xFFFD : cp[0];
}
char32_t char_before(std::string_view text, std::size_t pos) {
  std::size_t start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return char_at(text, start);
}

// The length of the code point at `pos` / before `pos`, in CharT units.
std::size_t length_at(std::u32string_view, std::size_t) { return 1; }
std::size_t length_at(std::string_view text, std::size_t pos) {
  return std::max<std::size_t>(1, utf8_sequence_length(text, pos));
}
std::size_t length_before(std::u32string_view, std::size_t) { return 1; }
std::size_t length_before(std::string_view text, std::size_t pos) {
  std::size_t start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return pos - start;
}

}  // namespace

AddedTokenFlags added_token_flags(const nlohmann::json& entry, const std::string& source) {
  AddedTokenFlags flags;
  if (!entry.is_object()) return flags;
  for (auto [key, flag] : {std::pair<const char*, bool*>{"single_word", &flags.single_word},
                           {"lstrip", &flags.lstrip},
                           {"rstrip", &flags.rstrip}}) {
    const auto it = entry.find(key);
    if (it == entry.end() || it->is_null()) continue;
    MS_CHECK(it->is_boolean(), ErrorCode::kConfig,
             "{}: the added token '{}' has '{}': {}, which must be true or false", source,
             entry.value("content", std::string()), key, it->dump());
    *flag = it->template get<bool>();
  }
  return flags;
}

template <typename CharT>
void AddedTokenMatcher<CharT>::add(String text, std::int64_t id, AddedTokenFlags flags) {
  // Linear in the bucket, not in every token added before (a vocabulary with tens of thousands of
  // added words was quadratic to load).
  if (text.empty() || !texts_.insert(text).second) return;
  const String first(text.substr(0, length_at(View(text), 0)));
  tokens_.push_back({std::move(text), id, flags});
  std::vector<std::size_t>& bucket = by_first_[first];
  const std::size_t size = tokens_.back().text.size();
  // After every token at least as long: longest first, and among equals the first added first.
  const auto at = std::partition_point(
      bucket.begin(), bucket.end(), [&](std::size_t k) { return tokens_[k].text.size() >= size; });
  bucket.insert(at, tokens_.size() - 1);
}

template <typename CharT>
std::vector<typename AddedTokenMatcher<CharT>::Split> AddedTokenMatcher<CharT>::split(
    View text) const {
  std::vector<Split> out;
  if (tokens_.empty()) {
    if (!text.empty()) out.push_back({0, text.size(), -1});
    return out;
  }
  std::size_t done = 0;  // the end of the last split
  String first;
  for (std::size_t i = 0; i < text.size();) {
    const Token* found = nullptr;
    // A fresh string, not assign(): GCC 12 warns (-Wrestrict, a false positive) on assigning a
    // view into a string it cannot prove apart.
    first = String(text.substr(i, length_at(text, i)));
    if (const auto bucket = by_first_.find(first); bucket != by_first_.end()) {
      for (std::size_t k : bucket->second) {
        if (text.compare(i, tokens_[k].text.size(), tokens_[k].text) == 0) {
          found = &tokens_[k];
          break;
        }
      }
    }
    if (found == nullptr) {
      ++i;
      continue;
    }
    std::size_t begin = i, end = i + found->text.size();
    i = end;  // the search goes on after the token, whether it is kept or not
    if (found->flags.single_word) {
      const bool word_before = begin > 0 && is_word_char(char_before(text, begin));
      const bool word_after = end < text.size() && is_word_char(char_at(text, end));
      if (word_before || word_after) continue;
    }
    if (found->flags.lstrip) {
      // Not into a token before it (whose rstrip may have taken that white space already).
      while (begin > done && is_whitespace(char_before(text, begin)))
        begin -= length_before(text, begin);
    }
    // The white space rstrip takes is searched again, as tokenizers does (its Aho-Corasick
    // search goes on at the token's own end): a token found there is kept, overlapping this
    // one's match ("x<ent> spaced" with an added " spaced": x, <ent>, " spaced").
    if (found->flags.rstrip)
      while (end < text.size() && is_whitespace(char_at(text, end))) end += length_at(text, end);
    if (begin > done) out.push_back({done, begin, -1});
    out.push_back({begin, end, found->id});
    done = end;
  }
  if (done < text.size()) out.push_back({done, text.size(), -1});
  return out;
}

template class AddedTokenMatcher<char>;
template class AddedTokenMatcher<char32_t>;

}  // namespace ms::text

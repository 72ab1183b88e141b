// Finding a tokenizer's added tokens in a text, with Hugging Face's AddedToken options
// (single_word, lstrip, rstrip), shared by the WordPiece and the byte-level BPE tokenizers.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace ms::text {

/// How one added token is matched (Hugging Face's AddedToken; tokenizers'
/// tokenizer/added_vocabulary.rs has the rules followed here).
struct AddedTokenFlags {
  /// Matched only where no word character (regex \w) is next to it on either side of the text
  /// it is found in: an added "zq" is not found in "azqb".
  bool single_word = false;
  bool lstrip = false;  ///< the white space before it is part of its match (so it makes no token)
  bool rstrip = false;  ///< the white space after it, likewise
};

/// An added-token entry's options ({"single_word": true, "lstrip": false, ...}; absent or null
/// is false); a non-boolean one is ms::Error(kConfig) naming `source`.
AddedTokenFlags added_token_flags(const nlohmann::json& entry, const std::string& source);

/// Added tokens found in texts of CharT (char: UTF-8, char32_t: code points) as tokenizers finds
/// them: at each point the longest token that starts there, left to right, without overlaps; a
/// single_word token found inside a word is dropped (and the text it covers is not searched
/// again, as tokenizers' Aho-Corasick search does not).
template <typename CharT>
class AddedTokenMatcher {
 public:
  using String = std::basic_string<CharT>;
  using View = std::basic_string_view<CharT>;

  /// A part of a text: an added token (its match, stripped white space included) or the text
  /// between two (id -1). [begin, end) in CharT units. A token found in the white space that an
  /// rstrip token before it took overlaps that one's split, as in tokenizers.
  struct Split {
    std::size_t begin, end;
    std::int64_t id;
  };

  /// The first token added with a text is the one found; an empty text is never found.
  void add(String text, std::int64_t id, AddedTokenFlags flags);
  bool empty() const { return tokens_.empty(); }
  /// The whole of `text`, cut into splits in order (none for an empty text).
  std::vector<Split> split(View text) const;

 private:
  struct Token {
    String text;
    std::int64_t id;
    AddedTokenFlags flags;
  };
  std::vector<Token> tokens_;
  std::unordered_set<String> texts_;  // those of tokens_, so that adding one is not a scan of all
  /// Tokens by their first character (a whole UTF-8 sequence for char, so that CJK tokens do not
  /// share a few lead-byte buckets), longest first: the candidates at a point of the text.
  std::unordered_map<String, std::vector<std::size_t>> by_first_;
};

extern template class AddedTokenMatcher<char>;
extern template class AddedTokenMatcher<char32_t>;

}  // namespace ms::text

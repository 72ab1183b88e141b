// BERT's WordPiece tokenizer (text -> token ids), equal to Hugging Face's BertTokenizerFast.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ms/core/export.h"

namespace ms::text {

/// A token added to the vocabulary (Hugging Face's added tokens: tokenizer.json's added_tokens,
/// tokenizer_config.json's added_tokens_decoder, added_tokens.json), matched whole in a text
/// before it is split into words.
struct AddedToken {
  std::string content;
  std::int64_t id = -1;
  /// Matched, normalised as the text is (lower-cased, accents stripped, ...), in the normalised
  /// text between the tokens that are not, rather than as written; special tokens are not.
  bool normalized = false;
  bool single_word = false;  ///< found only where no letter, digit or '_' is next to it
  bool lstrip = false;       ///< takes the white space before it (its offsets include it)
  bool rstrip = false;       ///< takes the white space after it
};

/// Normalisation and special-token settings, as in tokenizer_config.json.
struct BertTokenizerOptions {
  bool lowercase = true;              ///< do_lower_case
  std::optional<bool> strip_accents;  ///< unset: follow `lowercase` (as Hugging Face does)
  bool tokenize_chinese_chars = true;
  bool clean_text = true;
  std::string unk_token = "[UNK]";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string mask_token = "[MASK]";
  std::string continuing_prefix = "##";
  std::size_t max_input_chars_per_word = 100;
  std::size_t model_max_length = 512;  ///< longest encoding, special tokens included
  /// Ids past the vocabulary extend it, in order; one within it that names another token maps
  /// the added one there too.
  std::vector<AddedToken> added_tokens;
};

/// One encoded input: [CLS] A [SEP] (B [SEP]), with segment ids 0 for A and 1 for B.
struct Encoding {
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> type_ids;
  /// Per token: [begin, end) in code points of the text it came from ({0, 0} for [CLS]/[SEP]).
  std::vector<std::pair<std::size_t, std::size_t>> offsets;
  /// Per token: index of the word it belongs to in its text (-1 for [CLS]/[SEP]); the first
  /// token of a word starts it, the others are its "##" continuations.
  std::vector<std::int64_t> word_ids;
};

/// Text -> WordPiece tokens and ids. Thread-safe after construction.
class MS_API BertTokenizer {
 public:
  BertTokenizer(std::vector<std::string> vocab, BertTokenizerOptions options);

  /// Reads vocab.txt (or, without it, a tokenizer.json holding a WordPiece model, as transformers
  /// 5 saves BERT's: its vocabulary, normalizer and model options) and, when present,
  /// tokenizer_config.json and special_tokens_map.json from a model folder. Throws
  /// ms::Error(kNotFound) when neither vocabulary is there, kConfig when a file is malformed,
  /// tokenizer.json normalises or pre-tokenises otherwise than BERT, or the special tokens named
  /// are not in the vocabulary.
  static BertTokenizer from_dir(const std::filesystem::path& dir);
  /// Whether `dir` holds such a vocabulary (vocab.txt, or a WordPiece tokenizer.json).
  static bool in_dir(const std::filesystem::path& dir);

  /// Words after clean-up, lower-casing, accent stripping and punctuation/CJK splitting.
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  /// WordPiece tokens of `text` (without [CLS]/[SEP]); special tokens in the text stay whole.
  std::vector<std::string> tokenize(std::string_view text) const;
  /// Ids of `text`'s tokens (without [CLS]/[SEP]).
  std::vector<std::int64_t> token_ids(std::string_view text) const;

  /// Full encoding of a text or a text pair, truncated longest-first to `max_length` tokens
  /// (0: model_max_length). Throws ms::Error(kUsage) on invalid UTF-8.
  Encoding encode(std::string_view text, std::optional<std::string_view> pair = std::nullopt,
                  std::size_t max_length = 0) const;

  std::int64_t token_to_id(std::string_view token) const;  ///< -1 when absent
  const std::string& id_to_token(std::int64_t id) const;
  std::size_t vocab_size() const { return vocab_.size(); }
  std::int64_t pad_id() const { return pad_id_; }
  std::int64_t mask_id() const { return mask_id_; }
  const BertTokenizerOptions& options() const { return options_; }

 private:
  struct Word {
    std::u32string text;
    std::vector<std::size_t> source;  // code point index in the input of each character
  };
  /// A text after the normaliser, each character with the index of the input's it came from.
  struct Normalized {
    std::u32string text;
    std::vector<std::size_t> source;
  };
  struct Pieces {
    std::vector<std::int64_t> ids;
    std::vector<std::pair<std::size_t, std::size_t>> offsets;
    std::vector<std::int64_t> word_ids;
    std::size_t dropped = 0;  // pieces past the number kept, counted only
    std::size_t count() const { return ids.size() + dropped; }
  };
  void wordpiece(const Word& word, std::size_t base, std::int64_t word_id, Pieces& out) const;
  /// The text's pieces, the first `keep` of them stored (all are counted).
  Pieces pieces(std::string_view text, std::size_t keep = static_cast<std::size_t>(-1)) const;
  Normalized normalize(std::string_view text) const;
  /// The pre-tokeniser's words of normalised text [begin, end).
  std::vector<Word> split_words(const Normalized& text, std::size_t begin, std::size_t end) const;
  /// Appends the pieces of text between added tokens; `base`: its first code point's index.
  void plain_pieces(std::string_view text, std::size_t base, std::int64_t& word_id, Pieces& out,
                    std::size_t keep) const;

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, std::int64_t> index_;
  std::size_t model_vocab_size_ = 0;  ///< vocab_'s tokens before the added ones
  /// The longest token's length in code points: no longer piece can match, so WordPiece's search
  /// for the longest match starts there rather than at the word's end.
  std::size_t longest_token_chars_ = 0;
  BertTokenizerOptions options_;
  /// The special and added tokens, found in the text (raw) and, normalised, in the normalised
  /// text between those (see added_token_matcher.h); shared by copies.
  struct Matchers;
  std::shared_ptr<const Matchers> matchers_;
  std::int64_t unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, pad_id_ = -1, mask_id_ = -1;
};

}  // namespace ms::text

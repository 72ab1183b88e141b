// The tokenizer of a causal decoder (text generation): GPT-2's byte-level BPE, or the BERT-style
// vocabulary (vocab.txt) that Chinese GPT models on ModelScope use, which splits CJK text into
// single characters. The generation pipeline and the trainer's causal-LM batches both use it, so
// that a model generates from prompts tokenized exactly as its training texts were.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ms/core/export.h"

namespace ms::text {

class BertTokenizer;
class Gpt2Tokenizer;

class MS_API CausalTokenizer {
 public:
  /// Whether `dir` holds either tokenizer (byte-level BPE files, or vocab.txt).
  static bool in_dir(const std::filesystem::path& dir);
  /// The byte-level BPE tokenizer when `dir` has one, else the vocab.txt one. Throws
  /// ms::Error(kNotFound) when there is neither, kConfig when a file is malformed.
  static CausalTokenizer from_dir(const std::filesystem::path& dir);

  explicit CausalTokenizer(Gpt2Tokenizer bpe);
  explicit CausalTokenizer(BertTokenizer vocab);
  CausalTokenizer(CausalTokenizer&&) noexcept;
  CausalTokenizer& operator=(CausalTokenizer&&) noexcept;
  ~CausalTokenizer();

  /// A prompt's ids: its tokens, after [CLS] for a vocab.txt tokenizer (BERT-style GPT models
  /// see every text start with it).
  std::vector<std::int64_t> prompt_ids(std::string_view text) const;
  /// A training text's ids: prompt_ids() then the end-of-text token (<|endoftext|> or [SEP]),
  /// so that the model learns where a text ends; not a second one when prompt_ids() ends with
  /// it already (a tokenizer.json template "$A <|endoftext|>"). With `max_length` (0: none),
  /// at most that many: the text's tokens are cut so that the template's tokens around them
  /// stay; the end-of-text token added after a template without one is cut like text.
  std::vector<std::int64_t> document_ids(std::string_view text, std::size_t max_length = 0) const;
  /// Text of `ids`, special tokens left out. A vocab.txt tokenizer joins "##" pieces to their
  /// word and puts no space next to a CJK character or full-width punctuation (Chinese text
  /// comes back as written), nor before closing ASCII punctuation.
  std::string decode(const std::vector<std::int64_t>& ids) const;

  std::int64_t eos_id() const { return eos_id_; }  ///< -1 when the vocabulary has none
  std::int64_t pad_id() const { return pad_id_; }  ///< padding, never attended (an id that exists)
  /// The id to pad a model's input with when its embedding table has `table_rows` rows: pad_id()
  /// when the table holds it, else the end-of-text id, else 0. Padding is never attended, so any
  /// row will do; a pad token added without resizing the model lies past the table.
  std::int64_t padding_id(std::int64_t table_rows) const;
  std::size_t vocab_size() const;
  /// vocab_size() without the added tokens of a byte-level BPE vocabulary (see
  /// Gpt2Tokenizer::base_vocab_size).
  std::size_t base_vocab_size() const;
  bool byte_level() const { return bpe_ != nullptr; }

 private:
  std::unique_ptr<Gpt2Tokenizer> bpe_;
  std::unique_ptr<BertTokenizer> vocab_;
  std::int64_t bos_id_ = -1, eos_id_ = -1, pad_id_ = 0;
  std::vector<std::int64_t> special_ids_;  // vocab.txt: left out when decoding
};

}  // namespace ms::text

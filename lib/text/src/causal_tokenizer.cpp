#include "ms/text/causal_tokenizer.h"

#include <algorithm>

#include "ms/core/error.h"
#include "ms/core/utf8.h"
#include "ms/text/bert_tokenizer.h"
#include "ms/text/gpt2_tokenizer.h"
#include "ms/text/unicode.h"

namespace ms::text {
namespace {

// Full-width forms and CJK punctuation (，。！？「」…): written without spaces in Chinese text.
bool is_full_width(char32_t cp) {
  return (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFF00 && cp <= 0xFFEF) ||
         (cp >= 0x2018 && cp <= 0x201F) || cp == 0x2026;
}

bool joins_without_space(char32_t cp) { return is_cjk(cp) || is_full_width(cp); }

bool closing_punctuation(char32_t cp) {
  return cp == '.' || cp == ',' || cp == '!' || cp == '?' || cp == ';' || cp == ':' || cp == ')' ||
         cp == ']' || cp == '}' || cp == '%';
}

}  // namespace

CausalTokenizer::CausalTokenizer(Gpt2Tokenizer bpe)
    : bpe_(std::make_unique<Gpt2Tokenizer>(std::move(bpe))) {
  bos_id_ = -1;  // GPT-2 prompts start with their own first token
  eos_id_ = bpe_->eos_id();
  // Padding is never attended; any id in the vocabulary will do where the model has none.
  pad_id_ = bpe_->pad_id() >= 0 ? bpe_->pad_id() : std::max<std::int64_t>(eos_id_, 0);
}

CausalTokenizer::CausalTokenizer(BertTokenizer vocab)
    : vocab_(std::make_unique<BertTokenizer>(std::move(vocab))) {
  bos_id_ = vocab_->token_to_id(vocab_->options().cls_token);
  eos_id_ = vocab_->token_to_id(vocab_->options().sep_token);
  pad_id_ = vocab_->pad_id() >= 0 ? vocab_->pad_id() : std::max<std::int64_t>(eos_id_, 0);
  const BertTokenizerOptions& o = vocab_->options();
  for (const std::string* t :
       {&o.unk_token, &o.cls_token, &o.sep_token, &o.pad_token, &o.mask_token})
    if (const std::int64_t id = vocab_->token_to_id(*t); id >= 0) special_ids_.push_back(id);
}

CausalTokenizer::CausalTokenizer(CausalTokenizer&&) noexcept = default;
CausalTokenizer& CausalTokenizer::operator=(CausalTokenizer&&) noexcept = default;
CausalTokenizer::~CausalTokenizer() = default;

bool CausalTokenizer::in_dir(const std::filesystem::path& dir) {
  return Gpt2Tokenizer::in_dir(dir) || BertTokenizer::in_dir(dir);
}

CausalTokenizer CausalTokenizer::from_dir(const std::filesystem::path& dir) {
  if (Gpt2Tokenizer::in_dir(dir)) return CausalTokenizer(Gpt2Tokenizer::from_dir(dir));
  MS_CHECK(BertTokenizer::in_dir(dir), ErrorCode::kNotFound,
           "{} has no tokenizer for text generation: byte-level BPE (vocab.json + merges.txt, or "
           "tokenizer.json) or a BERT-style vocab.txt",
           dir.string());
  return CausalTokenizer(BertTokenizer::from_dir(dir));
}

std::vector<std::int64_t> CausalTokenizer::prompt_ids(std::string_view text) const {
  if (bpe_) return bpe_->encode(text);
  std::vector<std::int64_t> ids;
  if (bos_id_ >= 0) ids.push_back(bos_id_);
  const std::vector<std::int64_t> body = vocab_->token_ids(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::vector<std::int64_t> CausalTokenizer::document_ids(std::string_view text,
                                                        std::size_t max_length) const {
  std::vector<std::int64_t> prefix, body, suffix;
  if (bpe_) {
    prefix = bpe_->prefix_ids();
    body = bpe_->encode_text(text);
    suffix = bpe_->suffix_ids();
  } else {
    if (bos_id_ >= 0) prefix.push_back(bos_id_);
    body = vocab_->token_ids(text);
  }
  // The text's tokens are cut, not the special tokens around them (as a tokenizer's truncation
  // does); a template that already ends with the end-of-text token gets no second one.
  if (max_length > 0 && prefix.size() + suffix.size() < max_length &&
      body.size() > max_length - prefix.size() - suffix.size())
    body.resize(max_length - prefix.size() - suffix.size());
  std::vector<std::int64_t> ids = std::move(prefix);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.insert(ids.end(), suffix.begin(), suffix.end());
  if (eos_id_ >= 0 && (suffix.empty() || suffix.back() != eos_id_)) ids.push_back(eos_id_);
  if (max_length > 0 && ids.size() > max_length) ids.resize(max_length);
  return ids;
}

std::size_t CausalTokenizer::vocab_size() const {
  return bpe_ ? bpe_->vocab_size() : vocab_->vocab_size();
}

std::int64_t CausalTokenizer::padding_id(std::int64_t table_rows) const {
  if (pad_id_ >= 0 && pad_id_ < table_rows) return pad_id_;
  if (eos_id_ >= 0 && eos_id_ < table_rows) return eos_id_;
  return 0;
}

std::size_t CausalTokenizer::base_vocab_size() const {
  return bpe_ ? bpe_->base_vocab_size() : vocab_->vocab_size();
}

std::string CausalTokenizer::decode(const std::vector<std::int64_t>& ids) const {
  if (bpe_) return bpe_->decode(ids, /*skip_special_tokens=*/true);
  const BertTokenizerOptions& o = vocab_->options();
  std::string out;
  char32_t last = 0;  // the last character written, 0 at the start
  for (const std::int64_t id : ids) {
    std::string token = vocab_->id_to_token(id);
    if (std::find(special_ids_.begin(), special_ids_.end(), id) != special_ids_.end()) continue;
    const bool continuation = token.rfind(o.continuing_prefix, 0) == 0;
    if (continuation) token.erase(0, o.continuing_prefix.size());
    const std::u32string chars = decode_utf8(token);
    if (chars.empty()) continue;
    const bool space = last != 0 && !continuation && !joins_without_space(last) &&
                       !joins_without_space(chars.front()) && !closing_punctuation(chars.front());
    if (space) out += ' ';
    out += token;
    last = chars.back();
  }
  return out;
}

}  // namespace ms::text

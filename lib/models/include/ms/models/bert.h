// BERT-family encoder (BERT, StructBERT, MiniLM, RoBERTa-style) built from config.json, with
// Hugging Face parameter names so that checkpoints load by name.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "ms/config/config.h"
#include "ms/tensor/weights.h"

namespace ms::models {

/// The config.json fields the encoder uses.
struct BertConfig {
  std::string model_type = "bert";
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  std::string hidden_act = "gelu";
  int64_t pad_token_id = 0;
  /// RoBERTa numbers positions from pad_token_id + 1 and skips padding.
  bool roberta_positions = false;

  /// Reads config.json's content; throws ms::Error(kConfig) naming `source` and the key for a
  /// missing or wrongly typed field, or an unsupported hidden_act / position_embedding_type.
  static BertConfig from_json(const Json& json, const std::string& source);
};

/// The encoder: embeddings + transformer layers (+ pooler when the weights have one).
class BertModel {
 public:
  explicit BertModel(const BertConfig& config);
  ~BertModel();
  BertModel(const BertModel&) = delete;
  BertModel& operator=(const BertModel&) = delete;

  /// Loads encoder weights. Keys may carry a prefix ("bert.", "roberta.", "model.", ...), which is
  /// found from the word-embedding key. Returns that prefix. Throws ms::Error(kConfig) naming
  /// missing, unexpected and mis-shaped keys (keys outside the prefix are left to heads).
  std::string load(const tensor::WeightMap& weights, const std::string& source);

  /// Moves the parameters to a device ("cpu", "cuda:0") and switches to eval mode.
  void to(const std::string& device);

  /// Last hidden states [batch, tokens, hidden] for ids/type ids/attention mask [batch, tokens].
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids,
                     const at::Tensor& attention_mask);

  /// tanh(dense(first token)), the BERT pooler; throws when the weights had no pooler.
  at::Tensor pool(const at::Tensor& hidden);
  bool has_pooler() const;

  const BertConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ms::models

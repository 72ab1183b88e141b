// BERT-family encoder (BERT, StructBERT, MiniLM, RoBERTa-style) as a torch::nn module built from
// config.json, with Hugging Face parameter names so that checkpoints load by name. Torch-heavy:
// the task models (bert_heads.cpp) and tests include it; pipelines use ms/models/model.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ms/config/config.h"
#include "ms/tensor/weights.h"

namespace ms::models {

/// The config.json fields the encoder and its heads use.
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
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  /// Dropout before a classification head; unset: hidden_dropout_prob (as Hugging Face does).
  std::optional<double> classifier_dropout;
  /// RoBERTa numbers positions from pad_token_id + 1 and skips padding.
  bool roberta_positions = false;

  /// The longest input in tokens the position embeddings take: max_position_embeddings, less the
  /// pad_token_id + 1 positions RoBERTa-style models never use (514 - 2 = 512 for roberta-base).
  int64_t max_tokens() const {
    return max_position_embeddings - (roberta_positions ? pad_token_id + 1 : 0);
  }

  /// Reads config.json's content; throws ms::Error(kConfig) naming `source` and the key for a
  /// missing or wrongly typed field, or an unsupported hidden_act / position_embedding_type.
  /// `type_if_unsaid` is the model type when config.json has no model_type (configuration.json's
  /// model.type, normalised): it decides RoBERTa's positions and pad_token_id default (1).
  static BertConfig from_json(const Json& json, const std::string& source,
                              const std::string& type_if_unsaid = "");
  /// Reads `dir`/config.json; throws ms::Error(kNotFound) when it does not exist.
  static BertConfig from_model_dir(const std::filesystem::path& dir,
                                   const std::string& type_if_unsaid = "");
};

/// The encoder's part of Model::structure(): {"family": "bert", "encoder": `prefix` (its
/// parameters' prefix in state_dict()), the config.json fields its forward pass reads, "pooler"}.
Json bert_encoder_structure(const BertConfig& config, const std::string& prefix, bool pooler);

/// The (normalised) model types with BERT's parameter layout, registered for every text task.
const std::vector<std::string>& bert_family_types();

/// Whether a (normalised) model type is RoBERTa-style: positions from pad_token_id + 1, the
/// encoder under "roberta.", the dense + out_proj classification head.
bool roberta_family(const std::string& model_type);

/// hidden_act applied to a tensor (gelu, gelu_new / gelu_pytorch_tanh, relu).
at::Tensor apply_hidden_act(const std::string& act, const at::Tensor& x);

/// The prefix of a BERT-family checkpoint's encoder keys ("bert.", "roberta.", "model.bert.", or
/// "" for a bare encoder), found from its word-embedding key. Throws ms::Error(kConfig) naming
/// `source` when the checkpoint has none.
std::string find_encoder_prefix(const tensor::TensorMap& checkpoint, const std::string& source);

/// Whether `checkpoint` (nullptr: none) has the pooler's weights under its encoder prefix.
bool checkpoint_has_pooler(const tensor::TensorMap* checkpoint, const std::string& source);

/// Whether a key below the encoder prefix belongs to the encoder (embeddings., encoder., pooler.).
bool is_encoder_key(const std::string& key_without_prefix);

/// Which kernels compute a BERT layer's attention (MS_BERT_KERNELS, bert.cpp says why each).
enum class BertKernels {
  kDefault,     // unset: kTorchFused on a GPU with LibTorch 2.x, else kTorchOps
  kTorchFused,  // at::scaled_dot_product_attention (LibTorch 2.x), on any device: "sdpa"
  kTorchOps,    // LibTorch's ops one by one: "torch"
  kMsCpu,       // ms's own float32 CPU attention and GELU kernels: "ms"
};

/// Hugging Face's BertModel: embeddings + transformer layers (+ pooler when built with one).
/// Dropout is active in train mode. In eval mode without gradients the forward pass takes the
/// inference fast path: query, key and value in one GEMM (weights concatenated on first use and
/// again whenever a source parameter changed). Attention runs in the kernels MS_BERT_KERNELS
/// names (BertKernels); an unknown name, or sdpa with LibTorch 1.x, is a usage error.
class BertEncoder : public torch::nn::Module {
 public:
  BertEncoder(const BertConfig& config, bool with_pooler);
  ~BertEncoder() override;

  /// Last hidden states [batch, tokens, hidden] for ids / type ids / attention mask [batch,
  /// tokens] (int64).
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids,
                     const at::Tensor& attention_mask);

  /// tanh(dense(first token)), the BERT pooler; throws when built without one.
  at::Tensor pool(const at::Tensor& hidden);
  bool has_pooler() const { return pooler_ != nullptr; }

  const BertConfig& config() const { return config_; }
  /// The word-embedding matrix [vocab, hidden] (the masked-LM decoder is tied to it).
  const at::Tensor& word_embeddings() const;

 private:
  struct Parts;
  BertConfig config_;
  std::unique_ptr<Parts> parts_;
  std::shared_ptr<torch::nn::Module> pooler_;
  BertKernels kernels_;
};

}  // namespace ms::models

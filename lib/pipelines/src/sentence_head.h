// The sentence-transformers modules after the encoder, as modules.json lists them: Pooling
// (modes concatenated in sentence-transformers' order), Dense (linear + activation), Normalize.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <string>
#include <vector>

#include "ms/config/config.h"

namespace ms::pipelines {

class SentenceHead {
 public:
  /// Reads `dir`/modules.json and the module folders it names (1_Pooling/config.json,
  /// 2_Dense/{config.json, weights}, ...). Without modules.json: mean pooling, L2-normalised.
  /// `model.pooling` (one mode) and `model.normalize` in `config` override the files. Throws
  /// ms::Error(kConfig) naming the file and key for unknown module types, pooling modes or
  /// activations, and for sizes that do not chain.
  SentenceHead(const std::filesystem::path& dir, int64_t hidden_size, const Config& config,
               const std::string& device);

  /// Token states [batch, seq, hidden] and the attention mask [batch, seq] (right-padded) ->
  /// float embeddings [batch, dim].
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& mask) const;

 private:
  // sentence-transformers' Pooling concatenates its modes in this order.
  enum class Pool { kCls, kMax, kMean, kMeanSqrtLen, kWeightedMean, kLastToken };
  enum class Activation { kIdentity, kTanh, kRelu, kSigmoid, kGelu };
  struct Step {
    bool normalize = false;   // Normalize; otherwise Dense
    at::Tensor weight, bias;  // Dense: [out, in], [out] or undefined
    Activation activation = Activation::kIdentity;
  };

  void read_pooling(const std::filesystem::path& config_path);
  Step read_dense(const std::filesystem::path& folder, int64_t in_dim,
                  const std::string& device) const;
  static std::vector<Pool> parse_pooling_name(const std::string& name, const std::string& where);

  std::vector<Pool> pooling_ = {Pool::kMean};
  std::vector<Step> steps_;
};

}  // namespace ms::pipelines

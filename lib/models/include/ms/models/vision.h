// Image classifiers in torch::nn with torchvision parameter names: the ResNet family (18, 34, 50,
// 101, 152) and a small configurable CNN.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "ms/tensor/weights.h"

namespace ms::models {

/// What to build. kind "resnet": depth in {18, 34, 50, 101, 152}. kind "small-cnn": Conv3x3 +
/// BatchNorm + ReLU + MaxPool2 per entry of `channels` (torch.nn.Sequential "features" naming,
/// four modules per stage), global average pooling, then a Linear "classifier".
struct VisionConfig {
  std::string kind = "resnet";
  int depth = 18;
  std::vector<int64_t> channels;
  int64_t num_classes = 1000;
};

/// An image classifier: [batch, 3, H, W] float -> logits [batch, num_classes].
class ImageClassifier {
 public:
  explicit ImageClassifier(const VisionConfig& config);
  ~ImageClassifier();
  ImageClassifier(const ImageClassifier&) = delete;
  ImageClassifier& operator=(const ImageClassifier&) = delete;

  /// Loads weights by torchvision name (a "backbone."/"model."/"module." prefix is stripped).
  /// Throws ms::Error(kConfig) naming missing, unexpected and mis-shaped keys.
  void load(const tensor::WeightMap& weights, const std::string& source);
  void to(const std::string& device);
  at::Tensor forward(const at::Tensor& images);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ms::models

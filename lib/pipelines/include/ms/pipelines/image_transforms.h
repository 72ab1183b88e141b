// The image preprocessing of configuration.json (`preprocessor` transforms: Resize, CenterCrop,
// Normalize, ToTensor), with torchvision's semantics on tensors: what the image pipelines and the
// trainer's image batches both apply, so that a trained model sees at inference what it saw in
// training.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ms/config/config.h"
#include "ms/data/image.h"

namespace ms::pipelines {

struct Transform {
  std::string type;
  int64_t h = 0, w = 0;  ///< Resize (w == 0: shorter side to h) / CenterCrop / RandomResizedCrop
  std::vector<double> mean, std;  ///< Normalize: 3 values each, as given (pixels in [0, 1])
  bool antialias = true;          ///< Resize or RandomResizedCrop of a tensor (after ToTensor)
  std::pair<double, double> scale{0.08, 1.0};             ///< RandomResizedCrop: area fraction
  std::pair<double, double> ratio{3.0 / 4.0, 4.0 / 3.0};  ///< RandomResizedCrop: aspect ratio
  double p = 0.5;                                         ///< RandomHorizontalFlip
  int64_t max_size = 0;  ///< Resize of the shorter side: the most the longer may be (0: no cap)
};

/// Which list a model's configuration gives: training reads `preprocessor.train` first (random
/// augmentations allowed), evaluation and inference never (and refuse random transforms).
enum class TransformStage { kEvaluate, kTrain };

/// The random draws of RandomResizedCrop and RandomHorizontalFlip: a seeded generator that gives
/// the same stream on every platform, so that a trainer seeding one per image from (seed, epoch,
/// row) crops the same way when it resumes or runs data-parallel. The draws are ms's own (not
/// torch's generator): the same distributions as torchvision's, not the same numbers.
class TransformRandom {
 public:
  explicit TransformRandom(std::uint64_t seed);
  /// The generator of one item (a row of a dataset) in one epoch of a run seeded `seed`.
  static TransformRandom for_item(std::uint64_t seed, std::uint64_t epoch, std::uint64_t row);
  /// Uniform in [low, high).
  double uniform(double low = 0.0, double high = 1.0);
  /// Uniform in [low, high], both included.
  int64_t integer(int64_t low, int64_t high);

 private:
  std::uint64_t next();
  std::uint64_t state_;
};

/// The transforms of `preprocessor.val`, `preprocessor.transforms` or `preprocessor` (a list;
/// for training `preprocessor.train` first), else torchvision's ImageNet evaluation recipe
/// (Resize 256, CenterCrop 224, ToTensor, Normalize). The list must run under torchvision's
/// Compose: one ToTensor, every Normalize after it. Errors name the file and the transform's
/// index.
std::vector<Transform> parse_transforms(const Config& config,
                                        TransformStage stage = TransformStage::kEvaluate);

/// Applies the transforms to one decoded RGB image and returns the tensor [3, H, W]. As
/// torchvision does to the PIL image ModelScope loads, the steps before ToTensor work on the
/// 8-bit pixels: Resize with PIL's antialiased bilinear filter (data::resize_bilinear), rounded
/// to 8 bits. After ToTensor they work on the tensor: Resize bilinear with antialiasing unless
/// `antialias` is false (torchvision 0.17 and later). RandomResizedCrop (torchvision's
/// get_params, then the crop resized as a Resize at that stage) and RandomHorizontalFlip draw
/// from `random`, which they need.
at::Tensor apply_transforms(const std::vector<Transform>& transforms, const data::Image& image,
                            TransformRandom* random = nullptr);

}  // namespace ms::pipelines

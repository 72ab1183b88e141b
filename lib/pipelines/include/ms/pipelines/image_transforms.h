// The image preprocessing of configuration.json (`preprocessor` transforms: Resize, CenterCrop,
// Normalize, ToTensor), with torchvision's semantics on tensors: what the image pipelines and the
// trainer's image batches both apply, so that a trained model sees at inference what it saw in
// training.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ms/config/config.h"

namespace ms::pipelines {

struct Transform {
  std::string type;
  int64_t h = 0, w = 0;  ///< Resize (w == 0: shorter side to h) / CenterCrop
  std::vector<double> mean, std;
};

/// The transforms of `preprocessor.val`, `preprocessor.transforms` or `preprocessor` (a list),
/// else torchvision's ImageNet evaluation recipe (Resize 256, CenterCrop 224, Normalize). Errors
/// name the file and the transform's index.
std::vector<Transform> parse_transforms(const Config& config);

/// Applies the transforms to one image tensor [3, H, W] in [0, 1].
at::Tensor apply_transforms(const std::vector<Transform>& transforms, at::Tensor x);

}  // namespace ms::pipelines

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
#include "ms/data/image.h"

namespace ms::pipelines {

struct Transform {
  std::string type;
  int64_t h = 0, w = 0;           ///< Resize (w == 0: shorter side to h) / CenterCrop
  std::vector<double> mean, std;  ///< Normalize: 3 values each, as given (pixels in [0, 1])
  bool antialias = true;          ///< Resize of a tensor (after ToTensor)
};

/// The transforms of `preprocessor.val`, `preprocessor.transforms` or `preprocessor` (a list),
/// else torchvision's ImageNet evaluation recipe (Resize 256, CenterCrop 224, ToTensor,
/// Normalize). The list must run under torchvision's Compose: one ToTensor, every Normalize after
/// it. Errors name the file and the transform's index.
std::vector<Transform> parse_transforms(const Config& config);

/// Applies the transforms to one decoded RGB image and returns the tensor [3, H, W]. As
/// torchvision does to the PIL image ModelScope loads, the Resize and CenterCrop steps before
/// ToTensor work on the 8-bit pixels: Resize with PIL's antialiased bilinear filter
/// (data::resize_bilinear), rounded to 8 bits. After ToTensor they work on the tensor: Resize
/// bilinear with antialiasing unless `antialias` is false (torchvision 0.17 and later).
at::Tensor apply_transforms(const std::vector<Transform>& transforms, const data::Image& image);

}  // namespace ms::pipelines

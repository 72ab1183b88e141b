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
  int64_t h = 0, w = 0;  ///< Resize (w == 0: shorter side to h) / CenterCrop
  std::vector<double> mean, std;
};

/// The transforms of `preprocessor.val`, `preprocessor.transforms` or `preprocessor` (a list),
/// else torchvision's ImageNet evaluation recipe (Resize 256, CenterCrop 224, Normalize). Errors
/// name the file and the transform's index.
std::vector<Transform> parse_transforms(const Config& config);

/// Applies the transforms to one decoded RGB image and returns the tensor [3, H, W] (in [0, 1]
/// before a Normalize). As torchvision does to the PIL image ModelScope loads, the Resize and
/// CenterCrop steps before the first Normalize work on the 8-bit pixels: Resize with PIL's
/// antialiased bilinear filter (data::resize_bilinear), rounded to 8 bits. A Resize after a
/// Normalize works on the tensor (bilinear without antialiasing, as torchvision does to tensors).
at::Tensor apply_transforms(const std::vector<Transform>& transforms, const data::Image& image);

}  // namespace ms::pipelines

// Samples -> batch tensors: token rows padded into input_ids / token_type_ids / attention_mask,
// and decoded images into float tensors. Shared by pipelines, the trainer and the exporters.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ms/tensor/weights.h"

namespace ms::tensor {

/// One tokenised sample: its ids and segment (type) ids, of equal length.
struct TokenRow {
  const std::vector<std::int64_t>* ids = nullptr;
  const std::vector<std::int64_t>* type_ids = nullptr;
};

/// Right-pads the rows to the longest: "input_ids" (pad_id), "token_type_ids" (0) and
/// "attention_mask" (1 on tokens, 0 on padding), each int64 [rows, longest] on `device`.
/// `padded_rows` and `padded_tokens`, where larger, pad the batch further (to a shape that a CUDA
/// graph was captured at): added rows hold pad_id tokens of which only the first is attended, so
/// that each row attends to a token as real rows do.
TensorMap collate_tokens(const std::vector<TokenRow>& rows, std::int64_t pad_id,
                         const std::string& device, std::int64_t padded_rows = 0,
                         std::int64_t padded_tokens = 0);

/// 8-bit interleaved pixels (height x width x channels, as decoders give them) -> float
/// [channels, height, width] in [0, 1], owning its memory.
at::Tensor image_to_tensor(const std::uint8_t* pixels, int height, int width, int channels);

}  // namespace ms::tensor

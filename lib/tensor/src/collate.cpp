#include "ms/tensor/collate.h"

#include <ATen/ops/from_blob.h>

#include <algorithm>

#include "ms/core/error.h"

namespace ms::tensor {

TensorMap collate_tokens(const std::vector<TokenRow>& rows, std::int64_t pad_id,
                         const std::string& device, std::int64_t padded_rows,
                         std::int64_t padded_tokens) {
  std::size_t longest = 0;
  for (const TokenRow& row : rows) {
    // Each row needs ids and type ids of equal length.
    MS_ASSERT(row.ids != nullptr && row.type_ids != nullptr &&
              row.ids->size() == row.type_ids->size());
    longest = std::max(longest, row.ids->size());
  }
  longest = std::max(longest, static_cast<std::size_t>(std::max<std::int64_t>(padded_tokens, 0)));
  const std::size_t count =
      std::max(rows.size(), static_cast<std::size_t>(std::max<std::int64_t>(padded_rows, 0)));
  const auto b = static_cast<int64_t>(count), t = static_cast<int64_t>(longest);
  // The three tensors are built as one [3, b, t] block, so that a GPU gets them in one copy.
  const std::size_t plane = count * longest;
  std::vector<int64_t> block(3 * plane, 0);
  std::fill_n(block.begin(), plane, pad_id);
  for (std::size_t i = rows.size(); i < count && longest > 0; ++i)
    block[2 * plane + i * longest] = 1;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto offset = static_cast<std::ptrdiff_t>(i * longest);
    std::copy(rows[i].ids->begin(), rows[i].ids->end(), block.begin() + offset);
    std::copy(rows[i].type_ids->begin(), rows[i].type_ids->end(),
              block.begin() + static_cast<std::ptrdiff_t>(plane) + offset);
    std::fill_n(block.begin() + static_cast<std::ptrdiff_t>(2 * plane) + offset,
                rows[i].ids->size(), 1);
  }
  const c10::Device target(device);
  // from_blob does not own the vector: clone on the CPU, where .to() would return the same
  // tensor. For a GPU the block goes through pinned memory, so that the copy is a DMA the host
  // does not wait for; the card's stream orders it before the forward pass that reads it.
  const at::Tensor view =
      at::from_blob(block.data(), {3, b, t}, at::TensorOptions().dtype(at::kLong));
  const at::Tensor all =
      target.is_cpu() ? view.clone() : view.pin_memory().to(target, /*non_blocking=*/true);
  return {{"input_ids", all[0]}, {"token_type_ids", all[1]}, {"attention_mask", all[2]}};
}

at::Tensor image_to_tensor(const std::uint8_t* pixels, int height, int width, int channels) {
  // from_blob views the decoder's buffer; the float conversion makes the owning copy.
  return at::from_blob(const_cast<std::uint8_t*>(pixels), {height, width, channels},
                       at::TensorOptions().dtype(at::kByte))
      .permute({2, 0, 1})
      .to(at::kFloat)
      .div_(255.0);
}

}  // namespace ms::tensor

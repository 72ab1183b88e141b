#include "ms/tensor/collate.h"

#include <ATen/ops/from_blob.h>

#include <algorithm>

#include "ms/core/error.h"

namespace ms::tensor {

TensorMap collate_tokens(const std::vector<TokenRow>& rows, std::int64_t pad_id,
                         const std::string& device) {
  std::size_t longest = 0;
  for (const TokenRow& row : rows) {
    // Each row needs ids and type ids of equal length.
    MS_ASSERT(row.ids != nullptr && row.type_ids != nullptr &&
              row.ids->size() == row.type_ids->size());
    longest = std::max(longest, row.ids->size());
  }
  const auto b = static_cast<int64_t>(rows.size()), t = static_cast<int64_t>(longest);
  std::vector<int64_t> ids(rows.size() * longest, pad_id), types(ids.size(), 0),
      mask(ids.size(), 0);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto offset = static_cast<std::ptrdiff_t>(i * longest);
    std::copy(rows[i].ids->begin(), rows[i].ids->end(), ids.begin() + offset);
    std::copy(rows[i].type_ids->begin(), rows[i].type_ids->end(), types.begin() + offset);
    std::fill_n(mask.begin() + offset, rows[i].ids->size(), 1);
  }
  const c10::Device target(device);
  auto make = [&](std::vector<int64_t>& v) {
    // from_blob does not own the vector: clone on the CPU, where .to() would return the same
    // tensor; a copy to another device owns its memory already.
    const at::Tensor view = at::from_blob(v.data(), {b, t}, at::TensorOptions().dtype(at::kLong));
    return target.is_cpu() ? view.clone() : view.to(target);
  };
  return {
      {"input_ids", make(ids)}, {"token_type_ids", make(types)}, {"attention_mask", make(mask)}};
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

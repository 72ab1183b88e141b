#include "finite_outputs.h"

#include <ATen/ops/all.h>
#include <ATen/ops/isfinite.h>

#include "ms/core/error.h"

namespace ms::pipelines {

void reject_nonfinite_rows(const at::Tensor& output, const std::vector<std::size_t>& result_of_row,
                           std::vector<infer::PipelineResult>& results, const char* output_name) {
  MS_ASSERT(output.dim() >= 1 && output.size(0) == static_cast<int64_t>(result_of_row.size()));
  if (output.numel() == 0) return;
  const at::Tensor finite = at::isfinite(output).reshape({output.size(0), -1}).all(1).cpu();
  const bool* ok = finite.data_ptr<bool>();
  for (std::size_t r = 0; r < result_of_row.size(); ++r) {
    if (ok[r]) continue;
    infer::PipelineResult& result = results[result_of_row[r]];
    result.output = Json();
    result.float_arrays.clear();
    result.nonfinite_output = true;
    result.error = Error(ErrorCode::kIntegrity,
                         fmt::format("the model's {} for this input holds {}", output_name,
                                     infer::kNonfiniteOutputWords),
                         "the model is broken: check config.json (e.g. layer_norm_eps must be "
                         "positive) and the weight files");
  }
}

}  // namespace ms::pipelines

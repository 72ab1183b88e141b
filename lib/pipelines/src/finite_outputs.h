// The check that keeps a broken model's NaN/infinity out of a job's output.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <vector>

#include "ms/infer/pipeline.h"

namespace ms::pipelines {

/// Turns results[result_of_row[r]] into an integrity error for every row r of `output` (its first
/// dimension) that holds a NaN or an infinity. A broken model gives them (layer_norm_eps <= 0,
/// damaged weights, an fp16 tensor read as another dtype); JSON has no NaN, and writing null in
/// their place would pass garbage on as data. `output_name` names the output in the message.
void reject_nonfinite_rows(const at::Tensor& output, const std::vector<std::size_t>& result_of_row,
                           std::vector<infer::PipelineResult>& results, const char* output_name);

}  // namespace ms::pipelines

// `ms export --format onnx` (built with MS_WITH_ONNX).
#pragma once

#include "ms/infer/export.h"

namespace ms::exporter {

/// Writes request.output/model.onnx for the model `ms infer` loads from `info`, beside its
/// configuration and tokenizer files. Throws kUsage for a model with no ONNX exporter or an opset
/// this build cannot write.
infer::ExportSummary export_onnx(const infer::ExportRequest& request, const infer::ModelInfo& info);

}  // namespace ms::exporter

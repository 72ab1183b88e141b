// `ms export --format safetensors`: a Hugging Face / ModelScope model repository.
#pragma once

#include "ms/infer/export.h"

namespace ms::exporter {

/// Writes model.safetensors (the loaded model's weights under their Hugging Face names, fp32 or
/// fp16), config.json, configuration.json, the tokenizer files and a README.md model card.
infer::ExportSummary export_safetensors_repo(const infer::ExportRequest& request,
                                             const infer::ModelInfo& info);

}  // namespace ms::exporter

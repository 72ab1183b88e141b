// `ms export --format torchscript`: a model as a TorchScript archive (model.pt).
#pragma once

#include "ms/infer/export.h"

namespace ms::exporter {

/// Traces the loaded model with LibTorch's tracer and writes model.pt (weights baked in as
/// constants) with a configuration.json that `ms infer` runs through its TorchScript pipeline.
/// Image classifiers only so far; other tasks are kMissingComponent.
infer::ExportSummary export_torchscript(const infer::ExportRequest& request,
                                        const infer::ModelInfo& info);

}  // namespace ms::exporter

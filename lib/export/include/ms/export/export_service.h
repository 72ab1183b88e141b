// `ms export` in the torch layer: the ExporterService (ms/infer/export.h) that loads a model
// folder's C++ module and writes it as ONNX (ONNX's own protobuf classes and checker).
#pragma once

#include "ms/infer/export.h"

namespace ms::exporter {

/// The torch layer's ExporterService (TorchLayer::exporter).
infer::ExporterService& export_service();

}  // namespace ms::exporter

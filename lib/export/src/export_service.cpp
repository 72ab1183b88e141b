// ExporterService: the format picks the exporter. ONNX (onnx_export.cpp) exists in builds with
// MS_WITH_ONNX (libonnx-dev); TorchScript and safetensors need LibTorch only.
#include "ms/export/export_service.h"

#include "export_files.h"
#include "ms/core/error.h"
#include "safetensors_repo.h"
#include "torchscript_export.h"
#if MS_WITH_ONNX
#include "onnx_export.h"
#endif

namespace ms::exporter {
namespace {

// The format picks the exporter.
class Exporters final : public infer::ExporterService {
 public:
  infer::ExportSummary export_model(const infer::ExportRequest& request,
                                    const infer::ModelInfo& info) override {
    check_export_overrides(request, info);
    if (request.format == "safetensors") return export_safetensors_repo(request, info);
    if (request.format == "torchscript") return export_torchscript(request, info);
#if MS_WITH_ONNX
    return export_onnx(request, info);
#else
    throw Error(ErrorCode::kMissingComponent,
                "this ms was built without ONNX export (configured with -DMS_WITH_ONNX=OFF)",
                "install libonnx-dev (scripts/setup.sh does) and rebuild with -DMS_WITH_ONNX=ON, "
                "or export --format torchscript or safetensors");
#endif
  }
};

}  // namespace

infer::ExporterService& export_service() {
  static Exporters service;
  return service;
}

}  // namespace ms::exporter

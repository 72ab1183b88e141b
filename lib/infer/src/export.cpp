// `ms export` up to the torch layer: the options that need no LibTorch (format, dtype, output
// folder), the model folder, then the ExporterService.
#include "ms/infer/export.h"

#include <algorithm>
#include <system_error>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/infer/torch_layer.h"

namespace ms::infer {

const std::vector<std::string>& export_formats() {
  static const std::vector<std::string> formats = {"onnx", "torchscript", "safetensors"};
  return formats;
}

bool onnx_export_available() {
#if MS_WITH_ONNX
  return true;
#else
  return false;
#endif
}

ExportSummary run_export(const ExportRequest& request) {
  const auto& formats = export_formats();
  if (std::find(formats.begin(), formats.end(), request.format) == formats.end()) {
    std::string hint = did_you_mean(request.format, formats);
    throw Error(ErrorCode::kUsage, fmt::format("unknown export format '{}'", request.format),
                (hint.empty() ? std::string() : hint + "; ") + "formats: " + join(formats, ", "));
  }
  if (request.format == "onnx" && !onnx_export_available()) {
    throw Error(ErrorCode::kMissingComponent,
                "this ms was built without ONNX export (configured with -DMS_WITH_ONNX=OFF or "
                "-DMS_WITH_TORCH=OFF)",
                "install libonnx-dev (scripts/setup.sh does) and rebuild with -DMS_WITH_ONNX=ON, "
                "or export --format torchscript or safetensors");
  }
  MS_CHECK(request.dtype == "fp32" || request.dtype == "fp16", ErrorCode::kUsage,
           "unknown --dtype '{}' (fp32, fp16)", request.dtype);
  MS_CHECK(!request.output.empty(), ErrorCode::kUsage, "--output is required");
  // The finished folder is renamed into place under its own name ("out/" and "out/." name the
  // folder "out"; ".", ".." and "/" name none).
  const std::filesystem::path normal = request.output.lexically_normal();
  const std::filesystem::path folder = normal.has_filename() ? normal : normal.parent_path();
  const std::string name = folder.filename();
  MS_CHECK(!name.empty() && name != "." && name != "..", ErrorCode::kUsage,
           "--output {} names no folder of its own; give the new folder's name (such as "
           "{}/model-onnx)",
           request.output.string(), request.output.string());
  // The export is written first under a longer temp name beside it (kExportTempInfix), which
  // must still fit a file name (255 bytes on Linux file systems).
  constexpr std::size_t kTempNameExtra = 1 + kExportTempInfix.size() + 6, kNameMax = 255;
  MS_CHECK(name.size() + kTempNameExtra <= kNameMax, ErrorCode::kUsage,
           "--output's name is {} bytes long; at most {} (the export is written under a longer "
           "temp name beside it first)",
           name.size(), kNameMax - kTempNameExtra);
  MS_CHECK(!request.external_data || request.format == "onnx", ErrorCode::kUsage,
           "--external-data is an ONNX option; --format {} writes its weights its own way",
           request.format);
  MS_CHECK(!request.check || request.format == "onnx", ErrorCode::kUsage,
           "--check runs ONNX's shape inference, an ONNX option; --format {} has no graph to "
           "check",
           request.format);
  // The folder appears whole at the end (a temp folder renamed; a mount point is filled, entry by
  // entry), so it must not hold anything that the export would have to merge with.
  std::error_code ec;
  // A link would be replaced by the rename, or fail it once the export is done: refused first.
  // Checked by `folder`, the name renamed into place: "link/" and "file/" would be followed or
  // fail with ENOTDIR, passing the checks to fail after the whole export.
  MS_CHECK(!std::filesystem::is_symlink(std::filesystem::symlink_status(folder, ec)),
           ErrorCode::kUsage,
           "--output {} is a symbolic link; give the path of the folder to write (the export is "
           "renamed into place, which does not go through a link)",
           request.output.string());
  const auto status = std::filesystem::status(folder, ec);
  if (std::filesystem::exists(status)) {
    MS_CHECK(std::filesystem::is_directory(status), ErrorCode::kUsage,
             "--output {} exists and is not a folder", folder.string());
    // (An export killed while it filled this folder left its hidden temp folder, which the next
    // export removes: that does not count.)
    bool empty = true;
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
         it.increment(ec))
      empty = empty && is_temp_write_name(it->path().filename().string());
    if (!empty || ec) {
      // No overwrite option: a half-replaced model folder is worse than a second name.
      throw Error(ErrorCode::kUsage,
                  fmt::format("--output {} is not empty; ms export writes a new folder",
                              request.output.string()),
                  "name a folder that does not exist yet (or remove this one first)");
    }
  }
  for (int64_t d : request.static_shape)
    MS_CHECK(d > 0, ErrorCode::kUsage, "--static sizes must be positive, got {}", d);
  ModelInfo model = open_model(request.model, request.task, request.overrides, request.hub);
  const TorchLayer& layer = load_torch_layer();
  MS_CHECK(layer.exporter != nullptr, ErrorCode::kMissingComponent,
           "this torch layer was built without the exporter");
  ExportRequest checked = request;
  checked.output = folder;
  return layer.exporter->export_model(checked, model);
}

}  // namespace ms::infer

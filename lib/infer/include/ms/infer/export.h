// The torch-free face of `ms export`: what to export, in which format, and what was written. The
// torch layer implements ExporterService (lib/export); run_export() checks what needs no LibTorch,
// opens the model, loads the torch layer and calls it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ms/config/config.h"
#include "ms/core/export.h"
#include "ms/infer/model_dir.h"

namespace ms::infer {

/// The formats `ms export` names, and those this build writes.
MS_API const std::vector<std::string>& export_formats();
/// Whether this build writes ONNX (configured with MS_WITH_ONNX and the torch layer).
MS_API bool onnx_export_available();

/// `ms export`.
struct ExportRequest {
  std::string model;                ///< a model folder (an `ms train` output/ too) or a hub id
  std::optional<std::string> task;  ///< default: the model's configuration
  std::string format = "onnx";      ///< onnx | torchscript | safetensors
  std::filesystem::path output;     ///< the folder to write; must not exist or be empty
  std::optional<int> opset;         ///< ONNX opset; default kDefaultOnnxOpset
  /// Fixed input sizes (--static): text {batch, sequence}; images {batch} or {batch, height,
  /// width}. Empty: dynamic axes (batch, sequence / height, width).
  std::vector<int64_t> static_shape;
  /// fp32, or fp16: safetensors weights in half precision; an ONNX graph or TorchScript archive
  /// computing in float16 (inputs and outputs keep their types).
  std::string dtype = "fp32";
  bool check = false;  ///< --check: strict shape inference over the whole graph as well
  /// ONNX: the weights in model.onnx_data beside model.onnx (ONNX's external data), as they must
  /// be for a model over 2 GiB, which one protobuf file cannot hold; automatic there.
  bool external_data = false;
  std::vector<std::string> overrides;
  HubModelOptions hub;
};

/// ModelScope's exporter writes opset 13; 14 is what `optimum-cli export onnx` writes for BERT.
inline constexpr int kDefaultOnnxOpset = 14;

/// One graph input or output: its name, element type and dims (a name for a dynamic axis).
struct ExportTensor {
  std::string name;
  std::string dtype;               ///< "int64", "float32"
  std::vector<std::string> shape;  ///< "batch", "sequence", "height", "width" or a number
};

/// What an export wrote.
struct ExportSummary {
  std::filesystem::path output_dir;
  std::string format;
  std::string family;  ///< the model's structure(): "bert", "resnet", "small-cnn"
  std::string head;    ///< e.g. "sequence-classification", "sentence-embedding"
  int opset = 0;
  std::vector<ExportTensor> inputs, outputs;
  std::vector<std::string> files;  ///< relative to output_dir, sorted
  bool checked = false;            ///< --check's shape inference ran and passed
  double seconds = 0;
};

/// Implemented by the torch layer (TorchLayer::exporter).
class MS_API ExporterService {
 public:
  virtual ~ExporterService() = default;
  virtual ExportSummary export_model(const ExportRequest& request, const ModelInfo& model) = 0;
};

/// A whole `ms export`: checks the options, opens the model (downloading a hub id), loads the
/// torch layer, exports. Throws kMissingComponent for a format this build does not write, kUsage
/// for bad options, kIo for an unwritable output folder.
MS_API ExportSummary run_export(const ExportRequest& request);

}  // namespace ms::infer

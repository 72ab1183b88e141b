// The torch layer (libms_torch.so) seen from the torch-free side: loaded on first use through one
// versioned extern "C" entry point that hands back a typed table of its services.
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <string>

#include "ms/config/registry.h"
#include "ms/core/device.h"
#include "ms/core/export.h"

namespace ms::infer {

class PipelineFactory;
class TrainerService;
class ExporterService;

/// What the loaded LibTorch reports about itself.
struct TorchInfo {
  std::string version;          ///< LibTorch version, e.g. "1.13.0"
  bool cuda_available = false;  ///< built with CUDA and a device is visible
  int cuda_device_count = 0;
  int num_threads = 0;  ///< intra-op threads in effect
  int num_interop_threads = 0;
  std::string parallel_backend;  ///< e.g. "OpenMP"
};

/// LibTorch itself: versions, threads, devices.
class MS_API TorchRuntime {
 public:
  virtual ~TorchRuntime() = default;
  virtual TorchInfo info() const = 0;
  /// Sets LibTorch's intra-op thread count.
  virtual void set_num_threads(int threads) = 0;
  /// Checks that `spec` names a device that exists here and returns its torch name ("cpu",
  /// "cuda:0"). kCuda without CUDA is an error (never a silent CPU fallback); kAuto picks cuda:0
  /// when available, else cpu.
  virtual std::string resolve_device(const DeviceSpec& spec) const = 0;
};

/// The torch layer's services, one typed entry each. A new service (trainer, exporter, ...) is a
/// new member here, filled in by the torch layer, and a bump of kTorchLayerAbiVersion.
struct TorchLayer {
  TorchRuntime* runtime = nullptr;       ///< LibTorch's versions, threads and devices
  PipelineFactory* pipelines = nullptr;  ///< `ms infer` (see ms/infer/pipeline.h)
  TrainerService* trainer = nullptr;     ///< `ms train`, `ms eval` (see ms/infer/train.h)
  /// `ms export` (see ms/infer/export.h); nullptr in a build without ONNX export.
  ExporterService* exporter = nullptr;
  /// Adds the torch layer's registries, named in kTorchLayerRegistries, to `registries`.
  void (*register_components)(Registries& registries) = nullptr;
};

/// Bumped whenever TorchLayer, the interfaces it points to or the entry point change; both sides
/// must agree.
constexpr int kTorchLayerAbiVersion = 12;  // 12: PipelineOptions::dtype, Pipeline::set_dtype

/// Name of the extern "C" entry point exported by libms_torch.so:
///   const ms::infer::TorchLayer* ms_torch_layer_entry(int abi_version);
/// It returns nullptr when the ABI versions differ.
constexpr const char* kTorchLayerEntryPoint = "ms_torch_layer_entry";

/// The registries the torch layer adds, by name: listed without loading LibTorch (`ms list`),
/// loaded on first use. The torch layer checks that it registers exactly these.
constexpr std::array<const char*, 5> kTorchLayerRegistries = {"models", "pipelines", "hooks",
                                                              "optimizers", "lr_schedulers"};

/// Options applied when the torch layer is first loaded.
struct TorchOptions {
  /// Intra-op threads. Unset: $OMP_NUM_THREADS if the user set it, else every core this process may
  /// use, its affinity mask (LibTorch on its own uses only half of the machine's).
  std::optional<int> threads;
};

/// Loads the torch layer on first call (dlopen of libms_torch.so next to libms.so, or
/// $MS_TORCH_LAYER) and applies `options`. Throws ms::Error(kMissingComponent) naming what is
/// missing when it cannot be loaded. Later calls return the same table.
MS_API const TorchLayer& load_torch_layer(const TorchOptions& options = {});

/// Whether load_torch_layer() has succeeded in this process.
MS_API bool torch_layer_loaded();

/// Where the torch layer is looked for.
MS_API std::filesystem::path torch_layer_path();

}  // namespace ms::infer

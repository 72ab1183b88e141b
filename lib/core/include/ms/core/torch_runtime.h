// The torch layer's one entry point, seen from the torch-free side: load on first use, then ask.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "ms/core/device.h"
#include "ms/core/export.h"

namespace ms {

/// What the loaded LibTorch reports about itself.
struct TorchInfo {
  std::string version;          ///< LibTorch version, e.g. "1.13.0"
  bool cuda_available = false;  ///< built with CUDA and a device is visible
  int cuda_device_count = 0;
  int num_threads = 0;  ///< intra-op threads in effect
  int num_interop_threads = 0;
  std::string parallel_backend;  ///< e.g. "OpenMP"
};

/// Interface implemented by libms_torch.so. Everything torch-related reached from torch-free code
/// goes through here, so `ms download` and friends never map LibTorch.
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
  /// A named service of the torch layer (e.g. "pipeline-factory", see ms/infer/pipeline.h), or
  /// nullptr when it has none by that name. The caller casts it to the interface the name stands
  /// for.
  virtual void* component(const std::string& name) = 0;
};

/// Bumped whenever TorchRuntime or the entry point changes; both sides must agree.
constexpr int kTorchLayerAbiVersion = 3;

/// Name of the extern "C" entry point exported by libms_torch.so:
///   ms::TorchRuntime* ms_torch_layer_entry(int abi_version);
/// It returns nullptr when the ABI versions differ.
constexpr const char* kTorchLayerEntryPoint = "ms_torch_layer_entry";

/// Options applied when the torch layer is first loaded.
struct TorchOptions {
  /// Intra-op threads. Unset: $OMP_NUM_THREADS if the user set it, else every core of the machine
  /// (LibTorch on its own uses only half of them).
  std::optional<int> threads;
};

/// Loads the torch layer on first call (dlopen of libms_torch.so next to libms.so, or
/// $MS_TORCH_LAYER) and applies `options`. Throws ms::Error(kMissingComponent) naming what is
/// missing when it cannot be loaded. Later calls return the same runtime.
MS_API TorchRuntime& load_torch_runtime(const TorchOptions& options = {});

/// Whether load_torch_runtime() has succeeded in this process.
MS_API bool torch_runtime_loaded();

/// Where the torch layer is looked for.
MS_API std::filesystem::path torch_layer_path();

}  // namespace ms

// The torch layer's table of services (ms::infer::TorchLayer): its TorchRuntime, the pipeline
// factory and its registries, handed out by the extern "C" entry point that libms.so looks up
// after dlopen'ing this library.
#include <ATen/Parallel.h>
#include <malloc.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdlib>

#include "ms/core/error.h"
#include "ms/export/export_service.h"
#include "ms/infer/pipeline.h"
#include "ms/infer/torch_layer.h"
#include "ms/models/model.h"
#include "ms/pipelines/registry.h"
#include "ms/trainer/hook.h"
#include "ms/trainer/lr_scheduler.h"
#include "ms/trainer/optimizer.h"
#include "ms/trainer/training_service.h"

namespace ms::infer {
namespace {

class TorchRuntimeImpl final : public TorchRuntime {
 public:
  TorchInfo info() const override {
    TorchInfo info;
    info.version = TORCH_VERSION;
    info.cuda_available = torch::cuda::is_available();
    info.cuda_device_count =
        info.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
    info.num_threads = at::get_num_threads();
    info.num_interop_threads = at::get_num_interop_threads();
    info.parallel_backend = parallel_backend();
    return info;
  }

  void set_num_threads(int threads) override { at::set_num_threads(threads); }

  std::string resolve_device(const DeviceSpec& spec) const override {
    const bool cuda = torch::cuda::is_available();
    const int count = cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
    switch (spec.kind) {
      case DeviceSpec::Kind::kCpu:
        return "cpu";
      case DeviceSpec::Kind::kAuto:
        return cuda ? "cuda:0" : "cpu";
      case DeviceSpec::Kind::kCuda:
        if (!cuda) {
          throw Error(
              ErrorCode::kMissingComponent,
              fmt::format("device '{}' was requested but CUDA is not available (LibTorch {} on "
                          "this machine has no usable GPU)",
                          spec.to_string(), TORCH_VERSION),
              "use --device cpu, or --device auto to fall back to the CPU when no GPU is present");
        }
        {
          const int index = spec.index < 0 ? 0 : spec.index;
          if (index >= count) {
            throw Error(
                ErrorCode::kUsage,
                fmt::format("device '{}' does not exist: this machine has {} CUDA device(s)",
                            spec.to_string(), count),
                fmt::format("use cuda:0 .. cuda:{}", count - 1));
          }
          return fmt::format("cuda:{}", index);
        }
    }
    return "cpu";
  }

 private:
  static std::string parallel_backend() {
#if AT_PARALLEL_OPENMP
    return "OpenMP";
#elif AT_PARALLEL_NATIVE
    return "native thread pool";
#else
    return "unknown";
#endif
  }
};

void register_components(Registries& registries) {
  const std::size_t before = registries.names().size();
  registries.add(models::model_registry());
  registries.add(pipelines::pipeline_registry());
  registries.add(trainer::hook_registry());
  registries.add(trainer::optimizer_registry());
  registries.add(trainer::lr_scheduler_registry());
  // default_registries() lists kTorchLayerRegistries before loading this library: both must name
  // the same registries.
  for (const char* name : kTorchLayerRegistries) MS_ASSERT(registries.contains(name));
  MS_ASSERT(registries.names().size() - before == kTorchLayerRegistries.size());
}

}  // namespace
}  // namespace ms::infer

extern "C" __attribute__((visibility("default"))) const ms::infer::TorchLayer* ms_torch_layer_entry(
    int abi_version) {
  if (abi_version != ms::infer::kTorchLayerAbiVersion) return nullptr;
  // Activations are large, short-lived blocks. glibc would mmap and unmap each one, paying page
  // faults and zeroing on every batch (about 10 % of MiniLM inference on the CPU); keeping them in
  // the heap reuses the pages. The user's own MALLOC_* settings win.
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 512 << 20);
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) mallopt(M_TRIM_THRESHOLD, 1 << 30);
  static ms::infer::TorchRuntimeImpl runtime;
  ms::infer::ExporterService* exporter = &ms::exporter::export_service();
  static const ms::infer::TorchLayer layer{&runtime, &ms::pipelines::pipeline_factory(),
                                           &ms::trainer::training_service(), exporter,
                                           &ms::infer::register_components};
  return &layer;
}

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/infer/torch_layer.h"
#include "ms/pipelines/registry.h"

namespace ms::pipelines {
namespace {

class Factory final : public infer::PipelineFactory {
 public:
  Factory() : registry_("pipelines") {
    register_text_pipelines(registry_);
    register_image_pipelines(registry_);
  }

  std::unique_ptr<infer::Pipeline> create(const infer::ModelInfo& model,
                                          const infer::PipelineOptions& options) override {
    const std::vector<std::string> types = registry_.types(model.task);
    MS_CHECK(!types.empty(), ErrorCode::kMissingComponent,
             "no pipeline is registered for task '{}' in this build (registered tasks: {})",
             model.task, join(registry_.groups(), ", "));
    // pipeline.type picks a registered pipeline; ModelScope's many task-specific names that are
    // not registered here fall back to the task's own pipeline.
    std::string type = registry_.contains(model.task, model.task) ? model.task : types.front();
    if (!model.pipeline_type.empty()) {
      if (registry_.contains(model.pipeline_type, model.task)) {
        type = model.pipeline_type;
      } else {
        log::info("pipeline.type '{}' is not registered for task '{}'; using '{}'",
                  model.pipeline_type, model.task, type);
      }
    }
    const std::string device = infer::load_torch_layer().runtime->resolve_device(options.device);
    return registry_.get(type, model.task)(model, device);
  }

  const Registry<PipelineBuilder>& registry() const { return registry_; }

 private:
  Registry<PipelineBuilder> registry_;
};

}  // namespace

namespace {

using SetThreads = void (*)(int);

// omp_set_num_threads of the OpenMP runtime LibTorch itself uses (pip wheels bundle their own
// libgomp, so linking one here could bind to a different runtime): looked up through libtorch's
// own handle. nullptr when LibTorch was built without OpenMP.
SetThreads torch_omp_set_num_threads() {
  static const SetThreads fn = []() -> SetThreads {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&at::get_num_threads), &info) == 0 ||
        info.dli_fname == nullptr) {
      return nullptr;
    }
    void* handle = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) return nullptr;
    return reinterpret_cast<SetThreads>(dlsym(handle, "omp_set_num_threads"));
  }();
  return fn;
}

}  // namespace

models::ModelSpec model_spec(const infer::ModelInfo& model, const std::string& task,
                             const std::string& type) {
  models::ModelSpec spec;
  spec.task = task;
  spec.type = type;
  spec.dir = model.dir;
  spec.config = model.config;
  return spec;
}

bool per_thread_intra_op_threads() { return torch_omp_set_num_threads() != nullptr; }

void set_thread_intra_op_threads(int threads) {
  // ATen initialises each thread's count from the global setting on first use; do that first so
  // that it cannot overwrite ours later.
  (void)at::get_num_threads();
  if (SetThreads fn = torch_omp_set_num_threads()) fn(threads);
}

namespace {

Factory& factory() {
  static Factory instance;
  return instance;
}

}  // namespace

infer::PipelineFactory& pipeline_factory() { return factory(); }

const Registry<PipelineBuilder>& pipeline_registry() { return factory().registry(); }

}  // namespace ms::pipelines

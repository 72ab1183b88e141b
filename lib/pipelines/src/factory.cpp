#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/torch_runtime.h"
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
    const std::string device = load_torch_runtime().resolve_device(options.device);
    return registry_.get(type, model.task)(model, device);
  }

  std::vector<std::string> registered() const override {
    std::vector<std::string> out;
    for (const auto& e : registry_.entries()) out.push_back(e.group + ": " + e.type);
    return out;
  }

 private:
  Registry<PipelineBuilder> registry_;
};

}  // namespace

infer::PipelineFactory& pipeline_factory() {
  static Factory factory;
  return factory;
}

}  // namespace ms::pipelines

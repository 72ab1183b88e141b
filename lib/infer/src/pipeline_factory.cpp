#include "ms/core/error.h"
#include "ms/core/torch_runtime.h"
#include "ms/infer/pipeline.h"

namespace ms::infer {

PipelineFactory& pipeline_factory(std::optional<int> threads) {
  TorchRuntime& runtime = load_torch_runtime(TorchOptions{threads});
  auto* factory = static_cast<PipelineFactory*>(runtime.component(kPipelineFactoryComponent));
  MS_CHECK(factory != nullptr, ErrorCode::kMissingComponent,
           "the torch layer {} has no pipeline factory", torch_layer_path().string());
  return *factory;
}

}  // namespace ms::infer

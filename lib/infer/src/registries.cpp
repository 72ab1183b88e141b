#include "ms/infer/registries.h"

#include <memory>

#include "ms/config/components.h"
#include "ms/infer/torch_layer.h"
#include "ms/io/resource.h"
#include "ms/metrics/metric.h"

namespace ms::infer {
namespace {

// The torch layer's registries, filled once by its register_components on first use.
const Registries& torch_layer_registries() {
  static const std::unique_ptr<Registries> registries = [] {
    auto r = std::make_unique<Registries>();
    load_torch_layer().register_components(*r);
    return r;
  }();
  return *registries;
}

}  // namespace

Registries default_registries() {
  Registries registries;
  register_config_components(registries);
  io::register_io_components(registries);
  metrics::register_metric_components(registries);
  for (const char* name : kTorchLayerRegistries) {
    registries.add_deferred(
        name, [name]() -> const RegistryBase& { return torch_layer_registries().get(name); });
  }
  return registries;
}

}  // namespace ms::infer

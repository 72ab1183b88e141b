// Every registry this ms has, for `ms list` and library users.
#pragma once

#include "ms/config/registry.h"
#include "ms/core/export.h"

namespace ms::infer {

/// The registries of every module: config formats and resource schemes at once, and the torch
/// layer's (models, pipelines, hooks, optimizers, lr_schedulers: kTorchLayerRegistries) by name,
/// loaded with LibTorch the first time one of them is asked for. A new module adds its
/// register_components call here, so that `ms list` needs no change.
MS_API Registries default_registries();

}  // namespace ms::infer

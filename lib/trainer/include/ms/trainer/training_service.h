// `ms train` / `ms eval` in the torch layer: the TrainerService of the torch layer's table.
#pragma once

#include "ms/infer/train.h"

namespace ms::trainer {

/// Builds the trainable model (a fresh head where the folder's weights have none), the batches
/// of the dataset's splits and the Trainer, and runs it; writes <work_dir>/output.
infer::TrainerService& training_service();

}  // namespace ms::trainer

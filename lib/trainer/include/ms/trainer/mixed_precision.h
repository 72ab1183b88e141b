// Mixed-precision training (ModelScope's TorchAMPOptimizerHook / use_fp16): the training forward
// pass under autocast, and for float16 a dynamic loss scale kept as torch.cuda.amp.GradScaler
// keeps it (the scale grows after `growth_interval` clean steps, and a step whose gradients hold
// inf or NaN is skipped with the scale backed off).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ms/tensor/checkpoint.h"

namespace ms::trainer {

class MixedPrecision {
 public:
  /// `options`: {"dtype": "fp16" (default) | "bf16", "loss_scale": a number (a static scale) or
  /// {"init_scale", "growth_factor", "backoff_factor", "growth_interval"} (GradScaler's, with its
  /// defaults 65536, 2, 0.5, 2000)}. `device` is the training device: float16 needs CUDA, where
  /// LibTorch has the half-precision kernels; bfloat16 autocasts on the CPU too. kConfig / kUsage
  /// errors name the option.
  MixedPrecision(const nlohmann::json& options, const std::string& device);

  /// Moves TorchAMPOptimizerHook's own options ("loss_scale", "dtype") out of `hook_options`
  /// (a JSON object) into `into`; what stays is OptimizerHook's.
  static void take_options(nlohmann::json& hook_options, nlohmann::json& into);

  /// "fp16" or "bf16".
  const std::string& dtype() const { return dtype_; }
  /// Autocast on (before the training forward pass) or off (after it, and before anything else).
  void autocast(bool on) const;
  /// The loss to call backward() on: scaled for float16, as it is for bfloat16.
  at::Tensor scale(const at::Tensor& loss) const;
  /// Divides the gradients of `params` by the scale in place; returns false when any of them is
  /// not finite, in which case the optimizer step must be skipped. Then updates the scale.
  bool unscale_and_update(const std::vector<at::Tensor>& params);
  double current_scale() const { return scale_; }

  /// The scale and its growth counter, for exact resume.
  tensor::CheckpointValue state_dict() const;
  void load_state_dict(const tensor::CheckpointValue& state);

 private:
  std::string dtype_ = "fp16";
  bool cuda_ = false;
  bool dynamic_ = true;
  double scale_ = 65536.0, growth_factor_ = 2.0, backoff_factor_ = 0.5;
  std::int64_t growth_interval_ = 2000, clean_steps_ = 0;
};

}  // namespace ms::trainer

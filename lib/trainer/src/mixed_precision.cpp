#include "ms/trainer/mixed_precision.h"

#include <ATen/TensorOperators.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/full.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/zeros.h>
#include <c10/core/Device.h>
#include <torch/version.h>

#include "ms/config/options.h"
#include "ms/core/error.h"

namespace ms::trainer {
namespace {

// The autocast switches of LibTorch 1.13 (Debian) and 2.x (PyPI), whose names changed in 2.3.
void set_autocast(c10::DeviceType device, bool on, at::ScalarType dtype) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_dtype(device, dtype);
  at::autocast::set_autocast_enabled(device, on);
#else
  if (device == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(on);
  }
#endif
  // The weights cast for one forward pass are cached while autocast is on; they go stale once
  // the optimizer steps.
  if (!on) at::autocast::clear_cache();
}

}  // namespace

MixedPrecision::MixedPrecision(const nlohmann::json& options, const std::string& device)
    : cuda_(c10::Device(device).is_cuda()) {
  ComponentOptions o(options, "mixed precision");
  dtype_ = o.text("dtype", "fp16");
  MS_CHECK(dtype_ == "fp16" || dtype_ == "bf16", ErrorCode::kConfig,
           "mixed precision: dtype is \"fp16\" or \"bf16\", got \"{}\"", dtype_);
  if (dtype_ == "fp16" && !cuda_) {
    // A usage error where a GPU could be chosen; a missing part of this build where none can.
    throw Error(at::hasCUDA() ? ErrorCode::kUsage : ErrorCode::kMissingComponent,
                fmt::format("mixed precision in float16 runs on a GPU, and this run is on {}{}",
                            device, at::hasCUDA() ? "" : " (this ms's LibTorch has no CUDA)"),
                at::hasCUDA() ? "train with --device gpu, or set TorchAMPOptimizerHook's dtype to "
                                "\"bf16\""
                              : "set TorchAMPOptimizerHook's dtype to \"bf16\" (the CPU autocasts "
                                "bfloat16), or train in fp32");
  }
  const nlohmann::json scale = o.value("loss_scale");
  if (scale.is_number()) {
    // A number is a static scale (ModelScope passes it to GradScaler.update every step).
    scale_ = scale.get<double>();
    dynamic_ = false;
  } else if (scale.is_object()) {
    ComponentOptions s(scale, "mixed precision: loss_scale");
    scale_ = s.number("init_scale", scale_);
    growth_factor_ = s.number("growth_factor", growth_factor_);
    backoff_factor_ = s.number("backoff_factor", backoff_factor_);
    growth_interval_ = s.integer("growth_interval", growth_interval_);
    (void)s.flag("enabled", true);
    s.check_all_read();
    MS_CHECK(
        growth_factor_ > 1 && backoff_factor_ > 0 && backoff_factor_ < 1 && growth_interval_ > 0,
        ErrorCode::kConfig,
        "mixed precision: loss_scale needs growth_factor > 1, 0 < backoff_factor < 1 and "
        "growth_interval > 0");
  } else {
    MS_CHECK(scale.is_null(), ErrorCode::kConfig,
             "mixed precision: loss_scale is a number or an object of GradScaler options, got {}",
             scale.dump());
  }
  MS_CHECK(scale_ > 0, ErrorCode::kConfig, "mixed precision: the loss scale must be positive");
  o.check_all_read();
}

void MixedPrecision::take_options(nlohmann::json& hook_options, nlohmann::json& into) {
  if (!hook_options.is_object()) return;  // OptimizerHook's option parsing names the mistake
  if (!into.is_object()) into = nlohmann::json::object();
  for (const char* key : {"loss_scale", "dtype"}) {
    if (hook_options.contains(key)) {
      into[key] = hook_options[key];
      hook_options.erase(key);
    }
  }
}

void MixedPrecision::autocast(bool on) const {
  set_autocast(cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU, on,
               dtype_ == "fp16" ? at::kHalf : at::kBFloat16);
}

at::Tensor MixedPrecision::scale(const at::Tensor& loss) const {
  // bfloat16 has float32's range: its gradients do not underflow, and GradScaler is not used.
  return dtype_ == "fp16" ? loss * scale_ : loss;
}

bool MixedPrecision::unscale_and_update(const std::vector<at::Tensor>& params) {
  if (dtype_ != "fp16") return true;
  const double inverse = 1.0 / scale_;
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params)
    if (p.grad().defined()) grads.push_back(p.mutable_grad());
  bool finite = true;
  if (!grads.empty() && grads[0].is_cuda()) {
    // GradScaler's own kernel: every gradient unscaled and checked in a few launches, where the
    // loop below is four per parameter. It has no CPU kernel in LibTorch 1.13.
    const at::TensorOptions options = grads[0].options().dtype(at::kFloat);
    at::Tensor found_inf = at::zeros({1}, options);
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf,
                                                   at::full({1}, inverse, options));
    // One device-to-host read per step, as GradScaler's found_inf.item().
    finite = found_inf.item<float>() == 0;
  } else if (!grads.empty()) {
    at::Tensor all_finite;
    for (at::Tensor& g : grads) {
      g.mul_(inverse);
      const at::Tensor finite_here = at::isfinite(g).all();
      all_finite = all_finite.defined() ? all_finite.logical_and(finite_here) : finite_here;
    }
    finite = all_finite.item<bool>();
  }
  if (!dynamic_) return finite;
  if (!finite) {
    scale_ *= backoff_factor_;
    clean_steps_ = 0;
  } else if (++clean_steps_ == growth_interval_) {
    scale_ *= growth_factor_;
    clean_steps_ = 0;
  }
  return finite;
}

tensor::CheckpointValue MixedPrecision::state_dict() const {
  // GradScaler.state_dict()'s names.
  return tensor::CheckpointValue::dict({{"scale", scale_},
                                        {"growth_factor", growth_factor_},
                                        {"backoff_factor", backoff_factor_},
                                        {"growth_interval", growth_interval_},
                                        {"_growth_tracker", clean_steps_}});
}

void MixedPrecision::load_state_dict(const tensor::CheckpointValue& state) {
  scale_ = state.at("scale").as_float();
  clean_steps_ = state.at("_growth_tracker").as_int();
}

}  // namespace ms::trainer

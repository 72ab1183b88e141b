// SGD, Adam and AdamW as torch/optim/{sgd,adam,adamw}.py (PyTorch 1.13) write their step: the
// same ATen arithmetic with the same scalars in the same order, so the weights stay equal to
// Python's step after step (the reference test checks a few hundred steps). Each operation runs
// on all of a group's parameters at once (the _foreach_ kernels of torch.optim's foreach=True).
#include "ms/trainer/optimizer.h"

#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_addcdiv.h>
#include <ATen/ops/_foreach_addcmul.h>
#include <ATen/ops/_foreach_div.h>
#include <ATen/ops/_foreach_maximum.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_neg.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_foreach_sqrt.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR >= 2
#include <ATen/ops/_foreach_lerp.h>
#endif

#include <algorithm>
#include <cmath>
#include <limits>

#include "ms/config/options.h"
#include "ms/core/error.h"
#include "ms/core/text.h"

namespace ms::trainer {

using tensor::CheckpointValue;

void Optimizer::zero_grad() {
  for (ParamGroup& group : groups_)
    for (at::Tensor& p : group.params) p.mutable_grad() = at::Tensor();
}

std::vector<double> Optimizer::lrs() const {
  std::vector<double> out;
  for (const ParamGroup& group : groups_) out.push_back(group.options.at("lr"));
  return out;
}

void Optimizer::set_lrs(const std::vector<double>& lrs) {
  MS_ASSERT(lrs.size() == groups_.size());
  for (std::size_t i = 0; i < lrs.size(); ++i) groups_[i].options["lr"] = lrs[i];
}

void Optimizer::set_momentums(const std::vector<double>& momentums) {
  MS_ASSERT(momentums.size() == groups_.size());
  for (std::size_t i = 0; i < momentums.size(); ++i) {
    auto& options = groups_[i].options;
    if (options.count("beta1") != 0) {
      options["beta1"] = momentums[i];
    } else if (options.count("momentum") != 0 && options["momentum"] != 0) {
      options["momentum"] = momentums[i];
    } else {
      fail(ErrorCode::kConfig,
           "{} has no momentum for the schedule to cycle: give SGD a momentum, or set "
           "cycle_momentum false",
           type());
    }
  }
}

CheckpointValue Optimizer::group_options(const ParamGroup& group) const {
  CheckpointValue out = CheckpointValue::dict();
  for (const auto& [name, value] : group.options) {
    if (name == "beta2") continue;
    if (name == "beta1") {
      out.set("betas", CheckpointValue::tuple({value, group.options.at("beta2")}));
    } else if (name == "nesterov" || name == "amsgrad" || name == "maximize") {
      out.set(name, value != 0);
    } else {
      out.set(name, value);
    }
  }
  return out;
}

void Optimizer::read_group_options(const CheckpointValue& saved, ParamGroup& group) const {
  for (auto& [name, value] : group.options) {
    if (name == "beta1" || name == "beta2") {
      value = saved.at("betas").items().at(name == "beta1" ? 0 : 1).as_float();
    } else if (name == "nesterov" || name == "amsgrad" || name == "maximize") {
      value = saved.at(name).as_bool() ? 1 : 0;
    } else {
      value = saved.at(name).as_float();
    }
  }
}

CheckpointValue Optimizer::state_dict() const {
  CheckpointValue state = CheckpointValue::dict();
  for (const auto& [index, tensors] : state_) {
    CheckpointValue entry = CheckpointValue::dict();
    for (const auto& [name, t] : tensors) entry.set(name, t);
    state.set(static_cast<std::int64_t>(index), std::move(entry));
  }
  CheckpointValue groups = CheckpointValue::list();
  std::int64_t next = 0;
  for (const ParamGroup& group : groups_) {
    CheckpointValue g = group_options(group);
    CheckpointValue params = CheckpointValue::list();
    for (std::size_t i = 0; i < group.params.size(); ++i) params.push_back(next++);
    g.set("params", std::move(params));
    groups.push_back(std::move(g));
  }
  return CheckpointValue::dict({{"state", std::move(state)}, {"param_groups", std::move(groups)}});
}

void Optimizer::load_state_dict(const CheckpointValue& saved) {
  const auto& groups = saved.at("param_groups").items();
  if (groups.size() != groups_.size())
    fail(ErrorCode::kIntegrity, "the saved {} state has {} parameter groups, this one {}", type(),
         groups.size(), groups_.size());
  std::vector<at::Tensor> params;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].at("params").items().size() != groups_[g].params.size())
      fail(ErrorCode::kIntegrity,
           "the saved {} state has {} parameters in group {}, this model {}: it belongs to another "
           "model",
           type(), groups[g].at("params").items().size(), g, groups_[g].params.size());
    read_group_options(groups[g], groups_[g]);
    for (const at::Tensor& p : groups_[g].params) params.push_back(p);
  }
  std::map<std::size_t, std::map<std::string, at::Tensor>> state;
  for (const auto& [key, entry] : saved.at("state").entries()) {
    const std::int64_t index = key.as_int();
    if (index < 0 || static_cast<std::size_t>(index) >= params.size())
      fail(ErrorCode::kIntegrity, "the saved {} state names parameter {} of {}", type(), index,
           params.size());
    const at::Tensor& p = params[static_cast<std::size_t>(index)];
    for (const auto& [name, value] : entry.entries()) {
      at::Tensor t = value.as_tensor();
      // A buffer shaped like its parameter must match it; scalars (step) are 0-dim.
      if (t.dim() > 0 && t.sizes() != p.sizes())
        fail(ErrorCode::kIntegrity, "the saved {} state of parameter {} ({}) has another shape",
             type(), index, name.as_string());
      state[static_cast<std::size_t>(index)][name.as_string()] =
          t.dim() > 0 ? t.to(p.device(), p.scalar_type()).clone() : t.clone();
    }
  }
  state_ = std::move(state);
}

namespace {

// The parameters of one group that have a gradient and share a device and dtype: what one
// multi-tensor (_foreach_) kernel takes. On a GPU each _foreach_ call is a few launches for all of
// them, where a loop over ~100 parameters is ~10 launches each, and a step of a small model is
// bound by launches. On the CPU a _foreach_ call runs the single-tensor kernel on each tensor in
// turn, so the arithmetic (and the bits) are those of torch.optim's single-tensor step.
struct TensorBatch {
  std::vector<at::Tensor> params;
  std::vector<at::Tensor> grads;
  std::vector<std::size_t> indices;  // numbered across groups, as state_dict() numbers them
};

// The group's batches, in order of each batch's first parameter. `index` is the number of the
// group's first parameter and is moved past the group.
std::vector<TensorBatch> batches_with_grad(const ParamGroup& group, std::size_t& index) {
  std::vector<TensorBatch> batches;
  for (const at::Tensor& p : group.params) {
    const std::size_t i = index++;
    if (!p.grad().defined()) continue;
    auto same = [&](const TensorBatch& b) {
      return b.params[0].device() == p.device() && b.params[0].scalar_type() == p.scalar_type();
    };
    auto it = std::find_if(batches.begin(), batches.end(), same);
    if (it == batches.end()) it = batches.insert(batches.end(), TensorBatch{});
    it->params.push_back(p);
    it->grads.push_back(p.grad());
    it->indices.push_back(i);
  }
  return batches;
}

// Calls fn(group, batch) for every batch of every group.
template <typename Fn>
void for_each_batch(std::vector<ParamGroup>& groups, Fn&& fn) {
  std::size_t index = 0;
  for (ParamGroup& group : groups)
    for (TensorBatch& batch : batches_with_grad(group, index)) fn(group, batch);
}

void check_non_negative(double value, const char* option, const char* type) {
  // The optimizer's tensors are float32: a larger value cannot reach them.
  if (!(value >= 0 && value <= std::numeric_limits<float>::max())) {
    fail(ErrorCode::kConfig, "{}: {} must be a number from 0 to 3.4e38 (float32's range), got {}",
         type, option, value);
  }
}

class Sgd final : public Optimizer {
 public:
  Sgd(const nlohmann::json& config, std::vector<ParamGroup> groups) : Optimizer(std::move(groups)) {
    ComponentOptions o(config, "SGD");
    std::map<std::string, double> d;
    d["lr"] = o.number("lr");
    d["momentum"] = o.number("momentum", 0);
    d["dampening"] = o.number("dampening", 0);
    d["weight_decay"] = o.number("weight_decay", 0);
    d["nesterov"] = o.flag("nesterov", false) ? 1 : 0;
    d["maximize"] = o.flag("maximize", false) ? 1 : 0;
    o.check_all_read();
    for (const char* k : {"lr", "momentum", "weight_decay"}) check_non_negative(d[k], k, "SGD");
    if (d["nesterov"] != 0 && (d["momentum"] <= 0 || d["dampening"] != 0))
      fail(ErrorCode::kConfig, "SGD: nesterov needs a momentum > 0 and dampening 0");
    for (ParamGroup& g : groups_) g.options.insert(d.begin(), d.end());
  }
  std::string type() const override { return "SGD"; }

  void step() override {
    at::NoGradGuard no_grad;
    for_each_batch(groups_, [&](ParamGroup& g, TensorBatch& b) {
      const auto& o = g.options;
      // The update direction; never written in place while it may still be the gradients.
      std::vector<at::Tensor> d_p = o.at("maximize") != 0 ? at::_foreach_neg(b.grads) : b.grads;
      if (o.at("weight_decay") != 0) d_p = at::_foreach_add(d_p, b.params, o.at("weight_decay"));
      const double momentum = o.at("momentum");
      if (momentum != 0) {
        // A parameter's first step starts its buffer at its direction; the others decay theirs.
        std::vector<at::Tensor> buffers(d_p.size()), decaying, decaying_d_p;
        for (std::size_t i = 0; i < d_p.size(); ++i) {
          auto& state = state_of(b.indices[i]);
          auto buf = state.find("momentum_buffer");
          if (buf == state.end()) {
            buffers[i] = state.emplace("momentum_buffer", d_p[i].clone().detach()).first->second;
          } else {
            buffers[i] = buf->second;
            decaying.push_back(buf->second);
            decaying_d_p.push_back(d_p[i]);
          }
        }
        if (!decaying.empty()) {
          at::_foreach_mul_(decaying, momentum);
          at::_foreach_add_(decaying, decaying_d_p, 1 - o.at("dampening"));
        }
        d_p = o.at("nesterov") != 0 ? at::_foreach_add(d_p, buffers, momentum) : buffers;
      }
      at::_foreach_add_(b.params, d_p, -o.at("lr"));
    });
  }
};

// Adam and AdamW: they differ only in how weight decay is applied.
class AdamBase : public Optimizer {
 public:
  AdamBase(const char* name, bool decoupled, double default_decay, const nlohmann::json& config,
           std::vector<ParamGroup> groups)
      : Optimizer(std::move(groups)), name_(name), decoupled_(decoupled) {
    ComponentOptions o(config, name);
    std::map<std::string, double> d;
    d["lr"] = o.number("lr", 1e-3);
    const std::vector<double> betas =
        o.value("betas").is_null() ? std::vector<double>{0.9, 0.999} : o.numbers("betas", 2);
    if (o.value("betas").is_number())
      fail(ErrorCode::kConfig, "{}: betas is a pair [beta1, beta2], got one number", name);
    d["beta1"] = betas[0];
    d["beta2"] = betas[1];
    d["eps"] = o.number("eps", 1e-8);
    d["weight_decay"] = o.number("weight_decay", default_decay);
    d["amsgrad"] = o.flag("amsgrad", false) ? 1 : 0;
    d["maximize"] = o.flag("maximize", false) ? 1 : 0;
    o.check_all_read();
    for (const char* k : {"lr", "eps", "weight_decay"}) check_non_negative(d[k], k, name);
    for (const char* k : {"beta1", "beta2"})
      if (!(d[k] >= 0 && d[k] < 1))
        fail(ErrorCode::kConfig, "{}: betas must lie in [0, 1), got {}", name, d[k]);
    for (ParamGroup& g : groups_) g.options.insert(d.begin(), d.end());
  }
  std::string type() const override { return name_; }

  void step() override {
    at::NoGradGuard no_grad;
    for_each_batch(groups_, [&](ParamGroup& g, TensorBatch& b) {
      const auto& o = g.options;
      const double lr = o.at("lr"), beta1 = o.at("beta1"), beta2 = o.at("beta2");
      const double weight_decay = o.at("weight_decay");
      const bool amsgrad = o.at("amsgrad") != 0;
      std::vector<at::Tensor> grads = o.at("maximize") != 0 ? at::_foreach_neg(b.grads) : b.grads;
      std::vector<at::Tensor> steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs;
      for (std::size_t i = 0; i < b.params.size(); ++i) {
        auto& state = state_of(b.indices[i]);
        if (state.empty()) {
          // 1.13 keeps the step count as a float32 tensor on the CPU: reading it never waits
          // for the GPU.
          state["step"] = at::zeros({}, at::kFloat);
          state["exp_avg"] = at::zeros_like(b.params[i], at::MemoryFormat::Preserve);
          state["exp_avg_sq"] = at::zeros_like(b.params[i], at::MemoryFormat::Preserve);
          if (amsgrad)
            state["max_exp_avg_sq"] = at::zeros_like(b.params[i], at::MemoryFormat::Preserve);
        }
        steps.push_back(state["step"]);
        exp_avgs.push_back(state["exp_avg"]);
        exp_avg_sqs.push_back(state["exp_avg_sq"]);
        if (amsgrad) max_exp_avg_sqs.push_back(state["max_exp_avg_sq"]);
      }
      at::_foreach_add_(steps, 1);
      // Per parameter, as torch.optim keeps them: a parameter added later has fewer steps.
      std::vector<at::Scalar> neg_step_sizes, bias_corrections2_sqrt;
      for (const at::Tensor& step_t : steps) {
        const double step = step_t.item<float>();
        neg_step_sizes.emplace_back(-(lr / (1 - std::pow(beta1, step))));
        bias_corrections2_sqrt.emplace_back(std::sqrt(1 - std::pow(beta2, step)));
      }
      // x * 1.0 is x, bit for bit: the decoupled decay is skipped when it is 0.
      if (decoupled_ && weight_decay != 0) {
        at::_foreach_mul_(b.params, 1 - lr * weight_decay);
      } else if (!decoupled_ && weight_decay != 0) {
        grads = at::_foreach_add(grads, b.params, weight_decay);
      }
      // The first moment as the linked PyTorch's torch.optim computes it: 2.x interpolates (one
      // rounding less than 1.x's scale-and-add, so the bits differ).
#if TORCH_VERSION_MAJOR >= 2
      at::_foreach_lerp_(exp_avgs, grads, 1 - beta1);
#else
      at::_foreach_mul_(exp_avgs, beta1);
      at::_foreach_add_(exp_avgs, grads, 1 - beta1);
#endif
      at::_foreach_mul_(exp_avg_sqs, beta2);
      at::_foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2);
      if (amsgrad) at::_foreach_maximum_(max_exp_avg_sqs, exp_avg_sqs);
      std::vector<at::Tensor> denoms = at::_foreach_sqrt(amsgrad ? max_exp_avg_sqs : exp_avg_sqs);
      at::_foreach_div_(denoms, bias_corrections2_sqrt);
      at::_foreach_add_(denoms, o.at("eps"));
      at::_foreach_addcdiv_(b.params, exp_avgs, denoms, neg_step_sizes);
    });
  }

 private:
  std::string name_;
  bool decoupled_;
};

Registry<OptimizerFactory> make_registry() {
  Registry<OptimizerFactory> r("optimizers");
  r.add(
      "SGD",
      [](const nlohmann::json& o, std::vector<ParamGroup> g) -> std::unique_ptr<Optimizer> {
        return std::make_unique<Sgd>(o, std::move(g));
      },
      "stochastic gradient descent: lr, momentum, dampening, weight_decay, nesterov, maximize");
  r.add(
      "Adam",
      [](const nlohmann::json& o, std::vector<ParamGroup> g) -> std::unique_ptr<Optimizer> {
        return std::make_unique<AdamBase>("Adam", false, 0.0, o, std::move(g));
      },
      "Adam (L2 weight decay in the gradient): lr, betas, eps, weight_decay, amsgrad, maximize");
  r.add(
      "AdamW",
      [](const nlohmann::json& o, std::vector<ParamGroup> g) -> std::unique_ptr<Optimizer> {
        return std::make_unique<AdamBase>("AdamW", true, 1e-2, o, std::move(g));
      },
      "Adam with decoupled weight decay (default 1e-2): lr, betas, eps, weight_decay, amsgrad");
  return r;
}

}  // namespace

const Registry<OptimizerFactory>& optimizer_registry() {
  static const Registry<OptimizerFactory> registry = make_registry();
  return registry;
}

std::unique_ptr<Optimizer> build_optimizer(const nlohmann::json& config,
                                           std::vector<ParamGroup> groups) {
  MS_CHECK(config.is_object() && config.contains("type") && config["type"].is_string(),
           ErrorCode::kConfig, "train.optimizer needs a \"type\" (one of {})",
           join(optimizer_registry().types(), ", "));
  nlohmann::json options = config;
  const std::string type = options["type"].get<std::string>();
  options.erase("type");
  options.erase("options");
  return optimizer_registry().get(type)(options, std::move(groups));
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm, double norm_type) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0;
  const c10::Device device = grads[0].device();
  // Every gradient's norm in one call (one multi-tensor launch on a GPU; the same per-tensor
  // norms on the CPU); the inf-norm is the largest magnitude, exact whichever way it is taken.
  std::vector<at::Tensor> norms = at::_foreach_norm(grads, norm_type);
  for (at::Tensor& n : norms)
    if (n.device() != device) n = n.to(device);
  const at::Tensor total = !std::isinf(norm_type) ? at::stack(norms).norm(norm_type)
                           : norms.size() == 1    ? norms[0]
                                                  : at::stack(norms).max();
  // Python computes max_norm / (total + 1e-6) as Tensor.__rtruediv__ does: reciprocal, then times.
  const at::Tensor clip_coef = (total + 1e-6).reciprocal() * max_norm;
  const at::Tensor clamped = at::clamp(clip_coef, c10::nullopt, 1.0);
  // The norm is read back for the log, which waits for the GPU anyway; the float32 coefficient
  // comes with it, and multiplying by it as a number is one call for every gradient (LibTorch
  // 1.13 has no list-times-tensor call). Times 1 changes no bit: not clipping is no call at all.
  const double norm = total.item<double>();
  const float coefficient = clamped.item<float>();
  if (coefficient != 1.0f) at::_foreach_mul_(grads, coefficient);
  return norm;
}

}  // namespace ms::trainer

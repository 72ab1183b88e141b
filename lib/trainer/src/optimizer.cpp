// SGD, Adam and AdamW as torch/optim/{sgd,adam,adamw}.py (PyTorch 1.13) write their single-tensor
// step: the same ATen calls with the same scalars in the same order, so the weights stay equal to
// Python's step after step (the reference test checks a few hundred steps).
#include "ms/trainer/optimizer.h"

#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/maximum.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

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

// The parameters with a gradient, numbered across groups as state_dict() numbers them.
template <typename Fn>
void for_each_param_with_grad(std::vector<ParamGroup>& groups, Fn&& fn) {
  std::size_t index = 0;
  for (ParamGroup& group : groups) {
    for (at::Tensor& p : group.params) {
      if (p.grad().defined()) fn(group, p, index);
      ++index;
    }
  }
}

void check_non_negative(double value, const char* option, const char* type) {
  if (!(value >= 0))
    fail(ErrorCode::kConfig, "{}: {} must be a number >= 0, got {}", type, option, value);
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
    for_each_param_with_grad(groups_, [&](ParamGroup& g, at::Tensor& p, std::size_t index) {
      const auto& o = g.options;
      at::Tensor d_p = o.at("maximize") != 0 ? -p.grad() : p.grad();
      if (o.at("weight_decay") != 0) d_p = d_p.add(p, o.at("weight_decay"));
      const double momentum = o.at("momentum");
      if (momentum != 0) {
        auto& state = state_of(index);
        auto buf = state.find("momentum_buffer");
        if (buf == state.end()) {
          buf = state.emplace("momentum_buffer", d_p.clone().detach()).first;
        } else {
          buf->second.mul_(momentum).add_(d_p, 1 - o.at("dampening"));
        }
        d_p = o.at("nesterov") != 0 ? d_p.add(buf->second, momentum) : buf->second;
      }
      p.add_(d_p, -o.at("lr"));
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
    for_each_param_with_grad(groups_, [&](ParamGroup& g, at::Tensor& p, std::size_t index) {
      const auto& o = g.options;
      const double lr = o.at("lr"), beta1 = o.at("beta1"), beta2 = o.at("beta2");
      const double weight_decay = o.at("weight_decay");
      at::Tensor grad = o.at("maximize") != 0 ? -p.grad() : p.grad();
      auto& state = state_of(index);
      if (state.empty()) {
        // 1.13 keeps the step count as a float32 tensor.
        state["step"] = at::zeros({}, at::kFloat);
        state["exp_avg"] = at::zeros_like(p, at::MemoryFormat::Preserve);
        state["exp_avg_sq"] = at::zeros_like(p, at::MemoryFormat::Preserve);
        if (o.at("amsgrad") != 0)
          state["max_exp_avg_sq"] = at::zeros_like(p, at::MemoryFormat::Preserve);
      }
      at::Tensor& step_t = state["step"];
      at::Tensor& exp_avg = state["exp_avg"];
      at::Tensor& exp_avg_sq = state["exp_avg_sq"];
      step_t.add_(1);
      if (decoupled_) {
        p.mul_(1 - lr * weight_decay);
      } else if (weight_decay != 0) {
        grad = grad.add(p, weight_decay);
      }
      exp_avg.mul_(beta1).add_(grad, 1 - beta1);
      exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      const double step = step_t.item<float>();
      const double bias_correction1 = 1 - std::pow(beta1, step);
      const double bias_correction2 = 1 - std::pow(beta2, step);
      const double step_size = lr / bias_correction1;
      const double bias_correction2_sqrt = std::sqrt(bias_correction2);
      at::Tensor denom;
      if (o.at("amsgrad") != 0) {
        at::Tensor& max_sq = state["max_exp_avg_sq"];
        at::maximum_out(max_sq, max_sq, exp_avg_sq);
        denom = (max_sq.sqrt() / bias_correction2_sqrt).add_(o.at("eps"));
      } else {
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(o.at("eps"));
      }
      p.addcdiv_(exp_avg, denom, -step_size);
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
  at::Tensor total;
  if (std::isinf(norm_type)) {
    std::vector<at::Tensor> norms;
    for (const at::Tensor& g : grads) norms.push_back(g.detach().abs().max());
    total = norms.size() == 1 ? norms[0] : at::stack(norms).max();
  } else {
    std::vector<at::Tensor> norms;
    for (const at::Tensor& g : grads) norms.push_back(g.detach().norm(norm_type));
    total = at::stack(norms).norm(norm_type);
  }
  // Python computes max_norm / (total + 1e-6) as Tensor.__rtruediv__ does: reciprocal, then times.
  const at::Tensor clip_coef = (total + 1e-6).reciprocal() * max_norm;
  const at::Tensor clamped = at::clamp(clip_coef, c10::nullopt, 1.0);
  for (at::Tensor& g : grads) g.detach().mul_(clamped.to(g.device()));
  return total.item<double>();
}

}  // namespace ms::trainer

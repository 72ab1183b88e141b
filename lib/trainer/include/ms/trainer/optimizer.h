// Optimizers by torch.optim's class names (SGD, Adam, AdamW), each step written out with
// PyTorch 1.13's arithmetic (the same ATen operations in the same order, as multi-tensor
// _foreach_ calls over each group's parameters), so that the weights after N steps equal Python's;
// their state reads and writes as torch.optim's state_dict.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ms/config/registry.h"
#include "ms/tensor/checkpoint.h"

namespace ms::trainer {

/// A group of parameters with its own settings (torch.optim's param_groups entry).
struct ParamGroup {
  std::vector<at::Tensor> params;
  /// The group's options by torch.optim's names: lr, momentum, betas (as beta1/beta2), eps,
  /// weight_decay, ... Numbers only; flags are 0 or 1.
  std::map<std::string, double> options;
};

/// One optimizer over parameter groups. Parameters are leaf tensors with requires_grad; step()
/// reads their .grad (a parameter without a gradient is skipped, as PyTorch does).
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  /// The registered name ("AdamW").
  virtual std::string type() const = 0;

  virtual void step() = 0;
  /// Drops every gradient (PyTorch 2's set_to_none=True, which 1.13's trainer loops also use).
  void zero_grad();

  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  /// The learning rate of each group, and setting them (the LR schedule does, every step).
  std::vector<double> lrs() const;
  void set_lrs(const std::vector<double>& lrs);
  /// Sets each group's momentum (SGD) or beta1 (Adam, AdamW): OneCycleLR cycles it. kConfig when
  /// the optimizer has neither (SGD without momentum).
  void set_momentums(const std::vector<double>& momentums);

  /// torch.optim's state_dict(): {"state": {index: {name: tensor}}, "param_groups": [{options...,
  /// "params": [indices]}]}, parameters numbered across groups in order.
  tensor::CheckpointValue state_dict() const;
  /// Restores state_dict(); another type, group count or parameter shape is kIntegrity.
  void load_state_dict(const tensor::CheckpointValue& state);

 protected:
  explicit Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {}
  /// The per-parameter state (momentum buffers, exp_avg, ...) of parameter `index`.
  std::map<std::string, at::Tensor>& state_of(std::size_t index) { return state_[index]; }
  /// How each option is written in state_dict() (betas as one tuple, flags as bools).
  virtual tensor::CheckpointValue group_options(const ParamGroup& group) const;
  virtual void read_group_options(const tensor::CheckpointValue& saved, ParamGroup& group) const;

  std::vector<ParamGroup> groups_;

 private:
  std::map<std::size_t, std::map<std::string, at::Tensor>> state_;
};

/// Builds an optimizer from its options (a `train.optimizer` object without `type` and `options`)
/// over the groups, whose `options` hold per-group overrides (none by default).
using OptimizerFactory = std::function<std::unique_ptr<Optimizer>(const nlohmann::json& options,
                                                                  std::vector<ParamGroup> groups)>;

/// SGD (lr required, momentum 0, dampening 0, weight_decay 0, nesterov false), Adam (lr 1e-3,
/// betas [0.9, 0.999], eps 1e-8, weight_decay 0, amsgrad false), AdamW (the same with
/// weight_decay 1e-2).
const Registry<OptimizerFactory>& optimizer_registry();

/// An optimizer from a `train.optimizer` config (`type` plus options; `options`, the hook's, is
/// left to the OptimizerHook). An unknown type is kNotFound with the close matches; a missing,
/// unknown or ill-typed option is kConfig naming it.
std::unique_ptr<Optimizer> build_optimizer(const nlohmann::json& config,
                                           std::vector<ParamGroup> groups);

/// torch.nn.utils.clip_grad_norm_: scales the gradients of `params` so that their total
/// `norm_type`-norm (inf for the max norm) is at most `max_norm`; returns the norm before clipping.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm, double norm_type = 2);

}  // namespace ms::trainer

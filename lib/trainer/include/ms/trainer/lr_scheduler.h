// Learning-rate schedules by torch.optim.lr_scheduler's class names, stepped as PyTorch steps
// them: each step computes the next rates from the current ones (PyTorch's "chainable" form), in
// the same double arithmetic, so the values per step equal Python's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ms/config/registry.h"

namespace ms::trainer {

/// One schedule over the optimizer's parameter groups. Constructed as PyTorch constructs one: the
/// groups start at `base_lrs`, then step 0 runs (which may scale them, e.g. LinearLR).
class LrScheduler {
 public:
  virtual ~LrScheduler() = default;
  /// The registered name ("StepLR").
  virtual std::string type() const = 0;
  /// The groups' initial rates (PyTorch's base_lrs).
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  /// The rate of each parameter group now (PyTorch's get_last_lr()).
  const std::vector<double>& lrs() const { return lrs_; }
  /// The momentum (SGD) or beta1 (Adam) of each group, for schedules that cycle it (OneCycleLR);
  /// empty otherwise.
  virtual std::vector<double> momentums() const { return {}; }
  /// Steps done since step 0 (PyTorch's last_epoch).
  std::int64_t last_epoch() const { return last_epoch_; }
  /// One epoch or iteration on: the next rates. ReduceLROnPlateau needs step_with_metric().
  void step();
  /// One step on, given the value of the monitored metric (ReduceLROnPlateau; the
  /// PlateauLrSchedulerHook passes it); other schedules refuse it (kConfig).
  void step_with_metric(double metric);
  /// What a checkpoint keeps (the step count and the current rates), and its reverse; a state of
  /// another type or group count is kIntegrity.
  virtual nlohmann::json state() const;
  virtual void load_state(const nlohmann::json& state);
  /// The fields of torch.optim.lr_scheduler's state_dict() that change as a schedule steps
  /// (`base_lrs`, `last_epoch`, `_step_count`, `_last_lr`; ReduceLROnPlateau's `last_epoch`,
  /// `_last_lr`, `best`, `num_bad_epochs`, `cooldown_counter`), of the schedule Python
  /// ModelScope's trainer saves and resumes (under a warmup, the one it wraps: ModelScope's warmup
  /// goes on from that schedule's `_step_count`). Python's load_state_dict() takes them over the
  /// values of a schedule built from the same configuration.
  virtual nlohmann::json torch_state() const;
  /// Sets the groups' current rates, as another hand on the same optimizer does (a warmup
  /// resetting them under the schedule it wraps): the next step goes on from these.
  void set_lrs(std::vector<double> lrs);

 protected:
  explicit LrScheduler(std::vector<double> base_lrs)
      : base_lrs_(std::move(base_lrs)), lrs_(base_lrs_) {}
  /// Called by the concrete class's constructor once its options are set: step 0.
  void start();
  /// The rates after the step to `last_epoch()`, from the current ones (lrs()).
  virtual std::vector<double> next() = 0;
  /// Whether the schedule is driven by a metric (then `metric_` holds the value of this step).
  virtual bool takes_metric() const { return false; }
  std::optional<double> metric_;

  std::vector<double> base_lrs_;

 private:
  std::vector<double> lrs_;
  std::int64_t last_epoch_ = -1;
};

/// Builds a schedule from its options (a `train.lr_scheduler` object without `type` and
/// `options`); a missing, unknown or ill-typed option is kConfig naming it.
using LrSchedulerFactory = std::function<std::unique_ptr<LrScheduler>(
    const nlohmann::json& options, std::vector<double> base_lrs)>;

/// StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR, ConstantLR, PolynomialLR,
/// OneCycleLR, ReduceLROnPlateau.
const Registry<LrSchedulerFactory>& lr_scheduler_registry();

/// `base` wrapped in ModelScope's warmup (`lr_scheduler.options.warmup`: `type` LinearWarmup,
/// ConstantWarmup or ExponentialWarmup, `warmup_iters`, `warmup_ratio` 0.1), stepped as
/// modelscope/trainers/lrscheduler/warmup/base.py steps it: for the first `warmup_iters` steps the
/// rates are reset to the initial ones, the base schedule steps from there, and the result is
/// scaled (Linear: 1 - (1 - k/W)(1 - r); Constant: r while k < W; Exponential: r^(1 - k/W));
/// after that the base schedule goes on alone.
std::unique_ptr<LrScheduler> wrap_in_warmup(std::unique_ptr<LrScheduler> base,
                                            const nlohmann::json& warmup);

/// A schedule from a `train.lr_scheduler` config (`type` plus options; `options` — the hook's —
/// is left for the hook). Unknown types are kNotFound with the close matches.
std::unique_ptr<LrScheduler> build_lr_scheduler(const nlohmann::json& config,
                                                std::vector<double> base_lrs);

}  // namespace ms::trainer

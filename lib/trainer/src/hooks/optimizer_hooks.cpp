// The hooks that change the weights and rates (modelscope/trainers/hooks/optimizer/base.py,
// lr_scheduler_hook.py): backward, gradient clipping and accumulation, optimizer and LR steps.
#include <ATen/TensorOperators.h>

#include <cmath>

#include "builtin_hooks.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/trainer/mixed_precision.h"

namespace ms::trainer {
namespace {

class OptimizerHook final : public Hook {
 public:
  explicit OptimizerHook(const nlohmann::json& options) {
    ComponentOptions o(options, "OptimizerHook");
    cumulative_iters_ = positive(o, "cumulative_iters", 1, "OptimizerHook");
    const nlohmann::json clip = o.value("grad_clip");
    if (!clip.is_null()) {
      ComponentOptions c(clip, "OptimizerHook.grad_clip");
      max_norm_ = c.number("max_norm");
      const nlohmann::json norm = c.value("norm_type");
      if (norm.is_string()) {
        MS_CHECK(norm == "inf", ErrorCode::kConfig,
                 "OptimizerHook.grad_clip: norm_type is a number or \"inf\", got {}", norm.dump());
        norm_type_ = INFINITY;
      } else {
        norm_type_ = c.number("norm_type", 2.0);
      }
      c.check_all_read();
      MS_CHECK(*max_norm_ > 0, ErrorCode::kConfig,
               "OptimizerHook.grad_clip: max_norm must be positive, got {}", *max_norm_);
    }
    const nlohmann::json keys = o.value("loss_keys");
    if (keys.is_string()) {
      loss_keys_ = {keys.get<std::string>()};
    } else if (keys.is_array()) {
      for (const auto& k : keys) {
        MS_CHECK(k.is_string(), ErrorCode::kConfig, "OptimizerHook: loss_keys holds names");
        loss_keys_.push_back(k.get<std::string>());
      }
    } else if (!keys.is_null()) {
      fail(ErrorCode::kConfig, "OptimizerHook: loss_keys is a name or a list of names");
    }
    skip_nonfinite_ = o.flag("skip_nonfinite_loss", false);
    // Set by the trainer for use_fp16 / TorchAMPOptimizerHook (optimizer_hook_options).
    mixed_precision_options_ = o.value("mixed_precision");
    o.check_all_read();
  }
  std::string type() const override { return "OptimizerHook"; }
  int default_priority() const override { return priority::kAboveNormal; }

  void before_run(Trainer& t) override {
    trainer_ = &t;
    if (!mixed_precision_options_.is_null()) {
      mixed_precision_.emplace(mixed_precision_options_, t.device());
      if (pending_scaler_) mixed_precision_->load_state_dict(*pending_scaler_);
      pending_scaler_.reset();
      log::info("mixed precision: autocast to {}{}", mixed_precision_->dtype(),
                mixed_precision_->dtype() == "fp16"
                    ? fmt::format(", loss scale {}", mixed_precision_->current_scale())
                    : std::string());
    }
    t.optimizer().zero_grad();
    t.set_cumulative_iters(cumulative_iters_);
    check_accumulation_resumes(t.iter());
    // Gradients a checkpoint kept from an accumulation in progress (restored before this runs).
    if (!pending_grads_.empty()) {
      std::size_t k = 0;
      for (auto& group : t.optimizer().groups())
        for (at::Tensor& p : group.params) {
          MS_CHECK(k < pending_grads_.size(), ErrorCode::kIntegrity,
                   "the checkpoint's accumulated gradients do not fit this model");
          if (pending_grads_[k].defined()) p.mutable_grad() = pending_grads_[k].to(p.device());
          ++k;
        }
      pending_grads_.clear();
    }
  }

  // With gradient accumulation, a checkpoint in the middle of an accumulation keeps the
  // gradients summed so far ("grads"), so that a resumed run steps with the same sum. Mixed
  // precision adds the loss scale ("loss_scaler", GradScaler's state).
  tensor::CheckpointValue state_dict() const override {
    // The count the sums below are made with, and the steps counted: a resumed run with another
    // is checked against it (check_accumulation_resumes).
    tensor::CheckpointValue state = tensor::CheckpointValue::dict();
    state.set("cumulative_iters", cumulative_iters_);
    if (cumulative_iters_ > 1 && trainer_ != nullptr) {
      std::vector<at::Tensor> sums;
      for (const auto& group : trainer_->optimizer().groups())
        for (const at::Tensor& p : group.params)
          sums.push_back(p.grad().defined() ? p.grad().detach().clone() : at::Tensor());
      // Under data parallelism the step uses the mean over the ranks of their sums, so the mean
      // is what every rank resumes with (equal to the uninterrupted step up to float rounding).
      if (Distributed* d = trainer_->distributed()) d->average(sums);
      tensor::CheckpointValue grads = tensor::CheckpointValue::list();
      for (const at::Tensor& g : sums)
        grads.push_back(g.defined() ? tensor::CheckpointValue(g.cpu()) : tensor::CheckpointValue());
      state.set("grads", std::move(grads));
    }
    if (mixed_precision_) state.set("loss_scaler", mixed_precision_->state_dict());
    return state;
  }
  void load_state_dict(const tensor::CheckpointValue& state) override {
    pending_grads_.clear();
    if (const auto* grads = state.find("grads")) {
      for (const auto& g : grads->items())
        pending_grads_.push_back(g.is_none() ? at::Tensor() : g.as_tensor());
    }
    saved_cumulative_iters_.reset();
    if (const auto* saved = state.find("cumulative_iters"))
      saved_cumulative_iters_ = saved->as_int();
    if (const auto* scaler = state.find("loss_scaler")) pending_scaler_ = *scaler;
  }

  // Mixed precision: the forward pass between this and after_train_iter runs under autocast.
  void before_train_iter(Trainer&) override {
    if (mixed_precision_) mixed_precision_->autocast(true);
  }
  void after_run(Trainer&) override {
    if (mixed_precision_) mixed_precision_->autocast(false);
  }

  void after_train_iter(Trainer& t) override {
    // Backward, clipping, the step and everything after this hook run outside autocast.
    if (mixed_precision_) mixed_precision_->autocast(false);
    at::Tensor loss;
    for (const std::string& key : loss_keys_) {
      auto it = t.train_outputs().find(key);
      MS_CHECK(it != t.train_outputs().end(), ErrorCode::kConfig,
               "OptimizerHook: the model's outputs have no '{}' (loss_keys)", key);
      loss = loss.defined() ? loss + it->second : it->second;
    }
    double value = loss.detach().item<double>();
    // Under data parallelism the ranks decide together (a NaN on one makes the mean NaN), so
    // that none skips a batch whose gradients the others wait to average.
    if (Distributed* d = t.distributed()) value = d->mean(value);
    if (!std::isfinite(value)) {
      const char* what = std::isnan(value) ? "NaN" : value > 0 ? "inf" : "-inf";
      if (!skip_nonfinite_) {
        throw Error(ErrorCode::kIntegrity,
                    fmt::format("the loss is {} at iteration {} (epoch {}, batch {})", what,
                                t.iter() + 1, t.epoch() + 1, t.inner_iter() + 1),
                    "lower the learning rate or clip gradients (train.optimizer.options."
                    "grad_clip); OptimizerHook's skip_nonfinite_loss: true skips such batches");
      }
      log::warn("iteration {}: the loss is {}; the batch is skipped (skip_nonfinite_loss)",
                t.iter() + 1, what);
      t.optimizer().zero_grad();
      return;
    }
    if (cumulative_iters_ > 1) loss = loss / static_cast<double>(cumulative_iters_);
    const bool stepping = every_n_iters(t, cumulative_iters_);
    std::vector<at::Tensor> params;
    for (const auto& g : t.optimizer().groups())
      params.insert(params.end(), g.params.begin(), g.params.end());
    // DDP's gradient: the mean over the ranks' batches, before clipping (as DDP's backward
    // hands it to clip_grad_norm_), all-reduced bucket by bucket while the backward pass runs;
    // with accumulation only the stepping pass syncs (DDP's no_sync for the others).
    Distributed* d = stepping ? t.distributed() : nullptr;
    if (d != nullptr) d->begin_gradient_average(params);
    (mixed_precision_ ? mixed_precision_->scale(loss) : loss).backward();
    if (d != nullptr) d->finish_gradient_average();
    if (stepping) {
      // float16: gradients back to their true size before clipping; a step whose gradients
      // overflowed is skipped (as GradScaler.step does), the same on every rank since the
      // averaged gradients are.
      if (mixed_precision_ && !mixed_precision_->unscale_and_update(params)) {
        log::info("iteration {}: float16 gradients overflowed; step skipped, loss scale now {}",
                  t.iter() + 1, mixed_precision_->current_scale());
        t.optimizer().zero_grad();
        return;
      }
      if (max_norm_)
        t.log_buffer().update("grad_norm", clip_grad_norm(params, *max_norm_, norm_type_));
      t.optimizer().step();
      t.optimizer().zero_grad();
    }
  }

 private:
  // A step sums the gradients of the cumulative_iters batches before it (each loss divided by
  // it), counted from the run's first iteration. A run resumed after `done` iterations with
  // another count would step with a sum the checkpoint's count never meant (its accumulation cut
  // part way), or with fewer batches than its own count (its first step falling elsewhere).
  void check_accumulation_resumes(std::int64_t done) {
    if (!saved_cumulative_iters_ || *saved_cumulative_iters_ == cumulative_iters_) return;
    const std::int64_t saved = *saved_cumulative_iters_;
    if (done % saved == 0 && done % cumulative_iters_ == 0) return;
    throw Error(
        ErrorCode::kConfig,
        fmt::format("the checkpoint was taken after {} iterations with cumulative_iters {}; "
                    "this run has cumulative_iters {}, and {} is not a multiple of both: its first "
                    "step would sum the gradients of another number of batches",
                    done, saved, cumulative_iters_, done),
        fmt::format("resume with cumulative_iters {} (train.optimizer.options), or from a "
                    "checkpoint taken after a multiple of both counts",
                    saved));
  }

  std::int64_t cumulative_iters_ = 1;
  // The count the resumed checkpoint was taken with (unknown for checkpoints of older ms).
  std::optional<std::int64_t> saved_cumulative_iters_;
  std::optional<double> max_norm_;
  double norm_type_ = 2;
  std::vector<std::string> loss_keys_{"loss"};
  bool skip_nonfinite_ = false;
  Trainer* trainer_ = nullptr;
  std::vector<at::Tensor> pending_grads_;
  nlohmann::json mixed_precision_options_;
  std::optional<MixedPrecision> mixed_precision_;
  std::optional<tensor::CheckpointValue> pending_scaler_;  // restored before before_run
};

// For models that step themselves: nothing happens.
class NoneHook final : public Hook {
 public:
  NoneHook(std::string type, const nlohmann::json& options) : type_(std::move(type)) {
    ComponentOptions(options, type_).check_all_read();
  }
  std::string type() const override { return type_; }

 private:
  std::string type_;
};

// Writes the first group's rate into the log buffer ("lr").
void log_lr(Trainer& t) { t.log_buffer().output()["lr"] = t.optimizer().lrs().at(0); }

// Applies the schedule's rates (and cycled momentums) to the optimizer.
void apply_schedule(Trainer& t, LrScheduler& s) {
  t.optimizer().set_lrs(s.lrs());
  if (!s.momentums().empty()) t.optimizer().set_momentums(s.momentums());
}

class LrSchedulerHook final : public Hook {
 public:
  explicit LrSchedulerHook(const nlohmann::json& options) {
    ComponentOptions o(options, "LrSchedulerHook");
    by_epoch_ = read_by_epoch(o, "lr_strategy");
    // The warmup wraps the schedule when the trainer builds it (Trainer::lr_scheduler), so that
    // a resumed run restores the wrapped schedule.
    (void)o.value("warmup");
    o.check_all_read();
  }
  std::string type() const override { return "LrSchedulerHook"; }
  int default_priority() const override { return priority::kLow; }

  void before_run(Trainer& t) override {
    MS_CHECK(t.lr_scheduler() != nullptr, ErrorCode::kConfig,
             "{}: LrSchedulerHook needs train.lr_scheduler", t.config().source());
  }
  void before_train_epoch(Trainer& t) override { log_lr(t); }
  void after_train_iter(Trainer& t) override {
    if (!by_epoch_ && t.iter() >= t.cumulative_iters() - 1) {
      t.lr_scheduler()->step();
      apply_schedule(t, *t.lr_scheduler());
    }
    log_lr(t);
  }
  void after_train_epoch(Trainer& t) override {
    if (by_epoch_) {
      t.lr_scheduler()->step();
      apply_schedule(t, *t.lr_scheduler());
    }
  }

 private:
  bool by_epoch_ = true;
};

// ReduceLROnPlateau, stepped after each epoch with the last evaluation's metric_key.
class PlateauLrSchedulerHook final : public Hook {
 public:
  explicit PlateauLrSchedulerHook(const nlohmann::json& options) {
    ComponentOptions o(options, "PlateauLrSchedulerHook");
    metric_key_ = o.text("metric_key", "");
    MS_CHECK(!metric_key_.empty(), ErrorCode::kConfig,
             "PlateauLrSchedulerHook needs metric_key (a metric of the evaluation, e.g. "
             "\"accuracy\")");
    (void)o.value("warmup");
    o.check_all_read();
  }
  std::string type() const override { return "PlateauLrSchedulerHook"; }
  int default_priority() const override { return priority::kLow; }

  void before_run(Trainer& t) override {
    MS_CHECK(t.lr_scheduler() != nullptr, ErrorCode::kConfig,
             "{}: PlateauLrSchedulerHook needs train.lr_scheduler (ReduceLROnPlateau)",
             t.config().source());
    t.check_metric_key(metric_key_, type());
  }
  void before_train_epoch(Trainer& t) override { log_lr(t); }
  void after_train_iter(Trainer& t) override { log_lr(t); }
  void after_train_epoch(Trainer& t) override {
    if (t.metric_values().is_null()) {
      log::warn("PlateauLrSchedulerHook: no evaluation has run by epoch {}; the rate stays",
                t.epoch() + 1);
      return;
    }
    MS_CHECK(t.metric_values().contains(metric_key_), ErrorCode::kConfig,
             "PlateauLrSchedulerHook: metric_key '{}' is not among the evaluation's metrics ({})",
             metric_key_, t.metric_values().dump());
    t.lr_scheduler()->step_with_metric(t.metric_values()[metric_key_].get<double>());
    apply_schedule(t, *t.lr_scheduler());
  }

 private:
  std::string metric_key_;
};

}  // namespace

void register_optimizer_hooks(Registry<HookFactory>& r) {
  r.add(
      "OptimizerHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<OptimizerHook>(o);
      },
      "backward, grad_clip {max_norm, norm_type}, cumulative_iters, loss_keys, "
      "skip_nonfinite_loss, mixed_precision; then the optimizer step");
  r.add(
      "TorchAMPOptimizerHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        // The trainer folds this hook into the OptimizerHook (optimizer_hook_options); built on
        // its own, it is that OptimizerHook.
        nlohmann::json options = o, amp;
        if (options.is_object()) {
          MixedPrecision::take_options(options, amp);
          options["mixed_precision"] = amp;
        }
        return std::make_shared<OptimizerHook>(options);
      },
      "OptimizerHook with the forward pass under autocast: dtype fp16 (GPU; dynamic loss_scale "
      "as GradScaler, or a number) or bf16 (CPU too)");
  r.add(
      "NoneOptimizerHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<NoneHook>("NoneOptimizerHook", o);
      },
      "no backward and no optimizer step (models that optimise themselves)");
  r.add(
      "LrSchedulerHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<LrSchedulerHook>(o);
      },
      "steps train.lr_scheduler by epoch or by iteration (by_epoch | lr_strategy), with warmup");
  r.add(
      "PlateauLrSchedulerHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<PlateauLrSchedulerHook>(o);
      },
      "steps ReduceLROnPlateau after each epoch with the evaluation's metric_key");
  r.add(
      "NoneLrSchedulerHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<NoneHook>("NoneLrSchedulerHook", o);
      },
      "leaves the learning rate as it is");
}

}  // namespace ms::trainer

// Evaluation during training (modelscope/trainers/hooks/evaluation_hook.py, early_stop_hook.py):
// EvaluationHook runs the metrics every `interval` epochs or iterations and puts the values in the
// log buffer; EarlyStopHook ends the run when a metric stops improving.
#include <cmath>

#include "builtin_hooks.h"
#include "ms/core/error.h"
#include "ms/core/log.h"

namespace ms::trainer {
namespace {

class EvaluationHook final : public Hook {
 public:
  explicit EvaluationHook(const nlohmann::json& options) {
    ComponentOptions o(options, "EvaluationHook");
    interval_ = positive(o, "interval", 1, "EvaluationHook");
    by_epoch_ = read_by_epoch(o, "eval_strategy");
    const nlohmann::json start = o.value("start_idx");
    if (!start.is_null()) start_idx_ = o.integer("start_idx");
    o.check_all_read();
  }
  std::string type() const override { return "EvaluationHook"; }
  int default_priority() const override { return priority::kNormal; }

  void after_train_iter(Trainer& t) override {
    if (!by_epoch_ && due(t, t.iter())) {
      evaluate(t);
      t.set_last_eval_tag("iter", t.iter());
    }
  }
  void after_train_epoch(Trainer& t) override {
    if (by_epoch_ && due(t, t.epoch())) {
      evaluate(t);
      t.set_last_eval_tag("epoch", t.epoch());
    }
  }

 private:
  bool due(const Trainer& t, std::int64_t current) const {
    if (!start_idx_) return by_epoch_ ? every_n_epochs(t, interval_) : every_n_iters(t, interval_);
    if (current + 1 < *start_idx_) return false;
    return (current + 1 - *start_idx_) % interval_ == 0;
  }
  static void evaluate(Trainer& t) {
    const Json values = t.evaluate();
    for (const auto& [key, value] : values.items())
      t.log_buffer().output()["evaluation/" + key] = value;
    t.log_buffer().ready = true;
  }

  std::int64_t interval_ = 1;
  bool by_epoch_ = true;
  std::optional<std::int64_t> start_idx_;
};

class EarlyStopHook final : public Hook {
 public:
  explicit EarlyStopHook(const nlohmann::json& options) {
    ComponentOptions o(options, "EarlyStopHook");
    metric_key_ = o.text("metric_key", "");
    MS_CHECK(!metric_key_.empty(), ErrorCode::kConfig,
             "EarlyStopHook needs metric_key (a metric of the evaluation, e.g. \"accuracy\")");
    rule_ = o.text("rule", "max");
    MS_CHECK(rule_ == "max" || rule_ == "min", ErrorCode::kConfig,
             "EarlyStopHook: rule must be \"max\" or \"min\", got \"{}\"", rule_);
    patience_ = positive(o, "patience", 3, "EarlyStopHook");
    min_delta_ = o.number("min_delta", 0);
    check_finite_ = o.flag("check_finite", true);
    by_epoch_ = read_by_epoch(o, "early_stop_strategy");
    interval_ = positive(o, "interval", 1, "EarlyStopHook");
    o.check_all_read();
  }
  std::string type() const override { return "EarlyStopHook"; }
  int default_priority() const override { return priority::kVeryLow; }

  void before_run(Trainer& t) override {
    // As BestCkptSaverHook: without evaluations it would train on and never check anything.
    MS_CHECK(!t.hooks().of_type("EvaluationHook").empty(), ErrorCode::kConfig,
             "{}: EarlyStopHook stops on evaluations, but no EvaluationHook is configured (add "
             "evaluation.period or an EvaluationHook to train.hooks)",
             t.config().source());
    t.check_metric_key(metric_key_, type());
  }
  void after_train_epoch(Trainer& t) override {
    if (by_epoch_ && every_n_epochs(t, interval_) && should_stop(t)) stop(t);
  }
  void after_train_iter(Trainer& t) override {
    if (!by_epoch_ && every_n_iters(t, interval_) && should_stop(t)) stop(t);
  }

  tensor::CheckpointValue state_dict() const override {
    return tensor::CheckpointValue::dict(
        {{"wait_count", wait_count_},
         {"best_score", best_ ? tensor::CheckpointValue(*best_) : tensor::CheckpointValue()}});
  }
  void load_state_dict(const tensor::CheckpointValue& state) override {
    wait_count_ = state.at("wait_count").as_int();
    const auto& best = state.at("best_score");
    best_ = best.is_none() ? std::nullopt : std::optional<double>(best.as_float());
  }

 private:
  bool should_stop(const Trainer& t) {
    if (t.metric_values().is_null()) return false;
    MS_CHECK(t.metric_values().contains(metric_key_), ErrorCode::kConfig,
             "EarlyStopHook: metric_key '{}' is not among the evaluation's metrics ({})",
             metric_key_, t.metric_values().dump());
    const double value = t.metric_values()[metric_key_].get<double>();
    if (check_finite_ && !std::isfinite(value)) {
      log::warn("EarlyStopHook: {} is {}: stopping", metric_key_, value);
      return true;
    }
    // ModelScope's test for both rules: rule(value - min_delta, best).
    const bool improved =
        !best_ || (rule_ == "max" ? value - min_delta_ > *best_ : value - min_delta_ < *best_);
    if (improved) {
      best_ = value;
      wait_count_ = 0;
    } else {
      ++wait_count_;
    }
    return wait_count_ >= patience_;
  }
  void stop(Trainer& t) {
    log::warn("EarlyStopHook: {} has not improved for {} checks: training stops after this epoch",
              metric_key_, wait_count_);
    t.stop_training();
  }

  std::string metric_key_, rule_;
  std::int64_t patience_ = 3, interval_ = 1, wait_count_ = 0;
  double min_delta_ = 0;
  bool check_finite_ = true, by_epoch_ = true;
  std::optional<double> best_;
};

}  // namespace

void register_evaluation_hooks(Registry<HookFactory>& r) {
  r.add(
      "EvaluationHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<EvaluationHook>(o);
      },
      "evaluates every interval epochs or iterations (by_epoch | eval_strategy, start_idx)");
  r.add(
      "EarlyStopHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<EarlyStopHook>(o);
      },
      "stops when metric_key has not improved (rule, min_delta) for patience checks");
}

}  // namespace ms::trainer

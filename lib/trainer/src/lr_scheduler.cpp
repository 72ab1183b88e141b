// The schedules, each get_lr() of torch.optim.lr_scheduler (PyTorch 1.13) written out: the same
// branches and the same order of double operations, so that the rates match Python's exactly.
#include "ms/trainer/lr_scheduler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include "ms/config/options.h"
#include "ms/core/error.h"
#include "ms/core/text.h"

namespace ms::trainer {

void LrScheduler::start() { step(); }

void LrScheduler::step() {
  if (takes_metric() && !metric_ && last_epoch_ >= 0) {
    throw Error(ErrorCode::kConfig, fmt::format("{} steps on a metric value", type()),
                "use it with PlateauLrSchedulerHook and its metric_key");
  }
  ++last_epoch_;
  lrs_ = next();
  metric_.reset();
  // A schedule's options can send the rate where no optimizer should go (an overflowing factor):
  // stop before a step uses it. Negative rates are torch's own in one case (OneCycleLR's three
  // phases end a hair below 0) and kept; the options that make them otherwise (a negative
  // gamma or power) are refused when the schedule is built.
  for (double lr : lrs_) {
    if (!std::isfinite(lr)) {
      fail(ErrorCode::kConfig,
           "{}: the learning rate becomes {} at step {}: check the schedule's options", type(), lr,
           last_epoch_);
    }
  }
}

void LrScheduler::step_with_metric(double metric) {
  if (!takes_metric())
    fail(ErrorCode::kConfig, "{} does not step on a metric (only ReduceLROnPlateau does)", type());
  if (!std::isfinite(metric))
    fail(ErrorCode::kIntegrity, "{}: the monitored metric is {} at step {}", type(), metric,
         last_epoch_ + 1);
  metric_ = metric;
  step();
}

nlohmann::json LrScheduler::state() const {
  return {{"type", type()}, {"last_epoch", last_epoch_}, {"lrs", lrs_}, {"base_lrs", base_lrs_}};
}

nlohmann::json LrScheduler::torch_state() const {
  // torch's constructor takes the initial step (its _step_count 1, last_epoch 0), as start() does.
  return {{"base_lrs", base_lrs_},
          {"last_epoch", last_epoch_},
          {"_step_count", last_epoch_ + 1},
          {"_last_lr", lrs_}};
}

void LrScheduler::set_lrs(std::vector<double> lrs) {
  if (lrs.size() != lrs_.size())
    fail(ErrorCode::kInternal, "{}: {} rates for {} parameter groups", type(), lrs.size(),
         lrs_.size());
  lrs_ = std::move(lrs);
}

void LrScheduler::load_state(const nlohmann::json& state) {
  // Another schedule in the configuration than in the checkpoint: the run's, not the file's.
  if (const auto saved = state.find("type");
      saved != state.end() && saved->is_string() && *saved != type()) {
    throw Error(ErrorCode::kUsage,
                fmt::format("the checkpoint was trained with the {} schedule; this run's "
                            "train.lr_scheduler is {}",
                            saved->get<std::string>(), type()),
                "resume with the schedule it was trained with, or start over with --overwrite");
  }
  try {
    if (state.at("type") != type()) throw std::runtime_error("it is a " + state.at("type").dump());
    auto lrs = state.at("lrs").get<std::vector<double>>();
    auto base = state.at("base_lrs").get<std::vector<double>>();
    if (lrs.size() != lrs_.size() || base.size() != base_lrs_.size())
      throw std::runtime_error("it has another number of parameter groups");
    last_epoch_ = state.at("last_epoch").get<std::int64_t>();
    lrs_ = std::move(lrs);
    base_lrs_ = std::move(base);
  } catch (const std::exception& e) {
    fail(ErrorCode::kIntegrity, "cannot restore the {} schedule from the checkpoint: {}", type(),
         e.what());
  }
}

namespace {

// Python's a % b for b > 0 (never negative).
std::int64_t python_mod(std::int64_t a, std::int64_t b) { return ((a % b) + b) % b; }

// The rates as they are (no change at this step).
std::vector<double> unchanged(const std::vector<double>& lrs) { return lrs; }

std::vector<double> scaled(const std::vector<double>& lrs, double factor) {
  std::vector<double> out = lrs;
  for (double& lr : out) lr *= factor;
  return out;
}

void require_positive(std::int64_t value, const char* option, const char* type) {
  if (value <= 0)
    fail(ErrorCode::kConfig, "{}: option '{}' must be positive, got {}", type, option, value);
}

void require_non_negative(double value, const char* option, const char* type) {
  if (!(std::isfinite(value) && value >= 0))
    fail(ErrorCode::kConfig, "{}: option '{}' must be a number >= 0, got {}", type, option, value);
}

// For divisors and rates the schedule ends at: a negative one makes a negative learning rate,
// which ascends the loss without a word.
void require_positive_number(double value, const char* option, const char* type) {
  if (!(std::isfinite(value) && value > 0))
    fail(ErrorCode::kConfig, "{}: option '{}' must be a number > 0, got {}", type, option, value);
}

class StepLR : public LrScheduler {
 public:
  StepLR(const nlohmann::json& options, std::vector<double> base) : LrScheduler(std::move(base)) {
    ComponentOptions o(options, type());
    step_size_ = o.integer("step_size");
    gamma_ = o.number("gamma", 0.1);
    o.check_all_read();
    require_positive(step_size_, "step_size", "StepLR");
    require_non_negative(gamma_, "gamma", "StepLR");
    start();
  }
  std::string type() const override { return "StepLR"; }

 protected:
  std::vector<double> next() override {
    if (last_epoch() == 0 || last_epoch() % step_size_ != 0) return unchanged(lrs());
    return scaled(lrs(), gamma_);
  }

 private:
  std::int64_t step_size_ = 1;
  double gamma_ = 0.1;
};

class MultiStepLR : public LrScheduler {
 public:
  MultiStepLR(const nlohmann::json& options, std::vector<double> base)
      : LrScheduler(std::move(base)) {
    ComponentOptions o(options, type());
    for (std::int64_t m : o.integers("milestones")) ++milestones_[m];  // a repeat counts twice
    gamma_ = o.number("gamma", 0.1);
    o.check_all_read();
    require_non_negative(gamma_, "gamma", "MultiStepLR");
    start();
  }
  std::string type() const override { return "MultiStepLR"; }

 protected:
  std::vector<double> next() override {
    auto it = milestones_.find(last_epoch());
    if (it == milestones_.end()) return unchanged(lrs());
    return scaled(lrs(), std::pow(gamma_, static_cast<double>(it->second)));
  }

 private:
  std::map<std::int64_t, int> milestones_;
  double gamma_ = 0.1;
};

class ExponentialLR : public LrScheduler {
 public:
  ExponentialLR(const nlohmann::json& options, std::vector<double> base)
      : LrScheduler(std::move(base)) {
    ComponentOptions o(options, type());
    gamma_ = o.number("gamma");
    o.check_all_read();
    require_non_negative(gamma_, "gamma", "ExponentialLR");
    start();
  }
  std::string type() const override { return "ExponentialLR"; }

 protected:
  std::vector<double> next() override {
    return last_epoch() == 0 ? unchanged(lrs()) : scaled(lrs(), gamma_);
  }

 private:
  double gamma_ = 1;
};

class CosineAnnealingLR : public LrScheduler {
 public:
  CosineAnnealingLR(const nlohmann::json& options, std::vector<double> base)
      : LrScheduler(std::move(base)) {
    ComponentOptions o(options, type());
    t_max_ = o.integer("T_max");
    eta_min_ = o.number("eta_min", 0.0);
    o.check_all_read();
    require_positive(t_max_, "T_max", "CosineAnnealingLR");
    require_non_negative(eta_min_, "eta_min", "CosineAnnealingLR");
    start();
  }
  std::string type() const override { return "CosineAnnealingLR"; }

 protected:
  std::vector<double> next() override {
    const std::int64_t e = last_epoch();
    if (e == 0) return unchanged(lrs());
    const double t_max = static_cast<double>(t_max_);
    std::vector<double> out = lrs();
    if (python_mod(e - 1 - t_max_, 2 * t_max_) == 0) {
      for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = out[i] + (base_lrs_[i] - eta_min_) * (1 - std::cos(M_PI / t_max)) / 2;
      return out;
    }
    for (double& lr : out) {
      lr = (1 + std::cos(M_PI * static_cast<double>(e) / t_max)) /
               (1 + std::cos(M_PI * static_cast<double>(e - 1) / t_max)) * (lr - eta_min_) +
           eta_min_;
    }
    return out;
  }

 private:
  std::int64_t t_max_ = 1;
  double eta_min_ = 0;
};

class LinearLR : public LrScheduler {
 public:
  LinearLR(const nlohmann::json& options, std::vector<double> base) : LrScheduler(std::move(base)) {
    ComponentOptions o(options, type());
    start_factor_ = o.number("start_factor", 1.0 / 3);
    end_factor_ = o.number("end_factor", 1.0);
    total_iters_ = o.integer("total_iters", 5);
    o.check_all_read();
    if (start_factor_ <= 0 || start_factor_ > 1 || end_factor_ < 0 || end_factor_ > 1)
      fail(ErrorCode::kConfig,
           "LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1], got {} and {}",
           start_factor_, end_factor_);
    start();
  }
  std::string type() const override { return "LinearLR"; }

 protected:
  std::vector<double> next() override {
    const std::int64_t e = last_epoch();
    if (e == 0) return scaled(lrs(), start_factor_);
    if (e > total_iters_) return unchanged(lrs());
    return scaled(lrs(), 1. + (end_factor_ - start_factor_) /
                                  (static_cast<double>(total_iters_) * start_factor_ +
                                   static_cast<double>(e - 1) * (end_factor_ - start_factor_)));
  }

 private:
  double start_factor_ = 1.0 / 3, end_factor_ = 1.0;
  std::int64_t total_iters_ = 5;
};

class ConstantLR : public LrScheduler {
 public:
  ConstantLR(const nlohmann::json& options, std::vector<double> base)
      : LrScheduler(std::move(base)) {
    ComponentOptions o(options, type());
    factor_ = o.number("factor", 1.0 / 3);
    total_iters_ = o.integer("total_iters", 5);
    o.check_all_read();
    if (factor_ <= 0 || factor_ > 1)
      fail(ErrorCode::kConfig, "ConstantLR: factor must be in (0, 1], got {}", factor_);
    start();
  }
  std::string type() const override { return "ConstantLR"; }

 protected:
  std::vector<double> next() override {
    const std::int64_t e = last_epoch();
    if (e == 0) return scaled(lrs(), factor_);
    if (e != total_iters_) return unchanged(lrs());
    return scaled(lrs(), 1.0 / factor_);
  }

 private:
  double factor_ = 1.0 / 3;
  std::int64_t total_iters_ = 5;
};

class PolynomialLR : public LrScheduler {
 public:
  PolynomialLR(const nlohmann::json& options, std::vector<double> base)
      : LrScheduler(std::move(base)) {
    ComponentOptions o(options, type());
    total_iters_ = o.integer("total_iters", 5);
    power_ = o.number("power", 1.0);
    o.check_all_read();
    require_positive(total_iters_, "total_iters", "PolynomialLR");
    require_non_negative(power_, "power", "PolynomialLR");
    start();
  }
  std::string type() const override { return "PolynomialLR"; }

 protected:
  std::vector<double> next() override {
    const std::int64_t e = last_epoch();
    if (e == 0 || e > total_iters_) return unchanged(lrs());
    const double total = static_cast<double>(total_iters_);
    const double decay = std::pow(
        (1.0 - static_cast<double>(e) / total) / (1.0 - static_cast<double>(e - 1) / total),
        power_);
    return scaled(lrs(), decay);
  }

 private:
  std::int64_t total_iters_ = 5;
  double power_ = 1.0;
};

// OneCycleLR: not chainable; each step's rate follows from the step number and the phases.
// The rates start at max_lr / div_factor whatever the groups' own rates were (as PyTorch's).
class OneCycleLR : public LrScheduler {
 public:
  OneCycleLR(const nlohmann::json& options, std::vector<double> base)
      : LrScheduler(std::move(base)) {
    ComponentOptions o(options, type());
    const std::size_t groups = base_lrs_.size();
    const std::vector<double> max_lrs = o.numbers("max_lr", groups);
    const nlohmann::json total = o.value("total_steps");
    const std::int64_t epochs = o.integer("epochs", 0), per_epoch = o.integer("steps_per_epoch", 0);
    if (total.is_number_integer()) {
      total_steps_ = total.get<std::int64_t>();
    } else if (!total.is_null()) {
      fail(ErrorCode::kConfig, "OneCycleLR: option 'total_steps' must be an integer, got {}",
           total.dump());
    } else {
      if (epochs <= 0 || per_epoch <= 0)
        fail(ErrorCode::kConfig,
             "OneCycleLR: give total_steps, or epochs and steps_per_epoch (positive integers)");
      total_steps_ = epochs * per_epoch;
    }
    require_positive(total_steps_, "total_steps", "OneCycleLR");
    const double pct_start = o.number("pct_start", 0.3);
    const std::string anneal = o.text("anneal_strategy", "cos");
    cycle_momentum_ = o.flag("cycle_momentum", true);
    const std::vector<double> base_momentum = o.value("base_momentum").is_null()
                                                  ? std::vector<double>(groups, 0.85)
                                                  : o.numbers("base_momentum", groups);
    const std::vector<double> max_momentum = o.value("max_momentum").is_null()
                                                 ? std::vector<double>(groups, 0.95)
                                                 : o.numbers("max_momentum", groups);
    const double div_factor = o.number("div_factor", 25.0);
    const double final_div_factor = o.number("final_div_factor", 1e4);
    const bool three_phase = o.flag("three_phase", false);
    o.check_all_read();
    for (double max_lr : max_lrs) require_positive_number(max_lr, "max_lr", "OneCycleLR");
    require_positive_number(div_factor, "div_factor", "OneCycleLR");
    require_positive_number(final_div_factor, "final_div_factor", "OneCycleLR");
    if (pct_start < 0 || pct_start > 1)
      fail(ErrorCode::kConfig, "OneCycleLR: pct_start must be in [0, 1], got {}", pct_start);
    if (anneal != "cos" && anneal != "linear")
      fail(ErrorCode::kConfig, "OneCycleLR: anneal_strategy must be 'cos' or 'linear', got '{}'",
           anneal);
    cosine_ = anneal == "cos";
    const double steps = static_cast<double>(total_steps_);
    // Phases: [end step, start and end rate, start and end momentum], per group through kinds.
    if (three_phase) {
      phases_ = {{pct_start * steps - 1, kInitial, kMax, kMaxMomentum, kBaseMomentum},
                 {2 * pct_start * steps - 2, kMax, kInitial, kBaseMomentum, kMaxMomentum},
                 {steps - 1, kInitial, kMin, kMaxMomentum, kMaxMomentum}};
    } else {
      phases_ = {{pct_start * steps - 1, kInitial, kMax, kMaxMomentum, kBaseMomentum},
                 {steps - 1, kMax, kMin, kBaseMomentum, kMaxMomentum}};
    }
    for (std::size_t g = 0; g < groups; ++g) {
      const double initial = max_lrs[g] / div_factor;
      values_.push_back(
          {initial, max_lrs[g], initial / final_div_factor, base_momentum[g], max_momentum[g]});
    }
    start();
  }
  std::string type() const override { return "OneCycleLR"; }
  std::vector<double> momentums() const override {
    std::vector<double> out;
    if (!cycle_momentum_) return out;
    for (std::size_t g = 0; g < values_.size(); ++g) out.push_back(at(last_epoch(), g).second);
    return out;
  }

 protected:
  std::vector<double> next() override {
    const std::int64_t step = last_epoch();
    if (step > total_steps_)
      fail(ErrorCode::kConfig, "OneCycleLR: stepped {} times, but total_steps is {}", step + 1,
           total_steps_);
    std::vector<double> out;
    for (std::size_t g = 0; g < values_.size(); ++g) out.push_back(at(step, g).first);
    return out;
  }

 private:
  // Indexes into a group's values.
  enum Value { kInitial, kMax, kMin, kBaseMomentum, kMaxMomentum };
  struct Phase {
    double end_step;
    Value start_lr, end_lr, start_momentum, end_momentum;
  };

  // Group g's rate and momentum at `step`: within the first phase that ends at or after it.
  std::pair<double, double> at(std::int64_t step, std::size_t g) const {
    double start_step = 0;
    for (std::size_t i = 0; i < phases_.size(); ++i) {
      const Phase& phase = phases_[i];
      if (static_cast<double>(step) <= phase.end_step || i + 1 == phases_.size()) {
        const double pct = (static_cast<double>(step) - start_step) / (phase.end_step - start_step);
        return {anneal(values_[g][phase.start_lr], values_[g][phase.end_lr], pct),
                anneal(values_[g][phase.start_momentum], values_[g][phase.end_momentum], pct)};
      }
      start_step = phase.end_step;
    }
    return {0, 0};  // unreachable: the last phase always matches
  }

  double anneal(double start, double end, double pct) const {
    if (cosine_) {
      const double cos_out = std::cos(M_PI * pct) + 1;
      return end + (start - end) / 2.0 * cos_out;
    }
    return (end - start) * pct + start;
  }

  std::int64_t total_steps_ = 1;
  bool cosine_ = true, cycle_momentum_ = true;
  std::vector<Phase> phases_;
  std::vector<std::array<double, 5>> values_;  // per group, by Value
};

// ReduceLROnPlateau: the rates drop by `factor` once the metric has not improved for `patience`
// steps (then `cooldown` steps pass before it counts again), never below min_lr.
class ReduceLROnPlateau : public LrScheduler {
 public:
  ReduceLROnPlateau(const nlohmann::json& options, std::vector<double> base)
      : LrScheduler(std::move(base)) {
    ComponentOptions o(options, type());
    const std::string mode = o.text("mode", "min");
    factor_ = o.number("factor", 0.1);
    patience_ = o.integer("patience", 10);
    threshold_ = o.number("threshold", 1e-4);
    const std::string threshold_mode = o.text("threshold_mode", "rel");
    cooldown_ = o.integer("cooldown", 0);
    min_lrs_ = o.value("min_lr").is_null() ? std::vector<double>(base_lrs_.size(), 0.0)
                                           : o.numbers("min_lr", base_lrs_.size());
    eps_ = o.number("eps", 1e-8);
    o.check_all_read();
    if (factor_ >= 1.0)
      fail(ErrorCode::kConfig, "ReduceLROnPlateau: factor must be < 1, got {}", factor_);
    for (double min_lr : min_lrs_) require_non_negative(min_lr, "min_lr", "ReduceLROnPlateau");
    if (mode != "min" && mode != "max")
      fail(ErrorCode::kConfig, "ReduceLROnPlateau: mode must be 'min' or 'max', got '{}'", mode);
    if (threshold_mode != "rel" && threshold_mode != "abs")
      fail(ErrorCode::kConfig, "ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got '{}'",
           threshold_mode);
    minimize_ = mode == "min";
    relative_ = threshold_mode == "rel";
    best_ = minimize_ ? INFINITY : -INFINITY;
    start();
  }
  std::string type() const override { return "ReduceLROnPlateau"; }

  nlohmann::json state() const override {
    nlohmann::json out = LrScheduler::state();
    out["best"] = std::isfinite(best_) ? nlohmann::json(best_) : nlohmann::json();
    out["num_bad_epochs"] = bad_;
    out["cooldown_counter"] = cooldown_counter_;
    return out;
  }
  nlohmann::json torch_state() const override {
    // torch's ReduceLROnPlateau keeps no _step_count or base_lrs; its `best` starts infinite
    // (a float the checkpoint holds as it is).
    return {{"last_epoch", last_epoch()},
            {"_last_lr", lrs()},
            {"best", best_},
            {"num_bad_epochs", bad_},
            {"cooldown_counter", cooldown_counter_}};
  }
  void load_state(const nlohmann::json& state) override {
    LrScheduler::load_state(state);
    try {
      best_ = state.at("best").is_null() ? (minimize_ ? INFINITY : -INFINITY)
                                         : state.at("best").get<double>();
      bad_ = state.at("num_bad_epochs").get<std::int64_t>();
      cooldown_counter_ = state.at("cooldown_counter").get<std::int64_t>();
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::kIntegrity, "cannot restore the {} schedule from the checkpoint: {}", type(),
           e.what());
    }
  }

 protected:
  bool takes_metric() const override { return true; }

  std::vector<double> next() override {
    if (!metric_) return lrs();  // constructed: the rates as they are
    const double current = *metric_;
    if (better(current)) {
      best_ = current;
      bad_ = 0;
    } else {
      ++bad_;
    }
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      bad_ = 0;
    }
    std::vector<double> out = lrs();
    if (bad_ > patience_) {
      for (std::size_t i = 0; i < out.size(); ++i) {
        const double reduced = std::max(out[i] * factor_, min_lrs_[i]);
        if (out[i] - reduced > eps_) out[i] = reduced;
      }
      cooldown_counter_ = cooldown_;
      bad_ = 0;
    }
    return out;
  }

 private:
  bool better(double a) const {
    if (minimize_) return relative_ ? a < best_ * (1. - threshold_) : a < best_ - threshold_;
    return relative_ ? a > best_ * (threshold_ + 1.) : a > best_ + threshold_;
  }

  double factor_ = 0.1, threshold_ = 1e-4, eps_ = 1e-8, best_ = 0;
  std::int64_t patience_ = 10, cooldown_ = 0, bad_ = 0, cooldown_counter_ = 0;
  std::vector<double> min_lrs_;
  bool minimize_ = true, relative_ = true;
};

// ModelScope's BaseWarmup over another schedule (see wrap_in_warmup()).
class Warmup : public LrScheduler {
 public:
  Warmup(std::unique_ptr<LrScheduler> base, const nlohmann::json& options)
      : LrScheduler(base->lrs()), base_(std::move(base)) {
    const nlohmann::json type =
        options.is_object() ? options.value("type", nlohmann::json()) : nlohmann::json();
    if (!type.is_string()) {
      throw Error(
          ErrorCode::kConfig,
          fmt::format("lr_scheduler.options.warmup: '{}' names no warmup type", options.dump()),
          "give {\"type\": \"LinearWarmup\", \"warmup_iters\": 100}");
    }
    type_ = type.get<std::string>();
    if (type_ != "LinearWarmup" && type_ != "ConstantWarmup" && type_ != "ExponentialWarmup") {
      throw Error(ErrorCode::kNotFound, fmt::format("unknown warmup type '{}'", type_),
                  choices_hint(type_, {"ConstantWarmup", "ExponentialWarmup", "LinearWarmup"},
                               "registered"));
    }
    nlohmann::json rest = options;
    rest.erase("type");
    ComponentOptions o(rest, type_);
    warmup_iters_ = o.integer("warmup_iters");
    ratio_ = o.number("warmup_ratio", 0.1);
    o.check_all_read();
    require_positive(warmup_iters_, "warmup_iters", type_.c_str());
    require_non_negative(ratio_, "warmup_ratio", type_.c_str());
    // The initial rates are the groups' own (`initial_lr`), before the base schedule's step 0.
    base_lrs_ = base_->base_lrs();
    start();
  }
  std::string type() const override { return type_; }
  std::vector<double> momentums() const override { return base_->momentums(); }

  nlohmann::json state() const override {
    nlohmann::json out = LrScheduler::state();
    out["base"] = base_->state();
    out["init_step"] = init_step_;
    out["base_last_lrs"] = base_last_lrs_;
    return out;
  }
  nlohmann::json torch_state() const override {
    nlohmann::json out = base_->torch_state();
    // The base's rates before this warmup scaled them, as torch's _last_lr keeps them (the base's
    // own lrs() are the scaled ones the optimizer holds).
    if (!base_last_lrs_.empty()) out["_last_lr"] = base_last_lrs_;
    return out;
  }
  void load_state(const nlohmann::json& state) override {
    LrScheduler::load_state(state);
    try {
      base_->load_state(state.at("base"));
      init_step_ = state.at("init_step").get<bool>();
      // Absent from checkpoints written before torch_state() was.
      base_last_lrs_ = state.value("base_last_lrs", std::vector<double>{});
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::kIntegrity, "cannot restore the {} schedule from the checkpoint: {}", type_,
           e.what());
    }
  }

 protected:
  std::vector<double> next() override {
    // PyTorch's _step_count of the base: its steps, the initial one included.
    if (base_->last_epoch() + 1 > warmup_iters_) {
      base_->step();
      base_last_lrs_.clear();
      return base_->lrs();
    }
    if (init_step_) {
      init_step_ = false;  // the base made its step 0 when it was built
      base_last_lrs_ = base_->lrs();
      base_->set_lrs(base_lrs_);
    } else {
      base_->set_lrs(base_lrs_);
      base_->step();
      base_last_lrs_ = base_->lrs();
    }
    const double scale = scale_at(base_->last_epoch());
    std::vector<double> out = base_->lrs();
    for (double& lr : out) lr *= scale;
    base_->set_lrs(out);
    return out;
  }

 private:
  double scale_at(std::int64_t k) const {
    const double w = static_cast<double>(warmup_iters_), cur = static_cast<double>(k);
    if (type_ == "ConstantWarmup") return k >= warmup_iters_ ? 1.0 : ratio_;
    if (type_ == "LinearWarmup") return 1 - (1 - cur / w) * (1 - ratio_);
    return std::pow(ratio_, 1 - cur / w);  // ExponentialWarmup
  }

  std::unique_ptr<LrScheduler> base_;
  std::string type_;
  std::int64_t warmup_iters_ = 1;
  double ratio_ = 0.1;
  bool init_step_ = true;
  std::vector<double> base_last_lrs_;  // while warming up: the base's rates before scaling
};

template <typename T>
LrSchedulerFactory factory() {
  return [](const nlohmann::json& options, std::vector<double> base_lrs) {
    return std::unique_ptr<LrScheduler>(std::make_unique<T>(options, std::move(base_lrs)));
  };
}

}  // namespace

const Registry<LrSchedulerFactory>& lr_scheduler_registry() {
  static const Registry<LrSchedulerFactory> registry = [] {
    Registry<LrSchedulerFactory> r("lr_schedulers");
    r.add("StepLR", factory<StepLR>(), "lr * gamma every step_size steps");
    r.add("MultiStepLR", factory<MultiStepLR>(), "lr * gamma at each milestone");
    r.add("ExponentialLR", factory<ExponentialLR>(), "lr * gamma every step");
    r.add("CosineAnnealingLR", factory<CosineAnnealingLR>(),
          "cosine from the base rate to eta_min over T_max steps, and back");
    r.add("LinearLR", factory<LinearLR>(), "a linear factor from start_factor to end_factor");
    r.add("ConstantLR", factory<ConstantLR>(), "lr * factor for total_iters steps");
    r.add("PolynomialLR", factory<PolynomialLR>(), "polynomial decay to 0 over total_iters steps");
    r.add("ReduceLROnPlateau", factory<ReduceLROnPlateau>(),
          "lr * factor when the monitored metric stops improving");
    r.add("OneCycleLR", factory<OneCycleLR>(),
          "1cycle: up to max_lr and down far below it, momentum the other way");
    return r;
  }();
  return registry;
}

std::unique_ptr<LrScheduler> wrap_in_warmup(std::unique_ptr<LrScheduler> base,
                                            const nlohmann::json& warmup) {
  return std::make_unique<Warmup>(std::move(base), warmup);
}

std::unique_ptr<LrScheduler> build_lr_scheduler(const nlohmann::json& config,
                                                std::vector<double> base_lrs) {
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    throw Error(ErrorCode::kConfig,
                fmt::format("train.lr_scheduler: '{}' names no scheduler type", config.dump()),
                "give {\"type\": \"StepLR\", \"step_size\": 2, ...}");
  }
  if (base_lrs.empty()) fail(ErrorCode::kInternal, "a schedule needs at least one parameter group");
  nlohmann::json options = config;
  options.erase("type");
  options.erase("options");  // the LrSchedulerHook's (by_epoch, warmup)
  return lr_scheduler_registry().get(config["type"].get<std::string>())(options,
                                                                        std::move(base_lrs));
}

}  // namespace ms::trainer

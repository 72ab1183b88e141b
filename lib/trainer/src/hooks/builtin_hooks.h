// The built-in hooks' registration (one function per file of hooks/) and the interval helpers
// ModelScope's Hook class gives every hook.
#pragma once

#include <optional>
#include <string>

#include "ms/config/options.h"
#include "ms/core/log.h"
#include "ms/trainer/hook.h"
#include "ms/trainer/trainer.h"

namespace ms::trainer {

/// OptimizerHook, NoneOptimizerHook, LrSchedulerHook, PlateauLrSchedulerHook, NoneLrSchedulerHook.
void register_optimizer_hooks(Registry<HookFactory>& registry);
/// CheckpointHook, BestCkptSaverHook, LoadCheckpointHook.
void register_checkpoint_hooks(Registry<HookFactory>& registry);
/// TextLoggerHook, TensorboardHook, IterTimerHook.
void register_logger_hooks(Registry<HookFactory>& registry);
/// EvaluationHook, EarlyStopHook.
void register_evaluation_hooks(Registry<HookFactory>& registry);

inline bool every_n_epochs(const Trainer& t, std::int64_t n) {
  return n > 0 && (t.epoch() + 1) % n == 0;
}
inline bool every_n_iters(const Trainer& t, std::int64_t n) {
  return n > 0 && (t.iter() + 1) % n == 0;
}
inline bool every_n_inner_iters(const Trainer& t, std::int64_t n) {
  return n > 0 && (t.inner_iter() + 1) % n == 0;
}
inline bool end_of_epoch(const Trainer& t) { return t.inner_iter() + 1 == t.iters_per_epoch(); }
inline bool is_last_epoch(const Trainer& t) { return t.epoch() + 1 == t.max_epochs(); }
inline bool is_last_iter(const Trainer& t) { return t.iter() + 1 == t.max_iters(); }

/// ModelScope's two spellings of "by epoch or by step": `by_epoch` (bool) or `<strategy_key>`
/// ("by_epoch" | "by_step"; CheckpointHook's save_strategy also "no").
/// Given both, `by_epoch` decides, as in ModelScope (where it is the deprecated spelling that
/// overrides the strategy); the strategy is still checked (ModelScope's "no" too, which it
/// overrides), and a contradiction is warned about.
inline bool read_by_epoch(ComponentOptions& o, const char* strategy_key, bool fallback = true) {
  const nlohmann::json by_epoch = o.value("by_epoch");
  const nlohmann::json strategy = o.value(strategy_key);
  std::optional<bool> strategy_by_epoch;
  if (!strategy.is_null()) {
    const std::string s = o.text(strategy_key, "");
    if (s == "by_epoch") {
      strategy_by_epoch = true;
    } else if (s == "by_step") {
      strategy_by_epoch = false;
    } else if (s == "no" && !by_epoch.is_null()) {
      strategy_by_epoch = !by_epoch.is_boolean() || !by_epoch.get<bool>();  // always disagrees
    } else {
      fail(ErrorCode::kConfig, "{} must be \"by_epoch\" or \"by_step\", got \"{}\"", strategy_key,
           s);
    }
  }
  if (by_epoch.is_null()) return strategy_by_epoch.value_or(fallback);
  if (!by_epoch.is_boolean()) (void)o.flag("by_epoch", true);  // the typed error
  if (strategy_by_epoch && *strategy_by_epoch != by_epoch.get<bool>()) {
    log::warn("{}: by_epoch {} and {} \"{}\" disagree; by_epoch decides, as in ModelScope",
              o.component(), by_epoch.dump(), strategy_key, strategy.get<std::string>());
  }
  return by_epoch.get<bool>();
}

/// A positive integer option.
inline std::int64_t positive(ComponentOptions& o, const char* key, std::int64_t fallback,
                             const char* hook) {
  const std::int64_t v = o.integer(key, fallback);
  MS_CHECK(v > 0, ErrorCode::kConfig, "{}: {} must be a positive integer, got {}", hook, key, v);
  return v;
}

}  // namespace ms::trainer

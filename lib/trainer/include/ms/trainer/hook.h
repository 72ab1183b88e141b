// Trainer hooks as ModelScope defines them (modelscope/trainers/hooks/hook.py, priority.py): stages
// of the training run, a priority per hook, ties kept in registration order, hooks built by `type`
// from `train.hooks`. Library users add their own by deriving from Hook.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ms/config/registry.h"
#include "ms/tensor/checkpoint.h"

namespace ms::trainer {

class Trainer;

/// The points of a run at which hooks are called, in ModelScope's names. Only before_val and
/// after_val fire around an evaluation (as in ModelScope's EpochBasedTrainer).
enum class Stage {
  kAfterInit,
  kBeforeRun,
  kBeforeTrainEpoch,
  kBeforeTrainIter,
  kAfterTrainIter,
  kAfterTrainEpoch,
  kBeforeVal,
  kAfterVal,
  kAfterRun,
};

/// ModelScope's name of a stage ("before_train_iter").
const char* stage_name(Stage stage);

/// Priorities: lower runs first (modelscope/trainers/hooks/priority.py).
namespace priority {
constexpr int kHighest = 0;
constexpr int kVeryHigh = 10;
constexpr int kHigh = 30;
constexpr int kAboveNormal = 40;
constexpr int kNormal = 50;
constexpr int kBelowNormal = 60;
constexpr int kLow = 70;
constexpr int kVeryLow = 90;
constexpr int kLowest = 100;
}  // namespace priority

/// A priority from a config value: an integer 0..100 or a name ("HIGH", "very_low"); kConfig
/// otherwise.
int parse_priority(const nlohmann::json& value, const std::string& hook);

/// A hook: override the stages it acts on. The trainer passes itself; hooks read and change its
/// state (counters, log buffer, model, optimizer) through Trainer's public API.
class Hook {
 public:
  virtual ~Hook() = default;
  /// The registered type ("CheckpointHook"), used in logs and as the key of its saved state.
  virtual std::string type() const = 0;
  /// The default priority of this hook type; a `priority` option in the config overrides it.
  virtual int default_priority() const { return priority::kNormal; }
  int priority() const { return priority_ < 0 ? default_priority() : priority_; }
  void set_priority(int priority) { priority_ = priority; }

  virtual void after_init(Trainer&) {}
  virtual void before_run(Trainer&) {}
  virtual void before_train_epoch(Trainer&) {}
  virtual void before_train_iter(Trainer&) {}
  virtual void after_train_iter(Trainer&) {}
  virtual void after_train_epoch(Trainer&) {}
  virtual void before_val(Trainer&) {}
  virtual void after_val(Trainer&) {}
  virtual void after_run(Trainer&) {}

  /// Calls the method of `stage`.
  void call(Stage stage, Trainer& trainer);

  /// What the hook keeps across a resume (saved in the trainer state); None when nothing.
  virtual tensor::CheckpointValue state_dict() const { return {}; }
  virtual void load_state_dict(const tensor::CheckpointValue& state) { (void)state; }

 private:
  int priority_ = -1;
};

/// Hooks in calling order: by priority, equal priorities in registration order.
class HookList {
 public:
  /// Inserts after the last hook whose priority is <= its own (ModelScope's rule).
  void add(std::shared_ptr<Hook> hook);
  void call(Stage stage, Trainer& trainer) const;
  const std::vector<std::shared_ptr<Hook>>& hooks() const { return hooks_; }
  /// The hooks of a type, in order.
  std::vector<std::shared_ptr<Hook>> of_type(const std::string& type) const;

 private:
  std::vector<std::shared_ptr<Hook>> hooks_;
};

/// Builds a hook from its options (a `train.hooks` entry without `type` and `priority`).
using HookFactory = std::function<std::shared_ptr<Hook>(const nlohmann::json& options)>;

/// The built-in hooks by ModelScope's names (OptimizerHook, LrSchedulerHook, CheckpointHook, ...).
Registry<HookFactory>& hook_registry();

/// A hook from a `train.hooks` entry; an unknown type is kNotFound with close matches, a bad
/// option kConfig naming the hook and option.
std::shared_ptr<Hook> build_hook(const nlohmann::json& config);

}  // namespace ms::trainer

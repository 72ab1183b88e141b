// Hook stages, priorities and the calling order (modelscope/trainers/hooks/hook.py, priority.py),
// and the HOOKS registry with the built-in hooks.
#include "ms/trainer/hook.h"

#include <algorithm>
#include <cctype>

#include "hooks/builtin_hooks.h"
#include "ms/core/error.h"
#include "ms/core/text.h"

namespace ms::trainer {

const char* stage_name(Stage stage) {
  switch (stage) {
    case Stage::kAfterInit:
      return "after_init";
    case Stage::kBeforeRun:
      return "before_run";
    case Stage::kBeforeTrainEpoch:
      return "before_train_epoch";
    case Stage::kBeforeTrainIter:
      return "before_train_iter";
    case Stage::kAfterTrainIter:
      return "after_train_iter";
    case Stage::kAfterTrainEpoch:
      return "after_train_epoch";
    case Stage::kBeforeVal:
      return "before_val";
    case Stage::kAfterVal:
      return "after_val";
    case Stage::kAfterRun:
      return "after_run";
  }
  return "?";
}

int parse_priority(const nlohmann::json& value, const std::string& hook) {
  static const std::vector<std::pair<std::string, int>> kNames = {
      {"HIGHEST", priority::kHighest}, {"VERY_HIGH", priority::kVeryHigh},
      {"HIGH", priority::kHigh},       {"ABOVE_NORMAL", priority::kAboveNormal},
      {"NORMAL", priority::kNormal},   {"BELOW_NORMAL", priority::kBelowNormal},
      {"LOW", priority::kLow},         {"VERY_LOW", priority::kVeryLow},
      {"LOWEST", priority::kLowest}};
  if (value.is_number_integer()) {
    const auto p = value.get<std::int64_t>();
    MS_CHECK(p >= 0 && p <= 100, ErrorCode::kConfig, "{}: priority must lie in 0..100, got {}",
             hook, p);
    return static_cast<int>(p);
  }
  std::vector<std::string> names;
  for (const auto& [name, p] : kNames) names.push_back(name);
  if (value.is_string()) {
    std::string upper = value.get<std::string>();
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const auto& [name, p] : kNames)
      if (name == upper) return p;
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: unknown priority '{}'", hook, value.get<std::string>()),
                choices_hint(upper, names, "priorities") + ", or 0..100");
  }
  fail(ErrorCode::kConfig, "{}: priority must be a name ({}) or an integer 0..100", hook,
       join(names, ", "));
}

void Hook::call(Stage stage, Trainer& trainer) {
  switch (stage) {
    case Stage::kAfterInit:
      return after_init(trainer);
    case Stage::kBeforeRun:
      return before_run(trainer);
    case Stage::kBeforeTrainEpoch:
      return before_train_epoch(trainer);
    case Stage::kBeforeTrainIter:
      return before_train_iter(trainer);
    case Stage::kAfterTrainIter:
      return after_train_iter(trainer);
    case Stage::kAfterTrainEpoch:
      return after_train_epoch(trainer);
    case Stage::kBeforeVal:
      return before_val(trainer);
    case Stage::kAfterVal:
      return after_val(trainer);
    case Stage::kAfterRun:
      return after_run(trainer);
  }
}

void HookList::add(std::shared_ptr<Hook> hook) {
  MS_ASSERT(hook != nullptr);
  // After the last hook of a priority <= its own: equal priorities keep registration order.
  auto pos = hooks_.end();
  while (pos != hooks_.begin() && (*std::prev(pos))->priority() > hook->priority()) --pos;
  hooks_.insert(pos, std::move(hook));
}

void HookList::call(Stage stage, Trainer& trainer) const {
  for (const auto& hook : hooks_) {
    try {
      hook->call(stage, trainer);
    } catch (Error& e) {
      e.add_context(fmt::format("in {}.{}", hook->type(), stage_name(stage)));
      throw;
    }
  }
}

std::vector<std::shared_ptr<Hook>> HookList::of_type(const std::string& type) const {
  std::vector<std::shared_ptr<Hook>> out;
  for (const auto& hook : hooks_)
    if (hook->type() == type) out.push_back(hook);
  return out;
}

Registry<HookFactory>& hook_registry() {
  static Registry<HookFactory> registry = [] {
    Registry<HookFactory> r("hooks");
    register_optimizer_hooks(r);
    register_checkpoint_hooks(r);
    register_logger_hooks(r);
    register_evaluation_hooks(r);
    return r;
  }();
  return registry;
}

std::shared_ptr<Hook> build_hook(const nlohmann::json& config) {
  MS_CHECK(config.is_object() && config.contains("type") && config["type"].is_string(),
           ErrorCode::kConfig, "a train.hooks entry needs a \"type\" (one of {})",
           join(hook_registry().types(), ", "));
  nlohmann::json options = config;
  const std::string type = options["type"].get<std::string>();
  options.erase("type");
  nlohmann::json priority;
  if (options.contains("priority")) {
    priority = options["priority"];
    options.erase("priority");
  }
  std::shared_ptr<Hook> hook = hook_registry().get(type)(options);
  if (!priority.is_null()) hook->set_priority(parse_priority(priority, type));
  return hook;
}

}  // namespace ms::trainer

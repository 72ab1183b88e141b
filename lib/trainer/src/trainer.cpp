// EpochBasedTrainer's loop (modelscope/trainers/trainer.py): hooks at every stage, the forward pass
// in train_step, everything else (backward, optimizer and LR steps, evaluation, checkpoints, logs)
// in hooks. The state a resume needs is saved by trainer_state() and restored by
// load_trainer_state(): counters, optimizer, schedule, hook states and the RNG.
#include "ms/trainer/trainer.h"

#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/isfinite.h>
#include <c10/core/InferenceMode.h>
#include <fmt/ranges.h>
#include <torch/nn/module.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/core/version.h"
#include "ms/infer/train.h"
#include "ms/trainer/mixed_precision.h"
#include "run_log.h"

namespace ms::trainer {

using tensor::CheckpointValue;

// ---- LogBuffer ------------------------------------------------------------------------------

void LogBuffer::update(const std::string& key, double value, int count) {
  auto& values = history_[key];
  if (values.empty()) keys_.push_back(key);
  values.emplace_back(value, count);
}

void LogBuffer::average(std::size_t n) {
  for (const std::string& key : keys_) {
    const auto& values = history_[key];
    const std::size_t first = n == 0 || n >= values.size() ? 0 : values.size() - n;
    double sum = 0, count = 0;
    for (std::size_t i = first; i < values.size(); ++i) {
      sum += values[i].first * values[i].second;
      count += values[i].second;
    }
    if (count > 0) output_[key] = sum / count;
  }
  ready = true;
}

void LogBuffer::clear() {
  keys_.clear();
  history_.clear();
  clear_output();
}

void LogBuffer::clear_output() {
  output_ = Json::object();
  ready = false;
}

// ---- Trainer ----------------------------------------------------------------------------------

namespace {

// nlohmann::ordered_json (Config) -> nlohmann::json (the component builders' options).
nlohmann::json plain(const Json& value) { return nlohmann::json::parse(value.dump()); }

// The key of ms's own schedule state in a checkpoint's "lr_scheduler" (beside torch's fields).
constexpr const char* kMsSchedulerState = "ms_state";

// A JSON value as a checkpoint value (hook and schedule states), and back.
CheckpointValue to_checkpoint(const nlohmann::json& v) {
  if (v.is_null()) return {};
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    CheckpointValue out = CheckpointValue::list();
    for (const auto& item : v) out.push_back(to_checkpoint(item));
    return out;
  }
  CheckpointValue out = CheckpointValue::dict();
  for (const auto& [key, item] : v.items()) out.set(key, to_checkpoint(item));
  return out;
}

nlohmann::json from_checkpoint(const CheckpointValue& v) {
  switch (v.kind()) {
    case CheckpointValue::Kind::kNone:
      return nullptr;
    case CheckpointValue::Kind::kBool:
      return v.as_bool();
    case CheckpointValue::Kind::kInt:
      return v.as_int();
    case CheckpointValue::Kind::kFloat:
      return v.as_float();
    case CheckpointValue::Kind::kString:
      return v.as_string();
    case CheckpointValue::Kind::kList:
    case CheckpointValue::Kind::kTuple: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : v.items()) out.push_back(from_checkpoint(item));
      return out;
    }
    case CheckpointValue::Kind::kDict: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& [key, item] : v.entries()) {
        const std::string name = key.kind() == CheckpointValue::Kind::kInt
                                     ? std::to_string(key.as_int())
                                     : key.as_string();
        out[name] = from_checkpoint(item);
      }
      return out;
    }
    case CheckpointValue::Kind::kTensor:
      break;
  }
  fail(ErrorCode::kIntegrity, "a tensor where the trainer state holds plain values");
}

// A batch's tensors as the metrics take them (plain doubles, row-major).
metrics::Fields fields_of(const models::TensorMap& tensors) {
  metrics::Fields out;
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) continue;
    const at::Tensor values = t.detach().to(at::kCPU, at::kDouble).contiguous();
    metrics::Array a;
    a.shape.assign(values.sizes().begin(), values.sizes().end());
    a.values.assign(values.data_ptr<double>(), values.data_ptr<double>() + values.numel());
    out.emplace(name, std::move(a));
  }
  return out;
}

#ifdef MS_TEST_HOOKS
// Test builds only: MS_TEST_KILL_AFTER_ITER=N sends this process SIGKILL once iteration N and its
// hooks are done, a kill -9 at a known moment for the exact-resume tests.
void test_kill_point(std::int64_t iterations_done) {
  static const char* at = std::getenv("MS_TEST_KILL_AFTER_ITER");
  // MS_TEST_KILL_RANK: only that data-parallel worker dies (the others must notice).
  static const char* rank = std::getenv("MS_TEST_KILL_RANK");
  static const char* my_rank = std::getenv("RANK");
  if (rank != nullptr && (my_rank == nullptr || std::string(rank) != my_rank)) return;
  if (at != nullptr && std::to_string(iterations_done) == at) ::kill(::getpid(), SIGKILL);
}
// MS_TEST_KILL_AFTER_SAVE_ACTION=N: SIGKILL once the run's N-th stage-end action (a checkpoint's
// or a best checkpoint's files) is done, between one hook's saves and the next one's.
void test_kill_after_save_action() {
  static const char* at = std::getenv("MS_TEST_KILL_AFTER_SAVE_ACTION");
  static std::int64_t done = 0;
  if (at != nullptr && std::to_string(++done) == at) ::kill(::getpid(), SIGKILL);
}
// MS_TEST_KILL_AFTER_COMMIT=N: SIGKILL once the run's N-th after-saves action (a checkpoint named
// in latest_checkpoint.json, then the checkpoints it replaces deleted: two actions) is done.
void test_kill_after_commit() {
  static const char* at = std::getenv("MS_TEST_KILL_AFTER_COMMIT");
  static std::int64_t done = 0;
  if (at != nullptr && std::to_string(++done) == at) ::kill(::getpid(), SIGKILL);
}
// MS_TEST_KILL_AFTER_OUTPUT_SAVE=N: SIGKILL once the N-th save of output/'s weights is done.
void test_kill_after_output_save() {
  static const char* at = std::getenv("MS_TEST_KILL_AFTER_OUTPUT_SAVE");
  static std::int64_t done = 0;
  if (at != nullptr && std::to_string(++done) == at) ::kill(::getpid(), SIGKILL);
}
#else
void test_kill_point(std::int64_t) {}
void test_kill_after_save_action() {}
void test_kill_after_commit() {}
void test_kill_after_output_save() {}
#endif

}  // namespace

Trainer::Trainer(TrainerSetup setup)
    : setup_(std::move(setup)),
      timestamp_(setup_.timestamp.empty() ? run_timestamp() : setup_.timestamp) {
  MS_ASSERT(setup_.model != nullptr);
  // ModelScope requires max_epochs; a misspelt key must not silently train one epoch.
  MS_CHECK(!setup_.train_data || setup_.config.has("train.max_epochs"), ErrorCode::kConfig,
           "{}: train.max_epochs is missing (set it, or pass --max-epochs)",
           setup_.config.source());
  max_epochs_ = setup_.config.get_or<std::int64_t>("train.max_epochs", 1);
  MS_CHECK(max_epochs_ > 0 && max_epochs_ <= infer::kMaxTrainEpochs, ErrorCode::kConfig,
           "{}: train.max_epochs must be from 1 to {}, got {}", setup_.config.source(),
           infer::kMaxTrainEpochs, max_epochs_);
  // Checked now, not at the first evaluation an epoch later.
  if (setup_.config.has("evaluation.val_iters_per_epoch") &&
      !setup_.config.at("evaluation.val_iters_per_epoch").is_null()) {
    val_iters_ = setup_.config.get<std::int64_t>("evaluation.val_iters_per_epoch");
    MS_CHECK(*val_iters_ > 0, ErrorCode::kConfig,
             "{}: evaluation.val_iters_per_epoch must be positive, got {}", setup_.config.source(),
             *val_iters_);
  }
  if (setup_.train_data) {
    iters_per_epoch_ = static_cast<std::int64_t>(setup_.train_data->num_batches());
    if (setup_.config.has("train.train_iters_per_epoch") &&
        !setup_.config.at("train.train_iters_per_epoch").is_null()) {
      const auto limit = setup_.config.get<std::int64_t>("train.train_iters_per_epoch");
      MS_CHECK(limit > 0, ErrorCode::kConfig,
               "{}: train.train_iters_per_epoch must be positive, got {}", setup_.config.source(),
               limit);
      iters_per_epoch_ = std::min(iters_per_epoch_, limit);
    }
    MS_CHECK(iters_per_epoch_ > 0, ErrorCode::kUsage,
             "the training data gives no batch (rows: {}{}); with drop_last, a split smaller "
             "than the batch size gives none",
             setup_.train_data->rows(),
             setup_.distributed && setup_.distributed->world_size() > 1
                 // The sampler pads the split to a multiple of the workers: each gets the
                 // rows' share rounded up.
                 ? fmt::format(", {} for each of the {} workers",
                               (setup_.train_data->rows() + setup_.distributed->world_size() - 1) /
                                   setup_.distributed->world_size(),
                               setup_.distributed->world_size())
                 : std::string());
  }
  if (!setup_.console) setup_.console = [](const std::string& line) { std::cerr << line << '\n'; };
}

Trainer::~Trainer() = default;

void Trainer::register_hook(std::shared_ptr<Hook> hook) { hooks_.add(std::move(hook)); }

namespace {

// The options object at `key` (an empty one when absent); kConfig naming the key otherwise.
nlohmann::json options_at(const Config& c, const std::string& key) {
  if (!c.has(key)) return nlohmann::json::object();
  const nlohmann::json v = plain(c.at(key));
  MS_CHECK(v.is_object(), ErrorCode::kConfig, "{}: {} must be an object of options, got {}",
           c.source(), key, Config::type_name(c.at(key)));
  return v;
}

// The `type` of a train.hooks entry, or "" when it has none (build_hook then says so).
std::string type_of(const nlohmann::json& entry) {
  if (!entry.is_object() || !entry.contains("type") || !entry["type"].is_string()) return {};
  return entry["type"].get<std::string>();
}

// The options of the optimizer hook, with ModelScope's ways of asking for mixed precision folded
// in: use_fp16, train.optimizer_hook of type TorchAMPOptimizerHook, or a TorchAMPOptimizerHook
// among train.hooks (which `hooks` loses: its options move here). ModelScope's AMP hook swaps the
// OptimizerHook's processor; here the OptimizerHook does both, with `mixed_precision` set to
// {"dtype", "loss_scale"} (see MixedPrecision). ApexAMPOptimizerHook (NVIDIA Apex) is refused.
// `asked_by` gets the key that asked for mixed precision, for errors.
nlohmann::json optimizer_hook_options(const Config& c, std::vector<nlohmann::json>& hooks,
                                      std::string& asked_by) {
  // As ModelScope's trainer: a train.optimizer_hook of its own type replaces
  // train.optimizer.options; a TorchAMPOptimizerHook there is laid over them (grad_clip and
  // cumulative_iters still apply with autocast).
  nlohmann::json o = options_at(c, "train.optimizer.options");
  o["type"] = "OptimizerHook";
  if (c.has("train.optimizer_hook")) {
    const nlohmann::json hook = options_at(c, "train.optimizer_hook");
    if (type_of(hook) == "TorchAMPOptimizerHook") {
      for (const auto& [key, value] : hook.items()) o[key] = value;
    } else {
      o = hook;
    }
  }
  std::optional<nlohmann::json> amp;
  auto take_amp = [&amp](nlohmann::json& entry) {
    if (!amp) amp = nlohmann::json::object();
    MixedPrecision::take_options(entry, *amp);
  };
  auto check_not_apex = [&c](const std::string& type, const std::string& where) {
    if (type != "ApexAMPOptimizerHook") return;
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: {}: ApexAMPOptimizerHook needs NVIDIA Apex, which ms does not use",
                            c.source(), where),
                "use {\"type\": \"TorchAMPOptimizerHook\"} (PyTorch's autocast and loss scaling)");
  };
  check_not_apex(type_of(o), "train.optimizer_hook");
  if (type_of(o) == "TorchAMPOptimizerHook") {
    asked_by = "train.optimizer_hook (TorchAMPOptimizerHook)";
    take_amp(o);
    o["type"] = "OptimizerHook";
  }
  for (const char* key : {"use_fp16", "train.use_fp16"}) {
    if (c.has(key) && c.at(key).is_boolean() && c.get<bool>(key) && !amp) {
      amp = nlohmann::json::object();
      asked_by = key;
    }
  }
  // An OptimizerHook or TorchAMPOptimizerHook listed in train.hooks (as ModelScope's configs may)
  // is this one hook, not a second one stepping the optimizer again: its options fold in.
  for (auto it = hooks.begin(); it != hooks.end();) {
    const std::string type = type_of(*it);
    check_not_apex(type, "train.hooks");
    if (type != "TorchAMPOptimizerHook" && type != "OptimizerHook") {
      ++it;
      continue;
    }
    if (type == "TorchAMPOptimizerHook") {
      asked_by = "train.hooks: TorchAMPOptimizerHook";
      take_amp(*it);
    }
    // Its OptimizerHook options (cumulative_iters, grad_clip, loss_keys) apply.
    for (auto& [key, value] : it->items())
      if (key != "type") o[key] = value;
    it = hooks.erase(it);
  }
  if (amp) o["mixed_precision"] = *amp;
  return o;
}

}  // namespace

void Trainer::register_hooks_from_config() {
  if (hooks_registered_) return;
  hooks_registered_ = true;
  const Config& c = setup_.config;
  auto add = [&](const nlohmann::json& entry, const std::string& where) {
    try {
      register_hook(build_hook(entry));
    } catch (Error& e) {
      e.add_context(fmt::format("in {}: {}", c.source(), where));
      throw;
    }
  };
  // train.hooks, with the key-chain sections merged into the hook of their type and
  // ModelScope's default hooks added where their type is missing.
  std::vector<nlohmann::json> entries;
  if (c.has("train.hooks")) {
    const nlohmann::json list = plain(c.at("train.hooks"));
    MS_CHECK(list.is_array(), ErrorCode::kConfig,
             "{}: train.hooks must be a list of {{\"type\": ...}} objects", c.source());
    for (const auto& entry : list) entries.push_back(entry);
  }
  // The optimizer and LR hooks first: among hooks of equal priority they then run before a
  // CheckpointHook, so that a checkpoint taken after an epoch already holds the stepped schedule
  // and a resumed run goes on exactly (ModelScope registers them last).
  std::string amp_asked_by;
  const nlohmann::json optimizer_hook = optimizer_hook_options(c, entries, amp_asked_by);
  if (optimizer_hook.contains("mixed_precision")) {
    // Checked here, before any training, so that the error names the key that asked for it.
    try {
      MixedPrecision check(optimizer_hook["mixed_precision"], setup_.device);
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("{}: {}: {}", c.source(), amp_asked_by, e.what()),
                  e.hint());
    }
  }
  add(optimizer_hook,
      c.has("train.optimizer_hook") ? "train.optimizer_hook" : "train.optimizer.options");
  // Likewise an LR hook in train.hooks of the type the key chain makes: one hook (two would step
  // the schedule twice), the entry's options over the chain's.
  auto with_listed = [&entries](nlohmann::json o) {
    const std::string type = type_of(o);
    for (auto it = entries.begin(); it != entries.end();) {
      if (type.empty() || type_of(*it) != type) {
        ++it;
        continue;
      }
      for (auto& [key, value] : it->items()) o[key] = value;
      it = entries.erase(it);
    }
    return o;
  };
  // As ModelScope's trainer: a train.lr_scheduler_hook replaces train.lr_scheduler.options (their
  // warmup too, see lr_scheduler()).
  if (c.has("train.lr_scheduler_hook")) {
    add(with_listed(options_at(c, "train.lr_scheduler_hook")), "train.lr_scheduler_hook");
  } else if (c.has("train.lr_scheduler")) {
    nlohmann::json o = options_at(c, "train.lr_scheduler.options");
    const bool plateau =
        c.get_or<std::string>("train.lr_scheduler.type", "") == "ReduceLROnPlateau";
    MS_CHECK(!plateau, ErrorCode::kConfig,
             "{}: ReduceLROnPlateau steps on a metric: set train.lr_scheduler_hook to "
             "{{\"type\": \"PlateauLrSchedulerHook\", \"metric_key\": \"...\"}}",
             c.source());
    o["type"] = "LrSchedulerHook";
    add(with_listed(o), "train.lr_scheduler.options");
  }
  auto merge_into = [&](const std::string& type, const nlohmann::json& options) {
    for (auto& e : entries) {
      if (type_of(e) == type) {
        e.update(options);
        return;
      }
    }
    nlohmann::json e = options;
    e["type"] = type;
    entries.push_back(e);
  };
  const std::pair<const char*, const char*> chains[] = {
      {"train.checkpoint.period", "CheckpointHook"},
      {"train.checkpoint.best", "BestCkptSaverHook"},
      {"train.logging", "TextLoggerHook"},
      {"evaluation.period", "EvaluationHook"}};
  for (const auto& [key, type] : chains)
    if (c.has(key)) merge_into(type, options_at(c, key));
  const std::pair<const char*, nlohmann::json> defaults[] = {
      {"CheckpointHook", {{"interval", 1}}},
      {"TextLoggerHook", {{"interval", 10}}},
      {"IterTimerHook", nlohmann::json::object()}};
  for (const auto& [type, options] : defaults) {
    bool present = false;
    for (const auto& e : entries) present = present || type_of(e) == type;
    if (!present) merge_into(type, options);
  }
  for (std::size_t i = 0; i < entries.size(); ++i)
    add(entries[i], fmt::format("train.hooks[{}]", i));
  hooks_.call(Stage::kAfterInit, *this);
}

void Trainer::set_progress(std::int64_t epoch, std::int64_t iter, std::int64_t inner_iter) {
  epoch_ = epoch, iter_ = iter, inner_iter_ = inner_iter;
}

Optimizer& Trainer::optimizer() {
  if (!optimizer_) {
    MS_CHECK(setup_.config.has("train.optimizer"), ErrorCode::kConfig,
             "{}: train.optimizer is missing (e.g. {{\"type\": \"AdamW\", \"lr\": 2e-5}})",
             setup_.config.source());
    std::vector<at::Tensor> params;
    for (const at::Tensor& p : model().module().parameters())
      if (p.requires_grad()) params.push_back(p);
    std::vector<ParamGroup> groups{{std::move(params), {}}};
    try {
      optimizer_ = build_optimizer(plain(setup_.config.at("train.optimizer")), std::move(groups));
    } catch (Error& e) {
      e.add_context(fmt::format("in {}: train.optimizer", setup_.config.source()));
      throw;
    }
  }
  return *optimizer_;
}

LrScheduler* Trainer::lr_scheduler() {
  if (!lr_scheduler_ && setup_.config.has("train.lr_scheduler")) {
    const nlohmann::json config = plain(setup_.config.at("train.lr_scheduler"));
    // The warmup is the LR hook's option: train.lr_scheduler_hook.warmup, else (unless an
    // LrSchedulerHook given there replaces them) train.lr_scheduler.options.warmup; one over
    // ReduceLROnPlateau is refused below.
    nlohmann::json warmup;
    const bool hook_replaces_options =
        setup_.config.has("train.lr_scheduler_hook") &&
        setup_.config.get_or<std::string>("train.lr_scheduler_hook.type", "") !=
            "PlateauLrSchedulerHook";
    if (setup_.config.has("train.lr_scheduler_hook.warmup")) {
      warmup = plain(setup_.config.at("train.lr_scheduler_hook.warmup"));
    } else if (!hook_replaces_options && config.contains("options") &&
               config["options"].is_object() && config["options"].contains("warmup")) {
      warmup = config["options"]["warmup"];
    }
    try {
      lr_scheduler_ = build_lr_scheduler(config, optimizer().lrs());
      if (!warmup.is_null()) {
        MS_CHECK(config.value("type", "") != "ReduceLROnPlateau", ErrorCode::kConfig,
                 "a warmup cannot wrap ReduceLROnPlateau (it steps on a metric)");
        lr_scheduler_ = wrap_in_warmup(std::move(lr_scheduler_), warmup);
      }
    } catch (Error& e) {
      e.add_context(fmt::format("in {}: train.lr_scheduler", setup_.config.source()));
      throw;
    }
    // PyTorch's constructor sets the optimizer's rates to those of step 0.
    optimizer().set_lrs(lr_scheduler_->lrs());
    if (!lr_scheduler_->momentums().empty()) optimizer().set_momentums(lr_scheduler_->momentums());
  }
  return lr_scheduler_.get();
}

void Trainer::set_lr_scheduler(std::unique_ptr<LrScheduler> scheduler) {
  lr_scheduler_ = std::move(scheduler);
}

void Trainer::console(const std::string& line) const { setup_.console(line); }

void Trainer::move_to_device(models::TensorMap& batch) const {
  if (setup_.device == "cpu") return;
  for (auto& [name, t] : batch) t = t.to(at::Device(setup_.device), /*non_blocking=*/true);
}

void Trainer::train_step(models::TensorMap batch) {
  // Every input of a batch is batch-first: any one gives its rows.
  if (!batch.empty() && batch.begin()->second.dim() > 0)
    rows_trained_ += batch.begin()->second.size(0);
  move_to_device(batch);
  // An evaluation leaves the mode at kEval (the loggers report it so); training takes it back here,
  // as ModelScope's train_step does.
  mode_ = Mode::kTrain;
  model().train();
  // The rate this step uses (the LrSchedulerHook updates it after its step; runs without a
  // schedule log it too).
  log_buffer_.output()["lr"] = optimizer().lrs().at(0);
  train_outputs_ = models::checked_forward(model(), batch, setup_.device);
  bool has_loss = false;
  for (const auto& [name, value] : train_outputs_) {
    if (name.find("loss") == std::string::npos) continue;
    has_loss = true;
    // Under data parallelism the logged loss is the mean over the ranks (ModelScope all-reduces
    // it too), so rank 0's log describes the whole batch.
    const double local = value.detach().item<double>();
    log_buffer_.update(name, setup_.distributed ? setup_.distributed->mean(local) : local);
  }
  MS_CHECK(has_loss, ErrorCode::kUsage,
           "the model gave no loss: the batches need labels (the dataset's label column)");
}

void Trainer::call_stage(Stage stage) {
  hooks_.call(stage, *this);
  std::vector<std::function<void()>> actions, commits;
  actions.swap(at_stage_end_);
  commits.swap(after_stage_saves_);
  for (auto& action : actions) {
    action();
    test_kill_after_save_action();
  }
  for (auto& commit : commits) {
    commit();
    test_kill_after_commit();
  }
}

namespace {

// A configuration key that may differ between machines: a folder or file of this machine's, or
// how many loader threads it runs.
bool machine_local_key(const std::string& key) {
  const std::string last = key.substr(key.find_last_of('.') + 1);
  return ends_with(last, "dir") || ends_with(last, "_path") || ends_with(last, "_file") ||
         last == "workers_per_gpu";
}

// "key = value" for every leaf of `value` under `key` (arrays by index).
void add_config_facts(const std::string& key, const Json& value, std::vector<std::string>& facts) {
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it)
      add_config_facts(key + "." + it.key(), it.value(), facts);
  } else if (value.is_array()) {
    for (std::size_t i = 0; i < value.size(); ++i)
      add_config_facts(fmt::format("{}[{}]", key, i), value[i], facts);
  } else if (!machine_local_key(key)) {
    facts.push_back(fmt::format("{} = {}", key, value.dump()));
  }
}

}  // namespace

std::vector<std::string> Trainer::run_facts() const {
  // Where the run starts (a resumed run: the checkpoint's epoch), its data order.
  std::vector<std::string> facts{
      fmt::format("iterations per epoch = {}", iters_per_epoch_),
      fmt::format("train.max_epochs = {}", max_epochs_),
      fmt::format("start at epoch {}, iteration {}", epoch_ + 1, inner_iter_),
      fmt::format("--seed = {}", setup_.seed),
      fmt::format("training data hash = {:016x}", setup_.train_data_hash)};
  // The schedule of every hook, the optimizer, the loader: ranks that differ there call their
  // collectives at other times, and wait for each other until the timeout.
  if (setup_.config.has("train")) add_config_facts("train", setup_.config.at("train"), facts);
  for (std::string& fact : evaluation_facts()) facts.push_back(std::move(fact));
  return facts;
}

std::vector<std::string> Trainer::evaluation_facts() const {
  std::vector<std::string> facts{fmt::format("labels = [{}]", fmt::join(setup_.label_names, ", "))};
  // Each rank evaluates a share of the batches: other rows would merge into a figure of no split.
  if (setup_.eval_data) {
    facts.push_back(fmt::format("evaluation rows = {}", setup_.eval_data->rows()));
    facts.push_back(fmt::format("evaluation batch size = {}", setup_.eval_data->batch_size()));
    facts.push_back(fmt::format("evaluation batches = {}", setup_.eval_data->num_batches()));
    facts.push_back(fmt::format("evaluation data hash = {:016x}", setup_.eval_data_hash));
  }
  // The preprocessing too: another max_length tokenises the same rows into other batches.
  for (const char* section : {"preprocessor", "evaluation"}) {
    if (setup_.config.has(section)) add_config_facts(section, setup_.config.at(section), facts);
  }
  // And the model's files that tokenise them and shape its network: copies of a model whose
  // vocab.txt differs (another revision on another machine) read the same rows as other token
  // ids; another config.json (heads, activation) computes another function of the same tensors.
  facts.insert(facts.end(), setup_.model_file_facts.begin(), setup_.model_file_facts.end());
  auto add = [&facts](const char* kind, const std::string& name, const at::Tensor& t) {
    facts.push_back(fmt::format("{} {} of shape [{}] ({})", kind, name, fmt::join(t.sizes(), ", "),
                                c10::toString(t.scalar_type())));
  };
  const torch::nn::Module& module = setup_.model->module();
  for (const auto& p : module.named_parameters()) add("parameter", p.key(), p.value());
  for (const auto& b : module.named_buffers()) add("buffer", b.key(), b.value());
  return facts;
}

void Trainer::train(const std::optional<std::filesystem::path>& resume_from) {
  MS_CHECK(setup_.train_data != nullptr, ErrorCode::kUsage, "there is no training data");
  register_hooks_from_config();
  mode_ = Mode::kTrain;
  if (resume_from) {
    register_hook(build_hook({{"type", "LoadCheckpointHook"},
                              {"checkpoint_file", checkpoint_prefix(*resume_from).string()}}));
  }
  // The optimizer and schedule are built now, so that their config errors come first.
  optimizer();
  lr_scheduler();
  MS_CHECK(setup_.eval_data != nullptr || hooks_.of_type("EvaluationHook").empty(),
           ErrorCode::kUsage,
           "{}: an EvaluationHook is configured but there is no evaluation data: give "
           "--eval-dataset or --eval-split, or a dataset with a validation or test split",
           setup_.config.source());
  // So are the metrics, so that a misnamed one or a bad option is found now, not after an epoch.
  if (!hooks_.of_type("EvaluationHook").empty()) build_metrics();
  hooks_.call(Stage::kBeforeRun, *this);  // a LoadCheckpointHook restores the counters here
  first_iter_ = iter_;
  // Every rank starts from rank 0's weights, as DDP makes them when it wraps a model (a resumed
  // run has loaded the same checkpoint everywhere already; a fresh head is seeded alike).
  if (setup_.distributed) {
    setup_.distributed->check_alike(run_facts());
    setup_.distributed->broadcast_module(model().module());
  }
  // A checkpoint taken after its epoch ended resumes at the next one; one taken after the
  // epoch's last iteration but before its end (a by-iteration checkpoint) still runs that
  // epoch's after_train_epoch hooks (its LR step, evaluation, ...), with no batch left to do.
  bool stopped_before_resume = false;
  const bool resumed_after_epoch_end = resumed_epoch_done_;
  if (resumed_epoch_done_) {
    ++epoch_;
    inner_iter_ = 0;
    resumed_epoch_done_ = false;
    // That epoch's hooks had stopped training (EarlyStopHook): the run was over there.
    stopped_before_resume = stop_;
  }
  if (stopped_before_resume) {
    log::warn("nothing left to train: the run stopped early in epoch {} (iteration {})", epoch_,
              iter_);
  } else if (epoch_ >= max_epochs_) {
    // Numbered from 1 as the logs number epochs: epoch_ is the next one's index after an
    // epoch's end, the checkpoint's own index before it.
    checkpoint_epochs_ = resumed_after_epoch_end ? epoch_ : epoch_ + 1;
    log::warn(
        "nothing left to train: the checkpoint was taken in epoch {} (iteration {}), and "
        "train.max_epochs is {}",
        checkpoint_epochs_, iter_, max_epochs_);
  }
  for (; epoch_ < max_epochs_ && !stopped_before_resume; ++epoch_) {
    hooks_.call(Stage::kBeforeTrainEpoch, *this);
    setup_.train_data->start(static_cast<std::uint64_t>(epoch_),
                             static_cast<std::size_t>(inner_iter_));
    for (std::int64_t i = inner_iter_; i < iters_per_epoch_; ++i) {
      std::optional<models::TensorMap> batch = setup_.train_data->next();
      if (!batch) break;
      inner_iter_ = i;
      hooks_.call(Stage::kBeforeTrainIter, *this);
      train_step(std::move(*batch));
      call_stage(Stage::kAfterTrainIter);
      train_outputs_.clear();
      ++iter_;
      test_kill_point(iter_);
    }
    inner_iter_ = iters_per_epoch_ - 1;
    epoch_end_ = true;
    call_stage(Stage::kAfterTrainEpoch);
    epoch_end_ = false;
    inner_iter_ = 0;
    if (stop_) {
      ++epoch_;
      break;
    }
  }
  hooks_.call(Stage::kAfterRun, *this);
}

namespace {

// The metrics' values, metric by metric in their configured order.
Json values_of(const std::vector<std::unique_ptr<metrics::Metric>>& metrics) {
  Json values = Json::object();
  for (const auto& m : metrics)
    for (const auto& [key, value] : m->evaluate()) values[key] = value;
  return values;
}

}  // namespace

std::vector<std::unique_ptr<metrics::Metric>> Trainer::build_metrics() {
  Json metrics_config = setup_.config.get_or<Json>("evaluation.metrics", Json());
  if (metrics_config.is_null()) {
    const std::string metric = metrics::task_default_metric(model().task());
    MS_CHECK(!metric.empty(), ErrorCode::kConfig,
             "{}: evaluation.metrics is not set and task {} has no default metric",
             setup_.config.source(), model().task());
    metrics_config = Json::array({metric});
  } else if (!metrics_config.is_array()) {
    metrics_config = Json::array({metrics_config});
  }
  std::vector<std::unique_ptr<metrics::Metric>> metric_list;
  for (const Json& m : metrics_config) {
    nlohmann::json spec = plain(m);
    // token-cls-metric reads entities from tag names: the run's label map, unless configured.
    if (spec.is_string()) spec = {{"type", spec}};
    if (spec.is_object() && spec.value("type", "") == "token-cls-metric" &&
        !spec.contains("label2id") && !spec.contains("id2label") && !setup_.label_names.empty()) {
      for (std::size_t i = 0; i < setup_.label_names.size(); ++i)
        spec["id2label"][std::to_string(i)] = setup_.label_names[i];
    }
    // A causal language model's labels are the inputs themselves (the model shifts them); ppl
    // scores each position's logits, so it reads the next tokens the batches give beside them.
    if (spec.is_object() && spec.value("type", "") == "ppl" && !spec.contains("label_name") &&
        model().task() == "text-generation")
      spec["label_name"] = "next_token_labels";
    try {
      metric_list.push_back(metrics::build_metric(spec));
    } catch (Error& e) {
      e.add_context(fmt::format("in {}: evaluation.metrics", setup_.config.source()));
      throw;
    }
  }
  for (const auto& m : metric_list) {
    MS_CHECK(m->type() != metrics::kTextGenMetric || setup_.generation, ErrorCode::kConfig,
             "{}: evaluation.metrics: text-gen-metric scores generated text, which only a "
             "text-generation model writes (this one's task is {})",
             setup_.config.source(), model().task());
  }
  return metric_list;
}

void Trainer::check_metric_key(const std::string& key, const std::string& hook) {
  // Without evaluation data the first evaluation says so itself.
  if (setup_.eval_data == nullptr) return;
  std::vector<std::string> keys, metric_names;
  for (const auto& m : build_metrics()) {
    const std::vector<std::string> of_metric = m->keys();
    if (std::find(of_metric.begin(), of_metric.end(), key) != of_metric.end()) return;
    keys.insert(keys.end(), of_metric.begin(), of_metric.end());
    metric_names.push_back(m->type());
  }
  if (metric_names.empty()) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: {}: metric_key '{}' has no metric to come from: "
                            "evaluation.metrics is empty",
                            setup_.config.source(), hook, key),
                "list the metric that reports it in evaluation.metrics");
  }
  throw Error(ErrorCode::kConfig,
              fmt::format("{}: {}: metric_key '{}' is not a value the evaluation's metrics ({}) "
                          "report",
                          setup_.config.source(), hook, key, join(metric_names, ", ")),
              choices_hint(key, keys, "their values") +
                  "; or add a metric that reports it to evaluation.metrics");
}

Json Trainer::evaluate() {
  MS_CHECK(setup_.eval_data != nullptr, ErrorCode::kUsage,
           "there is no evaluation data: give --eval-dataset, or a dataset with a validation or "
           "test split");
  std::vector<std::unique_ptr<metrics::Metric>> metric_list = build_metrics();
  mode_ = Mode::kEval;
  hooks_.call(Stage::kBeforeVal, *this);
  // ModelScope's evaluation.val_iters_per_epoch: the first N batches only.
  std::size_t batches = setup_.eval_data->num_batches();
  if (val_iters_) batches = std::min(batches, static_cast<std::size_t>(*val_iters_));
  Json values;
  if (!setup_.distributed) {
    evaluate_batches(0, batches, metric_list);
    values = values_of(metric_list);
  } else {
    // Each rank evaluates a contiguous share of the batches one process would make (the same
    // rows, the same padding, so each batch gives what it gives there), and rank 0 merges the
    // shares in rank order: the single-process figure, exactly, in 1/N of the time. (ModelScope
    // deals rows instead, padding the split with repeated rows, which shifts the figure.)
    const auto rank = static_cast<std::size_t>(setup_.distributed->rank());
    const auto world = static_cast<std::size_t>(setup_.distributed->world_size());
    const std::size_t first = batches * rank / world, end = batches * (rank + 1) / world;
    log::debug("rank {} evaluates batches {} to {} of {}", rank, first, end, batches);
    // Rank 0's BatchNorm statistics on every rank, as DDP's broadcast_buffers keeps them: each
    // rank updated its own copy while training, and the figure is that of rank 0's model (the
    // one it saves). Parameters are equal on every rank already.
    setup_.distributed->broadcast_buffers(model().module());
    std::optional<Error> failure;
    try {
      evaluate_batches(first, end, metric_list);
    } catch (const Error& e) {
      failure = e;  // every rank must still take part in the exchange, or the others wait
    } catch (const std::exception& e) {  // LibTorch's (a device out of memory), the allocator's
      failure = error_from_exception(e);
    }
    values = combine_shares(metric_list, failure);
  }
  metric_values_ = values;
  hooks_.call(Stage::kAfterVal, *this);
  return values;
}

void Trainer::evaluate_batches(std::size_t first, std::size_t end,
                               std::vector<std::unique_ptr<metrics::Metric>>& metrics) {
  // As ModelScope's TextGenerationTrainer: text-gen-metric's texts are generated, and the forward
  // pass runs only for the metrics that read its outputs (ppl, loss-metric, ...).
  bool forward = false, generate = false;
  for (const auto& m : metrics) (m->type() == metrics::kTextGenMetric ? generate : forward) = true;
  const bool was_training = model().is_training();
  model().eval();
  {
    c10::InferenceMode guard;
    setup_.eval_data->start(0, first);
    for (std::size_t b = first; b < end; ++b) {
      std::optional<models::TensorMap> batch = setup_.eval_data->next();
      if (!batch) break;
      metrics::Fields outputs, inputs;
      if (forward) {
        models::TensorMap batch_inputs = std::move(*batch);
        move_to_device(batch_inputs);
        outputs = fields_of(models::checked_forward(model(), batch_inputs, setup_.device));
        inputs = fields_of(batch_inputs);
      }
      if (generate) add_generated_texts(outputs, inputs);
      for (auto& m : metrics) m->add(outputs, inputs);
    }
  }
  model().train(was_training);
}

void Trainer::add_generated_texts(metrics::Fields& outputs, metrics::Fields& inputs) const {
  const GenerationEval& g = *setup_.generation;
  const std::vector<std::size_t> rows = setup_.eval_data->last_rows();
  MS_ASSERT(!rows.empty());  // a source that does not name its rows (prefetched images)
  std::vector<std::string> prompts;
  metrics::Array targets;
  for (const std::size_t r : rows) {
    MS_ASSERT(r < g.prompts.size() && r < g.targets.size());
    prompts.push_back(g.prompts[r]);
    targets.texts.push_back(g.targets[r]);
  }
  metrics::Array generated;
  generated.texts = g.continue_texts(prompts);
  generated.shape = targets.shape = {static_cast<std::int64_t>(rows.size())};
  // ModelScope's trainer names them so; the metric's pred_text / target_text options pick them.
  outputs["preds"] = std::move(generated);
  inputs["tgts"] = std::move(targets);
}

Json Trainer::combine_shares(std::vector<std::unique_ptr<metrics::Metric>>& metrics,
                             std::optional<Error> failure) {
  Distributed& dist = *setup_.distributed;
  // An error as every rank rethrows it; `rank` names the share it came from (none: the merge).
  auto error_document = [](const Error& e, std::optional<int> rank) {
    return nlohmann::json{
        {"code", static_cast<int>(e.code())},
        {"message", rank ? fmt::format("{} (rank {}'s share of the evaluation)", e.what(), *rank)
                         : std::string(e.what())},
        {"hint", e.hint()},
        {"context", e.context()}};
  };
  // CBOR, not JSON text: the states' doubles stay exact, and a NaN or infinite metric stays a
  // number (JSON text would make it null) for the hooks that compare it.
  nlohmann::json share = nlohmann::json::object();
  if (!failure) {
    try {
      share["states"] = nlohmann::json::array();
      for (const auto& m : metrics) share["states"].push_back(m->state());
    } catch (const std::exception& e) {
      failure = Error(ErrorCode::kInternal, e.what());
    }
  }
  if (failure) share = {{"error", error_document(*failure, dist.rank())}};
  const std::vector<std::uint8_t> mine = nlohmann::json::to_cbor(share);
  const std::vector<std::string> shares =
      dist.gather_to_main(std::string(mine.begin(), mine.end()));
  nlohmann::json verdict = nlohmann::json::object();
  if (dist.is_main()) {
    try {
      // Rank 0's own share is in `metrics` already; the others follow in rank order.
      for (std::size_t r = 0; r < shares.size() && !verdict.contains("error"); ++r) {
        const nlohmann::json other = nlohmann::json::from_cbor(shares[r]);
        if (other.contains("error")) {
          verdict["error"] = other["error"];
        } else if (r > 0) {
          for (std::size_t i = 0; i < metrics.size(); ++i)
            metrics[i]->merge_state(other.at("states").at(i));
        }
      }
      // As [key, value] pairs: the keys keep the order one process reports them in.
      if (!verdict.contains("error")) {
        verdict["values"] = nlohmann::json::array();
        const Json values = values_of(metrics);
        for (const auto& [key, value] : values.items())
          verdict["values"].push_back({key, value.get<double>()});
      }
    } catch (const Error& e) {
      verdict["error"] = error_document(e, std::nullopt);
    } catch (const nlohmann::json::exception& e) {
      verdict["error"] =
          error_document(Error(ErrorCode::kIntegrity,
                               fmt::format("a rank's evaluation arrived broken: {}", e.what())),
                         std::nullopt);
    }
  }
  const std::vector<std::uint8_t> out = nlohmann::json::to_cbor(verdict);
  const std::string shared =
      dist.from_main(std::string(out.begin(), out.end()), "sharing the evaluation's result");
  const nlohmann::json result = nlohmann::json::from_cbor(shared.begin(), shared.end());
  if (result.contains("error")) {
    const nlohmann::json& e = result["error"];
    Error error(static_cast<ErrorCode>(e.at("code").get<int>()), e.at("message").get<std::string>(),
                e.at("hint").get<std::string>());
    for (const auto& frame : e.at("context")) error.add_context(frame.get<std::string>());
    throw error;
  }
  Json values = Json::object();
  for (const nlohmann::json& pair : result.at("values"))
    values[pair.at(0).get<std::string>()] = pair.at(1).get<double>();
  return values;
}

std::vector<std::pair<std::string, Hook*>> Trainer::hook_state_keys() const {
  // "<type>-<k>" for the k-th hook of a type: the same configuration gives the same keys, with or
  // without the LoadCheckpointHook a resumed run adds.
  std::vector<std::pair<std::string, Hook*>> out;
  std::map<std::string, int> seen;
  for (const auto& hook : hooks_.hooks())
    out.emplace_back(fmt::format("{}-{}", hook->type(), seen[hook->type()]++), hook.get());
  return out;
}

models::TensorMap Trainer::model_state() const {
  models::TensorMap state = setup_.model->state_dict();
  for (auto& [name, t] : state) {
    t = t.detach().to(at::kCPU).contiguous();
    // What is saved must be a model: a step can leave NaN in the weights while the loss it was
    // taken on was finite (AdamW with eps 0 divides 0 by 0), and the loss check would only see
    // it an iteration later, after this save had replaced the last good checkpoint.
    if (t.is_floating_point() && !t.isfinite().all().item<bool>()) {
      throw Error(ErrorCode::kIntegrity,
                  fmt::format("the weights hold NaN or infinity after iteration {} (first in {}): "
                              "not saved, so the last checkpoint is still the last good one",
                              iter_ + 1, name),
                  "lower the learning rate, check the optimizer's options (eps > 0), or clip "
                  "gradients (OptimizerHook's grad_clip)");
    }
  }
  return state;
}

CheckpointValue Trainer::trainer_state() const {
  CheckpointValue meta = CheckpointValue::dict();
  meta.set("epoch", epoch_);
  meta.set("iter", iter_ + 1);
  meta.set("inner_iter", inner_iter_ + 1);
  meta.set("epoch_done", epoch_end_);
  meta.set("stop_training", stop_);
  meta.set("iters_per_epoch", iters_per_epoch_);
  if (setup_.train_data) {
    meta.set("batch_size", static_cast<std::int64_t>(setup_.train_data->batch_size()));
    meta.set("shuffle", setup_.train_data->shuffled());
  }
  meta.set("seed", static_cast<std::int64_t>(setup_.seed));
  if (optimizer_) meta.set("optimizer_type", optimizer_->type());
  if (setup_.train_data_hash != 0)
    meta.set("train_data_hash", static_cast<std::int64_t>(setup_.train_data_hash));
  meta.set("world_size",
           static_cast<std::int64_t>(setup_.distributed ? setup_.distributed->world_size() : 1));
  CheckpointValue rng = CheckpointValue::dict();
  {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    rng.set("cpu", generator.get_state());
  }
  if (setup_.distributed) {
    // Each rank's generator (dropout over batches of different lengths draws differently), so
    // that every rank of a resumed run continues its own stream.
    const at::Tensor mine = rng.at("cpu").as_tensor().contiguous();
    const std::vector<std::string> all = setup_.distributed->gather_to_main(
        std::string(static_cast<const char*>(mine.data_ptr()), mine.nbytes()));
    CheckpointValue ranks = CheckpointValue::list();
    for (const std::string& bytes : all) {
      at::Tensor t = at::empty({static_cast<std::int64_t>(bytes.size())}, at::kByte);
      std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
      ranks.push_back(CheckpointValue(t));
    }
    rng.set("cpu_ranks", std::move(ranks));
  }
  meta.set("rng_state", std::move(rng));
  for (const auto& [key, hook] : hook_state_keys()) {
    CheckpointValue state = hook->state_dict();
    if (!state.is_none()) meta.set(key, std::move(state));
  }
  // The last evaluation's values (ms's own key; ModelScope's loader leaves it alone): a resumed
  // run acts on them until it evaluates again, as the run it continues did, and a finished run
  // resumed reports them.
  if (!metric_values_.is_null()) meta.set("ms_metric_values", metric_values_.dump());
  meta.set("modelscope", std::string("ms ") + version());
  meta.set("time", timestamp_);
  CheckpointValue out = CheckpointValue::dict();
  out.set("meta", std::move(meta));
  if (optimizer_) out.set("optimizer", optimizer_->state_dict());
  if (lr_scheduler_) {
    // torch's layout, which Python ModelScope loads into its schedule when it resumes, and ms's
    // own whole state (a warmup's included), which ms resumes from.
    nlohmann::json saved = lr_scheduler_->torch_state();
    saved[kMsSchedulerState] = lr_scheduler_->state();
    out.set("lr_scheduler", to_checkpoint(saved));
  }
  return out;
}

void Trainer::load_trainer_state(const CheckpointValue& state) {
  const CheckpointValue& meta = state.at("meta");
  epoch_ = meta.at("epoch").as_int();
  iter_ = meta.at("iter").as_int();
  inner_iter_ = meta.at("inner_iter").as_int();
  const CheckpointValue* done = meta.find("epoch_done");
  resumed_epoch_done_ = done ? done->as_bool() : inner_iter_ >= iters_per_epoch_;
  // The meta holds iter + 1, as ModelScope writes it. Inside an iteration that is the number of
  // iterations done; at an epoch's end the counter has already passed the epoch's last
  // iteration, so it is one more than were done. Counting on from it would shift every
  // by-iteration interval after a resume (gradient accumulation's steps among them).
  if (resumed_epoch_done_) --iter_;
  if (const CheckpointValue* stop = meta.find("stop_training")) stop_ = stop->as_bool();
  if (const CheckpointValue* values = meta.find("ms_metric_values"))
    metric_values_ = Json::parse(values->as_string(), nullptr, /*allow_exceptions=*/false);
  if (metric_values_.is_discarded()) metric_values_ = Json();
  // A by-iteration checkpoint taken after its epoch's last batch, before the epoch's end: no
  // batch of that epoch is left, so, as at an epoch's end, the workers, batch size and data may
  // change; the resume runs only the epoch's end (its hooks), none of this run's batches.
  const CheckpointValue* batches = meta.find("iters_per_epoch");
  const bool epoch_batches_done =
      resumed_epoch_done_ || (batches != nullptr && inner_iter_ >= batches->as_int());
  if (epoch_batches_done && !resumed_epoch_done_) inner_iter_ = iters_per_epoch_;
  // The epochs before this one had the checkpoint's batch count, which may not be this run's:
  // the last iteration (CheckpointHook's save_last by iteration, the log's ETA) counts from the
  // iterations done. 0 when the counts agree.
  iters_offset_ = resumed_epoch_done_ ? iter_ - (epoch_ + 1) * iters_per_epoch_
                                      : iter_ - inner_iter_ - epoch_ * iters_per_epoch_;
  // The batches of an epoch are dealt per rank: a checkpoint taken inside an epoch resumes only
  // on as many ranks as wrote it (at an epoch's end any count goes on from the next epoch).
  const CheckpointValue* world = meta.find("world_size");
  const std::int64_t saved_world = world ? world->as_int() : 1;
  const std::int64_t this_world = setup_.distributed ? setup_.distributed->world_size() : 1;
  MS_CHECK(saved_world == this_world || epoch_batches_done, ErrorCode::kUsage,
           "the checkpoint was taken inside an epoch on {} worker(s); this run has {}: resume it "
           "on {}, or from an epoch's checkpoint",
           saved_world, this_world, saved_world);
  // Inside an epoch the rest of it is the batches after inner_iter: with another batch size or
  // dataset they would be other batches, and the resume would not be the run it continues.
  if (batches && !epoch_batches_done && batches->as_int() != iters_per_epoch_) {
    throw Error(ErrorCode::kUsage,
                fmt::format("the checkpoint was taken inside an epoch of {} batches; this run's "
                            "epochs have {} (another batch size or dataset)",
                            batches->as_int(), iters_per_epoch_),
                "resume with the data and batch size it was trained with, or from an epoch's "
                "checkpoint");
  }
  // The same number of batches is not the same batches: 100 rows make 8 batches of 13 or of 14,
  // and a shuffled epoch's rest is other rows than an ordered one's.
  const CheckpointValue* saved_batch = meta.find("batch_size");
  const CheckpointValue* saved_shuffle = meta.find("shuffle");
  if (!epoch_batches_done && saved_batch && saved_shuffle &&
      (saved_batch->as_int() != static_cast<std::int64_t>(setup_.train_data->batch_size()) ||
       saved_shuffle->as_bool() != setup_.train_data->shuffled())) {
    auto batching = [](std::int64_t size, bool shuffled) {
      return fmt::format("batches of {}, {}", size, shuffled ? "shuffled" : "in order");
    };
    throw Error(ErrorCode::kUsage,
                fmt::format("the checkpoint was taken inside an epoch of {}; this run has {}, so "
                            "the rest of the epoch would be other rows",
                            batching(saved_batch->as_int(), saved_shuffle->as_bool()),
                            batching(static_cast<std::int64_t>(setup_.train_data->batch_size()),
                                     setup_.train_data->shuffled())),
                "resume with train.dataloader's batch_size_per_gpu and shuffle it was trained "
                "with, or from an epoch's checkpoint");
  }
  // The same row count is not the same data: other rows (or the same ones shuffled, or
  // relabelled) would make the rest of the epoch other batches.
  if (const CheckpointValue* data = meta.find("train_data_hash");
      data && !epoch_batches_done && setup_.train_data_hash != 0 &&
      static_cast<std::uint64_t>(data->as_int()) != setup_.train_data_hash) {
    throw Error(ErrorCode::kUsage,
                "the checkpoint was taken inside an epoch of other training data (the same "
                "number of batches, other rows, order or labels)",
                "resume with the data it was trained with, or from an epoch's checkpoint");
  }
  if (const CheckpointValue* seed = meta.find("seed")) {
    MS_CHECK(static_cast<std::uint64_t>(seed->as_int()) == setup_.seed, ErrorCode::kUsage,
             "the checkpoint was trained with --seed {}, this run has --seed {}: the data order "
             "and dropout would differ",
             seed->as_int(), setup_.seed);
  }
  if (const CheckpointValue* rng = meta.find("rng_state")) {
    const CheckpointValue* cpu = rng->find("cpu");
    // A data-parallel checkpoint holds each rank's state; a rank it lacks (a run resumed on
    // more ranks) takes rank 0's.
    const int rank = setup_.distributed ? setup_.distributed->rank() : 0;
    if (const CheckpointValue* ranks = rng->find("cpu_ranks");
        ranks && rank < static_cast<int>(ranks->items().size()))
      cpu = &ranks->items()[static_cast<std::size_t>(rank)];
    if (cpu) {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(cpu->as_tensor());
    }
  }
  for (const auto& [key, hook] : hook_state_keys())
    if (const CheckpointValue* saved = meta.find(key)) hook->load_state_dict(*saved);
  if (const CheckpointValue* type = meta.find("optimizer_type");
      type && type->as_string() != optimizer().type()) {
    throw Error(ErrorCode::kUsage,
                fmt::format("the checkpoint was trained with the {} optimizer; this run's "
                            "train.optimizer is {}",
                            type->as_string(), optimizer().type()),
                "resume with the optimizer it was trained with, or start over with --overwrite");
  }
  if (const CheckpointValue* saved = state.find("optimizer")) optimizer().load_state_dict(*saved);
  if (const CheckpointValue* saved = state.find("lr_scheduler"); saved && !saved->is_none()) {
    MS_CHECK(lr_scheduler() != nullptr, ErrorCode::kIntegrity,
             "the checkpoint has an LR schedule but train.lr_scheduler is not set");
    const nlohmann::json state = from_checkpoint(*saved);
    // Older checkpoints of ms hold ms's state alone, not beside torch's fields.
    const auto own = state.find(kMsSchedulerState);
    lr_scheduler()->load_state(own != state.end() ? *own : state);
    optimizer().set_lrs(lr_scheduler()->lrs());
  }
}

void Trainer::load_model_state(const models::TensorMap& state, const std::string& source) {
  setup_.model->load_state_dict(state, source);
}

void Trainer::save_output(const std::filesystem::path& dir) const {
  if (!setup_.save_output) return;
  setup_.save_output(dir, model_state(), metric_values_);
  test_kill_after_output_save();
}

// ---- checkpoint files ---------------------------------------------------------------------------

std::filesystem::path model_file(const std::filesystem::path& prefix) {
  return prefix.string() + ".pth";
}

std::filesystem::path trainer_state_file(const std::filesystem::path& prefix) {
  return prefix.string() + "_trainer_state.pth";
}

std::filesystem::path checkpoint_prefix(const std::filesystem::path& path) {
  std::string p = path.string();
  for (const char* suffix : {"_trainer_state.pth", ".pth"}) {
    const std::string s = suffix;
    if (p.size() > s.size() && p.compare(p.size() - s.size(), s.size(), s) == 0)
      return p.substr(0, p.size() - s.size());
  }
  return path;
}

std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& work_dir) {
  const auto pointer = read_json_file(work_dir / kLatestCheckpointFile);
  if (!pointer || !pointer->contains("prefix") || !(*pointer)["prefix"].is_string())
    return std::nullopt;
  const std::filesystem::path prefix = work_dir / (*pointer)["prefix"].get<std::string>();
  if (!std::filesystem::exists(model_file(prefix)) ||
      !std::filesystem::exists(trainer_state_file(prefix)))
    return std::nullopt;
  return prefix;
}

}  // namespace ms::trainer

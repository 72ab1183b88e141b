// The hook trainer through its C++ API: hook order by priority (ties in registration order), the
// stages a run calls and when, a library user's own hook registered by type, config errors, and
// the checkpoint helpers. The model is the small CNN of the MODELS registry on synthetic images.
#include "ms/trainer/trainer.h"

#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <filesystem>

#include "catch.h"
#include "ms/core/error.h"
#include "ms/trainer/hook.h"
#include "ms/trainer/mixed_precision.h"

using ms::Json;
using ms::trainer::Hook;
using ms::trainer::Trainer;

namespace {

// Records every stage call as "<name>:<stage>".
class Recorder : public Hook {
 public:
  Recorder(std::string name, int prio, std::vector<std::string>* log)
      : name_(std::move(name)), log_(log) {
    set_priority(prio);
  }
  std::string type() const override { return "Recorder"; }
  void before_run(Trainer&) override { log_->push_back(name_ + ":before_run"); }
  void before_train_epoch(Trainer& t) override {
    log_->push_back(name_ + ":before_train_epoch" + std::to_string(t.epoch()));
  }
  void before_train_iter(Trainer& t) override {
    log_->push_back(name_ + ":before_train_iter" + std::to_string(t.iter()));
  }
  void after_train_iter(Trainer& t) override {
    log_->push_back(name_ + ":after_train_iter" + std::to_string(t.iter()));
  }
  void after_train_epoch(Trainer&) override { log_->push_back(name_ + ":after_train_epoch"); }
  void before_val(Trainer&) override { log_->push_back(name_ + ":before_val"); }
  void after_val(Trainer&) override { log_->push_back(name_ + ":after_val"); }
  void after_run(Trainer&) override { log_->push_back(name_ + ":after_run"); }

 private:
  std::string name_;
  std::vector<std::string>* log_;
};

// `rows` random 3x8x8 images with labels 0..2, in fixed batches.
class SyntheticImages : public ms::trainer::BatchSource {
 public:
  SyntheticImages(std::size_t rows, std::size_t batch) : rows_(rows), batch_(batch) {}
  std::size_t rows() const override { return rows_; }
  std::size_t num_batches() const override { return (rows_ + batch_ - 1) / batch_; }
  std::size_t batch_size() const override { return batch_; }
  void start(std::uint64_t, std::size_t skip) override { next_ = skip; }
  std::optional<ms::models::TensorMap> next() override {
    if (next_ >= num_batches()) return std::nullopt;
    const auto n = static_cast<int64_t>(std::min(batch_, rows_ - next_ * batch_));
    ++next_;
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < n; ++i) labels.push_back(i % 3);
    return ms::models::TensorMap{{"pixel_values", at::randn({n, 3, 8, 8})},
                                 {"labels", at::tensor(labels, at::kLong)}};
  }

 private:
  std::size_t rows_, batch_, next_ = 0;
};

ms::trainer::TrainerSetup setup(const Json& train, const std::filesystem::path& work) {
  Json root = {{"task", "image-classification"},
               {"model", {{"type", "small-cnn"}, {"channels", {4}}}},
               {"train", train},
               {"evaluation", {{"metrics", {"accuracy"}}}}};
  ms::trainer::TrainerSetup s;
  s.config = ms::Config(root, "test.json");
  ms::models::ModelSpec spec;
  spec.task = "image-classification";
  spec.type = "small-cnn";
  spec.config = s.config;
  spec.num_labels = 3;
  s.model = ms::models::build_model(spec);
  s.train_data = std::make_unique<SyntheticImages>(6, 4);
  s.eval_data = std::make_unique<SyntheticImages>(3, 4);
  s.work_dir = work;
  s.console = [](const std::string&) {};
  return s;
}

std::filesystem::path temp_dir(const char* name) {
  auto dir = std::filesystem::temp_directory_path() / ("ms-trainer-test-" + std::string(name));
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace

TEST_CASE("hooks run by priority, ties in registration order", "[trainer][hooks]") {
  ms::trainer::HookList list;
  std::vector<std::string> log;
  list.add(std::make_shared<Recorder>("low1", ms::trainer::priority::kLow, &log));
  list.add(std::make_shared<Recorder>("high", ms::trainer::priority::kHigh, &log));
  list.add(std::make_shared<Recorder>("low2", ms::trainer::priority::kLow, &log));
  list.add(std::make_shared<Recorder>("normal", ms::trainer::priority::kNormal, &log));
  list.add(std::make_shared<Recorder>("highest", ms::trainer::priority::kHighest, &log));
  std::vector<std::string> names;
  for (const auto& h : list.hooks()) names.push_back(std::to_string(h->priority()));
  CHECK(names == std::vector<std::string>{"0", "30", "50", "70", "70"});
  // The two LOW hooks keep their registration order.
  auto t =
      setup({{"max_epochs", 1}, {"optimizer", {{"type", "SGD"}, {"lr", 0.1}}}}, temp_dir("order"));
  Trainer trainer(std::move(t));
  list.call(ms::trainer::Stage::kBeforeRun, trainer);
  CHECK(log == std::vector<std::string>{"highest:before_run", "high:before_run",
                                        "normal:before_run", "low1:before_run", "low2:before_run"});
}

TEST_CASE("priorities from configs: names and numbers", "[trainer][hooks]") {
  CHECK(ms::trainer::parse_priority("HIGH", "h") == 30);
  CHECK(ms::trainer::parse_priority("very_low", "h") == 90);
  CHECK(ms::trainer::parse_priority(55, "h") == 55);
  CHECK_THROWS_AS(ms::trainer::parse_priority("HIHG", "h"), ms::Error);
  CHECK_THROWS_AS(ms::trainer::parse_priority(101, "h"), ms::Error);
  auto hook = ms::trainer::build_hook({{"type", "TextLoggerHook"}, {"priority", "LOWEST"}});
  CHECK(hook->priority() == 100);
  try {
    ms::trainer::build_hook({{"type", "EvaluationHok"}});
    FAIL("an unknown hook type was accepted");
  } catch (const ms::Error& e) {
    CHECK(std::string(e.what() + std::string(e.hint())).find("EvaluationHook") !=
          std::string::npos);
  }
  CHECK_THROWS_AS(ms::trainer::build_hook({{"type", "CheckpointHook"}, {"intervall", 2}}),
                  ms::Error);
  // by_epoch is a documented option even when save_strategy "no" leaves it nothing to time
  // (it was "unknown option 'by_epoch'").
  CHECK_NOTHROW(ms::trainer::build_hook(
      {{"type", "CheckpointHook"}, {"save_strategy", "no"}, {"by_epoch", false}}));
  // Negative rounding digits (Python's round takes them) are refused when the hook is built,
  // not at the first log line mid-run (an internal error there).
  try {
    ms::trainer::build_hook({{"type", "TextLoggerHook"}, {"rounding_digits", -2}});
    FAIL("negative rounding_digits were accepted");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kConfig);
    CHECK(std::string(e.what()).find("rounding_digits") != std::string::npos);
  }
}

TEST_CASE("a run calls the stages in ModelScope's order; a user's hook joins by type",
          "[trainer][hooks]") {
  std::vector<std::string> log;
  // A library user's hook, registered in the HOOKS registry and named in train.hooks.
  ms::trainer::hook_registry().add("RecorderHook", [&log](const nlohmann::json&) {
    return std::make_shared<Recorder>("user", ms::trainer::priority::kVeryHigh, &log);
  });
  const auto work = temp_dir("stages");
  Json train = {{"max_epochs", 2},
                {"optimizer", {{"type", "SGD"}, {"lr", 0.1}}},
                {"hooks", {{{"type", "RecorderHook"}}, {{"type", "EvaluationHook"}}}}};
  Trainer trainer(setup(train, work));
  trainer.train();
  const std::vector<std::string> want = {
      "user:before_run", "user:before_train_epoch0", "user:before_train_iter0",
      "user:after_train_iter0", "user:before_train_iter1", "user:after_train_iter1",
      // The user's hook (VERY_HIGH) sees the epoch end before EvaluationHook (NORMAL) evaluates.
      "user:after_train_epoch", "user:before_val", "user:after_val", "user:before_train_epoch1",
      "user:before_train_iter2", "user:after_train_iter2", "user:before_train_iter3",
      "user:after_train_iter3", "user:after_train_epoch", "user:before_val", "user:after_val",
      "user:after_run"};
  CHECK(log == want);
  CHECK(trainer.iter() == 4);
  CHECK(trainer.metric_values().contains("accuracy"));
  // The default hooks were merged in: a checkpoint per epoch, the JSON log.
  CHECK(std::filesystem::exists(work / "epoch_2.pth"));
  CHECK(std::filesystem::exists(work / "epoch_2_trainer_state.pth"));
  REQUIRE(ms::trainer::latest_checkpoint(work).has_value());
  CHECK(*ms::trainer::latest_checkpoint(work) == work / "epoch_2");
  std::filesystem::remove_all(work);
}

TEST_CASE("a hook's metric_key no metric reports is refused before the first iteration",
          "[trainer][hooks]") {
  const auto work = temp_dir("metric-key");
  const Json hooks[] = {
      {{"type", "BestCkptSaverHook"}, {"metric_key", "acuracy"}},
      {{"type", "EarlyStopHook"}, {"metric_key", "acuracy"}},
  };
  for (const Json& hook : hooks) {
    INFO(hook.dump());
    std::vector<std::string> log;
    Json train = {{"max_epochs", 1},
                  {"optimizer", {{"type", "SGD"}, {"lr", 0.1}}},
                  {"hooks", {hook, {{"type", "EvaluationHook"}}}}};
    Trainer trainer(setup(train, work));
    trainer.register_hook(
        std::make_shared<Recorder>("probe", ms::trainer::priority::kLowest, &log));
    try {
      trainer.train();
      FAIL("a run with metric_key 'acuracy' started");
    } catch (const ms::Error& e) {
      CHECK(e.code() == ms::ErrorCode::kConfig);
      CHECK_THAT(e.what(), Catch::Contains(hook["type"].get<std::string>()) &&
                               Catch::Contains("'acuracy'") && Catch::Contains("accuracy)"));
      CHECK_THAT(e.hint(), Catch::StartsWith("did you mean 'accuracy'?"));
    }
    CHECK(trainer.iter() == 0);
    CHECK(std::find(log.begin(), log.end(), "probe:before_train_epoch0") == log.end());
  }
  // EarlyStopHook without evaluations would never check anything: refused as BestCkptSaverHook.
  {
    Json train = {{"max_epochs", 1},
                  {"optimizer", {{"type", "SGD"}, {"lr", 0.1}}},
                  {"hooks", {{{"type", "EarlyStopHook"}, {"metric_key", "accuracy"}}}}};
    Trainer trainer(setup(train, work));
    CHECK_THROWS_WITH(trainer.train(), Catch::Contains("no EvaluationHook is configured"));
  }
  // A metric no registry holds is found as early.
  {
    Json train = {{"max_epochs", 1},
                  {"optimizer", {{"type", "SGD"}, {"lr", 0.1}}},
                  {"hooks", {{{"type", "EvaluationHook"}}}}};
    auto s = setup(train, work);
    Json root = s.config.root();
    root["evaluation"]["metrics"] = {"acuracy"};
    s.config = ms::Config(root, "test.json");
    Trainer trainer(std::move(s));
    CHECK_THROWS_WITH(trainer.train(), Catch::Contains("acuracy"));
    CHECK(trainer.iter() == 0);
  }
  // ReduceLROnPlateau's hook too; a key the metrics report runs.
  Json plateau = {{"max_epochs", 1},
                  {"optimizer", {{"type", "SGD"}, {"lr", 0.1}}},
                  {"lr_scheduler", {{"type", "ReduceLROnPlateau"}}},
                  {"lr_scheduler_hook", {{"type", "PlateauLrSchedulerHook"}, {"metric_key", "f1"}}},
                  {"hooks", {{{"type", "EvaluationHook"}}}}};
  {
    Trainer trainer(setup(plateau, work));
    CHECK_THROWS_WITH(trainer.train(), Catch::Contains("PlateauLrSchedulerHook: metric_key 'f1'"));
  }
  plateau["lr_scheduler_hook"]["metric_key"] = "accuracy";
  Trainer trainer(setup(plateau, work));
  trainer.train();
  CHECK(trainer.iter() == 2);
  std::filesystem::remove_all(work);
}

TEST_CASE("checkpoint paths", "[trainer]") {
  using ms::trainer::checkpoint_prefix;
  CHECK(checkpoint_prefix("w/epoch_2.pth") == "w/epoch_2");
  CHECK(checkpoint_prefix("w/epoch_2_trainer_state.pth") == "w/epoch_2");
  CHECK(checkpoint_prefix("w/iter_10") == "w/iter_10");
  CHECK(ms::trainer::model_file("w/iter_10") == "w/iter_10.pth");
  CHECK(!ms::trainer::latest_checkpoint(temp_dir("none")).has_value());
}

TEST_CASE("mixed precision: float16 loss scaling as GradScaler", "[trainer][amp]") {
  using ms::trainer::MixedPrecision;
  // The scaler's arithmetic needs no GPU: constructed for "cuda:0", used on CPU tensors.
  MixedPrecision amp({{"loss_scale", {{"init_scale", 8.0}, {"growth_interval", 2}}}}, "cuda:0");
  at::Tensor w = at::ones({3}).requires_grad_(true);
  auto grads_of = [&](const at::Tensor& g) {
    w.mutable_grad() = g.clone();
    return std::vector<at::Tensor>{w};
  };
  CHECK(amp.scale(at::tensor(2.0)).item<double>() == 16.0);
  // Finite gradients come back divided by the scale; two clean steps double it.
  auto params = grads_of(at::tensor({8.0, 16.0, -4.0}));
  CHECK(amp.unscale_and_update(params));
  CHECK(w.grad()[1].item<double>() == 2.0);
  CHECK(amp.current_scale() == 8.0);
  params = grads_of(at::tensor({1.0, 1.0, 1.0}));
  CHECK(amp.unscale_and_update(params));
  CHECK(amp.current_scale() == 16.0);
  // An overflow skips the step and halves the scale; the growth count starts again.
  params = grads_of(at::tensor({1.0, INFINITY, 1.0}));
  CHECK_FALSE(amp.unscale_and_update(params));
  CHECK(amp.current_scale() == 8.0);
  params = grads_of(at::tensor({NAN, 1.0, 1.0}));
  CHECK_FALSE(amp.unscale_and_update(params));
  CHECK(amp.current_scale() == 4.0);
  // The state survives a checkpoint: one clean step after restoring doubles as it would have.
  params = grads_of(at::tensor({1.0, 1.0, 1.0}));
  CHECK(amp.unscale_and_update(params));
  MixedPrecision resumed({{"loss_scale", {{"init_scale", 8.0}, {"growth_interval", 2}}}}, "cuda:0");
  resumed.load_state_dict(amp.state_dict());
  CHECK(resumed.current_scale() == 4.0);
  params = grads_of(at::tensor({1.0, 1.0, 1.0}));
  CHECK(resumed.unscale_and_update(params));
  CHECK(resumed.current_scale() == 8.0);

  // A number is a static scale; bfloat16 is not scaled at all.
  MixedPrecision fixed({{"loss_scale", 512.0}}, "cuda:0");
  params = grads_of(at::tensor({INFINITY, 1.0, 1.0}));
  CHECK_FALSE(fixed.unscale_and_update(params));
  CHECK(fixed.current_scale() == 512.0);
  MixedPrecision bf16({{"dtype", "bf16"}}, "cpu");
  CHECK(bf16.scale(at::tensor(2.0)).item<double>() == 2.0);

  // float16 off a GPU, and bad options, are errors.
  CHECK_THROWS_AS(MixedPrecision(nlohmann::json::object(), "cpu"), ms::Error);
  CHECK_THROWS_AS(MixedPrecision({{"dtype", "fp8"}}, "cuda:0"), ms::Error);
  CHECK_THROWS_AS(MixedPrecision({{"loss_scale", {{"backoff_factor", 2.0}}}}, "cuda:0"), ms::Error);
  CHECK_THROWS_AS(MixedPrecision({{"loss_scale", "big"}}, "cuda:0"), ms::Error);
}

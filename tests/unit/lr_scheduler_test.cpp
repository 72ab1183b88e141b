// The learning-rate schedules against torch.optim.lr_scheduler (PyTorch 1.13): the rates of each
// step equal Python's (tests/data/trainer/lr_schedules.json,
// scripts/make_lr_schedule_reference.py), a restored state goes on as the original, and bad configs
// are refused clearly.
#include "ms/trainer/lr_scheduler.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "catch.h"
#include "ms/core/error.h"

using nlohmann::json;

namespace {

// A schedule as the LrSchedulerHook will build it: wrapped in the warmup of `options.warmup`.
std::unique_ptr<ms::trainer::LrScheduler> make(const json& config, const json& base_lrs) {
  auto schedule = ms::trainer::build_lr_scheduler(config, base_lrs.get<std::vector<double>>());
  if (config.contains("options"))
    schedule = ms::trainer::wrap_in_warmup(std::move(schedule), config["options"]["warmup"]);
  return schedule;
}

}  // namespace

TEST_CASE("learning-rate schedules step as torch.optim.lr_scheduler does", "[trainer]") {
  std::ifstream in(std::string(MS_TEST_DATA_DIR) + "/trainer/lr_schedules.json");
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  const json reference = json::parse(text.str());
  REQUIRE(reference["cases"].size() == 17);
  for (const json& c : reference["cases"]) {
    INFO(c["config"].dump());
    auto schedule = make(c["config"], c["base_lrs"]);
    const auto& expected = c["lrs"];
    json saved;
    for (std::size_t step = 0; step < expected.size(); ++step) {
      if (step > 0 && c.contains("metrics")) {
        schedule->step_with_metric(c["metrics"][step - 1].get<double>());
      } else if (step > 0) {
        schedule->step();
      }
      const auto want = expected[step].get<std::vector<double>>();
      INFO("step " << step);
      REQUIRE(schedule->lrs().size() == want.size());
      for (std::size_t g = 0; g < want.size(); ++g) {
        // The same operations in the same order: equal to the last bit.
        CHECK(schedule->lrs()[g] == want[g]);
      }
      if (c.contains("momentums")) {
        CHECK(schedule->momentums() == c["momentums"][step].get<std::vector<double>>());
      } else {
        CHECK(schedule->momentums().empty());
      }
      if (step == expected.size() / 2) saved = schedule->state();
    }
    // Restored half way, a new schedule goes on exactly as the first did.
    auto resumed = make(c["config"], c["base_lrs"]);
    resumed->load_state(saved);
    for (std::size_t step = expected.size() / 2 + 1; step < expected.size(); ++step) {
      if (c.contains("metrics")) {
        resumed->step_with_metric(c["metrics"][step - 1].get<double>());
      } else {
        resumed->step();
      }
      CHECK(resumed->lrs() == expected[step].get<std::vector<double>>());
    }
  }
}

TEST_CASE("learning-rate schedules refuse bad configs", "[trainer]") {
  // The error's code, or nullopt when the config is accepted.
  auto code = [](const json& config, std::string* what = nullptr) -> std::optional<ms::ErrorCode> {
    try {
      ms::trainer::build_lr_scheduler(config, {0.1});
    } catch (const ms::Error& e) {
      if (what != nullptr) *what = std::string(e.what()) + " | " + e.hint();
      return e.code();
    }
    return std::nullopt;
  };
  std::string what;
  CHECK(code({{"type", "StepLr"}, {"step_size", 2}}, &what) == ms::ErrorCode::kNotFound);
  CHECK(what.find("StepLR") != std::string::npos);  // the close match
  CHECK(code({{"type", "StepLR"}}, &what) == ms::ErrorCode::kConfig);
  CHECK(what.find("step_size") != std::string::npos);
  CHECK(code({{"type", "StepLR"}, {"step_size", 0}}) == ms::ErrorCode::kConfig);
  CHECK(code({{"type", "StepLR"}, {"step_size", 2}, {"gama", 0.5}}, &what) ==
        ms::ErrorCode::kConfig);
  CHECK(what.find("gamma") != std::string::npos);
  CHECK(code({{"type", "StepLR"}, {"step_size", "2"}}) == ms::ErrorCode::kConfig);
  CHECK(code({{"type", "MultiStepLR"}, {"milestones", {1, 2.5}}}) == ms::ErrorCode::kConfig);
  CHECK(code({{"type", "LinearLR"}, {"start_factor", 0}}) == ms::ErrorCode::kConfig);
  CHECK(code(json::array()) == ms::ErrorCode::kConfig);
  CHECK(code({{"type", "OneCycleLR"}, {"max_lr", 0.1}}, &what) == ms::ErrorCode::kConfig);
  CHECK(what.find("total_steps") != std::string::npos);
  CHECK(code({{"type", "OneCycleLR"}, {"max_lr", {0.1, 0.2}}, {"total_steps", 9}}) ==
        ms::ErrorCode::kConfig);  // two rates for one group
  CHECK(code({{"type", "OneCycleLR"},
              {"max_lr", 0.1},
              {"total_steps", 9},
              {"anneal_strategy", "cosine"}}) == ms::ErrorCode::kConfig);
  // Options that make a negative rate (the loss would climb without a word).
  for (const json& negative :
       {json{{"type", "CosineAnnealingLR"}, {"T_max", 4}, {"eta_min", -0.01}},
        json{{"type", "OneCycleLR"}, {"max_lr", -0.01}, {"total_steps", 9}},
        json{{"type", "OneCycleLR"}, {"max_lr", 0.01}, {"total_steps", 9}, {"div_factor", -5}},
        json{{"type", "OneCycleLR"}, {"max_lr", 0.01}, {"total_steps", 9}, {"final_div_factor", 0}},
        json{{"type", "ReduceLROnPlateau"}, {"min_lr", -1}}}) {
    CHECK(code(negative, &what) == ms::ErrorCode::kConfig);
    CHECK(what.find("must be a number") != std::string::npos);
  }
  CHECK(code({{"type", "CosineAnnealingLR"}, {"T_max", 4}, {"eta_min", 0.001}}) == std::nullopt);
  auto cycle = ms::trainer::build_lr_scheduler(
      {{"type", "OneCycleLR"}, {"max_lr", 0.1}, {"total_steps", 2}}, {0.1});
  cycle->step();
  cycle->step();
  CHECK_THROWS_AS(cycle->step(), ms::Error);  // past total_steps, as PyTorch refuses
  auto plateau = ms::trainer::build_lr_scheduler({{"type", "ReduceLROnPlateau"}}, {0.1});
  CHECK_THROWS_AS(plateau->step(), ms::Error);  // it needs the metric
  CHECK_THROWS_AS(plateau->step_with_metric(NAN), ms::Error);
  CHECK_THROWS_AS(cycle->step_with_metric(1.0), ms::Error);  // others take none
  auto base = [] {
    return ms::trainer::build_lr_scheduler({{"type", "ExponentialLR"}, {"gamma", 0.9}}, {0.1});
  };
  CHECK_THROWS_AS(
      ms::trainer::wrap_in_warmup(base(), {{"type", "LinearWarmpu"}, {"warmup_iters", 3}}),
      ms::Error);
  CHECK_THROWS_AS(ms::trainer::wrap_in_warmup(base(), {{"type", "LinearWarmup"}}), ms::Error);
  CHECK_THROWS_AS(
      ms::trainer::wrap_in_warmup(base(), {{"type", "LinearWarmup"}, {"warmup_iters", 0}}),
      ms::Error);
  CHECK_THROWS_AS(
      ms::trainer::wrap_in_warmup(
          base(), {{"type", "ConstantWarmup"}, {"warmup_iters", 3}, {"warmup_ratio", -2}}),
      ms::Error);
  // The hook's options are the hook's: not an error here.
  CHECK(code({{"type", "ExponentialLR"}, {"gamma", 0.9}, {"options", {{"by_epoch", false}}}}) ==
        std::nullopt);
  auto step = ms::trainer::build_lr_scheduler({{"type", "StepLR"}, {"step_size", 2}}, {0.1});
  auto other = ms::trainer::build_lr_scheduler({{"type", "ExponentialLR"}, {"gamma", 0.9}}, {0.1});
  CHECK_THROWS_AS(step->load_state(other->state()), ms::Error);
}

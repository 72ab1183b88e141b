// The optimizers against torch.optim of the linked PyTorch: the weights after 1, 10, 100 and 300
// steps equal Python's bit for bit (tests/data/trainer/optimizers.json from PyTorch 1.13,
// optimizers-torch2.json from 2.11, whose Adam rounds differently; both written by
// scripts/make_optimizer_reference.py); a state_dict restored half way goes on identically; bad
// configs are refused clearly.
#include "ms/trainer/optimizer.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <ATen/record_function.h>
#include <c10/core/GradMode.h>
#include <torch/version.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "catch.h"
#include "ms/core/error.h"

using ms::trainer::ParamGroup;
using nlohmann::json;

namespace {

json optimizer_reference() {
#if TORCH_VERSION_MAJOR >= 2
  std::ifstream in(std::string(MS_TEST_DATA_DIR) + "/trainer/optimizers-torch2.json");
#else
  std::ifstream in(std::string(MS_TEST_DATA_DIR) + "/trainer/optimizers.json");
#endif
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

at::Tensor from_bits(const json& bits, const json& shape) {
  std::vector<float> values;
  for (const json& b : bits) {
    const auto u = b.get<std::uint32_t>();
    float f;
    std::memcpy(&f, &u, sizeof f);
    values.push_back(f);
  }
  return at::from_blob(values.data(), shape.get<std::vector<int64_t>>(), at::kFloat).clone();
}

std::vector<std::uint32_t> to_bits(const at::Tensor& t) {
  std::vector<std::uint32_t> out(static_cast<std::size_t>(t.numel()));
  std::memcpy(out.data(), t.contiguous().data_ptr<float>(), out.size() * 4);
  return out;
}

struct Run {
  std::vector<std::vector<at::Tensor>> params, targets;
  std::unique_ptr<ms::trainer::Optimizer> optimizer;
  std::vector<double> base_lrs;
  json clip;
};

Run start(const json& ref, const json& config) {
  Run run;
  for (std::size_t g = 0; g < ref["start"].size(); ++g) {
    run.params.emplace_back();
    run.targets.emplace_back();
    for (std::size_t i = 0; i < ref["start"][g].size(); ++i) {
      run.params[g].push_back(
          from_bits(ref["start"][g][i], ref["shapes"][g][i]).set_requires_grad(true));
      run.targets[g].push_back(from_bits(ref["targets"][g][i], ref["shapes"][g][i]));
    }
  }
  json options = config;
  if (options.contains("clip")) {
    run.clip = options["clip"];
    options.erase("clip");
  }
  const double lr = options["lr"].get<double>();
  run.base_lrs = {lr, lr * 0.5};
  std::vector<ParamGroup> groups{{run.params[0], {}}, {run.params[1], {}}};
  run.optimizer = ms::trainer::build_optimizer(options, groups);
  run.optimizer->groups()[1].options["lr"] = run.base_lrs[1];
  return run;
}

void step(Run& run, int t) {
  run.optimizer->set_lrs(
      {run.base_lrs[0] * std::pow(0.99, t - 1), run.base_lrs[1] * std::pow(0.99, t - 1)});
  {
    c10::NoGradGuard no_grad;
    for (std::size_t g = 0; g < run.params.size(); ++g)
      for (std::size_t i = 0; i < run.params[g].size(); ++i)
        run.params[g][i].mutable_grad() = (run.params[g][i] - run.targets[g][i]).mul(2);
  }
  if (!run.clip.is_null()) {
    std::vector<at::Tensor> all;
    for (const auto& g : run.params) all.insert(all.end(), g.begin(), g.end());
    const json norm = run.clip.value("norm_type", json(2.0));
    ms::trainer::clip_grad_norm(all, run.clip["max_norm"].get<double>(),
                                norm.is_string() ? INFINITY : norm.get<double>());
  }
  run.optimizer->step();
}

void check_weights(const Run& run, const json& expected) {
  std::size_t k = 0;
  for (const auto& g : run.params)
    for (const at::Tensor& p : g)
      CHECK(to_bits(p.detach()) == expected[k++].get<std::vector<std::uint32_t>>());
}

}  // namespace

TEST_CASE("optimizers step as torch.optim does, bit for bit", "[trainer]") {
  const json ref = optimizer_reference();
  REQUIRE(ref["cases"].size() == 10);
  for (const json& c : ref["cases"]) {
    INFO(c["config"].dump());
    Run run = start(ref, c["config"]);
    for (int t = 1; t <= ref["steps"].get<int>(); ++t) {
      step(run, t);
      if (c["weights"].contains(std::to_string(t))) {
        INFO("step " << t);
        check_weights(run, c["weights"][std::to_string(t)]);
      }
    }
  }
}

TEST_CASE("an optimizer restored from its state_dict goes on identically", "[trainer]") {
  const json ref = optimizer_reference();
  for (const json& c : ref["cases"]) {
    INFO(c["config"].dump());
    Run run = start(ref, c["config"]);
    for (int t = 1; t <= 100; ++t) step(run, t);
    const ms::tensor::CheckpointValue saved = run.optimizer->state_dict();
    // A fresh optimizer over the weights reached, with the saved state, does the last 200 steps.
    Run resumed = start(ref, c["config"]);
    for (std::size_t g = 0; g < run.params.size(); ++g)
      for (std::size_t i = 0; i < run.params[g].size(); ++i) {
        c10::NoGradGuard no_grad;
        resumed.params[g][i].copy_(run.params[g][i]);
      }
    resumed.optimizer->load_state_dict(saved);
    CHECK(resumed.optimizer->lrs() == run.optimizer->lrs());
    for (int t = 101; t <= 300; ++t) step(resumed, t);
    check_weights(resumed, c["weights"]["300"]);
  }
}

namespace {

// Counts the ATen operators called from outside any other operator (the ones a _foreach_ call
// makes on each tensor are inside it): on a GPU each is at least one kernel launch.
thread_local int operator_depth = 0;
thread_local int outer_operators = 0;

std::unique_ptr<at::ObserverContext> enter_operator(const at::RecordFunction& fn) {
  // Reading a CPU step count (item) launches nothing: not counted.
  const std::string name = fn.name();
  if (operator_depth++ == 0 && name != "aten::item" && name != "aten::_local_scalar_dense")
    ++outer_operators;
  return nullptr;
}
void leave_operator(const at::RecordFunction&, at::ObserverContext*) { --operator_depth; }

// The outer operators of one step (the second: the first also creates the state) with `count`
// parameters, each with a gradient.
int operators_per_step(const json& config, int count) {
  std::vector<at::Tensor> params;
  for (int i = 0; i < count; ++i) params.push_back(at::randn({3, 2}).set_requires_grad(true));
  auto optimizer = ms::trainer::build_optimizer(config, {ParamGroup{params, {}}});
  auto step = [&] {
    ms::trainer::clip_grad_norm(params, 0.5);
    optimizer->step();
  };
  for (at::Tensor& p : params) p.mutable_grad() = at::randn({3, 2});
  step();
  for (at::Tensor& p : params) p.mutable_grad() = at::randn({3, 2});
  outer_operators = operator_depth = 0;
  const auto handle =
      at::addThreadLocalCallback(at::RecordFunctionCallback(enter_operator, leave_operator)
                                     .scopes({at::RecordScope::FUNCTION}));
  step();
  at::removeCallback(handle);
  return outer_operators;
}

}  // namespace

TEST_CASE("a step's operator calls do not grow with the number of parameters", "[trainer]") {
  // One call per operation over all of a group's parameters (torch.optim's foreach): on a GPU a
  // step of ~100 parameters is then a few dozen kernel launches, not a thousand.
  for (const json& config :
       {json{{"type", "AdamW"}, {"lr", 0.01}},
        json{{"type", "Adam"}, {"lr", 0.01}, {"weight_decay", 0.1}, {"amsgrad", true}},
        json{{"type", "SGD"}, {"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}}}) {
    INFO(config.dump());
    const int few = operators_per_step(config, 4), many = operators_per_step(config, 64);
    CHECK(few > 0);
    CHECK(many == few);
  }
}

TEST_CASE("optimizer configs are checked", "[trainer]") {
  std::vector<ParamGroup> groups{{{at::zeros({2}).set_requires_grad(true)}, {}}};
  auto error_of = [&](const json& config) {
    try {
      ms::trainer::build_optimizer(config, groups);
    } catch (const ms::Error& e) {
      return std::string(e.what()) + " | " + e.hint();
    }
    return std::string("no error");
  };
  CHECK_THAT(error_of({{"type", "AdamX"}}), Catch::Contains("Adam"));
  CHECK_THAT(error_of({{"type", "SGD"}}), Catch::Contains("'lr'"));
  CHECK_THAT(error_of({{"type", "SGD"}, {"lr", 0.1}, {"momentom", 0.9}}),
             Catch::Contains("momentom"));
  CHECK_THAT(error_of({{"type", "Adam"}, {"betas", 0.9}}), Catch::Contains("betas"));
  CHECK_THAT(error_of({{"type", "SGD"}, {"lr", 0.1}, {"nesterov", true}}),
             Catch::Contains("nesterov"));
  CHECK_THAT(error_of({{"type", "AdamW"}, {"lr", -1}}), Catch::Contains("lr"));
  // OneCycleLR cycles a momentum: SGD without one has none to cycle.
  auto sgd = ms::trainer::build_optimizer({{"type", "SGD"}, {"lr", 0.1}}, groups);
  CHECK_THROWS_AS(sgd->set_momentums({0.9}), ms::Error);
}

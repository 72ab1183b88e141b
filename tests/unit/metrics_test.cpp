// Metrics against scikit-learn and seqeval (tests/data/metrics/reference.json, written by
// scripts/make_metric_reference.py), merging, and the errors for bad configs and bad outputs.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "catch.h"
#include "error_capture.h"
#include "ms/core/error.h"
#include "ms/metrics/metric.h"

using ms::metrics::Array;
using ms::metrics::Fields;
using nlohmann::json;

namespace {

json metrics_reference() {
  std::ifstream in(std::string(MS_TEST_DATA_DIR) + "/metrics/reference.json");
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

Fields fields(const json& j) {
  Fields out;
  for (const auto& [name, value] : j.items()) {
    out[name] = Array{value["shape"].get<std::vector<std::int64_t>>(),
                      value["values"].get<std::vector<double>>()};
  }
  return out;
}

// What a metric declares before any batch covers what it reports (a hook's metric_key is checked
// against the declaration when a run starts).
void check_declared(const ms::metrics::Metric& metric) {
  const std::vector<std::string> keys = metric.keys();
  for (const auto& [key, value] : metric.evaluate()) {
    INFO(metric.type() << " reports " << key);
    CHECK(std::find(keys.begin(), keys.end(), key) != keys.end());
  }
}

}  // namespace

TEST_CASE("metrics equal scikit-learn's and seqeval's on fixed batches", "[metrics]") {
  const json ref = metrics_reference();
  REQUIRE(ref["cases"].size() == 5);
  for (const json& c : ref["cases"]) {
    json spec = c["options"];
    spec["type"] = c["metric"];
    auto whole = ms::metrics::build_metric(spec);
    auto first = ms::metrics::build_metric(spec), second = ms::metrics::build_metric(spec);
    const auto& batches = c["batches"];
    for (std::size_t i = 0; i < batches.size(); ++i) {
      const Fields outputs = fields(batches[i]["outputs"]), inputs = fields(batches[i]["inputs"]);
      whole->add(outputs, inputs);
      (i % 2 == 0 ? first : second)->add(outputs, inputs);  // two "ranks"
    }
    first->merge(*second);
    for (const auto* metric : {whole.get(), first.get()}) {
      const auto got = metric->evaluate();
      INFO(c["metric"].get<std::string>() << " " << c["expected"].dump());
      REQUIRE(got.size() == c["expected"].size());
      check_declared(*metric);
      for (const auto& [key, want] : c["expected"].items()) {
        REQUIRE(got.count(key) == 1);
        CHECK(std::fabs(got.at(key) - want.get<double>()) < 1e-12);
      }
    }
  }
}

TEST_CASE("accuracy, loss-metric, task defaults and the registry", "[metrics]") {
  auto accuracy = ms::metrics::build_metric("accuracy");
  accuracy->add({{"logits", Array{{4, 2}, {0.1, 0.9, 2, 1, 0.5, 0.5, 0, 1}}}},
                {{"labels", Array{{4}, {1, 0, 1, 1}}}});
  // Row 3 ties: the first class wins, as numpy's argmax.
  CHECK(accuracy->evaluate().at("accuracy") == 0.75);
  auto loss = ms::metrics::build_metric(json{{"type", "loss-metric"}, {"loss_key", "l"}});
  loss->add({{"l", Array{{}, {2.0}}}}, {});
  loss->add({{"l", Array{{}, {1.0}}}}, {});
  CHECK(loss->evaluate().at("loss") == 1.5);
  check_declared(*accuracy);
  check_declared(*loss);
  CHECK(ms::metrics::task_default_metric("text-classification") == "seq-cls-metric");
  CHECK(ms::metrics::task_default_metric("token-classification") == "token-cls-metric");
  CHECK(ms::metrics::task_default_metric("image-classification") == "accuracy");
  CHECK(ms::metrics::task_default_metric("text-to-speech").empty());
  CHECK(ms::metrics::metric_registry().types() ==
        std::vector<std::string>{"accuracy", "loss-metric", "ppl", "seq-cls-metric",
                                 "text-gen-metric", "token-cls-metric"});
}

TEST_CASE("metrics refuse bad configs and bad outputs clearly", "[metrics]") {
  using ms::ErrorCode;
  std::string what;
  CHECK(code_of([] { ms::metrics::build_metric("seq-cls-metrc"); }, &what) == ErrorCode::kNotFound);
  CHECK(what.find("seq-cls-metric") != std::string::npos);
  CHECK(code_of(
            [] {
              ms::metrics::build_metric(json{{"type", "accuracy"}, {"label_nam", "y"}});
            },
            &what) == ErrorCode::kConfig);
  CHECK(what.find("label_name") != std::string::npos);
  CHECK(code_of([] { ms::metrics::build_metric(json{{"type", 3}}); }) == ErrorCode::kConfig);
  CHECK(code_of([] { ms::metrics::build_metric("token-cls-metric"); }, &what) ==
        ErrorCode::kConfig);
  CHECK(what.find("label2id") != std::string::npos);

  auto seq = ms::metrics::build_metric("seq-cls-metric");
  CHECK(code_of([&] { seq->evaluate(); }) == ErrorCode::kUsage);
  CHECK(code_of(
            [&] {
              seq->add({{"logits", Array{{1, 2}, {0, 1}}}}, {{"label", Array{{1}, {1}}}});
            },
            &what) == ErrorCode::kConfig);
  CHECK(what.find("'labels'") != std::string::npos);
  CHECK(what.find("label") != std::string::npos);
  CHECK(code_of([&] {
          seq->add({{"logits", Array{{1, 2}, {NAN, 1}}}}, {{"labels", Array{{1}, {1}}}});
        }) == ErrorCode::kIntegrity);
  CHECK(code_of([&] {
          seq->add({{"logits", Array{{1, 2}, {0, 1}}}}, {{"labels", Array{{1}, {0.5}}}});
        }) == ErrorCode::kIntegrity);
  CHECK(code_of([&] {
          seq->add({{"logits", Array{{2, 2}, {0, 1, 1, 0}}}}, {{"labels", Array{{1}, {1}}}});
        }) == ErrorCode::kConfig);
  CHECK(code_of([&] { seq->merge(*ms::metrics::build_metric("accuracy")); }) ==
        ErrorCode::kIntegrity);

  auto tokens = ms::metrics::build_metric(
      json{{"type", "token-cls-metric"}, {"id2label", {{"0", "O"}, {"1", "B-X"}}}});
  CHECK(code_of(
            [&] {
              tokens->add({{"logits", Array{{1, 1, 3}, {0, 0, 1}}}},
                          {{"labels", Array{{1, 1}, {1}}}});
            },
            &what) == ErrorCode::kIntegrity);  // predicted class 2 is not in the map
  CHECK(what.find("class 2") != std::string::npos);
  CHECK(code_of([&] {
          tokens->add({{"logits", Array{{1, 2}, {0, 1}}}}, {{"labels", Array{{1}, {1}}}});
        }) == ErrorCode::kConfig);  // not [batch, tokens, classes]
}

TEST_CASE("ppl equals exp of torch's cross entropy, batches weighted by rows", "[metrics]") {
  std::ifstream in(std::string(MS_TEST_DATA_DIR) + "/metrics/ppl.json");
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  const json ref = json::parse(text.str());
  auto whole = ms::metrics::build_metric("ppl");
  auto first = ms::metrics::build_metric("ppl");
  auto rest = ms::metrics::build_metric("ppl");
  std::size_t k = 0;
  for (const json& b : ref["batches"]) {
    const Fields outputs{{"logits", Array{b["shape"].get<std::vector<std::int64_t>>(),
                                          b["logits"].get<std::vector<double>>()}}};
    const Fields inputs{{"labels", Array{b["label_shape"].get<std::vector<std::int64_t>>(),
                                         b["labels"].get<std::vector<double>>()}}};
    whole->add(outputs, inputs);
    (k++ == 0 ? first : rest)->add(outputs, inputs);
  }
  const double want = ref["ppl"].get<double>();
  CHECK(std::abs(whole->evaluate().at("ppl") - want) <= 1e-12 * want);
  first->merge(*rest);
  CHECK(std::abs(first->evaluate().at("ppl") - want) <= 1e-12 * want);
  check_declared(*whole);
  // Every label ignored: nothing to score.
  const Fields logits{{"logits", Array{{1, 2}, {0.5, 0.5}}}};
  const Fields ignored{{"labels", Array{{1}, {-100}}}};
  CHECK(code_of([&] { ms::metrics::build_metric("ppl")->add(logits, ignored); }) ==
        ms::ErrorCode::kUsage);
}

// Data-parallel evaluation: each rank adds a contiguous share of the batches, sends state() as
// CBOR, and rank 0 merges the shares in rank order; the figure must be the one loop's, exactly
// (not within a tolerance: `ms eval --nproc N` promises the single-process figure).
TEST_CASE("shares merged in rank order through CBOR give one loop's figure bit for bit",
          "[metrics]") {
  std::vector<std::pair<json, std::vector<std::pair<Fields, Fields>>>> cases;
  for (const json& c : metrics_reference()["cases"]) {
    json spec = c["options"];
    spec["type"] = c["metric"];
    std::vector<std::pair<Fields, Fields>> batches;
    for (const json& b : c["batches"])
      batches.emplace_back(fields(b["outputs"]), fields(b["inputs"]));
    cases.emplace_back(spec, batches);
  }
  {
    std::ifstream in(std::string(MS_TEST_DATA_DIR) + "/metrics/ppl.json");
    std::stringstream text;
    text << in.rdbuf();
    const json ppl = json::parse(text.str());
    std::vector<std::pair<Fields, Fields>> batches;
    for (const json& b : ppl["batches"]) {
      batches.push_back({{{"logits", Array{b["shape"].get<std::vector<std::int64_t>>(),
                                           b["logits"].get<std::vector<double>>()}}},
                         {{"labels", Array{b["label_shape"].get<std::vector<std::int64_t>>(),
                                           b["labels"].get<std::vector<double>>()}}}});
    }
    REQUIRE(batches.size() == 3);
    cases.emplace_back(json("ppl"), batches);
  }
  std::vector<std::pair<Fields, Fields>> losses;
  for (double l : {0.25, 1.0 / 3.0, 2.5, 0.1, 7.0})
    losses.push_back({{{"loss", Array{{}, {l}}}}, {}});
  cases.emplace_back(json("loss-metric"), losses);

  for (const auto& [spec, batches] : cases) {
    INFO(spec.dump());
    auto whole = ms::metrics::build_metric(spec);
    for (const auto& [outputs, inputs] : batches) whole->add(outputs, inputs);
    for (std::size_t ranks :
         {std::size_t{2}, std::size_t{3}, batches.size() + 1}) {  // the last leaves a rank no batch
      std::vector<json> states;
      for (std::size_t r = 0; r < ranks; ++r) {
        auto share = ms::metrics::build_metric(spec);
        for (std::size_t b = batches.size() * r / ranks; b < batches.size() * (r + 1) / ranks; ++b)
          share->add(batches[b].first, batches[b].second);
        states.push_back(json::from_cbor(json::to_cbor(share->state())));
      }
      auto merged = ms::metrics::build_metric(spec);
      for (const json& state : states) merged->merge_state(state);
      CHECK(merged->evaluate() == whole->evaluate());
    }
  }
}

TEST_CASE("a state that does not fit is refused and changes nothing", "[metrics]") {
  using ms::ErrorCode;
  auto seq = ms::metrics::build_metric("seq-cls-metric");
  seq->add({{"logits", Array{{2, 2}, {0, 1, 1, 0}}}}, {{"labels", Array{{2}, {1, 1}}}});
  const auto before = seq->evaluate();
  json good = seq->state();
  std::string what;
  CHECK(code_of([&] { seq->merge_state(ms::metrics::build_metric("accuracy")->state()); }, &what) ==
        ErrorCode::kIntegrity);
  CHECK(what.find("accuracy") != std::string::npos);
  for (const char* broken :
       {R"(3)", R"({"type": "seq-cls-metric"})",
        R"({"type": "seq-cls-metric", "collected": {"classes": 2, "preds": [1], "labels": []}})",
        R"({"type": "seq-cls-metric", "collected": {"classes": 3, "preds": [1], "labels": [1]}})",
        R"({"type": "seq-cls-metric", "collected": {"classes": 2, "preds": ["x"], "labels": [1]}})",
        R"({"type": "seq-cls-metric", "collected": {"preds": [1], "labels": [1]}})"}) {
    INFO(broken);
    CHECK(code_of([&] { seq->merge_state(json::parse(broken)); }) == ErrorCode::kIntegrity);
  }
  CHECK(seq->evaluate() == before);
  seq->merge_state(good);
  CHECK(seq->evaluate().at("accuracy") == 0.5);

  auto ppl = ms::metrics::build_metric("ppl");
  CHECK(code_of([&] {
          ppl->merge_state(json::parse(R"({"type": "ppl", "collected": {"batches": [[1.0, 0]]}})"));
        }) == ErrorCode::kIntegrity);
  auto loss = ms::metrics::build_metric("loss-metric");
  json nan_loss = {{"type", "loss-metric"}, {"collected", {{"losses", {NAN}}}}};
  CHECK(code_of([&] { loss->merge_state(json::from_cbor(json::to_cbor(nan_loss))); }) ==
        ErrorCode::kIntegrity);
  auto tokens = ms::metrics::build_metric(
      json{{"type", "token-cls-metric"}, {"id2label", {{"0", "O"}, {"1", "B-X"}}}});
  CHECK(
      code_of([&] {
        tokens->merge_state(json::parse(
            R"({"type": "token-cls-metric", "collected": {"labelled": [["O"]], "predicted": [[]]}})"));
      }) == ErrorCode::kIntegrity);
}

namespace {

// A field of texts (text-gen-metric's generated and target texts).
Array texts(const std::vector<std::string>& t) {
  Array a;
  a.shape = {static_cast<std::int64_t>(t.size())};
  a.texts = t;
  return a;
}

}  // namespace

// text-gen-metric against ModelScope's TextGenerationMetric itself, run over the pinned `rouge` and
// nltk (tests/data/metrics/text_generation_reference.json, written by
// scripts/make_text_generation_reference.py): English, Chinese, one word, repeated words, texts
// empty but for spaces and dots, odd white space and renamed fields; whole, and merged from two
// uneven halves through state() as ranks send it.
TEST_CASE("text-gen-metric equals ModelScope's ROUGE and BLEU on fixed texts", "[metrics]") {
  std::ifstream in(std::string(MS_TEST_DATA_DIR) + "/metrics/text_generation_reference.json");
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  const json ref = json::parse(text.str());
  REQUIRE(ref["cases"].size() == 8);
  for (const json& c : ref["cases"]) {
    json spec = c["options"];
    spec["type"] = "text-gen-metric";
    auto whole = ms::metrics::build_metric(spec);
    auto first = ms::metrics::build_metric(spec), second = ms::metrics::build_metric(spec);
    const auto& batches = c["batches"];
    for (std::size_t i = 0; i < batches.size(); ++i) {
      Fields outputs, inputs;
      for (const auto& [name, value] : batches[i]["outputs"].items())
        outputs[name] = texts(value.get<std::vector<std::string>>());
      for (const auto& [name, value] : batches[i]["inputs"].items())
        inputs[name] = texts(value.get<std::vector<std::string>>());
      whole->add(outputs, inputs);
      (i < batches.size() / 2 ? first : second)->add(outputs, inputs);
    }
    first->merge_state(json::from_cbor(json::to_cbor(second->state())));
    for (const auto* metric : {whole.get(), first.get()}) {
      const auto got = metric->evaluate();
      INFO(c["name"].get<std::string>() << " " << c["expected"].dump());
      REQUIRE(got.size() == 4);
      check_declared(*metric);
      for (const auto& [key, want] : c["expected"].items()) {
        REQUIRE(got.count(key) == 1);
        CHECK(std::fabs(got.at(key) - want.get<double>()) < 1e-12);
      }
    }
  }
}

TEST_CASE("text-gen-metric's edge cases and errors", "[metrics]") {
  using ms::ErrorCode;
  std::string what;
  auto metric = ms::metrics::build_metric("text-gen-metric");
  CHECK(code_of([&] { metric->evaluate(); }) == ErrorCode::kUsage);
  // Only spaces and dots on one side of every pair: ModelScope fails there (it unpacks an empty
  // list); ms reports ROUGE 0, the limit of its mean over every pair, and BLEU as nltk's.
  metric->add({{"preds", texts({" . ", "a b"})}}, {{"tgts", texts({"a b", "..."})}});
  const auto values = metric->evaluate();
  CHECK(values.at("rouge-1") == 0.0);
  CHECK(values.at("rouge-l") == 0.0);
  CHECK(values.at("bleu-1") >= 0.0);
  CHECK(code_of(
            [&] {
              metric->add({{"preds", texts({"a"})}}, {{"labels", texts({"a"})}});
            },
            &what) == ErrorCode::kConfig);
  CHECK(what.find("target_text") != std::string::npos);
  CHECK(code_of(
            [&] {
              metric->add({{"logits", texts({"a"})}}, {{"tgts", texts({"a"})}});
            },
            &what) == ErrorCode::kConfig);
  CHECK(what.find("pred_text") != std::string::npos);
  CHECK(code_of([&] {
          metric->add({{"preds", Array{{1}, {3.0}}}}, {{"tgts", texts({"a"})}});
        }) == ErrorCode::kConfig);  // numbers, not texts
  CHECK(code_of([&] {
          metric->add({{"preds", texts({"a", "b"})}}, {{"tgts", texts({"a"})}});
        }) == ErrorCode::kConfig);  // pairs out of step
  CHECK(code_of([&] {
          metric->add({{"preds", texts({"\xff"})}}, {{"tgts", texts({"a"})}});
        }) == ErrorCode::kIntegrity);  // not UTF-8
  CHECK(code_of([] {
          ms::metrics::build_metric(json{{"type", "text-gen-metric"}, {"pred_txt", "p"}});
        }) == ErrorCode::kConfig);
  CHECK(code_of([&] {
          metric->merge_state(json{{"type", "text-gen-metric"},
                                   {"collected", {{"preds", {"a"}}, {"tgts", json::array()}}}});
        }) == ErrorCode::kIntegrity);
}

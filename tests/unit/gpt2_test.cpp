// The GPT-2 causal decoder: logits equal transformers' GPT2LMHeadModel on the same random weights
// (tests/data/infer/tiny/gpt2 and gpt2_reference.safetensors, scripts/make_tiny_gpt2.py) with and
// without the key/value cache and on padded batches, the shifted-label loss, checkpoint layouts,
// dropout and gradients.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <optional>
#include <string>

#include "catch.h"
#include "ms/core/error.h"
#include "ms/models/model.h"
#include "ms/tensor/weights.h"

namespace {

namespace fs = std::filesystem;
using ms::models::Model;
using ms::models::ModelSpec;
using ms::models::TensorMap;

const fs::path kTiny = fs::path(MS_TEST_DATA_DIR) / "infer" / "tiny";
constexpr double kTolerance = 1e-4;
constexpr int kLayers = 2;

const TensorMap& gpt2_reference() {
  static const TensorMap ref = ms::tensor::load_safetensors(kTiny / "gpt2_reference.safetensors");
  return ref;
}

const at::Tensor& ref(const std::string& name) { return gpt2_reference().at(name); }

ModelSpec tiny_spec() {
  ModelSpec spec;
  spec.task = "text-generation";
  spec.type = "gpt2";
  spec.dir = kTiny / "gpt2";
  return spec;
}

std::shared_ptr<Model> tiny_gpt2() { return ms::models::load_pretrained(tiny_spec(), "cpu"); }

// The largest |a - b| over the vocabulary, at the [batch, tokens] positions where `mask` is 1
// (all of them without a mask): logits of padded positions are not compared.
double max_diff(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask = {}) {
  REQUIRE(a.sizes() == b.sizes());
  at::Tensor d = (a - b).abs().amax(-1);
  if (mask.defined()) d = d.masked_fill(mask.eq(0), 0);
  return d.max().item<double>();
}

template <typename Body>
std::optional<ms::ErrorCode> error_code(Body&& body) {
  try {
    body();
  } catch (const ms::Error& e) {
    return e.code();
  }
  return std::nullopt;
}

// The present.N.* outputs of one step as the past_key_values.N.* inputs of the next.
void carry_cache(const TensorMap& out, TensorMap& next) {
  for (int i = 0; i < kLayers; ++i) {
    const std::string n = std::to_string(i);
    next["past_key_values." + n + ".key"] = out.at("present." + n + ".key");
    next["past_key_values." + n + ".value"] = out.at("present." + n + ".value");
  }
}

}  // namespace

TEST_CASE("GPT-2 logits equal transformers' GPT2LMHeadModel", "[models][gpt2]") {
  auto model = tiny_gpt2();
  c10::InferenceMode guard;
  // The weights are drawn wide enough that the tolerance is small against the logits' spread.
  REQUIRE(ref("full.logits").std().item<double>() > 1.0);

  TensorMap out = model->forward({{"input_ids", ref("full.input_ids")}});
  CHECK(max_diff(out.at("logits"), ref("full.logits")) < kTolerance);

  // Left padding, positions as given, then as derived from the mask (the same numbers).
  const at::Tensor& left_mask = ref("left.attention_mask");
  TensorMap left = {{"input_ids", ref("left.input_ids")},
                    {"attention_mask", left_mask},
                    {"position_ids", ref("left.position_ids")},
                    {"labels", ref("left.labels")}};
  out = model->forward(left);
  CHECK(max_diff(out.at("logits"), ref("left.logits"), left_mask) < kTolerance);
  CHECK(std::abs(out.at("loss").item<double>() - ref("left.loss").item<double>()) < kTolerance);
  left.erase("position_ids");
  CHECK(max_diff(model->forward(left).at("logits"), ref("left.logits"), left_mask) < kTolerance);

  // Right padding (training batches), with labels.
  const at::Tensor& right_mask = ref("right.attention_mask");
  TensorMap right = {{"input_ids", ref("right.input_ids")},
                     {"attention_mask", right_mask},
                     {"labels", ref("right.labels")}};
  out = model->forward(right);
  CHECK(max_diff(out.at("logits"), ref("right.logits"), right_mask) < kTolerance);
  const double loss = ref("right.loss").item<double>();
  CHECK(std::abs(out.at("loss").item<double>() - loss) < kTolerance);
  // Labels that are the padding token rather than -100 are ignored too (the mask says so).
  right["labels"] = ref("right.input_ids");
  CHECK(std::abs(model->forward(right).at("loss").item<double>() - loss) < kTolerance);
  // Without the mask they count, and the loss differs.
  right.erase("attention_mask");
  CHECK(std::abs(model->forward(right).at("loss").item<double>() - loss) > 1e-3);
}

TEST_CASE("GPT-2 incremental decoding with the cache equals the full forward", "[models][gpt2]") {
  auto model = tiny_gpt2();
  c10::InferenceMode guard;

  // Unpadded: 3 tokens, then 2 at once, then one at a time; positions continue from the cache.
  const at::Tensor& ids = ref("full.input_ids");
  const at::Tensor& full = ref("full.logits");
  TensorMap step = {{"input_ids", ids.narrow(1, 0, 3)}};
  TensorMap out = model->forward(step);
  CHECK(max_diff(out.at("logits"), full.narrow(1, 0, 3)) < kTolerance);
  REQUIRE(out.at("present.0.key").sizes() == at::IntArrayRef({2, 2, 3, 8}));
  for (auto [begin, count] : {std::pair<int64_t, int64_t>{3, 2}, {5, 1}, {6, 1}}) {
    INFO("tokens " << begin << " + " << count);
    TensorMap next = {{"input_ids", ids.narrow(1, begin, count)}};
    carry_cache(out, next);
    out = model->forward(next);
    CHECK(max_diff(out.at("logits"), full.narrow(1, begin, count)) < kTolerance);
  }
  CHECK(out.at("present.1.value").size(2) == 7);

  // Left-padded: a 4-token prefix, then one token at a time with the mask growing; positions
  // from the mask.
  const at::Tensor& left_ids = ref("left.input_ids");
  const at::Tensor& mask = ref("left.attention_mask");
  out = model->forward(
      {{"input_ids", left_ids.narrow(1, 0, 4)}, {"attention_mask", mask.narrow(1, 0, 4)}});
  CHECK(max_diff(out.at("logits"), ref("left.logits").narrow(1, 0, 4), mask.narrow(1, 0, 4)) <
        kTolerance);
  for (int64_t i = 4; i < left_ids.size(1); ++i) {
    INFO("token " << i);
    TensorMap next = {{"input_ids", left_ids.narrow(1, i, 1)},
                      {"attention_mask", mask.narrow(1, 0, i + 1)}};
    carry_cache(out, next);
    out = model->forward(next);
    CHECK(max_diff(out.at("logits"), ref("left.logits").narrow(1, i, 1), mask.narrow(1, i, 1)) <
          kTolerance);
  }
}

TEST_CASE("GPT-2 checkpoints load with or without the transformer. prefix and lm_head",
          "[models][gpt2]") {
  auto model = tiny_gpt2();
  const TensorMap saved = model->state_dict();
  CHECK(saved.count("transformer.h.1.attn.c_attn.weight") == 1);
  CHECK(saved.at("transformer.h.0.attn.c_attn.weight").sizes() == at::IntArrayRef({16, 48}));
  CHECK(saved.at("transformer.h.0.mlp.c_fc.weight").sizes() == at::IntArrayRef({16, 40}));
  CHECK(saved.count("lm_head.weight") == 0);  // tied to transformer.wte.weight
  const at::Tensor ids = ref("full.input_ids");
  at::Tensor want;
  {
    c10::InferenceMode guard;
    want = model->forward({{"input_ids", ids}}).at("logits");
  }
  auto load = [&](const TensorMap& checkpoint) {
    ModelSpec spec = tiny_spec();
    spec.checkpoint = &checkpoint;
    auto m = ms::models::build_model(spec);
    m->load_state_dict(checkpoint, "checkpoint");
    m->eval();
    return m;
  };
  auto logits = [&](Model& m) {
    c10::InferenceMode guard;
    return m.forward({{"input_ids", ids}}).at("logits");
  };

  // GPT2Model's names (a bare decoder), with the causal-mask buffers older versions saved.
  TensorMap bare;
  for (const auto& [name, t] : saved) bare[name.substr(std::string("transformer.").size())] = t;
  bare["h.0.attn.bias"] = at::ones({1, 1, 24, 24});
  bare["h.0.attn.masked_bias"] = at::tensor(-1e4);
  CHECK(at::equal(logits(*load(bare)), want));

  // torch.save(GPT2LMHeadModel.state_dict()) keeps lm_head.weight, the same tensor as wte.
  TensorMap with_head = saved;
  with_head["lm_head.weight"] = saved.at("transformer.wte.weight").clone();
  auto tied = load(with_head);
  CHECK(tied->state_dict().count("lm_head.weight") == 0);
  CHECK(at::equal(logits(*tied), want));

  // An lm_head that differs from wte is a head of its own.
  with_head["lm_head.weight"] = at::randn_like(saved.at("transformer.wte.weight"));
  auto untied = load(with_head);
  CHECK(untied->state_dict().count("lm_head.weight") == 1);
  CHECK_FALSE(at::allclose(logits(*untied), want));

  TensorMap missing = saved;
  missing.erase("transformer.h.1.ln_2.bias");
  CHECK(error_code([&] { load(missing); }) == ms::ErrorCode::kConfig);
  CHECK(error_code([&] {
          load({{"bert.embeddings.word_embeddings.weight", at::zeros({2, 2})}});
        }) == ms::ErrorCode::kConfig);
}

TEST_CASE("GPT-2 trains: dropout in train mode, a loss and gradients everywhere",
          "[models][gpt2]") {
  auto model = ms::models::build_model(tiny_spec());
  CHECK(ms::models::model_registry().contains("gpt2", "text-generation"));
  CHECK(model->is_training());
  // Clones: tensors read under InferenceMode (another test's) cannot be saved for backward.
  const TensorMap batch = {{"input_ids", ref("right.input_ids").clone()},
                           {"attention_mask", ref("right.attention_mask").clone()},
                           {"labels", ref("right.labels").clone()}};
  {
    c10::NoGradGuard no_grad;
    const TensorMap a = model->forward(batch), b = model->forward(batch);
    CHECK_FALSE(at::allclose(a.at("logits"), b.at("logits")));
    CHECK(a.count("present.0.key") == 0);  // no cache while training
  }
  const at::Tensor loss = model->forward(batch).at("loss");
  REQUIRE(loss.dim() == 0);
  CHECK(std::isfinite(loss.item<double>()));
  loss.backward();
  for (const auto& p : model->module().named_parameters()) {
    INFO(p.key());
    REQUIRE(p.value().grad().defined());
    CHECK(p.value().grad().abs().sum().item<double>() > 0);
  }
  model->eval();
  c10::InferenceMode guard;
  CHECK(at::equal(model->forward(batch).at("logits"), model->forward(batch).at("logits")));
}

TEST_CASE("GPT-2 rejects inputs it cannot run", "[models][gpt2]") {
  auto model = tiny_gpt2();
  c10::InferenceMode guard;
  const at::Tensor ids = at::zeros({1, 5}, at::kLong);
  // Longer than the 24 positions.
  CHECK(error_code([&] {
          model->forward({{"input_ids", at::zeros({1, 25}, at::kLong)}});
        }) == ms::ErrorCode::kUsage);
  // A mask that does not cover the tokens.
  CHECK(error_code([&] {
          model->forward({{"input_ids", ids}, {"attention_mask", at::ones({1, 4}, at::kLong)}});
        }) == ms::ErrorCode::kUsage);
  // A cache for one layer only.
  CHECK(error_code([&] {
          model->forward({{"input_ids", ids},
                          {"past_key_values.0.key", at::zeros({1, 2, 3, 8})},
                          {"past_key_values.0.value", at::zeros({1, 2, 3, 8})}});
        }) == ms::ErrorCode::kUsage);
  // A cache that, with the new tokens, passes the last position.
  TensorMap long_cache = {{"input_ids", ids}};
  for (int i = 0; i < kLayers; ++i) {
    long_cache["past_key_values." + std::to_string(i) + ".key"] = at::zeros({1, 2, 20, 8});
    long_cache["past_key_values." + std::to_string(i) + ".value"] = at::zeros({1, 2, 20, 8});
  }
  CHECK(error_code([&] { model->forward(long_cache); }) == ms::ErrorCode::kUsage);
}

// The encoder's attention kernels (MS_BERT_KERNELS) against LibTorch's ops one by one
// (MS_BERT_KERNELS=torch): ms's fused CPU kernels and, with LibTorch 2.x, LibTorch's fused
// scaled_dot_product_attention, on masks ms's own pipelines never build (left padding, holes, all
// padding), odd head sizes, 512 tokens, huge scores and non-finite weights.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <stdlib.h>
#include <torch/version.h>

#include <functional>
#include <limits>
#include <string>

#include "catch.h"
#include "ms/core/error.h"
#include "ms/models/bert.h"

namespace {

using ms::models::BertConfig;
using ms::models::BertEncoder;

BertConfig tiny_config(int64_t hidden, int64_t heads) {
  BertConfig c;
  c.vocab_size = 40;
  c.hidden_size = hidden;
  c.num_attention_heads = heads;
  c.num_hidden_layers = 2;
  c.intermediate_size = 37;
  c.max_position_embeddings = 512;
  return c;
}

// Random weights under BERT's parameter names; `edit` may change them before loading.
ms::tensor::WeightMap random_weights(const BertConfig& c) {
  ms::tensor::WeightMap w;
  const int64_t h = c.hidden_size, i = c.intermediate_size;
  auto add_norm = [&](const std::string& p) {
    w[p + ".weight"] = at::ones({h}) + 0.1 * at::randn({h});
    w[p + ".bias"] = 0.1 * at::randn({h});
  };
  w["embeddings.word_embeddings.weight"] = at::randn({c.vocab_size, h});
  w["embeddings.position_embeddings.weight"] = at::randn({c.max_position_embeddings, h});
  w["embeddings.token_type_embeddings.weight"] = at::randn({c.type_vocab_size, h});
  add_norm("embeddings.LayerNorm");
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    for (const char* m : {"query", "key", "value"}) {
      w[p + "attention.self." + m + ".weight"] = at::randn({h, h}) * 0.3;
      w[p + "attention.self." + m + ".bias"] = at::randn({h}) * 0.1;
    }
    w[p + "attention.output.dense.weight"] = at::randn({h, h}) * 0.3;
    w[p + "attention.output.dense.bias"] = at::randn({h}) * 0.1;
    add_norm(p + "attention.output.LayerNorm");
    w[p + "intermediate.dense.weight"] = at::randn({i, h}) * 0.3;
    w[p + "intermediate.dense.bias"] = at::randn({i}) * 0.1;
    w[p + "output.dense.weight"] = at::randn({h, i}) * 0.3;
    w[p + "output.dense.bias"] = at::randn({h}) * 0.1;
    add_norm(p + "output.LayerNorm");
  }
  return w;
}

std::shared_ptr<BertEncoder> make_encoder(const BertConfig& c, const ms::tensor::WeightMap& w,
                                          const char* kernels) {
  setenv("MS_BERT_KERNELS", kernels, 1);
  std::shared_ptr<BertEncoder> model;
  try {
    model = std::make_shared<BertEncoder>(c, /*with_pooler=*/false);
  } catch (...) {
    unsetenv("MS_BERT_KERNELS");
    throw;
  }
  unsetenv("MS_BERT_KERNELS");
  std::map<std::string, at::Tensor> params;
  for (const auto& p : model->named_parameters()) params.emplace(p.key(), p.value());
  ms::tensor::copy_weights(w, params, {}, "test");
  return model;
}

at::Tensor run(const BertConfig& c, const ms::tensor::WeightMap& w, const at::Tensor& ids,
               const at::Tensor& mask, const char* kernels) {
  auto model = make_encoder(c, w, kernels);
  model->eval();
  c10::InferenceMode guard;
  return model->forward(ids, at::zeros_like(ids), mask);
}

// The outputs of `kernels` and of LibTorch's ops agree (NaN where the other has NaN).
void check_same(const BertConfig& c, const ms::tensor::WeightMap& w, const at::Tensor& ids,
                const at::Tensor& mask, double tolerance = 2e-4, const char* kernels = "ms") {
  const at::Tensor fused = run(c, w, ids, mask, kernels);
  const at::Tensor reference = run(c, w, ids, mask, "torch");
  const double diff = (fused - reference).abs().nan_to_num(0.0, 0.0, 0.0).max().item<float>();
  INFO(kernels << ": max |fused - torch| = " << diff << "; NaN: fused "
               << fused.isnan().sum().item<int64_t>() << ", torch "
               << reference.isnan().sum().item<int64_t>());
  CHECK(at::allclose(fused, reference, tolerance, tolerance, /*equal_nan=*/true));
}

// The masks of the first test: trailing and left padding, a hole, a sequence of padding only.
at::Tensor awkward_mask(int64_t t) {
  at::Tensor mask = at::ones({5, t}, at::kLong);
  if (t > 1) {
    mask[1].narrow(0, t / 2, t - t / 2).fill_(0);  // trailing padding
    mask[2].narrow(0, 0, t / 2 + 1).fill_(0);      // left padding
    mask[3].narrow(0, t / 3, 1).fill_(0);          // a hole
    mask[3][0] = 0;
  }
  mask[4].fill_(0);  // all padding
  return mask;
}

}  // namespace

TEST_CASE("fused attention equals LibTorch's for any mask shape", "[models][kernels]") {
  at::manual_seed(7);
  // head_dim 32 and 64 take the compiled-in paths, 8 and 5 the generic one.
  for (auto [hidden, heads] : {std::pair<int64_t, int64_t>{64, 2}, {128, 2}, {24, 3}, {15, 3}}) {
    const BertConfig c = tiny_config(hidden, heads);
    const auto w = random_weights(c);
    for (int64_t t : {1, 2, 5, 17, 40}) {
      INFO("hidden " << hidden << " heads " << heads << " tokens " << t);
      const at::Tensor ids = at::randint(1, c.vocab_size, {5, t}, at::kLong);
      check_same(c, w, ids, awkward_mask(t));
    }
  }
}

TEST_CASE("fused attention: 512 tokens, huge scores, non-finite weights", "[models][kernels]") {
  at::manual_seed(11);
  const BertConfig c = tiny_config(64, 2);
  auto w = random_weights(c);
  const at::Tensor ids = at::randint(1, c.vocab_size, {2, 512}, at::kLong);
  at::Tensor mask = at::ones({2, 512}, at::kLong);
  mask[1].narrow(0, 0, 100).fill_(0);
  check_same(c, w, ids, mask);

  // Scores in the thousands: softmax is one-hot, exp's clamp at -87 must not change that.
  const at::Tensor short_ids = ids.narrow(1, 0, 20).contiguous();
  const at::Tensor short_mask = mask.narrow(1, 0, 20).contiguous();
  for (double factor : {30.0, 1e4}) {
    INFO("query/key weights x " << factor);
    auto big = w;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::string p = "encoder.layer." + std::to_string(l) + ".attention.self.";
      big[p + "query.weight"] = w[p + "query.weight"] * factor;
      big[p + "key.weight"] = w[p + "key.weight"] * factor;
    }
    check_same(c, big, short_ids, short_mask, 1e-3);
  }
  // NaN and infinity in one token's embedding (and in the pad token's).
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    INFO("embedding value " << bad);
    auto broken = w;
    broken["embeddings.word_embeddings.weight"] = w["embeddings.word_embeddings.weight"].clone();
    broken["embeddings.word_embeddings.weight"][5][3] = bad;
    at::Tensor some = short_ids.clone();
    some[0][4] = 5;
    check_same(c, broken, some, at::ones_like(some));
  }
}

TEST_CASE("BERT forward rejects a mask that is not [batch, tokens]", "[models][kernels]") {
  const BertConfig c = tiny_config(64, 2);
  const auto w = random_weights(c);
  const at::Tensor ids = at::randint(1, c.vocab_size, {4, 9}, at::kLong);
  CHECK_THROWS_AS(run(c, w, ids, at::ones({1, 9}, at::kLong), "ms"), ms::Error);
  CHECK_THROWS_AS(run(c, w, ids, at::ones({4, 8}, at::kLong), "ms"), ms::Error);
}

TEST_CASE("MS_BERT_KERNELS names a known kernel choice", "[models][kernels]") {
  const BertConfig c = tiny_config(64, 2);
  const auto w = random_weights(c);
  CHECK_THROWS_AS(make_encoder(c, w, "fast"), ms::Error);
  CHECK(getenv("MS_BERT_KERNELS") == nullptr);
#if TORCH_VERSION_MAJOR < 2
  // No scaled_dot_product_attention in LibTorch 1.x: asking for it is an error, not ignored.
  try {
    make_encoder(c, w, "sdpa");
    FAIL("MS_BERT_KERNELS=sdpa was accepted by LibTorch " TORCH_VERSION);
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kUsage);
    CHECK(std::string(e.what()).find("LibTorch 2.0") != std::string::npos);
  }
#endif
}

#if TORCH_VERSION_MAJOR >= 2
TEST_CASE("LibTorch's fused attention equals its ops, in inference and in training",
          "[models][kernels]") {
  at::manual_seed(13);
  for (auto [hidden, heads] : {std::pair<int64_t, int64_t>{64, 2}, {24, 3}}) {
    BertConfig c = tiny_config(hidden, heads);
    const auto w = random_weights(c);
    for (int64_t t : {1, 5, 40}) {
      INFO("hidden " << hidden << " heads " << heads << " tokens " << t);
      const at::Tensor ids = at::randint(1, c.vocab_size, {5, t}, at::kLong);
      check_same(c, w, ids, awkward_mask(t), 2e-4, "sdpa");
    }
    // Training (the projections as three modules, gradients through the fused call), with
    // dropout off so that both paths compute the same function. Every sequence keeps a token
    // (the last attends to its first only), as every tokenised text does: for one with none,
    // both paths average all values alike, but the op path differentiates through scores that
    // the mask's lowest float swamped and the fused kernel does not, so their gradients for such
    // a meaningless row differ.
    c.hidden_dropout_prob = 0.0;
    c.attention_probs_dropout_prob = 0.0;
    const at::Tensor ids = at::randint(1, c.vocab_size, {5, 17}, at::kLong);
    at::Tensor mask = awkward_mask(17);
    mask[4][0] = 1;
    std::map<std::string, at::Tensor> grads[2];
    int side = 0;
    for (const char* kernels : {"sdpa", "torch"}) {
      auto model = make_encoder(c, w, kernels);
      model->train();
      model->forward(ids, at::zeros_like(ids), mask).pow(2).sum().backward();
      for (const auto& p : model->named_parameters())
        grads[side].emplace(p.key(), p.value().grad().clone());
      ++side;
    }
    for (const auto& [name, grad] : grads[0]) {
      INFO(name);
      CHECK(at::allclose(grad, grads[1].at(name), 1e-3, 1e-3));
    }
  }
}
#endif

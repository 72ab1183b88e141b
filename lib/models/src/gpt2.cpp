// GPT-2-family causal decoder (Hugging Face's GPT2LMHeadModel) for the text-generation task:
// learned positions, pre-LayerNorm blocks, Conv1D projections ([in, out] weights), an LM head tied
// to the token embeddings, dropout in train mode, a shifted-label loss, and a key/value cache.
//
// Inputs (TensorMap): input_ids [b, t]; attention_mask [b, past + t] (1 = attend); position_ids
// [b, t]; past_key_values.<layer>.key / .value [b, heads, past, head_dim]; labels [b, t].
// Outputs: logits [b, t, vocab]; present.<layer>.key / .value (the cache to pass back as
// past_key_values, outside train mode); loss (with labels). The cache names are those of Hugging
// Face's ONNX exports of GPT-2.
#include <ATen/TensorOperators.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/baddbmm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/mv.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>

#include "family_helpers.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/text.h"
#include "ms/models/bert.h"
#include "ms/models/model.h"
#include "registration.h"

namespace ms::models {
namespace {

using torch::nn::Embedding;
using torch::nn::LayerNorm;
using torch::nn::LayerNormOptions;

// The config.json fields of GPT2Config that the decoder uses.
struct Gpt2Config {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;
  int64_t n_embd = 768;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_inner = 0;  // 0: 4 * n_embd
  std::string activation_function = "gelu_new";
  double resid_pdrop = 0.1;
  double embd_pdrop = 0.1;
  double attn_pdrop = 0.1;
  double layer_norm_epsilon = 1e-5;
  bool scale_attn_weights = true;
  bool scale_attn_by_inverse_layer_idx = false;
  bool tie_word_embeddings = true;
  // Not in config.json: whether to draw the initial weights. Skipped when a checkpoint replaces
  // them all (drawing GPT-2 small's 124M normals took a second of every `ms infer`).
  bool draw_initial_weights = true;

  static Gpt2Config from_model_dir(const std::filesystem::path& dir);
};

bool bool_field(const Json& j, const char* key, bool fallback, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  MS_CHECK(it->is_boolean(), ErrorCode::kConfig, "{}: key '{}' must be true or false, got {}",
           source, key, it->dump());
  return it->get<bool>();
}

Gpt2Config Gpt2Config::from_model_dir(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "config.json";
  const auto json = read_json_file(path);
  MS_CHECK(json.has_value(), ErrorCode::kNotFound,
           "{} does not exist: a GPT-2-family model needs its config.json", path.string());
  const Json& j = *json;
  const std::string source = path.string();
  MS_CHECK(j.is_object(), ErrorCode::kConfig, "{} is not a JSON object", source);
  if (auto it = j.find("model_type"); it != j.end() && !it->is_null()) {
    MS_CHECK(it->is_string() && normalize_model_type(it->get<std::string>()) == "gpt2",
             ErrorCode::kConfig,
             "{}: model_type {} is not a GPT-2-family model (this folder's weights are read as "
             "gpt2)",
             source, it->dump());
  }
  Gpt2Config c;
  c.vocab_size = int_field(j, "vocab_size", c.vocab_size, source);
  // GPT2Config's own names, or the common names its attribute_map takes for them (a config
  // written by hand or by another tool).
  auto named = [&j](const char* own, const char* alias) {
    return j.contains(own) || !j.contains(alias) ? own : alias;
  };
  c.n_positions =
      int_field(j, named("n_positions", "max_position_embeddings"), c.n_positions, source);
  c.n_embd = int_field(j, named("n_embd", "hidden_size"), c.n_embd, source);
  c.n_layer = int_field(j, named("n_layer", "num_hidden_layers"), c.n_layer, source);
  c.n_head = int_field(j, named("n_head", "num_attention_heads"), c.n_head, source);
  c.n_inner = int_field(j, "n_inner", 4 * c.n_embd, source);
  c.resid_pdrop = probability_field(j, "resid_pdrop", source).value_or(c.resid_pdrop);
  c.embd_pdrop = probability_field(j, "embd_pdrop", source).value_or(c.embd_pdrop);
  c.attn_pdrop = probability_field(j, "attn_pdrop", source).value_or(c.attn_pdrop);
  if (auto it = j.find("layer_norm_epsilon"); it != j.end() && !it->is_null()) {
    MS_CHECK(it->is_number() && it->get<double>() > 0 && it->get<double>() < 1, ErrorCode::kConfig,
             "{}: key 'layer_norm_epsilon' must be a small positive number (e.g. 1e-5), got {}",
             source, it->dump());
    c.layer_norm_epsilon = it->get<double>();
  }
  if (auto it = j.find("activation_function"); it != j.end() && !it->is_null()) {
    MS_CHECK(it->is_string(), ErrorCode::kConfig, "{}: key 'activation_function' must be a string",
             source);
    c.activation_function = it->get<std::string>();
  }
  MS_CHECK(c.activation_function == "gelu_new" || c.activation_function == "gelu" ||
               c.activation_function == "gelu_pytorch_tanh" || c.activation_function == "relu",
           ErrorCode::kConfig,
           "{}: activation_function '{}' is not supported (gelu_new, gelu, gelu_pytorch_tanh, "
           "relu)",
           source, c.activation_function);
  c.scale_attn_weights = bool_field(j, "scale_attn_weights", true, source);
  c.scale_attn_by_inverse_layer_idx =
      bool_field(j, "scale_attn_by_inverse_layer_idx", false, source);
  c.tie_word_embeddings = bool_field(j, "tie_word_embeddings", true, source);
  MS_CHECK(c.n_embd % c.n_head == 0, ErrorCode::kConfig,
           "{}: n_embd {} is not a multiple of n_head {}", source, c.n_embd, c.n_head);
  const double e = static_cast<double>(c.n_embd), inner = static_cast<double>(c.n_inner);
  const double layer = 4 * e + (3 * e * e + 3 * e) + (e * e + e) + 2 * (e * inner) + inner + e;
  check_model_fits(static_cast<double>(c.vocab_size + c.n_positions) * e +
                       static_cast<double>(c.n_layer) * layer + 2 * e,
                   source,
                   fmt::format("vocab_size {}, n_embd {}, n_layer {}, n_inner {}, n_positions {}",
                               c.vocab_size, c.n_embd, c.n_layer, c.n_inner, c.n_positions));
  return c;
}

at::Tensor project(const at::Tensor& rows, const at::Tensor& weight, const at::Tensor& bias);

// Hugging Face's Conv1D: a linear layer whose weight is stored [in, out] (GPT-2's original
// TensorFlow layout), so that checkpoints load as they are.
struct Conv1D : torch::nn::Module {
  Conv1D(int64_t in, int64_t out, bool draw) {
    weight = register_parameter("weight", at::zeros({in, out}));
    bias = register_parameter("bias", at::zeros({out}));
    if (draw) torch::nn::init::normal_(weight, 0.0, 0.02);
  }
  at::Tensor forward(const at::Tensor& x) {
    // The tracer would freeze the sizes below into the graph; matmul takes any leading shape.
    if (torch::jit::tracer::isTracing()) return at::matmul(x, weight) + bias;
    std::vector<int64_t> sizes = x.sizes().vec();
    sizes.back() = weight.size(1);
    return project(x.reshape({-1, x.size(-1)}), weight.t(), bias).view(sizes);
  }
  at::Tensor weight, bias;
};

// rows [n, in] times weight [out, in] transposed, plus bias (if defined). One row (a decoding
// step at batch 1) goes through a matrix-vector product: BLAS's gemm packs the whole weight for
// a single row, and on the CPU that made GPT-2 small's steps 3 to 5 times slower per layer.
at::Tensor project(const at::Tensor& rows, const at::Tensor& weight, const at::Tensor& bias) {
  if (rows.size(0) == 1) {
    at::Tensor out = at::mv(weight, rows.view({-1}));
    if (bias.defined()) out = out + bias;
    return out.unsqueeze(0);
  }
  return bias.defined() ? at::addmm(bias, rows, weight.t()) : at::mm(rows, weight.t());
}

// What every block needs to know about the batch.
struct Batch {
  at::Tensor bias;  // [b * heads, t, past + t]: 0 where attended, the lowest value where masked
  bool training = false;
  bool traced = false;  // ms export: no cache, bias [b, 1, t, t], shapes from the tensors
};

struct Gpt2Attention : torch::nn::Module {
  Gpt2Attention(const Gpt2Config& c, int64_t layer_index)
      : c_attn(register_module(
            "c_attn", std::make_shared<Conv1D>(c.n_embd, 3 * c.n_embd, c.draw_initial_weights))),
        c_proj(register_module(
            "c_proj", std::make_shared<Conv1D>(c.n_embd, c.n_embd, c.draw_initial_weights))),
        heads_(c.n_head),
        head_dim_(c.n_embd / c.n_head),
        attn_dropout_(c.attn_pdrop),
        resid_dropout_(c.resid_pdrop) {
    scale_ = c.scale_attn_weights ? 1.0 / std::sqrt(static_cast<double>(head_dim_)) : 1.0;
    if (c.scale_attn_by_inverse_layer_idx) scale_ /= static_cast<double>(layer_index + 1);
  }

  // x [b, t, n_embd]; past key / value [b, heads, past, d] or undefined. Returns the output and
  // the keys and values of past + t.
  std::tuple<at::Tensor, at::Tensor, at::Tensor> forward(const at::Tensor& x,
                                                         const at::Tensor& past_key,
                                                         const at::Tensor& past_value,
                                                         const Batch& batch) {
    if (batch.traced) {
      // [b, t, 3, heads, d] -> three [b, heads, t, d], with no C++ size in the recorded graph.
      const at::Tensor qkv =
          c_attn->forward(x).unflatten(-1, {3, heads_, head_dim_}).permute({2, 0, 3, 1, 4});
      const at::Tensor scores =
          at::matmul(qkv[0], qkv[1].transpose(-1, -2)).mul(scale_).add(batch.bias);
      const at::Tensor out = at::matmul(at::softmax(scores, -1), qkv[2]).transpose(1, 2);
      return {c_proj->forward(out.flatten(2)), at::Tensor(), at::Tensor()};
    }
    const int64_t b = x.size(0), t = x.size(1), e = heads_ * head_dim_;
    // [b, t, 3, heads, d] -> three [b, heads, t, d]
    const at::Tensor qkv =
        c_attn->forward(x).view({b, t, 3, heads_, head_dim_}).permute({2, 0, 3, 1, 4});
    at::Tensor q = qkv[0], k = qkv[1], v = qkv[2];
    if (past_key.defined()) {
      k = at::cat({past_key, k}, 2);
      v = at::cat({past_value, v}, 2);
    }
    const int64_t keys = k.size(2);
    // scores = mask + scale * q k^T, in one call.
    const at::Tensor scores =
        at::baddbmm(batch.bias, q.reshape({b * heads_, t, head_dim_}),
                    k.reshape({b * heads_, keys, head_dim_}).transpose(1, 2), 1.0, scale_);
    const at::Tensor probs = at::dropout(at::softmax(scores, -1), attn_dropout_, batch.training);
    const at::Tensor out = at::bmm(probs, v.reshape({b * heads_, keys, head_dim_}))
                               .view({b, heads_, t, head_dim_})
                               .transpose(1, 2)
                               .reshape({b, t, e});
    return {at::dropout(c_proj->forward(out), resid_dropout_, batch.training), k, v};
  }

  std::shared_ptr<Conv1D> c_attn, c_proj;
  int64_t heads_, head_dim_;
  double attn_dropout_, resid_dropout_, scale_ = 1.0;
};

struct Mlp : torch::nn::Module {
  explicit Mlp(const Gpt2Config& c)
      : c_fc(register_module(
            "c_fc", std::make_shared<Conv1D>(c.n_embd, c.n_inner, c.draw_initial_weights))),
        c_proj(register_module(
            "c_proj", std::make_shared<Conv1D>(c.n_inner, c.n_embd, c.draw_initial_weights))),
        act_(c.activation_function),
        dropout_(c.resid_pdrop) {}
  at::Tensor forward(const at::Tensor& x, const Batch& batch) {
    return at::dropout(c_proj->forward(apply_hidden_act(act_, c_fc->forward(x))), dropout_,
                       batch.training);
  }
  std::shared_ptr<Conv1D> c_fc, c_proj;
  std::string act_;
  double dropout_;
};

// A pre-LayerNorm block: x + attn(ln_1(x)), then + mlp(ln_2(.)).
struct Gpt2Block : torch::nn::Module {
  Gpt2Block(const Gpt2Config& c, int64_t index)
      : ln_1(register_module("ln_1",
                             LayerNorm(LayerNormOptions({c.n_embd}).eps(c.layer_norm_epsilon)))),
        attn(register_module("attn", std::make_shared<Gpt2Attention>(c, index))),
        ln_2(register_module("ln_2",
                             LayerNorm(LayerNormOptions({c.n_embd}).eps(c.layer_norm_epsilon)))),
        mlp(register_module("mlp", std::make_shared<Mlp>(c))) {}
  LayerNorm ln_1;
  std::shared_ptr<Gpt2Attention> attn;
  LayerNorm ln_2;
  std::shared_ptr<Mlp> mlp;
};

// GPT2Model: token and position embeddings, the blocks, the final LayerNorm.
struct Transformer : torch::nn::Module {
  explicit Transformer(const Gpt2Config& c)
      : wte(register_module("wte", Embedding(c.vocab_size, c.n_embd))),
        wpe(register_module("wpe", Embedding(c.n_positions, c.n_embd))),
        h(register_module("h", torch::nn::ModuleList())),
        ln_f(register_module("ln_f",
                             LayerNorm(LayerNormOptions({c.n_embd}).eps(c.layer_norm_epsilon)))) {
    // Hugging Face's initialisation (std 0.02), so that a fresh model trains as one would there.
    if (c.draw_initial_weights) {
      torch::nn::init::normal_(wte->weight, 0.0, 0.02);
      torch::nn::init::normal_(wpe->weight, 0.0, 0.02);
    }
    for (int64_t i = 0; i < c.n_layer; ++i) {
      auto block = std::make_shared<Gpt2Block>(c, i);
      h->push_back(block);
      blocks.push_back(block);
    }
  }
  Embedding wte, wpe;
  torch::nn::ModuleList h;
  LayerNorm ln_f;
  std::vector<std::shared_ptr<Gpt2Block>> blocks;
};

// The LM head when it is not tied to the token embeddings (tie_word_embeddings false, or a
// checkpoint whose lm_head differs from wte).
struct Gpt2LmHead : torch::nn::Module {
  Gpt2LmHead(int64_t n_embd, int64_t vocab, bool draw) {
    weight = register_parameter("weight", at::zeros({vocab, n_embd}));
    if (draw) torch::nn::init::normal_(weight, 0.0, 0.02);
  }
  at::Tensor weight;
};

// text-generation (GPT2LMHeadModel).
class Gpt2LMHeadModel final : public torch::nn::Module, public Model {
 public:
  explicit Gpt2LMHeadModel(const ModelSpec& spec)
      : task_(spec.task), config_(Gpt2Config::from_model_dir(spec.dir)) {
    config_.draw_initial_weights = spec.checkpoint == nullptr;
    transformer_ = register_module("transformer", std::make_shared<Transformer>(config_));
    if (own_lm_head(spec)) {
      lm_head_ = register_module("lm_head",
                                 std::make_shared<Gpt2LmHead>(config_.n_embd, config_.vocab_size,
                                                              config_.draw_initial_weights));
    }
  }

  const std::string& task() const override { return task_; }
  torch::nn::Module& module() override { return *this; }
  std::optional<int64_t> max_tokens() const override { return config_.n_positions; }
  std::optional<int64_t> vocab_size() const override { return config_.vocab_size; }

  // For the ONNX exporter: the decoder without a cache, input_ids (+ attention_mask) -> logits.
  Json structure() const override {
    const Gpt2Config& c = config_;
    return {{"family", "gpt2"},
            {"head", "causal-lm"},
            {"n_layer", c.n_layer},
            {"n_head", c.n_head},
            {"n_embd", c.n_embd},
            {"n_positions", c.n_positions},
            {"vocab_size", c.vocab_size},
            {"layer_norm_epsilon", c.layer_norm_epsilon},
            {"activation_function", c.activation_function},
            {"scale_attn_weights", c.scale_attn_weights},
            {"scale_attn_by_inverse_layer_idx", c.scale_attn_by_inverse_layer_idx},
            {"lm_head", lm_head_ ? "lm_head.weight" : "transformer.wte.weight"}};
  }

  TensorMap forward(const TensorMap& inputs) override {
    const Gpt2Config& c = config_;
    const at::Tensor& ids = required_input(inputs, "input_ids");
    MS_CHECK(ids.dim() == 2, ErrorCode::kUsage,
             "GPT-2 forward: input_ids must be [batch, tokens], "
             "got [{}]",
             fmt::join(ids.sizes(), ", "));
    const int64_t b = ids.size(0), t = ids.size(1);
    const std::size_t layers = transformer_->blocks.size();

    MS_CHECK(t > 0, ErrorCode::kUsage, "GPT-2 forward: input_ids has no tokens");
    if (torch::jit::tracer::isTracing()) {
      MS_CHECK(t <= c.n_positions, ErrorCode::kUsage,
               "input of {} tokens is longer than the model's {} positions", t, c.n_positions);
      const at::Tensor* mask = optional_input(inputs, "attention_mask");
      return traced_forward(ids, mask ? *mask : at::ones_like(ids));
    }

    // The cache: every layer's keys and values, all of the same length, or none at all.
    std::vector<at::Tensor> past_keys(layers), past_values(layers);
    int64_t past = 0;
    const bool cached = optional_input(inputs, "past_key_values.0.key") != nullptr;
    for (std::size_t i = 0; i < layers; ++i) {
      const std::string name = fmt::format("past_key_values.{}.", i);
      const at::Tensor* key = optional_input(inputs, (name + "key").c_str());
      const at::Tensor* value = optional_input(inputs, (name + "value").c_str());
      MS_CHECK((key != nullptr) == cached && (value != nullptr) == cached, ErrorCode::kUsage,
               "GPT-2 forward: the cache needs past_key_values.N.key and .value for every layer "
               "(0..{})",
               layers - 1);
      if (!cached) continue;
      const std::vector<int64_t> shape = {b, c.n_head, key->size(2), c.n_embd / c.n_head};
      MS_CHECK(key->dim() == 4 && key->sizes() == shape && value->sizes() == shape,
               ErrorCode::kUsage, "GPT-2 forward: {}key / value must be [{}], got [{}] and [{}]",
               name, fmt::join(shape, ", "), fmt::join(key->sizes(), ", "),
               fmt::join(value->sizes(), ", "));
      MS_CHECK(i == 0 || key->size(2) == past, ErrorCode::kUsage,
               "GPT-2 forward: the cached layers hold different lengths");
      past = key->size(2);
      past_keys[i] = *key;
      past_values[i] = *value;
    }
    // The limit is on positions, not on the cache: left padding in a batch adds cache entries
    // that hold no position, so a padded row may use all of the model's positions.

    // The attention mask covers the cached tokens and the new ones.
    at::Tensor mask;
    if (const at::Tensor* given = optional_input(inputs, "attention_mask")) {
      MS_CHECK(given->dim() == 2 && given->size(0) == b && given->size(1) == past + t,
               ErrorCode::kUsage,
               "GPT-2 forward: attention_mask must be [batch, cached + new tokens] = [{}, {}], got "
               "[{}]",
               b, past + t, fmt::join(given->sizes(), ", "));
      mask = given->to(ids.device(), at::kLong);
    }
    // Positions: as given; else counted over the attended tokens (what Hugging Face's generate()
    // passes, so that left padding does not shift them; padding itself gets 1), which without
    // padding is past, past + 1, ...
    at::Tensor positions;
    if (const at::Tensor* given = optional_input(inputs, "position_ids")) {
      MS_CHECK(given->sizes() == ids.sizes(), ErrorCode::kUsage,
               "GPT-2 forward: position_ids must have input_ids' shape [{}], got [{}]",
               fmt::join(ids.sizes(), ", "), fmt::join(given->sizes(), ", "));
      positions = given->to(ids.device(), at::kLong);
    } else if (mask.defined()) {
      positions = (at::cumsum(mask, 1) - 1).masked_fill_(mask.eq(0), 1).narrow(1, past, t);
    } else {
      positions = at::arange(past, past + t, ids.options().dtype(at::kLong)).unsqueeze(0);
    }
    // A position beyond the table would make the embedding read out of bounds.
    const bool positions_given = optional_input(inputs, "position_ids") != nullptr;
    if (positions.numel() > 0) {
      const int64_t last = positions.max().item<int64_t>();
      MS_CHECK(positions_given || last < c.n_positions, ErrorCode::kUsage,
               "input of {} tokens is longer than the model's {} positions", last + 1,
               c.n_positions);
      MS_CHECK(positions.min().item<int64_t>() >= 0 && last < c.n_positions, ErrorCode::kUsage,
               "GPT-2 forward: position_ids must lie in [0, {})", c.n_positions);
    }

    Batch batch;
    batch.training = torch::nn::Module::is_training();
    at::Tensor x = transformer_->wte(ids) + transformer_->wpe(positions);
    x = at::dropout(x, c.embd_pdrop, batch.training);

    // Additive bias [b * heads, t, past + t]: query i (at past + i) sees keys j <= past + i that
    // the mask keeps.
    const auto opts = ids.options().dtype(at::kLong);
    const at::Tensor query_at = at::arange(past, past + t, opts).unsqueeze(1);
    const at::Tensor key_at = at::arange(past + t, opts).unsqueeze(0);
    at::Tensor allowed = key_at.le(query_at).unsqueeze(0);  // [1, t, past + t]
    if (mask.defined()) allowed = allowed.logical_and(mask.ne(0).unsqueeze(1));
    const double lowest = lowest_value(x.scalar_type());
    batch.bias = at::zeros({}, x.options())
                     .masked_fill(allowed.logical_not(), lowest)
                     .expand({b, t, past + t})
                     .unsqueeze(1)
                     .expand({b, c.n_head, t, past + t})
                     .reshape({b * c.n_head, t, past + t});

    TensorMap out;
    for (std::size_t i = 0; i < layers; ++i) {
      Gpt2Block& block = *transformer_->blocks[i];
      auto [a, key, value] =
          block.attn->forward(block.ln_1(x), past_keys[i], past_values[i], batch);
      x = x + a;
      x = x + block.mlp->forward(block.ln_2(x), batch);
      if (!batch.training) {
        out[fmt::format("present.{}.key", i)] = key;
        out[fmt::format("present.{}.value", i)] = value;
      }
    }
    x = transformer_->ln_f(x);
    const at::Tensor& head = lm_head_ ? lm_head_->weight : transformer_->wte->weight;
    const at::Tensor logits =
        project(x.reshape({-1, c.n_embd}), head, at::Tensor()).view({b, t, head.size(0)});
    out["logits"] = logits;
    if (const at::Tensor* labels = optional_input(inputs, "labels")) {
      out["loss"] = causal_lm_loss(logits, *labels, mask);
    }
    return out;
  }

 private:
  // What LibTorch's tracer records for `ms export --format torchscript`: input_ids and
  // attention_mask -> logits at every position, without a cache (Hugging Face's GPT2LMHeadModel
  // called with use_cache=False). The tracer records tensor operations, not C++ integers, so
  // sizes come from the tensors and the archive runs at any batch size and length; dtypes come
  // from the weights (type_as), so it runs in theirs. Equal to forward() at every position whose
  // query sees a real token (a query on left padding sees none, and its logits mean nothing).
  TensorMap traced_forward(const at::Tensor& ids, const at::Tensor& attention_mask) {
    const at::Tensor mask = attention_mask.to(at::kLong);
    // As forward(): positions count the attended tokens, and padding takes position 1.
    const at::Tensor positions = (at::cumsum(mask, 1) - 1).masked_fill(mask.eq(0), 1);
    Batch batch;
    batch.traced = true;
    at::Tensor x = transformer_->wte(ids) + transformer_->wpe(positions);
    // Query i sees the keys j <= i that the mask keeps: an additive bias [b, 1, t, t]. A query on
    // left padding has no such key and sees itself instead: in float16 a row of masked scores
    // only would be -inf (-65504 plus a negative score), softmax would give NaN, and the NaN
    // would reach the real tokens through that position's keys in the next layer.
    const at::Tensor order = at::cumsum(at::ones_like(ids.select(0, 0)), 0);
    const at::Tensor seen =
        order.unsqueeze(0).le(order.unsqueeze(1)).unsqueeze(0).logical_and(mask.ne(0).unsqueeze(1));
    const at::Tensor itself = order.unsqueeze(0).eq(order.unsqueeze(1)).unsqueeze(0);
    const at::Tensor allowed =
        seen.logical_or(itself.logical_and(seen.any(-1, true).logical_not()));
    batch.bias = allowed.logical_not().unsqueeze(1).type_as(x).mul(kTracedMaskValue);
    for (const auto& block : transformer_->blocks) {
      x = x + std::get<0>(block->attn->forward(block->ln_1(x), {}, {}, batch));
      x = x + block->mlp->forward(block->ln_2(x), batch);
    }
    x = transformer_->ln_f(x);
    const at::Tensor& head = lm_head_ ? lm_head_->weight : transformer_->wte->weight;
    return {{"logits", at::matmul(x, head.t())}};
  }

 protected:
  void begin_load(const TensorMap& checkpoint, const std::string& source,
                  bool /*allow_fresh_head*/) override {
    // GPT2LMHeadModel saves "transformer.wte.weight"; GPT2Model (a bare decoder) "wte.weight".
    bare_ = checkpoint.count("transformer.wte.weight") == 0;
    MS_CHECK(!bare_ || checkpoint.count("wte.weight") != 0, ErrorCode::kConfig,
             "{} has no 'transformer.wte.weight' (or 'wte.weight'): not a GPT-2 checkpoint",
             source);
  }

  std::optional<std::string> checkpoint_name_to_parameter(const std::string& name) const override {
    if (name == "lm_head.weight") {
      // A tied head is the token embeddings, which the checkpoint has under their own name.
      return lm_head_ ? std::optional<std::string>(name) : std::nullopt;
    }
    const std::string own = bare_ ? "transformer." + name : name;
    // The causal-mask buffers older checkpoints saved (attn.bias, attn.masked_bias).
    if (own.size() > 10 && (own.compare(own.size() - 10, 10, ".attn.bias") == 0 ||
                            own.find(".attn.masked_bias") != std::string::npos)) {
      return std::nullopt;
    }
    if (starts_with(own, "transformer.")) return own;
    return std::nullopt;  // another head's (GPT2DoubleHeadsModel's multiple_choice_head., ...)
  }

 private:
  // Whether the LM head is a parameter of its own rather than the token embeddings: when the
  // config unties them, or the checkpoint's lm_head differs from its wte.
  bool own_lm_head(const ModelSpec& spec) const {
    if (!config_.tie_word_embeddings) return true;
    if (spec.checkpoint == nullptr) return false;
    auto head = spec.checkpoint->find("lm_head.weight");
    if (head == spec.checkpoint->end()) return false;
    auto wte = spec.checkpoint->find("transformer.wte.weight");
    if (wte == spec.checkpoint->end()) wte = spec.checkpoint->find("wte.weight");
    return wte == spec.checkpoint->end() ||
           !(head->second.sizes() == wte->second.sizes() &&
             head->second.to(at::kFloat).equal(wte->second.to(at::kFloat)));
  }

  // The next-token loss: logits at position i predict labels at i + 1. Labels of -100 are
  // ignored, and with a mask so are padded positions and the first token after left padding (it
  // would be predicted from a padding position, whose logits mean nothing).
  static at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels,
                                   const at::Tensor& mask) {
    MS_CHECK(labels.sizes() == logits.sizes().slice(0, 2), ErrorCode::kUsage,
             "labels of shape [{}] do not match input_ids of shape [{}]",
             fmt::join(labels.sizes(), ", "), fmt::join(logits.sizes().slice(0, 2), ", "));
    const int64_t t = logits.size(1), vocab = logits.size(2);
    at::Tensor targets = labels.to(logits.device(), at::kLong).narrow(1, 1, t - 1);
    if (mask.defined()) {
      const at::Tensor attended = mask.narrow(1, mask.size(1) - t, t).ne(0);
      const at::Tensor scored =
          attended.narrow(1, 1, t - 1).logical_and(attended.narrow(1, 0, t - 1));
      targets = targets.masked_fill(scored.logical_not(), -100);
    }
    const at::Tensor scores = logits.narrow(1, 0, t - 1);
    return at::cross_entropy_loss(scores.reshape({-1, vocab}).to(at::kFloat), targets.reshape({-1}),
                                  {}, at::Reduction::Mean, -100);
  }

  std::string task_;
  Gpt2Config config_;
  std::shared_ptr<Transformer> transformer_;
  std::shared_ptr<Gpt2LmHead> lm_head_;
  bool bare_ = false;
};

}  // namespace

void register_gpt_models(Registry<ModelBuilder>& registry) {
  registry.add(
      "gpt2",
      [](const ModelSpec& spec) -> std::shared_ptr<Model> {
        return std::make_shared<Gpt2LMHeadModel>(spec);
      },
      "GPT-2-family causal decoder: learned positions, pre-LayerNorm blocks, tied LM head, "
      "key/value cache",
      "text-generation");
}

}  // namespace ms::models

#include "ms/models/bert.h"

#include <ATen/Parallel.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/baddbmm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/relu.h>
#if TORCH_VERSION_MAJOR >= 2
#include <ATen/ops/scaled_dot_product_attention.h>
#endif
#include <ATen/ops/softmax.h>
#include <ATen/ops/tanh.h>
#include <c10/core/GradMode.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/version.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "cpu_kernels.h"
#include "family_helpers.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/text.h"
#include "ms/models/model.h"

namespace ms::models {
namespace {

using torch::nn::Embedding;
using torch::nn::LayerNorm;
using torch::nn::LayerNormOptions;
using torch::nn::Linear;

// What every layer needs to know about the batch: its padding, and which path to take.
struct Mask {
  at::Tensor bias;                 // [b, 1, 1, t]: 0 where attended, lowest float where padded
  bool fast = false;               // eval mode without gradients: fused QKV
  bool traced = false;             // LibTorch's tracer is recording (ms export): no C++ sizes
  bool ms_cpu_kernels = false;     // fast, and ms's fused CPU kernels apply (cpu_kernels.h)
  bool sdpa = false;               // LibTorch's at::scaled_dot_product_attention (not traced)
  bool training = false;           // dropout active
  double attention_dropout = 0.0;  // on the attention probabilities
  double hidden_dropout = 0.0;     // after each dense layer and the embeddings
  at::Tensor key_bias;             // ms_cpu_kernels only: bias as a contiguous [b, t] float tensor
  std::vector<int64_t> key_count;  // ms_cpu_kernels only: keys past this index are all padding
};

// Which attention (and GELU) kernels the encoder runs, from MS_BERT_KERNELS:
//  - "sdpa": LibTorch's fused at::scaled_dot_product_attention (LibTorch 2.x), the default on a
//    GPU. One call instead of the mask expansion, baddbmm, softmax, dropout and bmm: on a GPU it
//    picks a fused (memory-efficient or flash) kernel, which matters because batch inference on
//    a GPU is bound by kernel launches, not by the card (bench/README.md). Not the default on the
//    CPU: there LibTorch 2.11's took 12.3 s for 2,000 MiniLM sentences against 7.7 s with the
//    ops one by one (2-core AMD EPYC, 2 threads; equal outputs, cosine 0.9999999999995).
//  - "torch": LibTorch's ops one by one, the default on the CPU and with LibTorch 1.x (which has
//    no fused call).
//  - "ms": ms's own float32 CPU kernels (cpu_kernels.h). They were 9 % faster on an Intel Xeon
//    while a second, pthread-based OpenBLAS was loaded beside LibTorch's and fought its threads
//    for the cores; with that fixed (scripts/setup.sh), LibTorch's ops were 15 % faster on MiniLM
//    (2-core AMD EPYC, 5,000 sentences, 2 threads: 19.3 s against 22.7 s, and 11 % at 1 thread).
// A traced forward (ms export) always records LibTorch's ops one by one, which every exporter
// and runtime knows.
#if TORCH_VERSION_MAJOR >= 2
constexpr bool kHaveFusedAttention = true;
#else
constexpr bool kHaveFusedAttention = false;
#endif

BertKernels kernels_from_environment() {
  const char* choice = std::getenv("MS_BERT_KERNELS");
  const std::string value = choice == nullptr ? "" : choice;
  if (value.empty()) return BertKernels::kDefault;
  if (value == "ms") return BertKernels::kMsCpu;
  if (value == "torch") return BertKernels::kTorchOps;
  if (value == "sdpa") {
    MS_CHECK(kHaveFusedAttention, ErrorCode::kUsage,
             "MS_BERT_KERNELS=sdpa needs LibTorch 2.0 or newer (this build has {}); unset it or "
             "use torch or ms",
             TORCH_VERSION);
    return BertKernels::kTorchFused;
  }
  throw Error(ErrorCode::kUsage,
              fmt::format("MS_BERT_KERNELS={} is not a kernel choice: use sdpa (LibTorch 2.x), "
                          "torch or ms, or unset it",
                          value));
}

struct DenseNorm : torch::nn::Module {
  // attention.output / output: dense -> dropout -> LayerNorm(x + residual)
  DenseNorm(int64_t in, int64_t out, double eps)
      : dense(register_module("dense", Linear(in, out))),
        norm(register_module("LayerNorm", LayerNorm(LayerNormOptions({out}).eps(eps)))) {}
  at::Tensor forward(const at::Tensor& x, const at::Tensor& residual, const Mask& mask) {
    return norm(at::dropout(dense(x), mask.hidden_dropout, mask.training) + residual);
  }
  Linear dense;
  LayerNorm norm;
};

struct SelfAttention : torch::nn::Module {
  SelfAttention(int64_t hidden, int64_t heads)
      : query(register_module("query", Linear(hidden, hidden))),
        key(register_module("key", Linear(hidden, hidden))),
        value(register_module("value", Linear(hidden, hidden))),
        heads_(heads),
        head_dim_(hidden / heads) {}

  at::Tensor forward(const at::Tensor& x, const Mask& mask) {
    const int64_t b = x.size(0), t = x.size(1), h = heads_ * head_dim_;
    if (mask.ms_cpu_kernels) {
      // [b, t, 3H] straight from the GEMM; the kernel reads Q, K, V in place.
      const auto [qkv_weight, qkv_bias] = fused_qkv();
      const at::Tensor qkv = at::linear(x, qkv_weight, qkv_bias).contiguous();
      at::Tensor out = at::empty({b, t, h}, x.options());
      const cpu::AttentionShape shape{b, t, heads_, head_dim_};
      const float* qkv_data = qkv.data_ptr<float>();
      const float* bias_data = mask.key_bias.data_ptr<float>();
      float* out_data = out.data_ptr<float>();
      at::parallel_for(0, b * heads_, 4, [&](int64_t begin, int64_t end) {
        cpu::attention(qkv_data, bias_data, mask.key_count.data(), out_data, shape, begin, end);
      });
      return out;
    }
    if (mask.traced) {
      // The tracer records tensor operations, not the C++ integers b and t: shapes here come
      // from the tensors, so the graph runs at any batch size and length. [b, heads, t, d]:
      auto heads_first = [&](const at::Tensor& y) {
        return y.unflatten(-1, {heads_, head_dim_}).transpose(1, 2);
      };
      const at::Tensor scores =
          at::matmul(heads_first(query(x)), heads_first(key(x)).transpose(-1, -2))
              .mul(1.0 / std::sqrt(static_cast<double>(head_dim_)))
              .add(mask.bias);
      const at::Tensor probs =
          at::dropout(at::softmax(scores, -1), mask.attention_dropout, mask.training);
      return at::matmul(probs, heads_first(value(x))).transpose(1, 2).flatten(2);
    }
#if TORCH_VERSION_MAJOR >= 2
    if (mask.sdpa) {
      const auto [q, k, v] = project_heads_first(x, mask);
      // The mask must be in the queries' dtype: under autocast the projections are float16 while
      // the hidden states (and so the mask) stay float32. Clamped to that dtype's lowest value,
      // as the mask is built: float32's lowest would become -inf, and a sequence with no attended
      // token would get NaN instead of the uniform weights the other paths give it.
      const at::Tensor bias =
          mask.bias.scalar_type() == q.scalar_type()
              ? mask.bias
              : mask.bias.to(q.scalar_type()).clamp_min(lowest_value(q.scalar_type()));
      const at::Tensor out = at::scaled_dot_product_attention(
          q, k, v, bias, mask.training ? mask.attention_dropout : 0.0, /*is_causal=*/false);
      return out.transpose(1, 2).reshape({b, t, h});
    }
#endif
    // LibTorch's ops one by one, on [b*heads, t, d] copies.
    const auto [q4, k4, v4] = project_heads_first(x, mask);
    const at::Tensor q = q4.reshape({b * heads_, t, head_dim_});
    const at::Tensor k = k4.reshape({b * heads_, t, head_dim_});
    const at::Tensor v = v4.reshape({b * heads_, t, head_dim_});
    // scores = mask + (q k^T) / sqrt(d), in one call.
    const at::Tensor bias = mask.bias.expand({b, heads_, t, t}).reshape({b * heads_, t, t});
    const at::Tensor scores = at::baddbmm(bias, q, k.transpose(1, 2), 1.0,
                                          1.0 / std::sqrt(static_cast<double>(head_dim_)));
    const at::Tensor probs =
        at::dropout(at::softmax(scores, -1), mask.attention_dropout, mask.training);
    return at::bmm(probs, v).view({b, heads_, t, head_dim_}).transpose(1, 2).reshape({b, t, h});
  }

  // Query, key and value as three [b, heads, t, d] views (no copies): from one GEMM on the fast
  // path, from the three Linear modules when gradients must reach them.
  std::array<at::Tensor, 3> project_heads_first(const at::Tensor& x, const Mask& mask) {
    const int64_t b = x.size(0), t = x.size(1);
    if (mask.fast) {
      const auto [qkv_weight, qkv_bias] = fused_qkv();
      // [b, t, 3, heads, d] -> [3, b, heads, t, d]
      const at::Tensor qkv = at::linear(x, qkv_weight, qkv_bias)
                                 .view({b, t, 3, heads_, head_dim_})
                                 .permute({2, 0, 3, 1, 4});
      return {qkv[0], qkv[1], qkv[2]};
    }
    auto heads_first = [&](const at::Tensor& y) {
      return y.view({b, t, heads_, head_dim_}).transpose(1, 2);
    };
    return {heads_first(query(x)), heads_first(key(x)), heads_first(value(x))};
  }

  // Query, key and value weights as one [3H, H] matrix (and [3H] bias). Derived from the three
  // Linear modules, and derived again when any of them changed since: an in-place update (an
  // optimizer step, a load) bumps a tensor's version, a move to another device or dtype gives it
  // new storage. Locked: concurrent inference workers share the module.
  std::pair<at::Tensor, at::Tensor> fused_qkv() {
    const std::array<const at::Tensor*, 6> sources = {&query->weight, &key->weight, &value->weight,
                                                      &query->bias,   &key->bias,   &value->bias};
    std::lock_guard<std::mutex> lock(fused_mutex_);
    bool current = fused_weight_.defined();
    for (std::size_t i = 0; i < sources.size() && current; ++i) {
      current =
          sources[i]->data_ptr() == fused_data_[i] && version(*sources[i]) == fused_version_[i];
    }
    if (!current) {
      c10::NoGradGuard no_grad;
      fused_weight_ = at::cat({query->weight, key->weight, value->weight}, 0).contiguous();
      fused_bias_ = at::cat({query->bias, key->bias, value->bias}, 0).contiguous();
      for (std::size_t i = 0; i < sources.size(); ++i) {
        fused_data_[i] = sources[i]->data_ptr();
        fused_version_[i] = version(*sources[i]);
      }
    }
    return {fused_weight_, fused_bias_};
  }

  // Inference tensors (parameters moved or made under c10::InferenceMode) keep no version counter:
  // for them only a new storage is seen. Writes that bypass autograd's version counter (through
  // .data(), or collectives writing into parameters) are not seen either; whoever does that
  // (a distributed broadcast) must do it before the first eval-mode forward.
  static int64_t version(const at::Tensor& t) { return t.is_inference() ? -1 : t._version(); }

  Linear query, key, value;
  int64_t heads_, head_dim_;
  std::mutex fused_mutex_;
  at::Tensor fused_weight_, fused_bias_;
  std::array<const void*, 6> fused_data_{};
  std::array<int64_t, 6> fused_version_{};
};

struct Attention : torch::nn::Module {
  explicit Attention(const BertConfig& c)
      : self(register_module(
            "self", std::make_shared<SelfAttention>(c.hidden_size, c.num_attention_heads))),
        output(register_module("output", std::make_shared<DenseNorm>(c.hidden_size, c.hidden_size,
                                                                     c.layer_norm_eps))) {}
  std::shared_ptr<SelfAttention> self;
  std::shared_ptr<DenseNorm> output;
};

struct Intermediate : torch::nn::Module {
  explicit Intermediate(const BertConfig& c)
      : dense(register_module("dense", Linear(c.hidden_size, c.intermediate_size))) {}
  Linear dense;
};

struct Layer : torch::nn::Module {
  explicit Layer(const BertConfig& c)
      : attention(register_module("attention", std::make_shared<Attention>(c))),
        intermediate(register_module("intermediate", std::make_shared<Intermediate>(c))),
        output(register_module(
            "output",
            std::make_shared<DenseNorm>(c.intermediate_size, c.hidden_size, c.layer_norm_eps))),
        act_(c.hidden_act) {}

  at::Tensor forward(const at::Tensor& x, const Mask& mask) {
    const at::Tensor a = attention->output->forward(attention->self->forward(x, mask), x, mask);
    at::Tensor h = intermediate->dense(a);
    if (act_ == "gelu" && mask.ms_cpu_kernels) {
      h = h.contiguous();
      float* data = h.data_ptr<float>();
      at::parallel_for(0, h.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
        cpu::gelu_erf_inplace(data + begin, end - begin);
      });
    } else {
      h = apply_hidden_act(act_, h);
    }
    return output->forward(h, a, mask);
  }

  std::shared_ptr<Attention> attention;
  std::shared_ptr<Intermediate> intermediate;
  std::shared_ptr<DenseNorm> output;
  std::string act_;
};

struct Embeddings : torch::nn::Module {
  explicit Embeddings(const BertConfig& c)
      : word_embeddings(register_module("word_embeddings", Embedding(c.vocab_size, c.hidden_size))),
        position_embeddings(register_module("position_embeddings",
                                            Embedding(c.max_position_embeddings, c.hidden_size))),
        token_type_embeddings(
            register_module("token_type_embeddings", Embedding(c.type_vocab_size, c.hidden_size))),
        norm(register_module("LayerNorm",
                             LayerNorm(LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)))) {}
  Embedding word_embeddings, position_embeddings, token_type_embeddings;
  LayerNorm norm;
};

struct Pooler : torch::nn::Module {
  explicit Pooler(const BertConfig& c)
      : dense(register_module("dense", Linear(c.hidden_size, c.hidden_size))) {}
  Linear dense;
};

struct Encoder : torch::nn::Module {
  explicit Encoder(const BertConfig& c) {
    layer = register_module("layer", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(std::make_shared<Layer>(c));
  }
  torch::nn::ModuleList layer;
};

// The encoder's parameter count (embeddings, layers, pooler, and an MLM head's vocab_size bias),
// in double so that absurd sizes cannot overflow.
double parameter_count(const BertConfig& c) {
  const double h = static_cast<double>(c.hidden_size);
  const double inter = static_cast<double>(c.intermediate_size);
  const double embeddings =
      static_cast<double>(c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * h + 2 * h;
  const double layer = 4 * (h * h + h) + 2 * h * inter + inter + h + 4 * h;
  return embeddings + static_cast<double>(c.num_hidden_layers) * layer + h * h + h +
         static_cast<double>(c.vocab_size);
}

}  // namespace

BertConfig BertConfig::from_json(const Json& j, const std::string& source,
                                 const std::string& type_if_unsaid) {
  MS_CHECK(j.is_object(), ErrorCode::kConfig, "{} is not a JSON object", source);
  BertConfig c;
  const auto& types = bert_family_types();
  if (!type_if_unsaid.empty() &&
      std::find(types.begin(), types.end(), normalize_model_type(type_if_unsaid)) != types.end())
    c.model_type = normalize_model_type(type_if_unsaid);
  if (auto it = j.find("model_type"); it != j.end() && !it->is_null()) {
    MS_CHECK(it->is_string(), ErrorCode::kConfig, "{}: key 'model_type' must be a string, got {}",
             source, it->dump());
    c.model_type = normalize_model_type(it->get<std::string>());
    const auto& family = bert_family_types();
    MS_CHECK(std::find(family.begin(), family.end(), c.model_type) != family.end(),
             ErrorCode::kConfig,
             "{}: model_type '{}' is not a BERT-family model (this folder's weights are read as "
             "one of: {})",
             source, c.model_type, join(family, ", "));
  }
  c.vocab_size = int_field(j, "vocab_size", c.vocab_size, source);
  c.hidden_size = int_field(j, "hidden_size", c.hidden_size, source);
  c.num_hidden_layers = int_field(j, "num_hidden_layers", c.num_hidden_layers, source);
  c.num_attention_heads = int_field(j, "num_attention_heads", c.num_attention_heads, source);
  c.intermediate_size = int_field(j, "intermediate_size", c.intermediate_size, source);
  c.max_position_embeddings =
      int_field(j, "max_position_embeddings", c.max_position_embeddings, source);
  c.type_vocab_size = int_field(j, "type_vocab_size", c.type_vocab_size, source);
  // transformers' RoBERTa-family configs default pad_token_id to 1 (BERT's to 0), and their
  // positions count from it: a config.json that leaves it out means 1 there.
  if (roberta_family(c.model_type)) c.pad_token_id = 1;
  if (auto it = j.find("pad_token_id"); it != j.end()) {
    MS_CHECK(it->is_number_integer() || (it->is_null() && !roberta_family(c.model_type)),
             ErrorCode::kConfig, "{}: pad_token_id must be a token id{}, got {}", source,
             roberta_family(c.model_type) ? " (" + c.model_type + " numbers positions from it)"
                                          : std::string(),
             it->dump());
    if (it->is_number_integer()) c.pad_token_id = it->get<int64_t>();
  }
  // A decoder attends only to earlier tokens (transformers' causal mask); ms runs every
  // BERT-family model as an encoder, so such a checkpoint would give other numbers silently.
  for (const char* key : {"is_decoder", "add_cross_attention"}) {
    if (auto it = j.find(key); it != j.end() && it->is_boolean() && it->get<bool>()) {
      throw Error(ErrorCode::kConfig,
                  fmt::format("{}: {} is true: BERT-family decoders (causal attention) are not "
                              "supported, only encoders",
                              source, key),
                  "for text generation use a GPT-2 model");
    }
  }
  MS_CHECK(c.pad_token_id >= 0 && c.pad_token_id < c.vocab_size, ErrorCode::kConfig,
           "{}: pad_token_id {} is not a token id (0 to vocab_size - 1 = {})", source,
           c.pad_token_id, c.vocab_size - 1);
  if (auto it = j.find("layer_norm_eps"); it != j.end() && !it->is_null()) {
    // A zero or negative epsilon makes LayerNorm divide by zero or take a negative root: NaN.
    MS_CHECK(it->is_number() && it->get<double>() > 0 && it->get<double>() < 1, ErrorCode::kConfig,
             "{}: key 'layer_norm_eps' must be a small positive number (e.g. 1e-12), got {}",
             source, it->dump());
    c.layer_norm_eps = it->get<double>();
  }
  c.hidden_dropout_prob =
      probability_field(j, "hidden_dropout_prob", source).value_or(c.hidden_dropout_prob);
  c.attention_probs_dropout_prob = probability_field(j, "attention_probs_dropout_prob", source)
                                       .value_or(c.attention_probs_dropout_prob);
  c.classifier_dropout = probability_field(j, "classifier_dropout", source);
  if (j.contains("hidden_act")) {
    MS_CHECK(j["hidden_act"].is_string(), ErrorCode::kConfig,
             "{}: key 'hidden_act' must be a string", source);
    c.hidden_act = j["hidden_act"].get<std::string>();
  }
  MS_CHECK(c.hidden_act == "gelu" || c.hidden_act == "relu" || c.hidden_act == "gelu_new" ||
               c.hidden_act == "gelu_pytorch_tanh",
           ErrorCode::kConfig,
           "{}: hidden_act '{}' is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)", source,
           c.hidden_act);
  MS_CHECK(c.hidden_size % c.num_attention_heads == 0, ErrorCode::kConfig,
           "{}: hidden_size {} is not a multiple of num_attention_heads {}", source, c.hidden_size,
           c.num_attention_heads);
  if (j.contains("position_embedding_type") && j["position_embedding_type"].is_string()) {
    const std::string p = j["position_embedding_type"].get<std::string>();
    MS_CHECK(p == "absolute", ErrorCode::kConfig,
             "{}: position_embedding_type '{}' is not supported (only absolute)", source, p);
  }
  c.roberta_positions = roberta_family(c.model_type);
  MS_CHECK(c.max_tokens() > 0, ErrorCode::kConfig,
           "{}: pad_token_id {} leaves no positions: {} numbers positions from pad_token_id + 1, "
           "and max_position_embeddings is {}",
           source, c.pad_token_id, c.model_type, c.max_position_embeddings);
  check_model_fits(parameter_count(c), source,
                   fmt::format("vocab_size {}, hidden_size {}, num_hidden_layers {}, "
                               "intermediate_size {}, max_position_embeddings {}",
                               c.vocab_size, c.hidden_size, c.num_hidden_layers,
                               c.intermediate_size, c.max_position_embeddings));
  return c;
}

Json bert_encoder_structure(const BertConfig& c, const std::string& prefix, bool pooler) {
  Json s = Json::object();
  s["family"] = "bert";
  s["encoder"] = prefix;
  s["hidden_size"] = c.hidden_size;
  s["num_hidden_layers"] = c.num_hidden_layers;
  s["num_attention_heads"] = c.num_attention_heads;
  s["max_position_embeddings"] = c.max_position_embeddings;
  s["layer_norm_eps"] = c.layer_norm_eps;
  s["hidden_act"] = c.hidden_act;
  s["roberta_positions"] = c.roberta_positions;
  s["pad_token_id"] = c.pad_token_id;
  s["type_vocab_size"] = c.type_vocab_size;
  s["pooler"] = pooler;
  return s;
}

const std::vector<std::string>& bert_family_types() {
  static const std::vector<std::string> types = {"bert",        "structbert", "roberta",
                                                 "xlm-roberta", "camembert",  "minilm"};
  return types;
}

BertConfig BertConfig::from_model_dir(const std::filesystem::path& dir,
                                      const std::string& type_if_unsaid) {
  const std::filesystem::path path = dir / "config.json";
  const auto json = read_json_file(path);
  MS_CHECK(json.has_value(), ErrorCode::kNotFound,
           "{} does not exist: a BERT-family model needs its config.json", path.string());
  return from_json(*json, path.string(), type_if_unsaid);
}

bool roberta_family(const std::string& model_type) {
  return model_type == "roberta" || model_type == "xlm-roberta" || model_type == "camembert";
}

at::Tensor apply_hidden_act(const std::string& act, const at::Tensor& x) {
  if (act == "gelu") return at::gelu(x);
  if (act == "relu") return at::relu(x);
  return at::gelu(x, "tanh");  // gelu_new, gelu_pytorch_tanh (from_json admits nothing else)
}

std::string find_encoder_prefix(const tensor::TensorMap& checkpoint, const std::string& source) {
  static const std::string kSuffix = "embeddings.word_embeddings.weight";
  for (const auto& [name, tensor] : checkpoint) {
    if (name.size() >= kSuffix.size() &&
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
      return name.substr(0, name.size() - kSuffix.size());
    }
  }
  fail(ErrorCode::kConfig,
       "{} has no '[prefix.]embeddings.word_embeddings.weight': not a BERT-family checkpoint",
       source);
}

bool checkpoint_has_pooler(const tensor::TensorMap* checkpoint, const std::string& source) {
  if (checkpoint == nullptr) return false;
  return checkpoint->count(find_encoder_prefix(*checkpoint, source) + "pooler.dense.weight") != 0;
}

bool is_encoder_key(const std::string& key) {
  const std::string top = key.substr(0, key.find('.'));
  return top == "embeddings" || top == "encoder" || top == "pooler";
}

// Parts holds the file-local modules above. GCC warns when a type with linkage holds file-local
// ones in a file that another includes (-Wsubobject-linkage), as a unity build's batch includes
// this one (MS_UNITY_BUILD); Parts is defined here only, so no other definition can differ.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#endif
struct BertEncoder::Parts {
  std::shared_ptr<Embeddings> embeddings;
  std::shared_ptr<Encoder> encoder;
  std::vector<std::shared_ptr<Layer>> layers;
};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

BertEncoder::BertEncoder(const BertConfig& config, bool with_pooler)
    : config_(config), parts_(std::make_unique<Parts>()), kernels_(kernels_from_environment()) {
  parts_->embeddings = register_module("embeddings", std::make_shared<Embeddings>(config));
  parts_->encoder = register_module("encoder", std::make_shared<Encoder>(config));
  for (const auto& m : *parts_->encoder->layer)
    parts_->layers.push_back(std::dynamic_pointer_cast<Layer>(m));
  if (with_pooler) pooler_ = register_module("pooler", std::make_shared<Pooler>(config));
}

BertEncoder::~BertEncoder() = default;

const at::Tensor& BertEncoder::word_embeddings() const {
  return parts_->embeddings->word_embeddings->weight;
}

at::Tensor BertEncoder::forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids,
                                const at::Tensor& attention_mask) {
  const BertConfig& c = config_;
  auto& emb = *parts_->embeddings;
  // The fused kernels index the mask as [batch, tokens]; a broadcastable [1, tokens] one, fine
  // for LibTorch's ops, would make them read past its end.
  MS_CHECK(input_ids.dim() == 2 && token_type_ids.sizes() == input_ids.sizes() &&
               attention_mask.sizes() == input_ids.sizes(),
           ErrorCode::kUsage,
           "BERT forward: input_ids, token_type_ids and attention_mask must all be [batch, tokens] "
           "(got {}, {} and {})",
           fmt::join(input_ids.sizes(), "x"), fmt::join(token_type_ids.sizes(), "x"),
           fmt::join(attention_mask.sizes(), "x"));
  const int64_t t = input_ids.size(1);
  MS_CHECK(t <= c.max_tokens(), ErrorCode::kUsage,
           "input of {} tokens is longer than the {} the model's {} positions take", t,
           c.max_tokens(), c.max_position_embeddings);
  at::Tensor positions;
  if (c.roberta_positions) {
    const at::Tensor not_pad = input_ids.ne(c.pad_token_id).to(at::kLong);
    positions = at::cumsum(not_pad, 1).mul_(not_pad).add_(c.pad_token_id);
  } else if (torch::jit::tracer::isTracing()) {
    // 0, 1, ..., t-1 without t, which the tracer would fix as a constant. ones_like without
    // options: given any, the tracer records their device too, and the graph would build the
    // positions on the CPU wherever it runs (input_ids is int64 already).
    positions = at::cumsum(at::ones_like(input_ids), 1).sub_(1);
  } else {
    positions = at::arange(t, input_ids.options().dtype(at::kLong)).unsqueeze(0);
  }
  Mask mask;
  mask.training = is_training();
  mask.traced = torch::jit::tracer::isTracing();
  mask.fast = !mask.training && !mask.traced && !c10::GradMode::is_enabled();
  mask.hidden_dropout = c.hidden_dropout_prob;
  mask.attention_dropout = c.attention_probs_dropout_prob;
  // A model with one token type (RoBERTa, XLM-R) takes a text pair's second segment as type 0,
  // as their tokenizers give it: type 1 indexed past the table (an internal error).
  at::Tensor x = emb.word_embeddings(input_ids) + emb.position_embeddings(positions) +
                 emb.token_type_embeddings(c.type_vocab_size == 1 ? at::zeros_like(token_type_ids)
                                                                  : token_type_ids);
  x = at::dropout(emb.norm(x), mask.hidden_dropout, mask.training);
  // Additive mask: 0 where attended, the lowest float where padded (as Hugging Face does). A
  // traced graph takes the hidden states' dtype from the tensor (type_as), not as a constant, so
  // that the archive runs in the dtype of its weights (ms export --dtype fp16).
  const at::Tensor key_bias =
      mask.traced ? (1.0 - attention_mask.type_as(x)).mul_(kTracedMaskValue)
                  : (1.0 - attention_mask.to(x.scalar_type())).mul_(lowest_value(x.scalar_type()));
  mask.bias = key_bias.unsqueeze(1).unsqueeze(1);
  mask.ms_cpu_kernels = mask.fast && kernels_ == BertKernels::kMsCpu && x.device().is_cpu() &&
                        x.scalar_type() == at::kFloat;
  mask.sdpa =
      kHaveFusedAttention && !mask.traced &&
      (kernels_ == BertKernels::kTorchFused || (kernels_ == BertKernels::kDefault && x.is_cuda()));
  if (mask.ms_cpu_kernels) {
    mask.key_bias = key_bias.contiguous();
    const at::Tensor attended = attention_mask.to(at::kLong).contiguous();
    const int64_t* m = attended.data_ptr<int64_t>();
    mask.key_count.assign(static_cast<size_t>(input_ids.size(0)), 0);
    for (int64_t i = 0; i < input_ids.size(0); ++i)
      for (int64_t j = 0; j < t; ++j)
        if (m[i * t + j] != 0) mask.key_count[i] = j + 1;
  }
  for (const auto& layer : parts_->layers) x = layer->forward(x, mask);
  return x;
}

at::Tensor BertEncoder::pool(const at::Tensor& hidden) {
  MS_CHECK(pooler_ != nullptr, ErrorCode::kConfig, "the checkpoint has no pooler weights");
  return at::tanh(static_cast<Pooler&>(*pooler_).dense(hidden.select(1, 0)));
}

}  // namespace ms::models

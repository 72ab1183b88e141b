#include "sentence_embedding.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/sqrt.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/zeros_like.h>
#include <fmt/format.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <map>
#include <utility>

#include "family_helpers.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/models/bert.h"
#include "ms/models/sentence_pooling.h"
#include "ms/tensor/weights.h"

namespace ms::models {
namespace {

constexpr std::string_view kStPrefix = "sentence_transformers.models.";
const std::vector<std::string> kModuleTypes = {
    "sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Dense", "sentence_transformers.models.Normalize"};

// The module a modules.json type names ("Transformer", "Pooling", "Dense", "Normalize"), or ""
// for another: sentence-transformers before 5.7 writes sentence_transformers.models.X, 5.7 and
// later the class's own module path.
std::string module_kind(const std::string& type) {
  static const std::map<std::string, std::string> kModulePaths = {
      {"sentence_transformers.base.modules.transformer.Transformer", "Transformer"},
      {"sentence_transformers.sentence_transformer.modules.pooling.Pooling", "Pooling"},
      {"sentence_transformers.base.modules.dense.Dense", "Dense"},
      {"sentence_transformers.base.modules.normalize.Normalize", "Normalize"}};
  if (type.rfind(kStPrefix, 0) == 0) {
    const std::string name = type.substr(kStPrefix.size());
    const bool known = std::any_of(kModuleTypes.begin(), kModuleTypes.end(),
                                   [&](const std::string& t) { return t == type; });
    return known ? name : "";
  }
  const auto it = kModulePaths.find(type);
  return it == kModulePaths.end() ? "" : it->second;
}

// sentence-transformers saves an activation as its class's full name (util.fullname).
const std::vector<std::string> kActivations = {
    "torch.nn.modules.linear.Identity", "torch.nn.modules.activation.Tanh",
    "torch.nn.modules.activation.ReLU", "torch.nn.modules.activation.Sigmoid",
    "torch.nn.modules.activation.GELU"};

// Present but unreadable (a folder, a link loop or to nowhere) is an error naming it, not absent:
// a skipped tokenizer.json or modules.json changes the ids or the pooling without a word.
bool is_file(const std::filesystem::path& p) { return optional_regular_file(p); }

// A module folder must stay inside the model folder.
bool safe_relative(const std::string& rel) {
  const std::filesystem::path p(rel);
  if (p.is_absolute()) return false;
  return std::none_of(p.begin(), p.end(), [](const auto& part) { return part == ".."; });
}

Config read_module_config(const std::filesystem::path& path, const std::string& module) {
  if (!is_file(path)) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("{} does not exist: modules.json lists a {} module there",
                            path.string(), module),
                "copy the whole sentence-transformers model folder");
  }
  return Config::from_file(path);
}

// sentence-transformers' Pooling concatenates its modes in this order.
enum class Pool { kCls, kMax, kMean, kMeanSqrtLen, kWeightedMean, kLastToken };
enum class Activation { kIdentity, kTanh, kRelu, kSigmoid, kGelu };

std::vector<Pool> parse_pooling_name(const std::string& name, const std::string& where) {
  // sentence-transformers' pooling_mode names, plus mean_sqrt_len for short.
  static const std::map<std::string, Pool> kNames = {{"cls", Pool::kCls},
                                                     {"max", Pool::kMax},
                                                     {"mean", Pool::kMean},
                                                     {"mean_sqrt_len_tokens", Pool::kMeanSqrtLen},
                                                     {"mean_sqrt_len", Pool::kMeanSqrtLen},
                                                     {"weightedmean", Pool::kWeightedMean},
                                                     {"lasttoken", Pool::kLastToken}};
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  auto it = kNames.find(lower);
  if (it == kNames.end()) {
    std::vector<std::string> names;
    for (const auto& [n, mode] : kNames) names.push_back(n);
    std::string hint = did_you_mean(lower, names);
    throw Error(ErrorCode::kConfig, fmt::format("{}: unknown pooling mode '{}'", where, name),
                (hint.empty() ? std::string() : hint + "; ") + "known: " + join(names, ", "));
  }
  return {it->second};
}

std::vector<Pool> read_pooling(const std::filesystem::path& config_path, int64_t hidden_size) {
  const Config c = read_module_config(config_path, "Pooling");
  // sentence-transformers sizes its output from this (5.7 and later call it
  // embedding_dimension); a mismatch means another model's folder.
  for (const char* key : {"word_embedding_dimension", "embedding_dimension"}) {
    if (!c.has(key)) continue;
    const auto dim = c.get<int64_t>(key);
    MS_CHECK(dim == hidden_size, ErrorCode::kConfig,
             "{}: {} is {}, but the encoder's hidden_size is {}", c.source(), key, dim,
             hidden_size);
  }
  if (c.has("pooling_mode")) {
    const std::string where = c.source() + ": pooling_mode";
    if (c.at("pooling_mode").is_string())
      return parse_pooling_name(c.get<std::string>("pooling_mode"), where);
    // 5.7 and later: a list of modes, concatenated in its order.
    std::vector<Pool> pooling;
    for (const std::string& mode : c.get<std::vector<std::string>>("pooling_mode")) {
      for (Pool p : parse_pooling_name(mode, where)) pooling.push_back(p);
    }
    MS_CHECK(!pooling.empty(), ErrorCode::kConfig, "{} is an empty list", where);
    return pooling;
  }
  // The flags and their defaults as sentence-transformers' Pooling takes them (mean is on
  // unless the file turns it off), in its concatenation order, which Pool's follows.
  const std::vector<PoolingFlag>& flags = sentence_pooling_flags();
  std::vector<Pool> pooling;
  for (std::size_t i = 0; i < flags.size(); ++i) {
    const auto mode = static_cast<Pool>(i);
    if (c.get_or<bool>(flags[i].key, mode == Pool::kMean)) pooling.push_back(mode);
  }
  MS_CHECK(!pooling.empty(), ErrorCode::kConfig, "{}: no pooling_mode_* is true", c.source());
  return pooling;
}

// A Dense module folder as its config.json describes it; the weights come with the checkpoint.
struct DenseSpec {
  std::filesystem::path folder;
  int64_t in = 0, out = 0;
  bool bias = true;
  Activation activation = Activation::kTanh;
};

DenseSpec read_dense(const std::filesystem::path& folder, int64_t in_dim) {
  const Config c = read_module_config(folder / "config.json", "Dense");
  DenseSpec d;
  d.folder = folder;
  d.in = c.get<int64_t>("in_features");
  d.out = c.get<int64_t>("out_features");
  MS_CHECK(d.in == in_dim, ErrorCode::kConfig,
           "{}: in_features is {}, but the modules before it give {} values", c.source(), d.in,
           in_dim);
  MS_CHECK(d.out > 0, ErrorCode::kConfig, "{}: out_features must be positive, got {}", c.source(),
           d.out);
  check_model_fits(static_cast<double>(d.in) * static_cast<double>(d.out), c.source(),
                   fmt::format("in_features {}, out_features {}", d.in, d.out));
  d.bias = c.get_or<bool>("bias", true);
  // sentence-transformers 5.7's residual connection (x + linear(x), projected when the sizes
  // differ) is not built: refused rather than computed without it.
  MS_CHECK(!c.get_or<bool>("use_residual", false), ErrorCode::kConfig,
           "{}: use_residual (a Dense module with a residual connection) is not supported",
           c.source());
  const std::string act =
      c.get_or<std::string>("activation_function", "torch.nn.modules.activation.Tanh");
  // Full names as saved, or the short torch.nn.X spelling of the same classes.
  const std::string act_name = act.substr(act.rfind('.') + 1);
  auto known = std::find_if(kActivations.begin(), kActivations.end(), [&](const std::string& k) {
    return k == act || (act.rfind("torch.nn.", 0) == 0 && k.substr(k.rfind('.') + 1) == act_name);
  });
  if (known == kActivations.end()) {
    std::string hint = did_you_mean(act, kActivations);
    throw Error(
        ErrorCode::kConfig,
        fmt::format("{}: activation_function '{}' is not supported", c.source(), act),
        (hint.empty() ? std::string() : hint + "; ") + "supported: " + join(kActivations, ", "));
  }
  d.activation = static_cast<Activation>(known - kActivations.begin());
  return d;
}

// sentence-transformers' Dense: a Linear called "linear", then the activation.
struct Dense : torch::nn::Module {
  explicit Dense(const DenseSpec& spec)
      : linear(register_module(
            "linear",
            torch::nn::Linear(torch::nn::LinearOptions(spec.in, spec.out).bias(spec.bias)))),
        activation(spec.activation) {}
  at::Tensor forward(const at::Tensor& x) {
    const at::Tensor y = linear(x);
    switch (activation) {
      case Activation::kIdentity:
        return y;
      case Activation::kTanh:
        return at::tanh(y);
      case Activation::kRelu:
        return at::relu(y);
      case Activation::kSigmoid:
        return at::sigmoid(y);
      case Activation::kGelu:
        return at::gelu(y);
    }
    return y;
  }
  torch::nn::Linear linear;
  Activation activation;
};

// One step after the pooling: a Dense module (registered under its modules.json index) or a
// Normalize.
struct Step {
  std::string name;  // Dense: module name; Normalize: empty
  std::shared_ptr<Dense> dense;
  std::filesystem::path folder;
};

class SentenceEmbedding final : public BertEncoder, public Model {
 public:
  explicit SentenceEmbedding(const ModelSpec& spec)
      : BertEncoder(BertConfig::from_model_dir(spec.dir, spec.type),
                    checkpoint_has_pooler(spec.checkpoint, spec.dir.string())),
        task_(spec.task) {
    const std::filesystem::path modules_path = spec.dir / "modules.json";
    // Dense and Normalize, in file order, for after the pooling (and its override) is known:
    // (module folder as modules.json names it, empty for Normalize).
    std::vector<std::string> pending;
    // A folder without modules.json is L2-normalised, as ModelScope's sentence-embedding does.
    bool normalize = !is_file(modules_path);
    if (const auto modules = read_json_file(modules_path)) {
      const std::string source = modules_path.string();
      MS_CHECK(modules->is_array(), ErrorCode::kConfig, "{} must be a list of modules, got {}",
               source, Config::type_name(*modules));
      bool pooled = false;
      for (std::size_t i = 0; i < modules->size(); ++i) {
        const Json& m = (*modules)[i];
        MS_CHECK(m.is_object() && m.contains("type") && m["type"].is_string() &&
                     (!m.contains("path") || m["path"].is_string()),
                 ErrorCode::kConfig, "{}: module {} needs a string 'type' (and 'path')", source, i);
        const std::string type = m["type"].get<std::string>();
        const std::string rel = m.value("path", "");
        const std::string name = module_kind(type);
        const std::string where = fmt::format("{}: module {} ({})", source, i, type);
        MS_CHECK(safe_relative(rel), ErrorCode::kConfig, "{}: path '{}' leaves the model folder",
                 where, rel);
        if (name == "Transformer") {
          // ms reads the encoder (config.json, weights, vocab) from the model folder itself.
          MS_CHECK(rel.empty() || rel == ".", ErrorCode::kConfig,
                   "{}: an encoder in a subfolder ('{}') is not supported", where, rel);
        } else if (name == "Pooling") {
          MS_CHECK(!pooled, ErrorCode::kConfig, "{}: a second Pooling module", where);
          pooling_ = read_pooling(spec.dir / rel / "config.json", config().hidden_size);
          pooled = true;
        } else if (name == "Dense" || name == "Normalize") {
          // Both work on the sentence embedding, which only exists after the pooling.
          MS_CHECK(pooled, ErrorCode::kConfig, "{} comes before the Pooling module", where);
          MS_CHECK(name == "Normalize" || !rel.empty(), ErrorCode::kConfig,
                   "{}: a Dense module needs its folder in 'path'", where);
          pending.push_back(name == "Dense" ? rel : std::string());
        } else {
          std::string hint = did_you_mean(type, kModuleTypes);
          throw Error(
              ErrorCode::kConfig,
              fmt::format("{}: module {} has type '{}', which is not supported", source, i, type),
              (hint.empty() ? std::string() : hint + "; ") +
                  "supported: " + join(kModuleTypes, ", "));
        }
      }
    }
    if (spec.config.has("model.pooling")) {
      pooling_ = parse_pooling_name(spec.config.get<std::string>("model.pooling"),
                                    spec.config.source() + ": model.pooling");
    }
    int64_t dim = config().hidden_size * static_cast<int64_t>(pooling_.size());
    for (const std::string& rel : pending) {
      if (rel.empty()) {
        steps_.push_back(Step{});
        continue;
      }
      const DenseSpec dense = read_dense(spec.dir / rel, dim);
      // Parameters are named after the folder ("2_Dense.linear.weight"), so that an error about
      // them names the folder their file is in.
      Step step{rel, nullptr, spec.dir / rel};
      std::replace_if(
          step.name.begin(), step.name.end(), [](char c) { return c == '/' || c == '.'; }, '_');
      MS_CHECK(named_children().find(step.name) == nullptr, ErrorCode::kConfig,
               "{}: module folder '{}' clashes with another module's name", modules_path.string(),
               rel);
      step.dense = register_module(step.name, std::make_shared<Dense>(dense));
      steps_.push_back(std::move(step));
      dim = dense.out;
    }
    // model.normalize=true adds a final Normalize when none is listed; false drops them all.
    auto is_normalize = [](const Step& s) { return s.dense == nullptr; };
    const bool has_normalize = std::any_of(steps_.begin(), steps_.end(), is_normalize);
    normalize = spec.config.get_or<bool>("model.normalize", normalize || has_normalize);
    if (!normalize) {
      steps_.erase(std::remove_if(steps_.begin(), steps_.end(), is_normalize), steps_.end());
    } else if (!has_normalize) {
      steps_.push_back(Step{});
    }
  }

  const std::string& task() const override { return task_; }
  std::optional<int64_t> max_tokens() const override { return config().max_tokens(); }
  std::optional<int64_t> vocab_size() const override { return config().vocab_size; }
  torch::nn::Module& module() override { return *this; }

  TensorMap complete_checkpoint(const TensorMap& main) const override {
    TensorMap out = main;
    for (const Step& step : steps_) {
      if (!step.dense) continue;
      for (auto& [name, tensor] : tensor::load_model_weights(step.folder))
        out.emplace(step.name + "." + name, tensor);
    }
    return out;
  }

  Json structure() const override {
    static const char* const kPoolNames[] = {"cls",           "max",          "mean",
                                             "mean_sqrt_len", "weightedmean", "lasttoken"};
    static const char* const kActivationNames[] = {"identity", "tanh", "relu", "sigmoid", "gelu"};
    Json s = bert_encoder_structure(config(), "", has_pooler());
    s["head"] = "sentence-embedding";
    s["pooling"] = Json::array();
    for (Pool mode : pooling_) s["pooling"].push_back(kPoolNames[static_cast<int>(mode)]);
    // Dense: {"dense": its parameters' prefix, "activation"}; Normalize: {"normalize": true}.
    s["steps"] = Json::array();
    for (const Step& step : steps_) {
      Json j = Json::object();
      if (step.dense) {
        j["dense"] = step.name;
        j["activation"] = kActivationNames[static_cast<int>(step.dense->activation)];
      } else {
        j["normalize"] = true;
      }
      s["steps"].push_back(j);
    }
    return s;
  }

  TensorMap forward(const TensorMap& inputs) override {
    const at::Tensor& ids = required_input(inputs, "input_ids");
    const at::Tensor& mask = required_input(inputs, "attention_mask");
    const at::Tensor* types = optional_input(inputs, "token_type_ids");
    const at::Tensor hidden =
        BertEncoder::forward(ids, types != nullptr ? *types : at::zeros_like(ids), mask);
    return {{"last_hidden_state", hidden}, {"sentence_embedding", embed(hidden, mask)}};
  }

 protected:
  void begin_load(const TensorMap& checkpoint, const std::string& source, bool) override {
    checkpoint_prefix_ = find_encoder_prefix(checkpoint, source);
  }

  std::optional<std::string> checkpoint_name_to_parameter(const std::string& name) const override {
    if (name.compare(0, checkpoint_prefix_.size(), checkpoint_prefix_) == 0) {
      const std::string rest = name.substr(checkpoint_prefix_.size());
      if (is_encoder_key(rest)) return rest;
    }
    for (const Step& step : steps_) {
      if (step.dense && name.compare(0, step.name.size() + 1, step.name + ".") == 0) return name;
    }
    return std::nullopt;  // a head the encoder was saved with (cls., classifier., ...)
  }

  std::vector<std::string> ignorable_checkpoint_names() const override {
    return {"embeddings.position_ids"};
  }

 private:
  // Token states [batch, seq, hidden] and the attention mask [batch, seq] (right-padded) ->
  // float embeddings [batch, dim].
  at::Tensor embed(const at::Tensor& hidden, const at::Tensor& mask) {
    // While tracing (ms export), dtypes and sizes come from the tensors, so that the graph runs
    // at any shape and in the dtype of its weights.
    const bool traced = torch::jit::tracer::isTracing();
    const at::Tensor m =
        traced ? mask.unsqueeze(-1).type_as(hidden) : mask.unsqueeze(-1).to(hidden.scalar_type());
    std::vector<at::Tensor> parts;
    for (Pool mode : pooling_) {
      switch (mode) {
        case Pool::kCls:
          parts.push_back(hidden.select(1, 0));
          break;
        case Pool::kMax:
          // -1e9 is beyond half precision's range: a model cast to fp16 takes its lowest value.
          parts.push_back(std::get<0>(
              hidden
                  .masked_fill(m.eq(0), traced ? kTracedMaskValue
                                               : std::max(-1e9, lowest_value(hidden.scalar_type())))
                  .max(1)));
          break;
        case Pool::kMean:
          parts.push_back(at::sum(hidden * m, 1) / at::clamp_min(at::sum(m, 1), 1e-9));
          break;
        case Pool::kMeanSqrtLen:
          parts.push_back(at::sum(hidden * m, 1) / at::sqrt(at::clamp_min(at::sum(m, 1), 1e-9)));
          break;
        case Pool::kWeightedMean: {
          // Token i (from 1) weighs i: later tokens count more.
          const at::Tensor order =
              traced ? at::cumsum(at::ones_like(m), 1)
                     : at::arange(1, hidden.size(1) + 1, hidden.options()).view({1, -1, 1});
          const at::Tensor w = m * order;
          parts.push_back(at::sum(hidden * w, 1) / at::clamp_min(at::sum(w, 1), 1e-9));
          break;
        }
        case Pool::kLastToken: {
          // Batches are right-padded, so the last real token is at length - 1.
          const at::Tensor last = at::clamp_min(at::sum(mask, 1) - 1, 0);
          const at::Tensor index = last.view({-1, 1, 1}).expand_as(hidden.narrow(1, 0, 1));
          parts.push_back(hidden.gather(1, index).squeeze(1));
          break;
        }
      }
    }
    // Float embeddings from the untraced model; a traced one keeps its weights' dtype through the
    // Dense layers, and the exporter casts its output.
    at::Tensor x = parts.size() == 1 ? parts[0] : at::cat(parts, 1);
    if (!traced) x = x.to(at::kFloat);
    for (const Step& step : steps_) {
      if (!step.dense) {
        x = x / at::clamp_min(at::linalg_vector_norm(x, 2, {1}, true), 1e-12);
      } else if (traced) {
        x = step.dense->forward(x);
      } else {
        // A model cast to half precision (ms infer --dtype) keeps its Dense weights in that dtype.
        x = step.dense->forward(x.to(step.dense->linear->weight.scalar_type())).to(at::kFloat);
      }
    }
    return x;
  }

  std::string task_, checkpoint_prefix_;
  std::vector<Pool> pooling_ = {Pool::kMean};
  std::vector<Step> steps_;
};

}  // namespace

const std::vector<PoolingFlag>& sentence_pooling_flags() {
  // In Pool's order.
  static const std::vector<PoolingFlag> kFlags = {
      {"cls", "pooling_mode_cls_token"},
      {"max", "pooling_mode_max_tokens"},
      {"mean", "pooling_mode_mean_tokens"},
      {"mean_sqrt_len_tokens", "pooling_mode_mean_sqrt_len_tokens"},
      {"weightedmean", "pooling_mode_weightedmean_tokens"},
      {"lasttoken", "pooling_mode_lasttoken"}};
  return kFlags;
}

std::shared_ptr<Model> make_sentence_embedding(const ModelSpec& spec) {
  return std::make_shared<SentenceEmbedding>(spec);
}

}  // namespace ms::models

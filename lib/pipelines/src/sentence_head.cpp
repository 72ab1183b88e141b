#include "sentence_head.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/sqrt.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/tanh.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/tensor/weights.h"

namespace ms::pipelines {
namespace {

constexpr std::string_view kStPrefix = "sentence_transformers.models.";
const std::vector<std::string> kModuleTypes = {
    "sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Dense", "sentence_transformers.models.Normalize"};

// sentence-transformers saves an activation as its class's full name (util.fullname).
const std::vector<std::string> kActivations = {
    "torch.nn.modules.linear.Identity", "torch.nn.modules.activation.Tanh",
    "torch.nn.modules.activation.ReLU", "torch.nn.modules.activation.Sigmoid",
    "torch.nn.modules.activation.GELU"};

bool is_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

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

}  // namespace

SentenceHead::SentenceHead(const std::filesystem::path& dir, int64_t hidden_size,
                           const Config& config, const std::string& device) {
  const std::filesystem::path modules_path = dir / "modules.json";
  // Dense and Normalize, in file order, for after the pooling (and its override) is known.
  std::vector<std::pair<bool, std::filesystem::path>> pending;  // (normalize, Dense folder)
  // A folder without modules.json is L2-normalised, as ModelScope's sentence-embedding does.
  bool normalize = !is_file(modules_path);
  if (!normalize) {
    const std::string source = modules_path.string();
    Json modules;
    try {
      modules = Json::parse(read_file(modules_path));
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::kConfig, fmt::format("{} is not valid JSON: {}", source, e.what()));
    }
    MS_CHECK(modules.is_array(), ErrorCode::kConfig, "{} must be a list of modules, got {}", source,
             Config::type_name(modules));
    bool pooled = false;
    for (std::size_t i = 0; i < modules.size(); ++i) {
      const Json& m = modules[i];
      MS_CHECK(m.is_object() && m.contains("type") && m["type"].is_string() &&
                   (!m.contains("path") || m["path"].is_string()),
               ErrorCode::kConfig, "{}: module {} needs a string 'type' (and 'path')", source, i);
      const std::string type = m["type"].get<std::string>();
      const std::string rel = m.value("path", "");
      const std::string name = type.rfind(kStPrefix, 0) == 0 ? type.substr(kStPrefix.size()) : "";
      const std::string where = fmt::format("{}: module {} ({})", source, i, type);
      MS_CHECK(safe_relative(rel), ErrorCode::kConfig, "{}: path '{}' leaves the model folder",
               where, rel);
      if (name == "Transformer") {
        // ms reads the encoder (config.json, weights, vocab) from the model folder itself.
        MS_CHECK(rel.empty() || rel == ".", ErrorCode::kConfig,
                 "{}: an encoder in a subfolder ('{}') is not supported", where, rel);
      } else if (name == "Pooling") {
        MS_CHECK(!pooled, ErrorCode::kConfig, "{}: a second Pooling module", where);
        read_pooling(dir / rel / "config.json");
        pooled = true;
      } else if (name == "Dense" || name == "Normalize") {
        // Both work on the sentence embedding, which only exists after the pooling.
        MS_CHECK(pooled, ErrorCode::kConfig, "{} comes before the Pooling module", where);
        pending.emplace_back(name == "Normalize", dir / rel);
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
  if (config.has("model.pooling")) {
    pooling_ = parse_pooling_name(config.get<std::string>("model.pooling"),
                                  config.source() + ": model.pooling");
  }
  int64_t dim = hidden_size * static_cast<int64_t>(pooling_.size());
  for (const auto& [is_normalize, folder] : pending) {
    if (is_normalize) {
      steps_.push_back(Step{true, {}, {}, Activation::kIdentity});
    } else {
      steps_.push_back(read_dense(folder, dim, device));
      dim = steps_.back().weight.size(0);
    }
  }
  // model.normalize=true adds a final Normalize when none is listed; false drops them all.
  const bool has_normalize =
      std::any_of(steps_.begin(), steps_.end(), [](const Step& s) { return s.normalize; });
  normalize = config.get_or<bool>("model.normalize", normalize || has_normalize);
  if (!normalize) {
    steps_.erase(
        std::remove_if(steps_.begin(), steps_.end(), [](const Step& s) { return s.normalize; }),
        steps_.end());
  } else if (!has_normalize) {
    steps_.push_back(Step{true, {}, {}, Activation::kIdentity});
  }
}

std::vector<SentenceHead::Pool> SentenceHead::parse_pooling_name(const std::string& name,
                                                                 const std::string& where) {
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

void SentenceHead::read_pooling(const std::filesystem::path& config_path) {
  const Config c = read_module_config(config_path, "Pooling");
  if (c.has("pooling_mode")) {
    pooling_ =
        parse_pooling_name(c.get<std::string>("pooling_mode"), c.source() + ": pooling_mode");
    return;
  }
  // The flags and their defaults as sentence-transformers' Pooling takes them (mean is on
  // unless the file turns it off), in its concatenation order.
  static const std::pair<const char*, Pool> kFlags[] = {
      {"pooling_mode_cls_token", Pool::kCls},
      {"pooling_mode_max_tokens", Pool::kMax},
      {"pooling_mode_mean_tokens", Pool::kMean},
      {"pooling_mode_mean_sqrt_len_tokens", Pool::kMeanSqrtLen},
      {"pooling_mode_weightedmean_tokens", Pool::kWeightedMean},
      {"pooling_mode_lasttoken", Pool::kLastToken}};
  pooling_.clear();
  for (const auto& [key, mode] : kFlags) {
    if (c.get_or<bool>(key, mode == Pool::kMean)) pooling_.push_back(mode);
  }
  MS_CHECK(!pooling_.empty(), ErrorCode::kConfig, "{}: no pooling_mode_* is true", c.source());
}

SentenceHead::Step SentenceHead::read_dense(const std::filesystem::path& folder, int64_t in_dim,
                                            const std::string& device) const {
  const Config c = read_module_config(folder / "config.json", "Dense");
  const auto in = c.get<int64_t>("in_features"), out = c.get<int64_t>("out_features");
  MS_CHECK(in == in_dim, ErrorCode::kConfig,
           "{}: in_features is {}, but the modules before it give {} values", c.source(), in,
           in_dim);
  MS_CHECK(out > 0, ErrorCode::kConfig, "{}: out_features must be positive, got {}", c.source(),
           out);
  Step step;
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
  step.activation = static_cast<Activation>(known - kActivations.begin());

  // Fresh float tensors filled through copy_weights, which names missing, unexpected and
  // mis-shaped keys.
  std::map<std::string, at::Tensor> params;
  params["linear.weight"] = at::empty({out, in}, at::kFloat);
  if (c.get_or<bool>("bias", true)) params["linear.bias"] = at::empty({out}, at::kFloat);
  tensor::copy_weights(tensor::load_model_weights(folder), params, {}, folder.string());
  step.weight = params["linear.weight"].to(c10::Device(device));
  if (params.count("linear.bias")) step.bias = params["linear.bias"].to(c10::Device(device));
  return step;
}

at::Tensor SentenceHead::forward(const at::Tensor& hidden, const at::Tensor& mask) const {
  const at::Tensor m = mask.unsqueeze(-1).to(hidden.scalar_type());
  std::vector<at::Tensor> parts;
  for (Pool mode : pooling_) {
    switch (mode) {
      case Pool::kCls:
        parts.push_back(hidden.select(1, 0));
        break;
      case Pool::kMax:
        parts.push_back(std::get<0>(hidden.masked_fill(m.eq(0), -1e9).max(1)));
        break;
      case Pool::kMean:
        parts.push_back(at::sum(hidden * m, 1) / at::clamp_min(at::sum(m, 1), 1e-9));
        break;
      case Pool::kMeanSqrtLen:
        parts.push_back(at::sum(hidden * m, 1) / at::sqrt(at::clamp_min(at::sum(m, 1), 1e-9)));
        break;
      case Pool::kWeightedMean: {
        // Token i (from 1) weighs i: later tokens count more.
        const at::Tensor w =
            m * at::arange(1, hidden.size(1) + 1, hidden.options()).view({1, -1, 1});
        parts.push_back(at::sum(hidden * w, 1) / at::clamp_min(at::sum(w, 1), 1e-9));
        break;
      }
      case Pool::kLastToken: {
        // Batches are right-padded, so the last real token is at length - 1.
        const at::Tensor last = at::clamp_min(at::sum(mask, 1) - 1, 0);
        const at::Tensor index = last.view({-1, 1, 1}).expand({hidden.size(0), 1, hidden.size(2)});
        parts.push_back(hidden.gather(1, index).squeeze(1));
        break;
      }
    }
  }
  at::Tensor x = (parts.size() == 1 ? parts[0] : at::cat(parts, 1)).to(at::kFloat);
  for (const Step& step : steps_) {
    if (step.normalize) {
      x = x / at::clamp_min(at::linalg_vector_norm(x, 2, {1}, true), 1e-12);
      continue;
    }
    x = at::linear(x, step.weight, step.bias);
    switch (step.activation) {
      case Activation::kIdentity:
        break;
      case Activation::kTanh:
        x = at::tanh(x);
        break;
      case Activation::kRelu:
        x = at::relu(x);
        break;
      case Activation::kSigmoid:
        x = at::sigmoid(x);
        break;
      case Activation::kGelu:
        x = at::gelu(x);
        break;
    }
  }
  return x;
}

}  // namespace ms::pipelines

// Text pipelines over the BERT-family encoder: tokenise -> pad -> forward -> pool/head -> JSON.
#include <ATen/TensorOperators.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/sum.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/models/bert.h"
#include "ms/pipelines/registry.h"
#include "ms/tensor/weights.h"
#include "ms/text/bert_tokenizer.h"

namespace ms::pipelines {
namespace {

const std::vector<std::string>& bert_family_types() {
  static const std::vector<std::string> types = {"bert", "structbert", "roberta", "xlm-roberta", "camembert",
                                                 "minilm"};
  return types;
}

std::optional<Json> read_json(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  try {
    return Json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kConfig, fmt::format("{} is not valid JSON: {}", path.string(), e.what()));
  }
}

// A float as the shortest decimal that reads back as the same float (not as a 17-digit double).
Json short_float(float value) {
  char buffer[32];
  const auto end = fmt::format_to_n(buffer, sizeof(buffer) - 1, "{}", value).out;
  *end = '\0';
  return Json(std::strtod(buffer, nullptr));
}

// Batches of encodings as int64 tensors, padded to the longest.
struct TextBatch {
  at::Tensor ids, type_ids, mask;
};

TextBatch collate(const std::vector<text::Encoding>& encs, int64_t pad_id, const std::string& device) {
  std::size_t longest = 0;
  for (const auto& e : encs) longest = std::max(longest, e.ids.size());
  const auto b = static_cast<int64_t>(encs.size()), t = static_cast<int64_t>(longest);
  std::vector<int64_t> ids(static_cast<std::size_t>(b * t), pad_id), types(ids.size(), 0), mask(ids.size(), 0);
  for (std::size_t i = 0; i < encs.size(); ++i) {
    std::copy(encs[i].ids.begin(), encs[i].ids.end(), ids.begin() + static_cast<long>(i * longest));
    std::copy(encs[i].type_ids.begin(), encs[i].type_ids.end(), types.begin() + static_cast<long>(i * longest));
    std::fill_n(mask.begin() + static_cast<long>(i * longest), encs[i].ids.size(), 1);
  }
  auto make = [&](std::vector<int64_t>& v) {
    return at::from_blob(v.data(), {b, t}, at::TensorOptions().dtype(at::kLong)).to(c10::Device(device));
  };
  // from_blob does not own: .to() on the CPU returns the same tensor, so clone there.
  TextBatch out{make(ids), make(types), make(mask)};
  if (device == "cpu") {
    out.ids = out.ids.clone();
    out.type_ids = out.type_ids.clone();
    out.mask = out.mask.clone();
  }
  return out;
}

// The tokenizer + encoder shared by every BERT-family text pipeline.
class BertTextPipeline : public infer::Pipeline {
 public:
  BertTextPipeline(const infer::ModelInfo& model, const std::string& device, std::string task)
      : task_(std::move(task)), device_(device), dir_(model.dir) {
    const std::filesystem::path config_path = model.dir / "config.json";
    const auto hf = read_json(config_path);
    MS_CHECK(hf.has_value(), ErrorCode::kNotFound, "{} does not exist: a BERT-family model needs its config.json",
             config_path.string());
    config_ = models::BertConfig::from_json(*hf, config_path.string());
    std::string type = model.model_type.empty() ? config_.model_type : model.model_type;
    std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
    std::replace(type.begin(), type.end(), '_', '-');
    const auto& known = bert_family_types();
    if (std::find(known.begin(), known.end(), type) == known.end()) {
      std::string hint = did_you_mean(type, known);
      throw Error(ErrorCode::kUsage,
                  fmt::format("model type '{}' ({}) is not supported by the {} pipeline", type,
                              model.config.source(), task_),
                  (hint.empty() ? std::string() : hint + "; ") + "supported: " + join(known, ", "));
    }
    tokenizer_ = std::make_unique<text::BertTokenizer>(text::BertTokenizer::from_dir(model.dir));
    std::size_t max_len = std::min<std::size_t>(tokenizer_->options().model_max_length,
                                                static_cast<std::size_t>(config_.max_position_embeddings));
    if (auto st = read_json(model.dir / "sentence_bert_config.json")) {
      if (st->contains("max_seq_length") && (*st)["max_seq_length"].is_number_unsigned()) {
        max_len = (*st)["max_seq_length"].get<std::size_t>();
      }
    }
    max_length_ = model.config.get_or<std::size_t>("preprocessor.max_length", max_len);
    MS_CHECK(max_length_ > 3, ErrorCode::kConfig, "{}: preprocessor.max_length {} is too small",
             model.config.source(), max_length_);
    encoder_ = std::make_unique<models::BertModel>(config_);
    weights_ = tensor::load_model_weights(model.dir);
    prefix_ = encoder_->load(weights_, model.dir.string());
  }

  const std::string& task() const override { return task_; }
  std::string device() const override { return device_; }
  std::size_t cost(const infer::PipelineInput& in) const override {
    return in.text.size() + (in.text_pair ? in.text_pair->size() : 0);
  }

 protected:
  // Turns the batch into encodings; items that fail (empty, bad UTF-8) get their error instead.
  std::vector<std::size_t> encode(const std::vector<const infer::PipelineInput*>& batch,
                                  std::vector<infer::PipelineResult>& results, std::vector<text::Encoding>& encs) {
    std::vector<std::size_t> ok;
    results.assign(batch.size(), {});
    for (std::size_t i = 0; i < batch.size(); ++i) {
      try {
        const infer::PipelineInput& in = *batch[i];
        std::string text = in.text;
        if (text.empty() && !in.path.empty()) text = read_file(in.path);
        MS_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, ErrorCode::kUsage,
                 "input text is empty");
        encs.push_back(tokenizer_->encode(text, in.text_pair ? std::optional<std::string_view>(*in.text_pair)
                                                             : std::nullopt,
                                          max_length_));
        ok.push_back(i);
      } catch (const Error& e) {
        results[i].error = e;
      }
    }
    return ok;
  }

  // Encoder forward; c10 errors (e.g. out of memory) become ms errors naming the device.
  at::Tensor hidden(const TextBatch& b) {
    try {
      return encoder_->forward(b.ids, b.type_ids, b.mask);
    } catch (const c10::Error& e) {
      throw Error(ErrorCode::kInternal, fmt::format("forward pass on {} failed: {}", device_, e.what_without_backtrace()));
    }
  }

  std::string task_, device_;
  std::filesystem::path dir_;
  models::BertConfig config_;
  std::unique_ptr<text::BertTokenizer> tokenizer_;
  std::unique_ptr<models::BertModel> encoder_;
  tensor::WeightMap weights_;  // kept until heads have taken theirs
  std::string prefix_;
  std::size_t max_length_ = 512;
};

// sentence-embedding: pooled (mean / cls / max) and optionally L2-normalised encoder output,
// configured like sentence-transformers (1_Pooling/config.json, modules.json's Normalize).
class SentenceEmbeddingPipeline final : public BertTextPipeline {
 public:
  SentenceEmbeddingPipeline(const infer::ModelInfo& model, const std::string& device)
      : BertTextPipeline(model, device, "sentence-embedding") {
    if (auto modules = read_json(model.dir / "modules.json")) {
      normalize_ = false;
      for (const auto& m : *modules) {
        const std::string type = m.value("type", "");
        if (type.find("Normalize") != std::string::npos) normalize_ = true;
        if (type.find("Pooling") != std::string::npos) {
          if (auto pool = read_json(model.dir / m.value("path", "1_Pooling") / "config.json")) {
            if (pool->value("pooling_mode_cls_token", false)) pooling_ = "cls";
            if (pool->value("pooling_mode_max_tokens", false)) pooling_ = "max";
            if (pool->value("pooling_mode_mean_tokens", false)) pooling_ = "mean";
          }
        }
        MS_CHECK(type.find("Dense") == std::string::npos, ErrorCode::kUsage,
                 "{}: sentence-transformers Dense modules are not supported yet", model.dir.string());
      }
    }
    pooling_ = model.config.get_or<std::string>("model.pooling", pooling_);
    normalize_ = model.config.get_or<bool>("model.normalize", normalize_);
    MS_CHECK(pooling_ == "mean" || pooling_ == "cls" || pooling_ == "max", ErrorCode::kConfig,
             "{}: model.pooling '{}' must be mean, cls or max", model.config.source(), pooling_);
    weights_.clear();
    encoder_->to(device_);
  }

  std::vector<infer::PipelineResult> run(const std::vector<const infer::PipelineInput*>& batch) override {
    std::vector<infer::PipelineResult> results;
    std::vector<text::Encoding> encs;
    const std::vector<std::size_t> ok = encode(batch, results, encs);
    if (ok.empty()) return results;
    c10::InferenceMode guard;
    const TextBatch b = collate(encs, tokenizer_->pad_id(), device_);
    const at::Tensor h = hidden(b);
    at::Tensor pooled;
    if (pooling_ == "cls") {
      pooled = h.select(1, 0);
    } else if (pooling_ == "max") {
      const at::Tensor m = b.mask.unsqueeze(-1).to(h.scalar_type());
      pooled = std::get<0>(h.masked_fill(m.eq(0), -1e9).max(1));
    } else {
      const at::Tensor m = b.mask.unsqueeze(-1).to(h.scalar_type());
      pooled = at::sum(h * m, 1) / at::clamp_min(at::sum(m, 1), 1e-9);
    }
    if (normalize_) {
      pooled = pooled / at::clamp_min(at::linalg_vector_norm(pooled, 2, {1}, true), 1e-12);
    }
    const at::Tensor cpu = pooled.to(at::kFloat).cpu().contiguous();
    const int64_t dim = cpu.size(1);
    const float* data = cpu.data_ptr<float>();
    for (std::size_t k = 0; k < ok.size(); ++k) {
      Json vec = Json::array();
      for (int64_t d = 0; d < dim; ++d) vec.push_back(short_float(data[k * dim + d]));
      results[ok[k]].output = Json::object();
      results[ok[k]].output["text_embedding"] = std::move(vec);
    }
    return results;
  }

 private:
  std::string pooling_ = "mean";
  bool normalize_ = true;
};

}  // namespace

void register_text_pipelines(Registry<PipelineBuilder>& registry) {
  registry.add(
      "sentence-embedding",
      [](const infer::ModelInfo& m, const std::string& d) -> std::unique_ptr<infer::Pipeline> {
        return std::make_unique<SentenceEmbeddingPipeline>(m, d);
      },
      "BERT-family encoder, mean/cls/max pooling, L2 normalisation", "sentence-embedding");
}

}  // namespace ms::pipelines

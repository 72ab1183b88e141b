// Text pipelines over the BERT-family encoder: tokenise -> pad -> forward -> pool/head -> JSON.
#include <ATen/TensorOperators.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/topk.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <numeric>
#include <unordered_map>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/models/bert.h"
#include "ms/pipelines/registry.h"
#include "ms/tensor/weights.h"
#include "ms/text/bert_tokenizer.h"
#include "ms/text/unicode.h"
#include "sentence_head.h"

namespace ms::pipelines {
namespace {

const std::vector<std::string>& bert_family_types() {
  static const std::vector<std::string> types = {"bert",        "structbert", "roberta",
                                                 "xlm-roberta", "camembert",  "minilm"};
  return types;
}

std::optional<Json> read_json(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  try {
    return Json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{} is not valid JSON: {}", path.string(), e.what()));
  }
}

// `"key":[v,...]` with each float as the shortest decimal that reads back as the same float.
std::string float_array_member(const char* key, const float* data, int64_t n) {
  fmt::memory_buffer out;
  fmt::format_to(std::back_inserter(out), "\"{}\":[", key);
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0) out.push_back(',');
    // JSON has no NaN/Infinity; they would only come from a broken model.
    if (std::isfinite(data[i])) {
      fmt::format_to(std::back_inserter(out), "{}", data[i]);
    } else {
      fmt::format_to(std::back_inserter(out), "null");
    }
  }
  out.push_back(']');
  return fmt::to_string(out);
}

// Batches of encodings as int64 tensors, padded to the longest.
struct TextBatch {
  at::Tensor ids, type_ids, mask;
};

TextBatch collate(const std::vector<text::Encoding>& encs, int64_t pad_id,
                  const std::string& device) {
  std::size_t longest = 0;
  for (const auto& e : encs) longest = std::max(longest, e.ids.size());
  const auto b = static_cast<int64_t>(encs.size()), t = static_cast<int64_t>(longest);
  std::vector<int64_t> ids(static_cast<std::size_t>(b * t), pad_id), types(ids.size(), 0),
      mask(ids.size(), 0);
  for (std::size_t i = 0; i < encs.size(); ++i) {
    std::copy(encs[i].ids.begin(), encs[i].ids.end(), ids.begin() + static_cast<long>(i * longest));
    std::copy(encs[i].type_ids.begin(), encs[i].type_ids.end(),
              types.begin() + static_cast<long>(i * longest));
    std::fill_n(mask.begin() + static_cast<long>(i * longest), encs[i].ids.size(), 1);
  }
  auto make = [&](std::vector<int64_t>& v) {
    return at::from_blob(v.data(), {b, t}, at::TensorOptions().dtype(at::kLong))
        .to(c10::Device(device));
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
    MS_CHECK(hf.has_value(), ErrorCode::kNotFound,
             "{} does not exist: a BERT-family model needs its config.json", config_path.string());
    config_ = models::BertConfig::from_json(*hf, config_path.string());
    std::string type = model.model_type.empty() ? config_.model_type : model.model_type;
    std::transform(type.begin(), type.end(), type.begin(),
                   [](unsigned char c) { return std::tolower(c); });
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
    std::size_t max_len =
        std::min<std::size_t>(tokenizer_->options().model_max_length,
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
  // Forward passes share only read-only weights; the tokenizer is const; the cache is locked.
  bool concurrent() const override { return per_thread_intra_op_threads(); }
  void prepare_worker(int threads) override { set_thread_intra_op_threads(threads); }
  // The exact token count, so that batches sorted by cost carry almost no padding (sorting by
  // characters, as sentence-transformers does, pads about 15 % more). The encoding is kept for
  // run(), so each input is tokenised once.
  std::size_t cost(const infer::PipelineInput& in) const override {
    try {
      Cached c{in.text, in.text_pair, encode_one(in)};
      const std::size_t n = c.encoding.ids.size();
      std::lock_guard<std::mutex> lock(cache_mutex_);
      cache_[&in] = std::move(c);
      return n;
    } catch (const Error&) {
      return 0;  // run() reports it
    }
  }

 protected:
  // Turns the batch into encodings; items that fail (empty, bad UTF-8) get their error instead.
  std::vector<std::size_t> encode(const std::vector<const infer::PipelineInput*>& batch,
                                  std::vector<infer::PipelineResult>& results,
                                  std::vector<text::Encoding>& encs) {
    std::vector<std::size_t> ok;
    results.assign(batch.size(), {});
    for (std::size_t i = 0; i < batch.size(); ++i) {
      try {
        std::optional<text::Encoding> hit;
        {
          std::lock_guard<std::mutex> lock(cache_mutex_);
          auto cached = cache_.find(batch[i]);
          // The address alone could be a recycled one: the text must match too.
          if (cached != cache_.end() && cached->second.text == batch[i]->text &&
              cached->second.text_pair == batch[i]->text_pair) {
            hit = std::move(cached->second.encoding);
            cache_.erase(cached);
          }
        }
        encs.push_back(hit ? std::move(*hit) : encode_one(*batch[i]));
        ok.push_back(i);
      } catch (const Error& e) {
        results[i].error = e;
      }
    }
    return ok;
  }

  // The encoding of one input: its text, and its text_pair as the second segment.
  virtual text::Encoding encode_one(const infer::PipelineInput& in) const {
    return encode_text(input_text(in), in.text_pair ? std::optional<std::string_view>(*in.text_pair)
                                                    : std::nullopt);
  }

  static std::string input_text(const infer::PipelineInput& in) {
    return in.text.empty() && !in.path.empty() ? read_file(in.path) : in.text;
  }

  // `what` names the text in the error for a blank one ("text", "text_pair").
  text::Encoding encode_text(std::string_view text, std::optional<std::string_view> pair,
                             const char* what = "text") const {
    auto blank = [](std::string_view t) { return t.find_first_not_of(" \t\r\n") == t.npos; };
    MS_CHECK(!blank(text), ErrorCode::kUsage, "input {} is empty", what);
    MS_CHECK(!pair || !blank(*pair), ErrorCode::kUsage, "input text_pair is empty");
    return tokenizer_->encode(text, pair, max_length_);
  }

  // A head weight by name (outside the encoder's prefix), moved to the device.
  at::Tensor head_weight(const std::string& name, bool required = true) {
    auto it = weights_.find(name);
    if (it == weights_.end()) {
      MS_CHECK(!required, ErrorCode::kConfig, "weights in {} lack '{}', which the {} head needs",
               dir_.string(), name, task_);
      return {};
    }
    return it->second.to(c10::Device(device_)).to(at::kFloat).contiguous();
  }

  // config.json's id2label as a list, or LABEL_i for `n` labels.
  // Checks a [labels, hidden] classifier weight and returns the label names it implies.
  std::vector<std::string> classifier_labels(const at::Tensor& weight) const {
    MS_CHECK(weight.dim() == 2 && weight.size(1) == config_.hidden_size, ErrorCode::kConfig,
             "classifier weight in {} has shape {}, expected [labels, {}]", dir_.string(),
             fmt::join(weight.sizes(), "x"), config_.hidden_size);
    return labels(weight.size(0));
  }

  // After the heads took their weights: drop the loaded file's tensors, move the encoder.
  void finish_loading() {
    weights_.clear();
    encoder_->to(device_);
  }

  std::vector<std::string> labels(int64_t n) const {
    std::vector<std::string> out;
    const auto hf = read_json(dir_ / "config.json");
    for (int64_t i = 0; i < n; ++i) {
      std::string name = fmt::format("LABEL_{}", i);
      if (hf && hf->contains("id2label") && (*hf)["id2label"].is_object()) {
        const auto& m = (*hf)["id2label"];
        auto it = m.find(std::to_string(i));
        if (it != m.end() && it->is_string()) name = it->get<std::string>();
      }
      out.push_back(std::move(name));
    }
    return out;
  }

  // Encoder forward; c10 errors (e.g. out of memory) become ms errors naming the device.
  at::Tensor hidden(const TextBatch& b) {
    try {
      return encoder_->forward(b.ids, b.type_ids, b.mask);
    } catch (const c10::Error& e) {
      throw Error(ErrorCode::kInternal, fmt::format("forward pass on {} failed: {}", device_,
                                                    e.what_without_backtrace()));
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
  struct Cached {
    std::string text;
    std::optional<std::string> text_pair;
    text::Encoding encoding;
  };
  mutable std::unordered_map<const infer::PipelineInput*, Cached> cache_;
  mutable std::mutex cache_mutex_;
};

// sentence-embedding: the encoder, then the sentence-transformers modules that modules.json lists
// (Pooling, Dense, Normalize; see sentence_head.h).
class SentenceEmbeddingPipeline final : public BertTextPipeline {
 public:
  SentenceEmbeddingPipeline(const infer::ModelInfo& model, const std::string& device)
      : BertTextPipeline(model, device, "sentence-embedding"),
        head_(model.dir, config_.hidden_size, model.config, device) {
    finish_loading();
  }

  std::vector<infer::PipelineResult> run(
      const std::vector<const infer::PipelineInput*>& batch) override {
    std::vector<infer::PipelineResult> results;
    std::vector<text::Encoding> encs;
    const std::vector<std::size_t> ok = encode(batch, results, encs);
    if (ok.empty()) return results;
    // A text_pair is embedded on its own (as sentence-transformers does), in extra rows after
    // the batch; its cosine similarity to the text becomes the item's "scores" (ModelScope's
    // sentence-embedding output for sentences_to_compare).
    std::vector<std::int64_t> pair_row(ok.size(), -1);
    for (std::size_t k = 0; k < ok.size(); ++k) {
      const infer::PipelineInput& in = *batch[ok[k]];
      if (!in.text_pair) continue;
      try {
        encs.push_back(encode_text(*in.text_pair, std::nullopt, "text_pair"));
        pair_row[k] = static_cast<std::int64_t>(encs.size() - 1);
      } catch (const Error& e) {
        results[ok[k]].error = e;
      }
    }
    c10::InferenceMode guard;
    const TextBatch b = collate(encs, tokenizer_->pad_id(), device_);
    const at::Tensor cpu = head_.forward(hidden(b), b.mask).cpu().contiguous();
    const int64_t dim = cpu.size(1);
    const float* data = cpu.data_ptr<float>();
    for (std::size_t k = 0; k < ok.size(); ++k) {
      infer::PipelineResult& result = results[ok[k]];
      if (result.error) continue;  // its text_pair was unusable
      const float* row = data + k * dim;
      result.output = Json::object();
      if (pair_row[k] >= 0) {
        const float* other = data + pair_row[k] * dim;
        result.output["scores"] = Json::array({cosine(row, other, dim)});
      }
      result.raw_members = float_array_member("text_embedding", row, dim);
    }
    return results;
  }

 protected:
  // Only the text is tokenised up front (for batching by length); the pair is embedded apart.
  text::Encoding encode_one(const infer::PipelineInput& in) const override {
    return encode_text(input_text(in), std::nullopt);
  }

 private:
  static double cosine(const float* a, const float* b, int64_t dim) {
    double dot = 0, na = 0, nb = 0;
    for (int64_t i = 0; i < dim; ++i) {
      dot += static_cast<double>(a[i]) * b[i];
      na += static_cast<double>(a[i]) * a[i];
      nb += static_cast<double>(b[i]) * b[i];
    }
    return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0;
  }

  SentenceHead head_;
};

// text-classification / sentence-similarity: BERT pooler + classifier, or the RoBERTa head
// (dense + tanh + out_proj on the first token); softmax scores sorted high to low.
class SequenceClassificationPipeline final : public BertTextPipeline {
 public:
  SequenceClassificationPipeline(const infer::ModelInfo& model, const std::string& device,
                                 std::string task)
      : BertTextPipeline(model, device, std::move(task)) {
    if (weights_.count("classifier.out_proj.weight") != 0) {
      dense_w_ = head_weight("classifier.dense.weight");
      dense_b_ = head_weight("classifier.dense.bias");
      out_w_ = head_weight("classifier.out_proj.weight");
      out_b_ = head_weight("classifier.out_proj.bias");
    } else {
      MS_CHECK(encoder_->has_pooler(), ErrorCode::kConfig,
               "weights in {} have no pooler, which the {} head needs", dir_.string(), task_);
      out_w_ = head_weight("classifier.weight");
      out_b_ = head_weight("classifier.bias");
    }
    labels_ = classifier_labels(out_w_);
    finish_loading();
  }

  std::vector<infer::PipelineResult> run(
      const std::vector<const infer::PipelineInput*>& batch) override {
    std::vector<infer::PipelineResult> results;
    std::vector<text::Encoding> encs;
    if (task_ == "sentence-similarity" &&
        std::any_of(batch.begin(), batch.end(), [](const auto* in) { return !in->text_pair; })) {
      return run_pairs_only(batch);
    }
    const std::vector<std::size_t> ok = encode(batch, results, encs);
    if (ok.empty()) return results;
    c10::InferenceMode guard;
    const TextBatch b = collate(encs, tokenizer_->pad_id(), device_);
    const at::Tensor h = hidden(b);
    at::Tensor logits;
    if (dense_w_.defined()) {
      logits = at::linear(at::tanh(at::linear(h.select(1, 0), dense_w_, dense_b_)), out_w_, out_b_);
    } else {
      logits = at::linear(encoder_->pool(h), out_w_, out_b_);
    }
    const at::Tensor probs = at::softmax(logits.to(at::kFloat), -1).cpu().contiguous();
    const int64_t n = probs.size(1);
    const float* p = probs.data_ptr<float>();
    for (std::size_t k = 0; k < ok.size(); ++k) {
      std::vector<int64_t> order(static_cast<std::size_t>(n));
      std::iota(order.begin(), order.end(), 0);
      const float* row = p + k * n;
      std::stable_sort(order.begin(), order.end(),
                       [row](int64_t a, int64_t c) { return row[a] > row[c]; });
      Json scores = Json::array(), names = Json::array();
      for (int64_t i : order) {
        scores.push_back(static_cast<double>(row[i]));
        names.push_back(labels_[static_cast<std::size_t>(i)]);
      }
      results[ok[k]].output = {{"scores", scores}, {"labels", names}};
    }
    return results;
  }

 private:
  // Every item of a pair task without its pair fails alone; the rest still run.
  std::vector<infer::PipelineResult> run_pairs_only(
      const std::vector<const infer::PipelineInput*>& batch) {
    std::vector<infer::PipelineResult> out(batch.size());
    std::vector<const infer::PipelineInput*> good;
    std::vector<std::size_t> slots;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i]->text_pair) {
        good.push_back(batch[i]);
        slots.push_back(i);
      } else {
        out[i].error =
            Error(ErrorCode::kUsage, "sentence-similarity needs a sentence pair",
                  "give text and text_pair (or sentence1 and sentence2) in a .jsonl or .csv input");
      }
    }
    if (!good.empty()) {
      auto r = run(good);
      for (std::size_t k = 0; k < slots.size(); ++k) out[slots[k]] = std::move(r[k]);
    }
    return out;
  }

  at::Tensor dense_w_, dense_b_, out_w_, out_b_;
  std::vector<std::string> labels_;
};

// One labelled span over code points [start, end).
struct Span {
  std::string type;
  std::size_t start, end;
};

// BIO / BIES / BIOES tags over words -> spans. "O" is outside; a tag without "-TYPE" has type "".
std::vector<Span> decode_spans(const std::vector<std::string>& tags,
                               const std::vector<std::pair<std::size_t, std::size_t>>& words) {
  std::vector<Span> spans;
  std::optional<Span> cur;
  auto close = [&] {
    if (cur) spans.push_back(*cur);
    cur.reset();
  };
  for (std::size_t i = 0; i < tags.size(); ++i) {
    const std::string& tag = tags[i];
    if (tag == "O") {
      close();
      continue;
    }
    const auto dash = tag.find('-');
    const std::string prefix = dash == std::string::npos ? tag : tag.substr(0, dash);
    const std::string type = dash == std::string::npos ? "" : tag.substr(dash + 1);
    const bool continues = cur && cur->type == type;
    if (prefix == "B") {
      close();
      cur = Span{type, words[i].first, words[i].second};
    } else if (prefix == "I" || prefix == "M") {
      if (continues) {
        cur->end = words[i].second;
      } else {
        close();
        cur = Span{type, words[i].first, words[i].second};
      }
    } else if (prefix == "E" || prefix == "L") {
      if (continues) {
        cur->end = words[i].second;
      } else {
        close();
        cur = Span{type, words[i].first, words[i].second};
      }
      close();
    } else {  // S, U, or an unknown scheme: a span of its own
      close();
      spans.push_back(Span{type, words[i].first, words[i].second});
    }
  }
  close();
  return spans;
}

// token-classification / named-entity-recognition / word-segmentation: a label per token; a word
// takes its first token's label; tags are decoded into spans (entities or words).
class TokenClassificationPipeline final : public BertTextPipeline {
 public:
  TokenClassificationPipeline(const infer::ModelInfo& model, const std::string& device,
                              std::string task)
      : BertTextPipeline(model, device, std::move(task)) {
    out_w_ = head_weight("classifier.weight");
    out_b_ = head_weight("classifier.bias");
    labels_ = classifier_labels(out_w_);
    finish_loading();
  }

  std::vector<infer::PipelineResult> run(
      const std::vector<const infer::PipelineInput*>& batch) override {
    std::vector<infer::PipelineResult> results;
    std::vector<text::Encoding> encs;
    const std::vector<std::size_t> ok = encode(batch, results, encs);
    if (ok.empty()) return results;
    c10::InferenceMode guard;
    const TextBatch b = collate(encs, tokenizer_->pad_id(), device_);
    const at::Tensor probs =
        at::softmax(at::linear(hidden(b), out_w_, out_b_).to(at::kFloat), -1).cpu().contiguous();
    const int64_t t = probs.size(1), n = probs.size(2);
    const float* p = probs.data_ptr<float>();
    for (std::size_t k = 0; k < ok.size(); ++k) {
      const text::Encoding& e = encs[k];
      const std::u32string text = text::decode_utf8(text_of(*batch[ok[k]]));
      Json token_labels = Json::array(), token_scores = Json::array();
      std::vector<std::string> word_tags;
      std::vector<std::pair<std::size_t, std::size_t>> word_spans;
      std::int64_t last_word = -1;
      for (std::size_t i = 0; i < e.ids.size(); ++i) {
        if (e.word_ids[i] < 0) continue;
        const float* row = p + (k * t + i) * n;
        const int64_t best = std::max_element(row, row + n) - row;
        token_labels.push_back(labels_[static_cast<std::size_t>(best)]);
        token_scores.push_back(static_cast<double>(row[best]));
        if (e.word_ids[i] != last_word) {
          word_tags.push_back(labels_[static_cast<std::size_t>(best)]);
          word_spans.push_back(e.offsets[i]);
          last_word = e.word_ids[i];
        } else {
          word_spans.back().second = e.offsets[i].second;
        }
      }
      auto substr = [&text](std::size_t a, std::size_t z) {
        return text::encode_utf8(text.substr(a, z - a));
      };
      Json output = Json::array();
      if (task_ == "word-segmentation") {
        // Every word lands somewhere: words tagged O stand alone.
        std::vector<std::string> seg_tags = word_tags;
        for (auto& tag : seg_tags) {
          if (tag == "O") tag = "S";
        }
        for (const Span& s : decode_spans(seg_tags, word_spans))
          output.push_back(substr(s.start, s.end));
      } else {
        for (const Span& s : decode_spans(word_tags, word_spans)) {
          output.push_back({{"type", s.type},
                            {"start", s.start},
                            {"end", s.end},
                            {"span", substr(s.start, s.end)}});
        }
      }
      results[ok[k]].output = {
          {"output", output}, {"labels", token_labels}, {"scores", token_scores}};
    }
    return results;
  }

 private:
  static std::string text_of(const infer::PipelineInput& in) {
    return in.text.empty() && !in.path.empty() ? read_file(in.path) : in.text;
  }
  at::Tensor out_w_, out_b_;
  std::vector<std::string> labels_;
};

// fill-mask: the BERT masked-LM head (dense + act + LayerNorm + decoder tied to the word
// embeddings unless the checkpoint has its own) at each [MASK]; top-k tokens with scores.
class FillMaskPipeline final : public BertTextPipeline {
 public:
  FillMaskPipeline(const infer::ModelInfo& model, const std::string& device)
      : BertTextPipeline(model, device, "fill-mask") {
    MS_CHECK(tokenizer_->mask_id() >= 0, ErrorCode::kConfig,
             "the vocabulary in {} has no mask token '{}'", dir_.string(),
             tokenizer_->options().mask_token);
    dense_w_ = head_weight("cls.predictions.transform.dense.weight");
    dense_b_ = head_weight("cls.predictions.transform.dense.bias");
    norm_w_ = head_weight("cls.predictions.transform.LayerNorm.weight");
    norm_b_ = head_weight("cls.predictions.transform.LayerNorm.bias");
    bias_ = head_weight("cls.predictions.bias");
    decoder_ = head_weight("cls.predictions.decoder.weight", false);
    if (!decoder_.defined()) decoder_ = head_weight(prefix_ + "embeddings.word_embeddings.weight");
    top_k_ = model.config.get_or<int64_t>("pipeline.top_k", 5);
    MS_CHECK(top_k_ > 0, ErrorCode::kConfig, "{}: pipeline.top_k must be positive",
             model.config.source());
    finish_loading();
  }

  std::vector<infer::PipelineResult> run(
      const std::vector<const infer::PipelineInput*>& batch) override {
    std::vector<infer::PipelineResult> results;
    std::vector<text::Encoding> encs;
    std::vector<std::size_t> ok = encode(batch, results, encs);
    // An input without a mask has nothing to fill.
    std::vector<std::size_t> keep;
    std::vector<text::Encoding> kept;
    for (std::size_t k = 0; k < ok.size(); ++k) {
      if (std::find(encs[k].ids.begin(), encs[k].ids.end(), tokenizer_->mask_id()) ==
          encs[k].ids.end()) {
        results[ok[k]].error = Error(
            ErrorCode::kUsage,
            fmt::format("the input has no {} token to fill", tokenizer_->options().mask_token));
      } else {
        keep.push_back(ok[k]);
        kept.push_back(std::move(encs[k]));
      }
    }
    if (keep.empty()) return results;
    c10::InferenceMode guard;
    const TextBatch b = collate(kept, tokenizer_->pad_id(), device_);
    const at::Tensor h = hidden(b);
    const at::Tensor where = b.ids.eq(tokenizer_->mask_id()).nonzero().cpu();  // [m, 2]
    const at::Tensor flat = (where.select(1, 0) * h.size(1) + where.select(1, 1)).to(h.device());
    at::Tensor x = h.reshape({-1, h.size(2)}).index_select(0, flat);
    x = at::linear(x, dense_w_, dense_b_);
    x = config_.hidden_act == "gelu"
            ? at::gelu(x)
            : (config_.hidden_act == "relu" ? at::relu(x) : at::gelu(x, "tanh"));
    x = at::layer_norm(x, {config_.hidden_size}, norm_w_, norm_b_, config_.layer_norm_eps);
    const at::Tensor probs = at::softmax(at::linear(x, decoder_, bias_).to(at::kFloat), -1);
    const auto top = probs.topk(std::min<int64_t>(top_k_, probs.size(1)), -1);
    const at::Tensor values = std::get<0>(top).cpu().contiguous(),
                     indices = std::get<1>(top).cpu().contiguous();
    const int64_t kk = values.size(1);
    std::vector<Json> predictions(keep.size(), Json::array());
    std::vector<std::vector<std::int64_t>> filled(kept.size());
    for (std::size_t k = 0; k < kept.size(); ++k) filled[k] = kept[k].ids;
    const int64_t* rows = where.data_ptr<int64_t>();
    for (int64_t m = 0; m < where.size(0); ++m) {
      const auto item = static_cast<std::size_t>(rows[2 * m]);
      const auto pos = static_cast<std::size_t>(rows[2 * m + 1]);
      Json options = Json::array();
      for (int64_t j = 0; j < kk; ++j) {
        const int64_t id = indices.data_ptr<int64_t>()[m * kk + j];
        options.push_back({{"token", tokenizer_->id_to_token(id)},
                           {"score", values.data_ptr<float>()[m * kk + j]}});
      }
      filled[item][pos] = indices.data_ptr<int64_t>()[m * kk];
      predictions[item].push_back(std::move(options));
    }
    for (std::size_t k = 0; k < keep.size(); ++k) {
      results[keep[k]].output = {{"text", detokenize(filled[k])}, {"predictions", predictions[k]}};
    }
    return results;
  }

 private:
  // Tokens joined by spaces, "##" continuations glued on, special tokens dropped.
  std::string detokenize(const std::vector<std::int64_t>& ids) const {
    std::string out;
    const auto& o = tokenizer_->options();
    for (std::int64_t id : ids) {
      const std::string& t = tokenizer_->id_to_token(id);
      if (t == o.cls_token || t == o.sep_token || t == o.pad_token) continue;
      if (t.rfind(o.continuing_prefix, 0) == 0) {
        out += t.substr(o.continuing_prefix.size());
      } else {
        if (!out.empty()) out += ' ';
        out += t;
      }
    }
    return out;
  }
  at::Tensor dense_w_, dense_b_, norm_w_, norm_b_, bias_, decoder_;
  int64_t top_k_ = 5;
};

}  // namespace

void register_text_pipelines(Registry<PipelineBuilder>& registry) {
  using infer::ModelInfo;
  using Ptr = std::unique_ptr<infer::Pipeline>;
  registry.add(
      "sentence-embedding",
      [](const ModelInfo& m, const std::string& d) -> Ptr {
        return std::make_unique<SentenceEmbeddingPipeline>(m, d);
      },
      "BERT-family encoder + sentence-transformers Pooling, Dense, Normalize",
      "sentence-embedding");
  for (const char* task : {"text-classification", "sentence-similarity"}) {
    const std::string t = task;
    registry.add(
        t,
        [t](const ModelInfo& m, const std::string& d) -> Ptr {
          return std::make_unique<SequenceClassificationPipeline>(m, d, t);
        },
        "BERT/RoBERTa sequence classifier: softmax scores and labels", t);
  }
  for (const char* task :
       {"token-classification", "named-entity-recognition", "word-segmentation"}) {
    const std::string t = task;
    registry.add(
        t,
        [t](const ModelInfo& m, const std::string& d) -> Ptr {
          return std::make_unique<TokenClassificationPipeline>(m, d, t);
        },
        "BERT token classifier: per-token labels, BIO/BIES spans", t);
  }
  registry.add(
      "fill-mask",
      [](const ModelInfo& m, const std::string& d) -> Ptr {
        return std::make_unique<FillMaskPipeline>(m, d);
      },
      "BERT masked-LM head: top-k tokens per [MASK]", "fill-mask");
}

}  // namespace ms::pipelines

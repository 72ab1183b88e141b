// Text pipelines over the BERT-family task models: tokenise -> collate -> model -> JSON. The
// pipelines hold no weights: the model (ms/models/model.h) owns them.
#include <ATen/TensorOperators.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/topk.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <unordered_map>

#include "finite_outputs.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/models/model.h"
#include "ms/pipelines/cuda_graphs.h"
#include "ms/pipelines/registry.h"
#include "ms/tensor/collate.h"
#include "ms/text/bert_tokenizer.h"
#include "ms/text/unicode.h"

namespace ms::pipelines {
namespace {

// Encodings -> input_ids / token_type_ids / attention_mask on `device`, padded to the longest.
// `padded_rows` / `padded_tokens`: see tensor::collate_tokens.
models::TensorMap collate(const std::vector<text::Encoding>& encs, int64_t pad_id,
                          const std::string& device, int64_t padded_rows = 0,
                          int64_t padded_tokens = 0) {
  std::vector<tensor::TokenRow> rows;
  rows.reserve(encs.size());
  for (const text::Encoding& e : encs) rows.push_back({&e.ids, &e.type_ids});
  return tensor::collate_tokens(rows, pad_id, device, padded_rows, padded_tokens);
}

// The tokenizer + encoder shared by every BERT-family text pipeline.
class BertTextPipeline : public infer::Pipeline {
 public:
  /// `graph_outputs`: the outputs run_model's callers read, for a task whose outputs are one row
  /// per input (CUDA graphs pad the batch); empty for a task that runs eagerly only.
  BertTextPipeline(const infer::ModelInfo& model, const std::string& device, std::string task,
                   std::vector<std::string> graph_outputs = {})
      : task_(std::move(task)), device_(device), dir_(model.dir) {
    const std::filesystem::path config_path = model.dir / "config.json";
    const auto hf = read_json_file(config_path);
    MS_CHECK(hf.has_value(), ErrorCode::kNotFound,
             "{} does not exist: a BERT-family model needs its config.json", config_path.string());
    // configuration.json's model.type, else config.json's model_type, else BERT.
    std::string type = model.model_type;
    if (type.empty() && hf->contains("model_type") && (*hf)["model_type"].is_string())
      type = (*hf)["model_type"].get<std::string>();
    model_ = load_text_model(model, task_, type.empty() ? "bert" : type, device_);
    traced_ = models::normalize_model_type(type) == "torchscript";
    tokenizer_ = std::make_unique<text::BertTokenizer>(text::BertTokenizer::from_dir(model.dir));
    check_token_ids(tokenizer_->vocab_size(), model_->vocab_size(), model.dir / "vocab.txt");
    // The model's position embeddings bound the input: RoBERTa-style models take
    // max_position_embeddings less pad_token_id + 1 (config.json has been checked by the model).
    const int64_t positions =
        model_->max_tokens().value_or(hf->value("max_position_embeddings", 512));
    std::size_t max_len = std::min(tokenizer_->options().model_max_length,
                                   static_cast<std::size_t>(std::max<int64_t>(positions, 0)));
    if (auto st = read_json_file(model.dir / "sentence_bert_config.json")) {
      if (st->contains("max_seq_length") && (*st)["max_seq_length"].is_number_unsigned()) {
        max_len = (*st)["max_seq_length"].get<std::size_t>();
      }
      // sentence-transformers lower-cases the text itself before the tokenizer sees it.
      if (st->contains("do_lower_case") && (*st)["do_lower_case"].is_boolean())
        lower_case_input_ = (*st)["do_lower_case"].get<bool>();
    }
    if (const auto asked = infer::preprocessor_max_length(model.config, model.task)) {
      max_length_ = *asked;
    } else {
      max_length_ = max_len;
      MS_CHECK(max_length_ > 3, ErrorCode::kConfig,
               "{}: the model takes inputs of at most {} tokens (config.json's "
               "max_position_embeddings, tokenizer_config.json's model_max_length or "
               "sentence_bert_config.json's max_seq_length), too few for [CLS] text [SEP]",
               model.dir.string(), max_length_);
    }
    if (auto count = model_->num_labels()) labels_ = models::label_names(model.dir, *count);
    if (!graph_outputs.empty() && !traced_)
      graphs_ = std::make_unique<GraphedForward>(*model_, device_, std::move(graph_outputs));
  }

  const std::string& task() const override { return task_; }
  std::string device() const override { return device_; }
  // Forward passes share only read-only weights; the tokenizer is const; the cache is locked.
  bool concurrent() const override { return per_thread_intra_op_threads(); }
  void prepare_worker(int threads) override { prepare_worker_thread(threads, device_); }
  void set_dtype(const std::string& dtype) override {
    const at::ScalarType type = compute_dtype(dtype, device_, dtype_);
    MS_CHECK(!traced_, ErrorCode::kUsage,
             "--dtype {}: {} is a TorchScript archive, which computes in the dtype it was "
             "exported in",
             dtype, dir_.string());
    model_->cast(type);
    dtype_ = type;
  }
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
  void forget(const infer::PipelineInput& in) const override {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    cache_.erase(&in);
  }
  infer::RunPhases run_phases() const override { return phases_.totals(); }

 protected:
  // Turns the batch into encodings; items that fail (empty, bad UTF-8) get their error instead.
  std::vector<std::size_t> encode(const std::vector<const infer::PipelineInput*>& batch,
                                  std::vector<infer::PipelineResult>& results,
                                  std::vector<text::Encoding>& encs) {
    return phases_.time(infer::PhaseTotals::kInputs,
                        [&] { return encode_untimed(batch, results, encs); });
  }

  std::vector<std::size_t> encode_untimed(const std::vector<const infer::PipelineInput*>& batch,
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
    return in.text.empty() && !in.path.empty() ? read_regular_file(in.path) : in.text;
  }

  // `what` names the text in the error for a blank one ("text", "text_pair").
  text::Encoding encode_text(std::string_view text, std::optional<std::string_view> pair,
                             const char* what = "text") const {
    auto blank = [](std::string_view t) { return t.find_first_not_of(" \t\r\n") == t.npos; };
    MS_CHECK(!blank(text), ErrorCode::kUsage, "input {} is empty or only spaces", what);
    MS_CHECK(!pair || !blank(*pair), ErrorCode::kUsage, "input text_pair is empty or only spaces");
    if (lower_case_input_) {
      const std::string lowered = text::lower_utf8(text);
      const std::optional<std::string> lowered_pair =
          pair ? std::optional<std::string>(text::lower_utf8(*pair)) : std::nullopt;
      return tokenizer_->encode(
          lowered, lowered_pair ? std::optional<std::string_view>(*lowered_pair) : std::nullopt,
          max_length_);
    }
    return tokenizer_->encode(text, pair, max_length_);
  }

  models::TensorMap forward(const models::TensorMap& inputs) {
    return models::checked_forward(*model_, inputs, device_);
  }

  // Collates the encodings and runs the model: outputs of one row per encoding. Under CUDA
  // graphs the batch is padded to a graph's shape (graph_shape) and the outputs cut back.
  models::TensorMap run_model(const std::vector<text::Encoding>& encs) {
    return phases_.time(infer::PhaseTotals::kModel, [&] { return run_model_untimed(encs); });
  }

  // An output on the host, in float32: on a GPU this waits for the batch's kernels.
  at::Tensor to_host(const at::Tensor& output) {
    return phases_.time(infer::PhaseTotals::kDevice,
                        [&] { return output.to(at::kFloat).cpu().contiguous(); });
  }

  models::TensorMap run_model_untimed(const std::vector<text::Encoding>& encs) {
    if (!graphs_ || !graphs_->active())
      return forward(collate(encs, tokenizer_->pad_id(), device_));
    int64_t longest = 0;
    for (const text::Encoding& e : encs) longest = std::max<int64_t>(longest, e.ids.size());
    const auto rows = static_cast<int64_t>(encs.size());
    const auto [padded_rows, padded_tokens] =
        graph_shape(rows, longest, model_->max_tokens().value_or(longest));
    models::TensorMap out =
        graphs_->forward(collate(encs, tokenizer_->pad_id(), device_, padded_rows, padded_tokens));
    for (auto& [name, t] : out) t = t.narrow(0, 0, rows);
    return out;
  }

  std::string task_, device_;
  std::filesystem::path dir_;
  std::shared_ptr<models::Model> model_;
  bool traced_ = false;                // a TorchScript archive (ms export), not a model of ms's own
  at::ScalarType dtype_ = at::kFloat;  // what set_dtype() cast the weights to
  std::unique_ptr<GraphedForward> graphs_;  // tasks with one output row per input; see run_model
  std::unique_ptr<text::BertTokenizer> tokenizer_;
  std::size_t max_length_ = 512;
  bool lower_case_input_ = false;    // sentence_bert_config.json's do_lower_case
  std::vector<std::string> labels_;  // classification heads: config.json's id2label
  struct Cached {
    std::string text;
    std::optional<std::string> text_pair;
    text::Encoding encoding;
  };
  mutable std::unordered_map<const infer::PipelineInput*, Cached> cache_;
  mutable std::mutex cache_mutex_;
  infer::PhaseTotals phases_;  // where run() spends its time (ms infer -v)
};

// sentence-embedding: the encoder, then the sentence-transformers modules that modules.json lists
// (Pooling, Dense, Normalize; see sentence_head.h).
class SentenceEmbeddingPipeline final : public BertTextPipeline {
 public:
  SentenceEmbeddingPipeline(const infer::ModelInfo& model, const std::string& device)
      : BertTextPipeline(model, device, "sentence-embedding", {"sentence_embedding"}) {}

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
    const at::Tensor cpu = to_host(run_model(encs).at("sentence_embedding"));
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
      result.float_arrays.push_back({"text_embedding", std::vector<float>(row, row + dim)});
    }
    std::vector<std::size_t> result_of_row(ok);
    for (std::size_t k = 0; k < ok.size(); ++k) {
      if (pair_row[k] >= 0) result_of_row.push_back(ok[k]);
    }
    reject_nonfinite_rows(cpu, result_of_row, results, "sentence embedding");
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
};

// text-classification / sentence-similarity: BERT pooler + classifier, or the RoBERTa head
// (dense + tanh + out_proj on the first token); softmax scores sorted high to low.
class SequenceClassificationPipeline final : public BertTextPipeline {
 public:
  SequenceClassificationPipeline(const infer::ModelInfo& model, const std::string& device,
                                 std::string task)
      : BertTextPipeline(model, device, std::move(task), {"logits"}) {
    const auto hf = read_json_file(model.dir / "config.json");
    if (hf && hf->contains("problem_type") && (*hf)["problem_type"].is_string())
      problem_type_ = (*hf)["problem_type"].get<std::string>();
    // ModelScope's postprocess(topk=): the k best classes; every class unless set.
    if (model.config.has("pipeline.top_k")) {
      top_k_ = model.config.get_or<int64_t>("pipeline.top_k", 0);
      MS_CHECK(top_k_ > 0, ErrorCode::kConfig, "{}: pipeline.top_k must be positive, got {}",
               model.config.source(), top_k_);
    }
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
    const at::Tensor logits = run_model(encs).at("logits");
    // As transformers' text-classification pipeline scores them: a regression head's raw values,
    // a multi-label (or one-output) head's sigmoids, else the softmax (a softmax over one output
    // is always 1: the value was lost).
    const at::Tensor as_float = logits.to(at::kFloat);
    const at::Tensor probs =
        to_host(problem_type_ == "regression"
                    ? as_float
                    : (problem_type_ == "multi_label_classification" || as_float.size(-1) == 1
                           ? at::sigmoid(as_float)
                           : at::softmax(as_float, -1)));
    const int64_t n = probs.size(1);
    const float* p = probs.data_ptr<float>();
    for (std::size_t k = 0; k < ok.size(); ++k) {
      std::vector<int64_t> order(static_cast<std::size_t>(n));
      std::iota(order.begin(), order.end(), 0);
      const float* row = p + k * n;
      std::stable_sort(order.begin(), order.end(),
                       [row](int64_t a, int64_t c) { return row[a] > row[c]; });
      if (top_k_ > 0 && static_cast<std::size_t>(top_k_) < order.size())
        order.resize(static_cast<std::size_t>(top_k_));
      Json scores = Json::array(), names = Json::array();
      for (int64_t i : order) {
        scores.push_back(static_cast<double>(row[i]));
        names.push_back(labels_[static_cast<std::size_t>(i)]);
      }
      results[ok[k]].output = {{"scores", scores}, {"labels", names}};
    }
    reject_nonfinite_rows(logits, ok, results, "logits");
    return results;
  }

 private:
  std::string problem_type_;  // config.json's: regression, multi_label_classification, ...
  int64_t top_k_ = 0;         // pipeline.top_k; 0: every class

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
};

// One labelled span over code points [start, end).
struct Span {
  std::string type;
  std::size_t start, end;
};

// BIO / BIES / BIOES tags over words -> spans. "O" is outside; a scheme letter without "-TYPE"
// ("B", "E": word segmentation) has type "". A tag of no scheme ("PER", a label map without
// prefixes) is its own type, continuing a span of that type as I- would, as transformers groups
// such tags (rather than one span per word of type "").
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
    const bool scheme_letter =
        tag.size() == 1 && std::string_view("BIMELSU").find(tag[0]) != std::string_view::npos;
    std::string prefix, type;
    if (dash != std::string::npos) {
      prefix = tag.substr(0, dash);
      type = tag.substr(dash + 1);
    } else if (scheme_letter) {
      prefix = tag;
    } else {
      prefix = "I";
      type = tag;
    }
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
      : BertTextPipeline(model, device, std::move(task)) {}

  std::vector<infer::PipelineResult> run(
      const std::vector<const infer::PipelineInput*>& batch) override {
    std::vector<infer::PipelineResult> results;
    std::vector<text::Encoding> encs;
    const std::vector<std::size_t> ok = encode(batch, results, encs);
    if (ok.empty()) return results;
    c10::InferenceMode guard;
    const at::Tensor logits = run_model(encs).at("logits");
    const at::Tensor probs = to_host(at::softmax(logits.to(at::kFloat), -1));
    const int64_t t = probs.size(1), n = probs.size(2);
    const float* p = probs.data_ptr<float>();
    for (std::size_t k = 0; k < ok.size(); ++k) {
      const text::Encoding& e = encs[k];
      const std::u32string text = text::decode_utf8(input_text(*batch[ok[k]]));
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
    reject_nonfinite_rows(logits, ok, results, "logits");
    return results;
  }

 protected:
  // Offsets and spans point into one text: a second one (which BERT would read as segment B)
  // is an error for its input, not spans cut from the first text at the second's offsets.
  text::Encoding encode_one(const infer::PipelineInput& in) const override {
    if (in.text_pair) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("{} reads one text, and this input has a second (text_pair)", task_),
                  "give each text as an input of its own");
    }
    return encode_text(input_text(in), std::nullopt);
  }
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
    top_k_ = model.config.get_or<int64_t>("pipeline.top_k", 5);
    MS_CHECK(top_k_ > 0, ErrorCode::kConfig, "{}: pipeline.top_k must be positive",
             model.config.source());
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
    models::TensorMap inputs = collate(kept, tokenizer_->pad_id(), device_);
    // [masks, 2] rows of (item, position), read below through data_ptr: nonzero() returns a
    // column-major view, which would read (item, item) pairs once there is more than one mask.
    const at::Tensor where =
        inputs.at("input_ids").eq(tokenizer_->mask_id()).nonzero().cpu().contiguous();
    // Only the masked positions are scored: flat indices into [batch * tokens].
    inputs["logits_positions"] =
        where.select(1, 0) * inputs.at("input_ids").size(1) + where.select(1, 1);
    const at::Tensor logits =
        phases_.time(infer::PhaseTotals::kModel, [&] { return forward(inputs).at("logits"); });
    const at::Tensor probs = at::softmax(logits.to(at::kFloat), -1);
    const auto top = probs.topk(std::min<int64_t>(top_k_, probs.size(1)), -1);
    const at::Tensor values = phases_.time(infer::PhaseTotals::kDevice,
                                           [&] { return std::get<0>(top).cpu().contiguous(); });
    const at::Tensor indices = std::get<1>(top).cpu().contiguous();
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
    // One logits row per mask: each belongs to the item holding that mask.
    std::vector<std::size_t> result_of_row;
    for (int64_t m = 0; m < where.size(0); ++m)
      result_of_row.push_back(keep[static_cast<std::size_t>(rows[2 * m])]);
    reject_nonfinite_rows(logits, result_of_row, results, "logits");
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

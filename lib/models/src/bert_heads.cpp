// BERT-family task models: the encoder (ms/models/bert.h) under Hugging Face's prefix ("bert." or
// "roberta.") plus a task head with Hugging Face's names, each a torch::nn module that trains
// (dropout, losses) and infers (eval mode, fast paths) alike.
#include <ATen/TensorOperators.h>
#include <ATen/ops/binary_cross_entropy_with_logits.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/mse_loss.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <fmt/ranges.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <algorithm>

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/text.h"
#include "ms/models/bert.h"
#include "registration.h"
#include "sentence_embedding.h"

namespace ms::models {
namespace {

// Label count of a classification head: the one asked for (a new head), else the checkpoint's
// head, else config.json (num_labels, then id2label), else 2 (Hugging Face's default). A
// checkpoint head of another size then fails to load, or is replaced by a fresh one when the
// load allows fresh heads.
int64_t head_size(const ModelSpec& spec, const std::vector<std::string>& head_weights) {
  if (spec.num_labels) {
    MS_CHECK(*spec.num_labels > 0, ErrorCode::kConfig, "{}: the label count must be positive",
             spec.config.source());
    return *spec.num_labels;
  }
  std::optional<int64_t> configured;  // config.json's num_labels, then id2label's size
  if (const auto hf = read_json_file(spec.dir / "config.json")) {
    if (hf->contains("num_labels") && !(*hf)["num_labels"].is_null()) {
      const Json& n = (*hf)["num_labels"];
      MS_CHECK(n.is_number_integer() && n.get<int64_t>() > 0 && n.get<int64_t>() <= 1000000,
               ErrorCode::kConfig, "{}: num_labels must be a positive integer, got {}",
               (spec.dir / "config.json").string(), n.dump());
      configured = n.get<int64_t>();
    } else if (hf->contains("id2label") && (*hf)["id2label"].is_object() &&
               !(*hf)["id2label"].empty()) {
      configured = static_cast<int64_t>((*hf)["id2label"].size());
    }
  }
  if (spec.checkpoint != nullptr) {
    // The family first: another family's head (a small CNN's classifier.weight) was blamed on
    // config.json's class count.
    (void)find_encoder_prefix(*spec.checkpoint,
                              fmt::format("the checkpoint loaded into {}", spec.dir.string()));
    for (const std::string& name : head_weights) {
      auto it = spec.checkpoint->find(name);
      if (it == spec.checkpoint->end() || it->second.dim() != 2) continue;
      const int64_t rows = it->second.size(0);
      // As transformers refuses it (a size mismatch): the labels would name the wrong classes,
      // or classes the head does not have.
      MS_CHECK(!configured || *configured == rows, ErrorCode::kConfig,
               "{}: the checkpoint's {} has {} classes, but num_labels / id2label say {}",
               (spec.dir / "config.json").string(), name, rows, *configured);
      return rows;
    }
  }
  return configured.value_or(2);
}

// Hugging Face's losses for a classification head: cross entropy over the last dimension with
// labels of -100 ignored; float labels over several classes are multi-label targets (binary cross
// entropy on the logits); a sequence classifier with one output is a regression (mean squared
// error).
at::Tensor classification_loss(const at::Tensor& logits, const at::Tensor& labels,
                               bool one_output_regresses) {
  const int64_t classes = logits.size(-1);
  if (classes == 1 && one_output_regresses) {
    return at::mse_loss(logits.view({-1}).to(at::kFloat), labels.view({-1}).to(at::kFloat));
  }
  if (at::isFloatingType(labels.scalar_type()) && classes > 1) {
    MS_CHECK(labels.sizes() == logits.sizes(), ErrorCode::kUsage,
             "float labels are multi-label targets and need the logits' shape [{}], got [{}]",
             fmt::join(logits.sizes(), ", "), fmt::join(labels.sizes(), ", "));
    return at::binary_cross_entropy_with_logits(logits.to(at::kFloat), labels.to(at::kFloat));
  }
  MS_CHECK(labels.numel() * classes == logits.numel(), ErrorCode::kUsage,
           "labels of shape [{}] do not match logits of shape [{}]",
           fmt::join(labels.sizes(), ", "), fmt::join(logits.sizes(), ", "));
  return at::cross_entropy_loss(logits.reshape({-1, classes}).to(at::kFloat),
                                labels.reshape({-1}).to(at::kLong), {}, at::Reduction::Mean, -100);
}

// The encoder under Hugging Face's prefix plus a head. Checkpoints may carry the encoder under
// any prefix ("bert.", "roberta.", "model.bert.", or none); it is found when loading.
class BertTaskModel : public torch::nn::Module, public Model {
 public:
  BertTaskModel(const ModelSpec& spec, bool with_pooler)
      : task_(spec.task),
        encoder_name_(roberta_family(spec.type) ? "roberta" : "bert"),
        config_(BertConfig::from_model_dir(spec.dir, spec.type)) {
    encoder_ = register_module(encoder_name_, std::make_shared<BertEncoder>(config_, with_pooler));
  }

  const std::string& task() const override { return task_; }
  torch::nn::Module& module() override { return *this; }
  std::optional<int64_t> max_tokens() const override { return config_.max_tokens(); }
  std::optional<int64_t> vocab_size() const override { return config_.vocab_size; }

 protected:
  // Whether a checkpoint key outside the encoder is this head's.
  virtual bool head_key(const std::string& name) const = 0;

  void begin_load(const TensorMap& checkpoint, const std::string& source,
                  bool /*allow_fresh_head*/) override {
    checkpoint_prefix_ = find_encoder_prefix(checkpoint, source);
  }

  std::optional<std::string> checkpoint_name_to_parameter(const std::string& name) const override {
    if (starts_with(name, checkpoint_prefix_)) {
      const std::string rest = name.substr(checkpoint_prefix_.size());
      if (is_encoder_key(rest)) return encoder_name_ + "." + rest;
    }
    if (head_key(name)) return name;
    return std::nullopt;  // another head's (cls.seq_relationship., lm_head., ...)
  }

  std::vector<std::string> ignorable_checkpoint_names() const override {
    // position_ids is a non-persistent buffer that older checkpoints saved.
    return {encoder_name_ + ".embeddings.position_ids"};
  }

  // A fresh head may come with a fresh pooler: encoder checkpoints often lack one, and Hugging
  // Face initialises it then too.
  bool optional_parameter(const std::string& name, bool allow_fresh_head) const override {
    return (allow_fresh_head && (!starts_with(name, encoder_name_ + ".") ||
                                 starts_with(name, encoder_name_ + ".pooler."))) ||
           Model::optional_parameter(name, allow_fresh_head);
  }

  // Last hidden states for the standard text inputs (token_type_ids default to zeros).
  at::Tensor hidden(const TensorMap& inputs) {
    const at::Tensor& ids = required_input(inputs, "input_ids");
    const at::Tensor* types = optional_input(inputs, "token_type_ids");
    return encoder_->forward(ids, types ? *types : at::zeros_like(ids),
                             required_input(inputs, "attention_mask"));
  }

  Json encoder_structure(const char* head) const {
    Json s = bert_encoder_structure(config_, encoder_name_ + ".", encoder_->has_pooler());
    s["head"] = head;
    return s;
  }

  double classifier_dropout() const {
    return config_.classifier_dropout.value_or(config_.hidden_dropout_prob);
  }

  std::string task_, encoder_name_, checkpoint_prefix_;
  BertConfig config_;
  std::shared_ptr<BertEncoder> encoder_;
};

// RoBERTa's classification head: dense + tanh + out_proj on the first token.
struct RobertaClassificationHead : torch::nn::Module {
  RobertaClassificationHead(int64_t hidden, int64_t labels)
      : dense(register_module("dense", torch::nn::Linear(hidden, hidden))),
        out_proj(register_module("out_proj", torch::nn::Linear(hidden, labels))) {}
  at::Tensor forward(const at::Tensor& first_token, double dropout) {
    at::Tensor x = at::dropout(first_token, dropout, is_training());
    x = at::tanh(dense(x));
    return out_proj(at::dropout(x, dropout, is_training()));
  }
  torch::nn::Linear dense, out_proj;
};

// text-classification / sentence-similarity (BertForSequenceClassification and
// RobertaForSequenceClassification): logits [batch, labels].
class SequenceClassifier final : public BertTaskModel {
 public:
  // A checkpoint's head decides its style; a fresh head follows the model type.
  static bool roberta_head(const ModelSpec& spec) {
    if (spec.checkpoint != nullptr) {
      if (spec.checkpoint->count("classifier.out_proj.weight") != 0) return true;
      if (spec.checkpoint->count("classifier.weight") != 0) return false;
    }
    return roberta_family(spec.type);
  }

  explicit SequenceClassifier(const ModelSpec& spec)
      : BertTaskModel(
            spec, !roberta_head(spec) || checkpoint_has_pooler(spec.checkpoint, spec.dir.string())),
        roberta_(roberta_head(spec)) {
    const int64_t labels = head_size(spec, {"classifier.out_proj.weight", "classifier.weight"});
    num_labels_ = labels;
    if (roberta_) {
      roberta_classifier_ = register_module(
          "classifier", std::make_shared<RobertaClassificationHead>(config_.hidden_size, labels));
    } else {
      classifier_ = register_module("classifier", torch::nn::Linear(config_.hidden_size, labels));
    }
  }

  std::optional<int64_t> num_labels() const override { return num_labels_; }

  Json structure() const override {
    Json s = encoder_structure("sequence-classification");
    s["classifier"] = roberta_ ? "roberta" : "pooler";
    return s;
  }

  TensorMap forward(const TensorMap& inputs) override {
    const at::Tensor h = hidden(inputs);
    at::Tensor logits;
    if (roberta_) {
      logits = roberta_classifier_->forward(h.select(1, 0), classifier_dropout());
    } else {
      logits = classifier_(
          at::dropout(encoder_->pool(h), classifier_dropout(), torch::nn::Module::is_training()));
    }
    TensorMap out{{"logits", logits}};
    if (const at::Tensor* labels = optional_input(inputs, "labels"))
      out["loss"] = classification_loss(logits, *labels, /*one_output_regresses=*/true);
    return out;
  }

 protected:
  bool head_key(const std::string& name) const override { return starts_with(name, "classifier."); }

  void begin_load(const TensorMap& checkpoint, const std::string& source,
                  bool allow_fresh_head) override {
    BertTaskModel::begin_load(checkpoint, source, allow_fresh_head);
    // BERT's head reads the pooler; name that rather than a list of missing keys.
    MS_CHECK(roberta_ || allow_fresh_head ||
                 checkpoint.count(checkpoint_prefix_ + "pooler.dense.weight") != 0,
             ErrorCode::kConfig, "weights in {} have no pooler, which the {} head needs", source,
             task_);
  }

 private:
  bool roberta_;
  int64_t num_labels_ = 0;
  torch::nn::Linear classifier_{nullptr};
  std::shared_ptr<RobertaClassificationHead> roberta_classifier_;
};

// token-classification / named-entity-recognition / word-segmentation
// (BertForTokenClassification): logits [batch, tokens, labels].
class TokenClassifier final : public BertTaskModel {
 public:
  explicit TokenClassifier(const ModelSpec& spec)
      : BertTaskModel(spec, checkpoint_has_pooler(spec.checkpoint, spec.dir.string())),
        num_labels_(head_size(spec, {"classifier.weight"})) {
    classifier_ =
        register_module("classifier", torch::nn::Linear(config_.hidden_size, num_labels_));
  }

  std::optional<int64_t> num_labels() const override { return num_labels_; }

  Json structure() const override { return encoder_structure("token-classification"); }

  TensorMap forward(const TensorMap& inputs) override {
    const at::Tensor logits = classifier_(
        at::dropout(hidden(inputs), classifier_dropout(), torch::nn::Module::is_training()));
    TensorMap out{{"logits", logits}};
    if (const at::Tensor* labels = optional_input(inputs, "labels"))
      out["loss"] = classification_loss(logits, *labels, /*one_output_regresses=*/false);
    return out;
  }

 protected:
  bool head_key(const std::string& name) const override { return starts_with(name, "classifier."); }

 private:
  int64_t num_labels_;
  torch::nn::Linear classifier_{nullptr};
};

// BertOnlyMLMHead's transform: dense -> hidden_act -> LayerNorm.
struct LmTransform : torch::nn::Module {
  explicit LmTransform(const BertConfig& c)
      : dense(register_module("dense", torch::nn::Linear(c.hidden_size, c.hidden_size))),
        norm(register_module(
            "LayerNorm", torch::nn::LayerNorm(
                             torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)))) {
  }
  torch::nn::Linear dense;
  torch::nn::LayerNorm norm;
};

// cls.predictions: the transform, the decoder (tied to the word embeddings unless the checkpoint
// has a decoder of its own that differs from them) and the output bias.
struct LmPredictions : torch::nn::Module {
  LmPredictions(const BertConfig& c, bool own_decoder)
      : transform(register_module("transform", std::make_shared<LmTransform>(c))) {
    bias = register_parameter("bias", at::zeros({c.vocab_size}));
    if (own_decoder) {
      decoder = register_module(
          "decoder",
          torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
    }
  }
  std::shared_ptr<LmTransform> transform;
  torch::nn::Linear decoder{nullptr};
  at::Tensor bias;
};

struct LmHead : torch::nn::Module {
  LmHead(const BertConfig& c, bool own_decoder)
      : predictions(
            register_module("predictions", std::make_shared<LmPredictions>(c, own_decoder))) {}
  std::shared_ptr<LmPredictions> predictions;
};

// fill-mask (BertForMaskedLM): logits [batch, tokens, vocab], or [positions, vocab] for the
// flat token positions in the optional input "logits_positions" (what inference needs: scoring
// every token of every row against the whole vocabulary would cost batch x tokens x vocab).
class MaskedLanguageModel final : public BertTaskModel {
 public:
  static bool own_decoder(const ModelSpec& spec) {
    if (spec.checkpoint == nullptr) return false;
    auto decoder = spec.checkpoint->find("cls.predictions.decoder.weight");
    if (decoder == spec.checkpoint->end()) return false;
    const std::string prefix = find_encoder_prefix(*spec.checkpoint, spec.dir.string());
    const at::Tensor& words = spec.checkpoint->at(prefix + "embeddings.word_embeddings.weight");
    return !(decoder->second.sizes() == words.sizes() &&
             decoder->second.to(at::kFloat).equal(words.to(at::kFloat)));
  }

  // transformers 5 gives the decoder a bias of its own, the live one when the head is untied
  // (cls.predictions.bias then stays unused; tied, the decoder's bias is cls.predictions.bias);
  // transformers 4 made the two one tensor. So an untied decoder's bias is read when the
  // checkpoint has one that differs from cls.predictions.bias.
  static bool own_decoder_bias(const ModelSpec& spec) {
    if (!own_decoder(spec)) return false;
    auto decoder = spec.checkpoint->find("cls.predictions.decoder.bias");
    auto bias = spec.checkpoint->find("cls.predictions.bias");
    return decoder != spec.checkpoint->end() &&
           (bias == spec.checkpoint->end() ||
            !(decoder->second.sizes() == bias->second.sizes() &&
              decoder->second.to(at::kFloat).equal(bias->second.to(at::kFloat))));
  }

  explicit MaskedLanguageModel(const ModelSpec& spec)
      : BertTaskModel(spec, checkpoint_has_pooler(spec.checkpoint, spec.dir.string())),
        decoder_bias_(own_decoder_bias(spec)) {
    cls_ = register_module("cls", std::make_shared<LmHead>(config_, own_decoder(spec)));
  }

  Json structure() const override {
    Json s = encoder_structure("fill-mask");
    // The decoder's weight: its own, or the word embeddings it is tied to.
    s["decoder"] = cls_->predictions->decoder
                       ? "cls.predictions.decoder.weight"
                       : encoder_name_ + ".embeddings.word_embeddings.weight";
    return s;
  }

  TensorMap forward(const TensorMap& inputs) override {
    at::Tensor x = hidden(inputs);
    if (const at::Tensor* positions = optional_input(inputs, "logits_positions")) {
      x = x.reshape({-1, x.size(-1)}).index_select(0, positions->to(x.device()));
    }
    LmPredictions& p = *cls_->predictions;
    x = apply_hidden_act(config_.hidden_act, p.transform->dense(x));
    x = p.transform->norm(x);
    const at::Tensor& decoder = p.decoder ? p.decoder->weight : encoder_->word_embeddings();
    const at::Tensor logits = at::linear(x, decoder, p.bias);
    TensorMap out{{"logits", logits}};
    if (const at::Tensor* labels = optional_input(inputs, "labels"))
      out["loss"] = classification_loss(logits, *labels, /*one_output_regresses=*/false);
    return out;
  }

 protected:
  bool head_key(const std::string& name) const override {
    return starts_with(name, "cls.predictions.");
  }

  std::optional<std::string> checkpoint_name_to_parameter(const std::string& name) const override {
    if (decoder_bias_ && name == "cls.predictions.decoder.bias") return "cls.predictions.bias";
    if (decoder_bias_ && name == "cls.predictions.bias") return std::nullopt;  // unused there
    return BertTaskModel::checkpoint_name_to_parameter(name);
  }

  void begin_load(const TensorMap& checkpoint, const std::string& source,
                  bool allow_fresh_head) override {
    BertTaskModel::begin_load(checkpoint, source, allow_fresh_head);
    // RobertaForMaskedLM's head (lm_head.dense, lm_head.layer_norm, lm_head.decoder) is another
    // module with another activation rule: named, rather than listed as BERT's missing keys.
    MS_CHECK(checkpoint.count("lm_head.decoder.weight") == 0 &&
                 checkpoint.count("lm_head.dense.weight") == 0,
             ErrorCode::kConfig,
             "{}: the weights hold RoBERTa's masked-LM head (lm_head.*), which ms does not run: "
             "fill-mask runs BERT's head (cls.predictions.*)",
             source);
  }

  std::vector<std::string> ignorable_checkpoint_names() const override {
    std::vector<std::string> names = BertTaskModel::ignorable_checkpoint_names();
    // Hugging Face saves the decoder's bias (the same tensor as cls.predictions.bias) and, when
    // tied, the decoder weight (the word embeddings) too.
    names.push_back("cls.predictions.decoder.bias");
    if (!cls_->predictions->decoder) names.push_back("cls.predictions.decoder.weight");
    return names;
  }

 private:
  bool decoder_bias_;
  std::shared_ptr<LmHead> cls_;
};

template <typename TaskModel>
std::shared_ptr<Model> make(const ModelSpec& spec) {
  return std::make_shared<TaskModel>(spec);
}

}  // namespace

void register_bert_models(Registry<ModelBuilder>& registry) {
  struct Task {
    const char* name;
    const char* description;
    std::shared_ptr<Model> (*build)(const ModelSpec&);
  };
  const Task tasks[] = {
      {"sentence-embedding", "encoder + sentence-transformers Pooling, Dense, Normalize",
       &make_sentence_embedding},
      {"text-classification", "sequence classifier (BERT pooler or RoBERTa head)",
       &make<SequenceClassifier>},
      {"sentence-similarity", "sequence classifier over a sentence pair",
       &make<SequenceClassifier>},
      {"token-classification", "token classifier", &make<TokenClassifier>},
      {"named-entity-recognition", "token classifier (BIO/BIES tags)", &make<TokenClassifier>},
      {"word-segmentation", "token classifier (BIES tags)", &make<TokenClassifier>},
      {"fill-mask", "masked-LM head tied to the word embeddings", &make<MaskedLanguageModel>},
  };
  for (const Task& task : tasks) {
    for (const std::string& type : bert_family_types()) {
      registry.add(type, task.build, fmt::format("BERT-family {}: {}", type, task.description),
                   task.name);
    }
  }
}

}  // namespace ms::models

// token-cls-metric: entity precision, recall and F1 over IOB/IOBES tags and token accuracy, as
// ModelScope's TokenClassificationMetric computes them with seqeval (its default, conlleval-like
// chunking): positions labelled -100 (padding, sub-word continuations) are left out, ids become
// tags through the model's label map, and an entity counts only when type, start and end match.
#include <set>
#include <tuple>

#include "fields.h"
#include "ms/core/error.h"

namespace ms::metrics {
namespace {

constexpr std::int64_t kIgnoredLabel = -100;

// One entity: its type and its first and last token, in the concatenation of the sentences.
using Entity = std::tuple<std::string, std::size_t, std::size_t>;

struct Tag {
  char prefix;       // B, I, E, S, O (or the tag's first letter otherwise)
  std::string type;  // the part after "B-" ("_" when there is none)
};

Tag split_tag(const std::string& tag) {
  if (tag.empty()) return {'O', "_"};
  std::string rest = tag.substr(1);
  const std::size_t dash = rest.find('-');
  std::string type = dash == std::string::npos ? rest : rest.substr(dash + 1);
  return {tag[0], type.empty() ? "_" : type};
}

// Whether an entity ends before a token tagged `tag` that follows `prev` (seqeval's end_of_chunk).
bool ends(const Tag& prev, const Tag& tag) {
  const char p = prev.prefix, t = tag.prefix;
  if (p == 'E' || p == 'S') return true;
  if ((p == 'B' || p == 'I') && (t == 'B' || t == 'S' || t == 'O')) return true;
  return p != 'O' && p != '.' && prev.type != tag.type;
}

// Whether an entity starts at a token tagged `tag` that follows `prev` (start_of_chunk).
bool starts(const Tag& prev, const Tag& tag) {
  const char p = prev.prefix, t = tag.prefix;
  if (t == 'B' || t == 'S') return true;
  if ((p == 'E' || p == 'S' || p == 'O') && (t == 'E' || t == 'I')) return true;
  return t != 'O' && t != '.' && prev.type != tag.type;
}

// The entities of tagged sentences, an "O" between sentences as seqeval joins them.
std::set<Entity> entities(const std::vector<std::vector<std::string>>& sentences) {
  std::vector<std::string> tags;
  for (const auto& sentence : sentences) {
    tags.insert(tags.end(), sentence.begin(), sentence.end());
    tags.push_back("O");
  }
  tags.push_back("O");
  std::set<Entity> out;
  Tag prev{'O', "_"};
  prev.type = "";
  std::size_t begin = 0;
  for (std::size_t i = 0; i < tags.size(); ++i) {
    const Tag tag = split_tag(tags[i]);
    if (ends(prev, tag)) out.emplace(prev.type, begin, i - 1);
    if (starts(prev, tag)) begin = i;
    prev = tag;
  }
  return out;
}

class TokenClassificationMetric : public Metric {
 public:
  explicit TokenClassificationMetric(const nlohmann::json& options) {
    ComponentOptions o(options, type());
    label_name_ = o.text("label_name", "labels");
    logit_name_ = o.text("logit_name", "logits");
    entity_level_ = o.flag("return_entity_level_metrics", false);
    // The label map: {"B-PER": 1, ...} (label2id) or {"1": "B-PER", ...} (id2label).
    const nlohmann::json label2id = o.value("label2id"), id2label = o.value("id2label");
    o.check_all_read();
    const bool has_label2id = !label2id.is_null();
    const nlohmann::json& map = has_label2id ? label2id : id2label;
    if (!map.is_object() || map.empty()) {
      throw Error(ErrorCode::kConfig, "token-cls-metric needs the model's label map",
                  "give it \"label2id\" ({\"B-PER\": 1, ...}) or \"id2label\" (the model "
                  "config's), e.g. from config.json");
    }
    for (const auto& [key, value] : map.items()) {
      try {
        if (has_label2id) {
          id2label_[value.get<std::int64_t>()] = key;
        } else {
          id2label_[std::stoll(key)] = value.get<std::string>();
        }
      } catch (const std::exception&) {
        fail(ErrorCode::kConfig,
             "token-cls-metric: label map entry '{}': {} is not an id and a tag", key,
             value.dump());
      }
    }
  }

  std::string type() const override { return "token-cls-metric"; }

  void add(const Fields& outputs, const Fields& inputs) override {
    const Array& logits = field(outputs, logit_name_, "outputs", "logit_name");
    const Array& labels = field(inputs, label_name_, "inputs", "label_name");
    if (logits.shape.size() != 3 || labels.shape.size() != 2 ||
        labels.shape[0] != logits.shape[0] || labels.shape[1] != logits.shape[1]) {
      fail(ErrorCode::kConfig,
           "token-cls-metric: '{}' must be [batch, tokens, classes] and '{}' [batch, tokens] of "
           "the same batch and tokens",
           logit_name_, label_name_);
    }
    const std::vector<std::int64_t> preds = argmax_rows(logits, logit_name_);
    const std::vector<std::int64_t> truth = integer_labels(labels, label_name_);
    const std::size_t tokens = static_cast<std::size_t>(labels.shape[1]);
    for (std::size_t row = 0; row * tokens < truth.size(); ++row) {
      std::vector<std::string> predicted, labelled;
      for (std::size_t t = row * tokens; t < (row + 1) * tokens; ++t) {
        if (truth[t] == kIgnoredLabel) continue;
        labelled.push_back(tag_of(truth[t], label_name_));
        predicted.push_back(tag_of(preds[t], logit_name_));
      }
      labelled_.push_back(std::move(labelled));
      predicted_.push_back(std::move(predicted));
    }
  }

  MetricValues evaluate() const override {
    std::size_t tokens = 0, right = 0;
    for (std::size_t s = 0; s < labelled_.size(); ++s) {
      for (std::size_t t = 0; t < labelled_[s].size(); ++t)
        right += labelled_[s][t] == predicted_[s][t];
      tokens += labelled_[s].size();
    }
    if (tokens == 0) nothing_added(type());
    const std::set<Entity> truth = entities(labelled_), guess = entities(predicted_);
    MetricValues out = scores(truth, guess, "");
    out["accuracy"] = double(right) / double(tokens);
    if (entity_level_) {
      // ModelScope's return_entity_level_metrics: seqeval's report per entity type (those of
      // the labels and of the predictions), flattened to TYPE_precision, ..., TYPE_number.
      std::set<std::string> types;
      for (const auto* set : {&truth, &guess})
        for (const Entity& e : *set) types.insert(std::get<0>(e));
      for (const std::string& type : types) {
        std::set<Entity> truth_of_type, guess_of_type;
        for (const Entity& e : truth)
          if (std::get<0>(e) == type) truth_of_type.insert(e);
        for (const Entity& e : guess)
          if (std::get<0>(e) == type) guess_of_type.insert(e);
        out.merge(scores(truth_of_type, guess_of_type, type + "_"));
        out[type + "_number"] = static_cast<double>(truth_of_type.size());
      }
    }
    return out;
  }

  // With return_entity_level_metrics, the keys of every entity type the label map's tags name
  // (a superset of those the data gives: types neither labelled nor predicted are left out).
  std::vector<std::string> keys() const override {
    std::vector<std::string> out{"precision", "recall", "f1", "accuracy"};
    if (!entity_level_) return out;
    std::set<std::string> types;
    for (const auto& [id, tag] : id2label_) {
      const Tag t = split_tag(tag);
      if (t.prefix != 'O' && t.prefix != '.') types.insert(t.type);
    }
    for (const std::string& type : types)
      for (const char* score : {"_precision", "_recall", "_f1", "_number"})
        out.push_back(type + score);
    return out;
  }

  nlohmann::json collected() const override {
    return {{"labelled", labelled_}, {"predicted", predicted_}};
  }

  void take_in(const nlohmann::json& collected) override {
    auto labelled = collected.at("labelled").get<std::vector<std::vector<std::string>>>();
    auto predicted = collected.at("predicted").get<std::vector<std::vector<std::string>>>();
    bool fits = labelled.size() == predicted.size();
    for (std::size_t s = 0; fits && s < labelled.size(); ++s)
      fits = labelled[s].size() == predicted[s].size();
    if (!fits)
      fail(ErrorCode::kIntegrity,
           "token-cls-metric: a state to take in does not fit this metric's");
    labelled_.insert(labelled_.end(), labelled.begin(), labelled.end());
    predicted_.insert(predicted_.end(), predicted.begin(), predicted.end());
  }

 private:
  const std::string& tag_of(std::int64_t id, const std::string& field_name) const {
    auto it = id2label_.find(id);
    if (it == id2label_.end())
      fail(ErrorCode::kIntegrity, "token-cls-metric: '{}' has class {}, which the label map lacks",
           field_name, id);
    return it->second;
  }

  // Precision, recall and F1 of predicted entities against labelled ones, 0 where a share has
  // nothing to divide by (seqeval's zero_division), under keys that start with `prefix`.
  static MetricValues scores(const std::set<Entity>& truth, const std::set<Entity>& guess,
                             const std::string& prefix) {
    std::size_t correct = 0;
    for (const Entity& e : guess) correct += truth.count(e);
    const double precision = guess.empty() ? 0.0 : double(correct) / double(guess.size());
    const double recall = truth.empty() ? 0.0 : double(correct) / double(truth.size());
    const double f1 = precision + recall == 0 ? 0.0 : 2 * precision * recall / (precision + recall);
    return {{prefix + "precision", precision}, {prefix + "recall", recall}, {prefix + "f1", f1}};
  }

  std::string label_name_;
  std::string logit_name_;
  bool entity_level_ = false;
  std::map<std::int64_t, std::string> id2label_;
  std::vector<std::vector<std::string>> labelled_;   // per sentence, -100 positions left out
  std::vector<std::vector<std::string>> predicted_;  // the same positions' predicted tags
};

}  // namespace

std::unique_ptr<Metric> make_token_cls(const nlohmann::json& options) {
  return std::make_unique<TokenClassificationMetric>(options);
}

}  // namespace ms::metrics

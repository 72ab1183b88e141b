// accuracy and seq-cls-metric: one predicted class per row (argmax of the logits) against one
// label per row, as ModelScope's AccuracyMetric and SequenceClassificationMetric compute them
// (F1 as scikit-learn's f1_score, zero where a class has neither hits nor guesses).
#include <map>
#include <set>

#include "fields.h"
#include "ms/core/error.h"

namespace ms::metrics {
namespace {

// What both metrics collect: predictions and labels, and the logits' class count.
class ClassificationMetric : public Metric {
 public:
  ClassificationMetric(const nlohmann::json& options, std::string type) : type_(std::move(type)) {
    ComponentOptions o(options, type_);
    label_name_ = o.text("label_name", "labels");
    logit_name_ = o.text("logit_name", "logits");
    o.check_all_read();
  }

  std::string type() const override { return type_; }

  void add(const Fields& outputs, const Fields& inputs) override {
    const Array& logits = field(outputs, logit_name_, "outputs", "logit_name");
    const Array& labels = field(inputs, label_name_, "inputs", "label_name");
    // Logits of one dimension are the predicted ids themselves.
    std::vector<std::int64_t> preds = logits.shape.size() <= 1 ? integer_labels(logits, logit_name_)
                                                               : argmax_rows(logits, logit_name_);
    std::vector<std::int64_t> truth = integer_labels(labels, label_name_);
    if (preds.size() != truth.size()) {
      fail(ErrorCode::kConfig, "{}: {} predictions ('{}') but {} labels ('{}') in a batch", type_,
           preds.size(), logit_name_, truth.size(), label_name_);
    }
    if (logits.shape.size() > 1) {
      const std::int64_t classes = logits.shape.back();
      if (classes_ != 0 && classes_ != classes)
        fail(ErrorCode::kConfig, "{}: '{}' has {} classes in one batch and {} in another", type_,
             logit_name_, classes_, classes);
      classes_ = classes;
    }
    preds_.insert(preds_.end(), preds.begin(), preds.end());
    labels_.insert(labels_.end(), truth.begin(), truth.end());
  }

  nlohmann::json collected() const override {
    return {{"classes", classes_}, {"preds", preds_}, {"labels", labels_}};
  }

  void take_in(const nlohmann::json& collected) override {
    // Read whole before anything changes: a state that does not fit leaves this metric as it was.
    const auto classes = collected.at("classes").get<std::int64_t>();
    auto preds = collected.at("preds").get<std::vector<std::int64_t>>();
    auto labels = collected.at("labels").get<std::vector<std::int64_t>>();
    if (preds.size() != labels.size() || (classes != 0 && classes_ != 0 && classes != classes_))
      fail(ErrorCode::kIntegrity, "{}: a state to take in does not fit this metric's", type_);
    if (classes_ == 0) classes_ = classes;
    preds_.insert(preds_.end(), preds.begin(), preds.end());
    labels_.insert(labels_.end(), labels.begin(), labels.end());
  }

 protected:
  double accuracy() const {
    if (labels_.empty()) nothing_added(type_);
    std::size_t right = 0;
    for (std::size_t i = 0; i < labels_.size(); ++i) right += preds_[i] == labels_[i];
    return static_cast<double>(right) / static_cast<double>(labels_.size());
  }

  // F1 of one class: 2 tp / (2 tp + fp + fn), 0 when the class is neither guessed nor labelled.
  double f1_of(std::int64_t cls) const {
    std::size_t tp = 0, fp = 0, fn = 0;
    for (std::size_t i = 0; i < labels_.size(); ++i) {
      tp += preds_[i] == cls && labels_[i] == cls;
      fp += preds_[i] == cls && labels_[i] != cls;
      fn += preds_[i] != cls && labels_[i] == cls;
    }
    const std::size_t denominator = 2 * tp + fp + fn;
    return denominator == 0 ? 0.0
                            : 2.0 * static_cast<double>(tp) / static_cast<double>(denominator);
  }

  // The mean F1 over the classes that occur among labels or predictions (scikit-learn's macro).
  double macro_f1() const {
    std::set<std::int64_t> classes(labels_.begin(), labels_.end());
    classes.insert(preds_.begin(), preds_.end());
    double sum = 0;
    for (std::int64_t c : classes) sum += f1_of(c);
    return sum / static_cast<double>(classes.size());
  }

  std::string type_;
  std::string label_name_;
  std::string logit_name_;
  std::int64_t classes_ = 0;  // the logits' last dimension, once seen
  std::vector<std::int64_t> preds_;
  std::vector<std::int64_t> labels_;
};

class AccuracyMetric : public ClassificationMetric {
 public:
  explicit AccuracyMetric(const nlohmann::json& options)
      : ClassificationMetric(options, "accuracy") {}
  MetricValues evaluate() const override { return {{"accuracy", accuracy()}}; }
  std::vector<std::string> keys() const override { return {"accuracy"}; }
};

class SequenceClassificationMetric : public ClassificationMetric {
 public:
  explicit SequenceClassificationMetric(const nlohmann::json& options)
      : ClassificationMetric(options, "seq-cls-metric") {}

  // More than two classes: accuracy, micro-F1 (for one label per row, the accuracy), macro-F1,
  // and f1 = micro-F1; two: accuracy, the F1 of class 1 (binary-f1) and f1 = binary-f1.
  MetricValues evaluate() const override {
    const double acc = accuracy();
    if (classes_ > 2)
      return {{"accuracy", acc}, {"micro-f1", acc}, {"macro-f1", macro_f1()}, {"f1", acc}};
    const double binary = f1_of(1);
    return {{"accuracy", acc}, {"binary-f1", binary}, {"f1", binary}};
  }
  std::vector<std::string> keys() const override {
    return {"accuracy", "f1", "binary-f1", "micro-f1", "macro-f1"};
  }
};

}  // namespace

std::unique_ptr<Metric> make_accuracy(const nlohmann::json& options) {
  return std::make_unique<AccuracyMetric>(options);
}

std::unique_ptr<Metric> make_seq_cls(const nlohmann::json& options) {
  return std::make_unique<SequenceClassificationMetric>(options);
}

}  // namespace ms::metrics

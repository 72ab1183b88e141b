// loss-metric: the mean of the batches' losses, as ModelScope's LossMetric reports it (loss);
// ppl: the perplexity of a language model's logits, as ModelScope's PplMetric computes it.
#include <cmath>

#include "fields.h"
#include "ms/core/error.h"

namespace ms::metrics {
namespace {

// loss-metric: the mean of the batches' losses (ModelScope 1.40's LossMetric reports it as
// OutputKeys.LOSS, "loss").
class LossMetric : public Metric {
 public:
  explicit LossMetric(const nlohmann::json& options) {
    ComponentOptions o(options, type());
    loss_key_ = o.text("loss_key", "loss");
    o.check_all_read();
  }
  std::string type() const override { return "loss-metric"; }
  void add(const Fields& outputs, const Fields& /*inputs*/) override {
    const Array& loss = field(outputs, loss_key_, "outputs", "loss_key");
    if (loss.values.size() != 1)
      fail(ErrorCode::kConfig, "loss-metric: '{}' holds {} values, not one", loss_key_,
           loss.values.size());
    // A mean over a NaN is NaN, which JSON cannot hold: the model is broken, not the metric.
    if (!std::isfinite(loss.values[0]))
      fail(ErrorCode::kIntegrity, "loss-metric: '{}' is {} (the model's outputs are not numbers)",
           loss_key_, loss.values[0]);
    losses_.push_back(loss.values[0]);
  }
  MetricValues evaluate() const override {
    if (losses_.empty()) nothing_added(type());
    double sum = 0;
    for (double l : losses_) sum += l;
    return {{"loss", sum / double(losses_.size())}};
  }
  void merge(const Metric& other) override {
    const auto* same = dynamic_cast<const LossMetric*>(&other);
    if (same == nullptr) fail(ErrorCode::kInternal, "loss-metric: cannot merge a {}", other.type());
    losses_.insert(losses_.end(), same->losses_.begin(), same->losses_.end());
  }

 private:
  std::string loss_key_;
  std::vector<double> losses_;
};

// ppl (ModelScope's PplMetric): per batch the mean cross entropy of logits [..., vocab] against
// labels [...] over the positions whose label is not -100 (F.cross_entropy's default), averaged
// over batches weighted by their rows (labels' first dimension); reports exp of that.
class PplMetric : public Metric {
 public:
  explicit PplMetric(const nlohmann::json& options) {
    ComponentOptions o(options, type());
    label_name_ = o.text("label_name", "labels");
    logit_name_ = o.text("logit_name", "logits");
    o.check_all_read();
  }
  std::string type() const override { return "ppl"; }
  void add(const Fields& outputs, const Fields& inputs) override {
    const Array& logits = field(outputs, logit_name_, "outputs", "logit_name");
    const Array& labels = field(inputs, label_name_, "inputs", "label_name");
    const std::vector<std::int64_t> ids = integer_labels(labels, label_name_);
    if (labels.shape.empty() || ids.empty() || logits.values.size() % ids.size() != 0)
      fail(ErrorCode::kConfig, "ppl: {} values of '{}' do not fit {} labels", logits.values.size(),
           logit_name_, ids.size());
    const std::size_t vocab = logits.values.size() / ids.size();
    double sum = 0;
    std::size_t counted = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] == -100) continue;
      if (ids[i] < 0 || static_cast<std::size_t>(ids[i]) >= vocab)
        fail(ErrorCode::kIntegrity, "ppl: label {} is outside the {} classes of '{}'", ids[i],
             vocab, logit_name_);
      const double* row = logits.values.data() + i * vocab;
      double top = row[0];
      for (std::size_t v = 0; v < vocab; ++v) {
        if (!std::isfinite(row[v]))
          fail(ErrorCode::kIntegrity, "ppl: '{}' holds {}", logit_name_, row[v]);
        top = std::max(top, row[v]);
      }
      double total = 0;
      for (std::size_t v = 0; v < vocab; ++v) total += std::exp(row[v] - top);
      sum += top + std::log(total) - row[ids[i]];
      ++counted;
    }
    if (counted == 0)
      fail(ErrorCode::kUsage, "ppl: every label of the batch is -100 (ignored): nothing to score");
    const double rows = static_cast<double>(labels.shape[0]);
    avg_loss_ = (avg_loss_ * rows_ + sum / static_cast<double>(counted) * rows) / (rows_ + rows);
    rows_ += rows;
  }
  MetricValues evaluate() const override {
    if (rows_ == 0) nothing_added(type());
    return {{"ppl", std::exp(avg_loss_)}};
  }
  void merge(const Metric& other) override {
    const auto* same = dynamic_cast<const PplMetric*>(&other);
    if (same == nullptr) fail(ErrorCode::kInternal, "ppl: cannot merge a {}", other.type());
    if (same->rows_ == 0) return;
    avg_loss_ = (avg_loss_ * rows_ + same->avg_loss_ * same->rows_) / (rows_ + same->rows_);
    rows_ += same->rows_;
  }

 private:
  std::string label_name_, logit_name_;
  double avg_loss_ = 0, rows_ = 0;
};

}  // namespace

std::unique_ptr<Metric> make_ppl(const nlohmann::json& options) {
  return std::make_unique<PplMetric>(options);
}

std::unique_ptr<Metric> make_loss(const nlohmann::json& options) {
  return std::make_unique<LossMetric>(options);
}

}  // namespace ms::metrics

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
  std::vector<std::string> keys() const override { return {"loss"}; }
  nlohmann::json collected() const override { return {{"losses", losses_}}; }
  void take_in(const nlohmann::json& collected) override {
    const auto losses = collected.at("losses").get<std::vector<double>>();
    for (double l : losses)
      if (!std::isfinite(l))
        fail(ErrorCode::kIntegrity, "loss-metric: a state to take in holds the loss {}", l);
    losses_.insert(losses_.end(), losses.begin(), losses.end());
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
    batches_.push_back({sum / static_cast<double>(counted), static_cast<double>(labels.shape[0])});
  }
  MetricValues evaluate() const override {
    if (batches_.empty()) nothing_added(type());
    // ModelScope's running mean weighted by rows, replayed in batch order: shares merged from
    // other ranks then give the one-loop figure exactly.
    double avg_loss = 0, rows = 0;
    for (const auto& [loss, batch_rows] : batches_) {
      avg_loss = (avg_loss * rows + loss * batch_rows) / (rows + batch_rows);
      rows += batch_rows;
    }
    return {{"ppl", std::exp(avg_loss)}};
  }
  std::vector<std::string> keys() const override { return {"ppl"}; }
  nlohmann::json collected() const override {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [loss, rows] : batches_) out.push_back({loss, rows});
    return {{"batches", out}};
  }
  void take_in(const nlohmann::json& collected) override {
    const auto batches = collected.at("batches").get<std::vector<std::pair<double, double>>>();
    for (const auto& [loss, rows] : batches)
      if (!std::isfinite(loss) || !(rows > 0))
        fail(ErrorCode::kIntegrity, "ppl: a state to take in holds a batch of loss {} over {} rows",
             loss, rows);
    batches_.insert(batches_.end(), batches.begin(), batches.end());
  }

 private:
  std::string label_name_, logit_name_;
  std::vector<std::pair<double, double>> batches_;  // each batch's mean loss and its rows
};

}  // namespace

std::unique_ptr<Metric> make_ppl(const nlohmann::json& options) {
  return std::make_unique<PplMetric>(options);
}

std::unique_ptr<Metric> make_loss(const nlohmann::json& options) {
  return std::make_unique<LossMetric>(options);
}

}  // namespace ms::metrics

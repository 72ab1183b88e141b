// loss-metric: the mean of the batches' losses, as ModelScope's LossMetric reports it (avg_loss).
#include "fields.h"
#include "ms/core/error.h"

namespace ms::metrics {
namespace {

// loss-metric: the mean of the batches' losses (ModelScope's LossMetric, avg_loss).
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
    losses_.push_back(loss.values[0]);
  }
  MetricValues evaluate() const override {
    if (losses_.empty()) nothing_added(type());
    double sum = 0;
    for (double l : losses_) sum += l;
    return {{"avg_loss", sum / double(losses_.size())}};
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

}  // namespace

std::unique_ptr<Metric> make_loss(const nlohmann::json& options) {
  return std::make_unique<LossMetric>(options);
}

}  // namespace ms::metrics

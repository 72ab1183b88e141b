// Evaluation metrics by name, as ModelScope's METRICS registry has them: a metric collects what
// each batch gives it (add), reports a dict of named values (evaluate), and can take in what a
// copy of it collected elsewhere (merge), which is how data-parallel evaluation combines ranks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ms/config/registry.h"
#include "ms/core/export.h"

namespace ms::metrics {

/// One named array of a batch (logits, labels, loss, ...), row-major, as plain numbers: the
/// torch layer copies its tensors into these, so metrics stay torch-free. A field of texts (one
/// per row: text-gen-metric's generated and target texts, as ModelScope passes lists of strings)
/// holds them in `texts`, with shape [rows] and no values.
struct Array {
  std::vector<std::int64_t> shape;
  std::vector<double> values;
  std::vector<std::string> texts;
};

/// The named arrays of a batch: a model's outputs or the inputs it was given.
using Fields = std::map<std::string, Array>;

/// What evaluate() reports: ModelScope's metric keys ("accuracy", "macro-f1", "loss", ...).
using MetricValues = std::map<std::string, double>;

/// A metric. Not thread-safe: one per evaluation loop (merge() combines loops).
class MS_API Metric {
 public:
  virtual ~Metric() = default;
  /// The registered name ("seq-cls-metric").
  virtual std::string type() const = 0;
  /// Collects one batch. A missing field or a shape that does not fit is kConfig naming the
  /// field; a NaN or infinite logit and a label that is not an integer are kIntegrity.
  virtual void add(const Fields& outputs, const Fields& inputs) = 0;
  /// The values over everything added (and merged); kUsage when nothing was.
  virtual MetricValues evaluate() const = 0;
  /// Every key evaluate() may report, known before any batch (the trainer checks a hook's
  /// metric_key against them when the run starts, not after the first epoch). Some come only
  /// with some data: seq-cls-metric's binary-f1 with two classes, macro-f1 with more.
  virtual std::vector<std::string> keys() const = 0;

  /// What this metric collected, as plain data ({"type": ..., "collected": ...}): the share of a
  /// data-parallel evaluation that a rank sends to rank 0. Exact (CBOR keeps every double).
  nlohmann::json state() const;
  /// Takes in a state() of a metric of the same type, as if its batches had been added after
  /// this metric's own: merging the ranks' shares in rank order gives the figure of one loop
  /// over all the batches, bit for bit. A state of another type or shape is kIntegrity.
  void merge_state(const nlohmann::json& state);
  /// merge_state(other.state()).
  void merge(const Metric& other);

 protected:
  /// What add() collected, for state().
  virtual nlohmann::json collected() const = 0;
  /// Appends what another metric's collected() holds; may throw nlohmann::json's errors on a
  /// value of another shape (merge_state() reports them).
  virtual void take_in(const nlohmann::json& collected) = 0;
};

/// Builds a metric from its options (the `{type, ...}` object of `evaluation.metrics`, without
/// `type`); unknown options are kConfig.
using MetricFactory = std::function<std::unique_ptr<Metric>(const nlohmann::json& options)>;

/// The metrics by name: accuracy, seq-cls-metric, token-cls-metric, loss-metric, ppl,
/// text-gen-metric.
MS_API const Registry<MetricFactory>& metric_registry();

/// A metric from an `evaluation.metrics` entry: a name, or an object with `type` and options.
/// An unknown name is kNotFound listing the close matches.
MS_API std::unique_ptr<Metric> build_metric(const nlohmann::json& spec);

/// ModelScope's default metric of a task (`task_default_metrics`): seq-cls-metric for text
/// classification, sentence similarity, NLI and sentiment; token-cls-metric for token
/// classification and NER; accuracy for image classification. Empty for other tasks.
MS_API std::string task_default_metric(const std::string& task);

/// The metric of generated text (ModelScope's Metrics.text_gen_metric): the trainer generates its
/// texts instead of running the forward pass, so it looks for this name.
inline constexpr const char* kTextGenMetric = "text-gen-metric";

/// Adds metric_registry() to `registries` (for `ms list`).
MS_API void register_metric_components(Registries& registries);

}  // namespace ms::metrics

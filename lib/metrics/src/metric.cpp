// The metric registry, building metrics from `evaluation.metrics` entries, task defaults, and the
// field and option checks every metric shares.
#include "ms/metrics/metric.h"

#include <cmath>

#include "fields.h"
#include "ms/core/error.h"
#include "ms/core/text.h"

namespace ms::metrics {

std::unique_ptr<Metric> make_accuracy(const nlohmann::json& options);
std::unique_ptr<Metric> make_seq_cls(const nlohmann::json& options);
std::unique_ptr<Metric> make_token_cls(const nlohmann::json& options);
std::unique_ptr<Metric> make_loss(const nlohmann::json& options);
std::unique_ptr<Metric> make_ppl(const nlohmann::json& options);
std::unique_ptr<Metric> make_text_generation(const nlohmann::json& options);

const Registry<MetricFactory>& metric_registry() {
  static const Registry<MetricFactory> registry = [] {
    Registry<MetricFactory> r("metrics");
    r.add("accuracy", make_accuracy, "share of argmax(logits) equal to the label");
    r.add("seq-cls-metric", make_seq_cls,
          "accuracy and F1 (micro/macro, or binary for 2 classes) of sequence classification");
    r.add("token-cls-metric", make_token_cls,
          "entity precision/recall/F1 (as seqeval) and token accuracy of BIO/BIOES tagging");
    r.add("loss-metric", make_loss, "the mean of each batch's loss (loss)");
    r.add("ppl", make_ppl,
          "perplexity: exp of the mean cross entropy of logits against labels (-100 ignored)");
    r.add(kTextGenMetric, make_text_generation,
          "ROUGE-1/ROUGE-L F and BLEU-1/BLEU-4 of generated texts against target texts");
    return r;
  }();
  return registry;
}

std::unique_ptr<Metric> build_metric(const nlohmann::json& spec) {
  if (spec.is_string())
    return metric_registry().get(spec.get<std::string>())(nlohmann::json::object());
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    throw Error(ErrorCode::kConfig,
                fmt::format("evaluation.metrics: '{}' is not a metric", spec.dump()),
                "give a metric name, or an object with \"type\" and its options, e.g. "
                "{\"type\": \"seq-cls-metric\", \"label_name\": \"labels\"}");
  }
  nlohmann::json options = spec;
  options.erase("type");
  return metric_registry().get(spec["type"].get<std::string>())(options);
}

std::string task_default_metric(const std::string& task) {
  static const std::map<std::string, std::string> defaults = {
      {"text-classification", "seq-cls-metric"},
      {"sentence-similarity", "seq-cls-metric"},
      {"nli", "seq-cls-metric"},
      {"sentiment-classification", "seq-cls-metric"},
      {"token-classification", "token-cls-metric"},
      {"named-entity-recognition", "token-cls-metric"},
      {"part-of-speech", "token-cls-metric"},
      {"word-segmentation", "token-cls-metric"},
      {"image-classification", "accuracy"},
      {"text-generation", "ppl"},
  };
  auto it = defaults.find(task);
  return it == defaults.end() ? std::string() : it->second;
}

void register_metric_components(Registries& registries) { registries.add(metric_registry()); }

// --- states --------------------------------------------------------------------------------------

nlohmann::json Metric::state() const { return {{"type", type()}, {"collected", collected()}}; }

void Metric::merge_state(const nlohmann::json& state) {
  const std::string name = type();
  // A state comes from another process (a rank of the same job): one that does not fit is a
  // broken exchange, not the user's configuration.
  if (!state.is_object() || !state.contains("type") || state["type"] != name ||
      !state.contains("collected")) {
    fail(ErrorCode::kIntegrity, "{}: cannot take in the state of {}", name,
         state.is_object() && state.contains("type") ? state["type"].dump()
                                                     : std::string("something else"));
  }
  try {
    take_in(state["collected"]);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kIntegrity, "{}: a state to take in does not fit ({})", name, e.what());
  }
}

void Metric::merge(const Metric& other) { merge_state(other.state()); }

// --- shared checks -------------------------------------------------------------------------------

const Array& field(const Fields& fields, const std::string& name, const char* side,
                   const char* option) {
  auto it = fields.find(name);
  if (it != fields.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [key, value] : fields) names.push_back(key);
  throw Error(ErrorCode::kConfig,
              fmt::format("the model's {} have no field '{}' (they have: {})", side, name,
                          names.empty() ? std::string("none") : join(names, ", ")),
              fmt::format("set the metric's \"{}\" option to the field that holds it", option));
}

std::vector<std::int64_t> argmax_rows(const Array& logits, const std::string& name) {
  if (logits.shape.empty() || logits.shape.back() < 1) {
    throw Error(ErrorCode::kConfig,
                fmt::format("'{}' must have a class dimension, got shape [{}]", name,
                            join(
                                [&] {
                                  std::vector<std::string> dims;
                                  for (auto d : logits.shape) dims.push_back(std::to_string(d));
                                  return dims;
                                }(),
                                ", ")));
  }
  const std::size_t classes = static_cast<std::size_t>(logits.shape.back());
  if (logits.values.size() % classes != 0)
    fail(ErrorCode::kConfig, "'{}' holds {} values, not a multiple of its {} classes", name,
         logits.values.size(), classes);
  std::vector<std::int64_t> out;
  out.reserve(logits.values.size() / classes);
  for (std::size_t row = 0; row < logits.values.size() / classes; ++row) {
    const double* v = logits.values.data() + row * classes;
    std::size_t best = 0;
    for (std::size_t c = 0; c < classes; ++c) {
      if (!std::isfinite(v[c])) {
        throw Error(ErrorCode::kIntegrity,
                    fmt::format("'{}' row {} holds {} (class {}): no prediction can be read", name,
                                row, v[c], c),
                    "the model produced non-finite outputs; check the loss and learning rate");
      }
      if (v[c] > v[best]) best = c;
    }
    out.push_back(static_cast<std::int64_t>(best));
  }
  return out;
}

std::vector<std::int64_t> integer_labels(const Array& labels, const std::string& name) {
  std::vector<std::int64_t> out;
  out.reserve(labels.values.size());
  for (std::size_t i = 0; i < labels.values.size(); ++i) {
    const double v = labels.values[i];
    if (!std::isfinite(v) || std::floor(v) != v || std::fabs(v) > 9.0e15) {
      fail(ErrorCode::kIntegrity, "'{}' value {} is {}, not a class id", name, i, v);
    }
    out.push_back(static_cast<std::int64_t>(v));
  }
  return out;
}

void nothing_added(const std::string& metric) {
  throw Error(ErrorCode::kUsage, fmt::format("{}: evaluated before any batch was added", metric),
              "the evaluation dataset is empty");
}

}  // namespace ms::metrics

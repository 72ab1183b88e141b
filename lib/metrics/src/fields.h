// What the metrics share: reading a batch's fields and a metric's options, checked.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "ms/metrics/metric.h"

namespace ms::metrics {

/// The field `name` of `fields` (`side`: "outputs" or "inputs", for the error), or kConfig naming
/// the fields there are and the option that picks another.
const Array& field(const Fields& fields, const std::string& name, const char* side,
                   const char* option);

/// Per row of `logits` (all dimensions but the last), the index of the largest value; the first
/// one on ties, as numpy's argmax. NaN or infinite values are kIntegrity.
std::vector<std::int64_t> argmax_rows(const Array& logits, const std::string& name);

/// The values of `labels` as integers; one that is not an integer is kIntegrity.
std::vector<std::int64_t> integer_labels(const Array& labels, const std::string& name);

/// A metric's options: string/number options read by name; whatever is left unread is kConfig.
class Options {
 public:
  Options(const nlohmann::json& options, std::string metric);
  std::string text(const char* key, const std::string& fallback);
  /// The option as it is (null when absent).
  nlohmann::json value(const char* key);
  /// Throws for keys no accessor asked for.
  void check_all_read() const;

 private:
  const nlohmann::json& options_;
  std::string metric_;
  std::set<std::string> read_;
};

/// kUsage: evaluate() of a metric that was given no batch.
[[noreturn]] void nothing_added(const std::string& metric);

}  // namespace ms::metrics

// What the metrics share: reading a batch's fields and a metric's options, checked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ms/config/options.h"
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

/// kUsage: evaluate() of a metric that was given no batch.
[[noreturn]] void nothing_added(const std::string& metric);

}  // namespace ms::metrics

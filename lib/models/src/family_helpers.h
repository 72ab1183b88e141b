// Helpers the model families share: checked reads of config.json fields, the attention-mask fill.
#pragma once

#include <ATen/core/ScalarType.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "ms/config/config.h"
#include "ms/core/error.h"

namespace ms::models {

/// A positive integer field, or `fallback` when absent or null; throws ms::Error(kConfig) naming
/// `source` and the key otherwise.
inline int64_t int_field(const Json& j, const char* key, int64_t fallback,
                         const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  MS_CHECK(it->is_number_integer() && it->get<int64_t>() > 0, ErrorCode::kConfig,
           "{}: key '{}' must be a positive integer, got {}", source, key, it->dump());
  return it->get<int64_t>();
}

/// A probability in [0, 1), or nullopt when absent or null (Hugging Face configs write null for
/// "not set"); throws ms::Error(kConfig) naming `source` and the key otherwise.
inline std::optional<double> probability_field(const Json& j, const char* key,
                                               const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  MS_CHECK(it->is_number() && it->get<double>() >= 0.0 && it->get<double>() < 1.0,
           ErrorCode::kConfig, "{}: key '{}' must be a probability in [0, 1), got {}", source, key,
           it->dump());
  return it->get<double>();
}

/// The most negative finite value of a floating dtype, what masked attention scores are set to:
/// float's would be -inf in half precision, and a row of padding only would then give NaN (Hugging
/// Face uses finfo(dtype).min likewise).
inline double lowest_value(at::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf:
      return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    case at::kBFloat16:
      return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    default:
      return std::numeric_limits<float>::lowest();
  }
}

/// What masked attention scores are set to in a traced graph (`ms export --format torchscript`):
/// the lowest value float16 holds, so that the same graph runs in fp32, bf16 and fp16 (float's
/// lowest would be -inf in half precision, and 0 * -inf is NaN). exp(-65504 - score) is 0 in
/// float32 too, so fp32 outputs equal the untraced model's wherever a query sees a real key.
inline constexpr double kTracedMaskValue = -65504.0;

}  // namespace ms::models

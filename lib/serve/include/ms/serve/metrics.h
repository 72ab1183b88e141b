// `ms serve`'s counters, in Prometheus' text exposition format (GET /metrics).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "ms/core/export.h"

namespace ms::serve {

/// Thread-safe counters of requests, errors, batches and latency.
class MS_API Metrics {
 public:
  /// A finished HTTP request on /call: its status and seconds from arrival to answer.
  void request(int status, double seconds);
  /// A batch the pipeline ran: its inputs and seconds.
  void batch(std::size_t inputs, double seconds);
  /// The exposition text; `queue_depth` and `running` are sampled by the caller.
  std::string render(std::size_t queue_depth, std::size_t running) const;

 private:
  // Cumulative Prometheus histogram buckets (upper bounds), then +Inf.
  static constexpr std::array<double, 11> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25,   0.5,   1,    5};
  static constexpr std::array<double, 10> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024};

  mutable std::mutex mu_;
  std::map<int, std::uint64_t> requests_by_status_;
  std::array<std::uint64_t, kLatencyBounds.size() + 1> latency_counts_{};
  double latency_sum_ = 0;
  std::array<std::uint64_t, kBatchBounds.size() + 1> batch_counts_{};
  std::uint64_t batch_inputs_ = 0;
  double batch_seconds_ = 0;
};

}  // namespace ms::serve

// See ms/serve/metrics.h.
#include "ms/serve/metrics.h"

#include <fmt/format.h>

#include <iterator>

namespace ms::serve {
namespace {

template <std::size_t N>
std::size_t bucket_of(const std::array<double, N>& bounds, double value) {
  std::size_t i = 0;
  while (i < N && value > bounds[i]) ++i;
  return i;
}

template <std::size_t N, std::size_t M>
void write_histogram(std::string& out, const char* name, const char* help,
                     const std::array<double, N>& bounds,
                     const std::array<std::uint64_t, M>& counts, double sum) {
  static_assert(M == N + 1);
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < N; ++i) {
    cumulative += counts[i];
    fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"{}\"}} {}\n", name, bounds[i],
                   cumulative);
  }
  cumulative += counts[N];
  fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n",
                 name, cumulative, name, sum, name, cumulative);
}

}  // namespace

void Metrics::request(int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_by_status_[status];
  ++latency_counts_[bucket_of(kLatencyBounds, seconds)];
  latency_sum_ += seconds;
}

void Metrics::batch(std::size_t inputs, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++batch_counts_[bucket_of(kBatchBounds, static_cast<double>(inputs))];
  batch_inputs_ += inputs;
  batch_seconds_ += seconds;
}

std::string Metrics::render(std::size_t queue_depth, std::size_t running) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  auto add = std::back_inserter(out);
  std::uint64_t errors = 0;
  fmt::format_to(add,
                 "# HELP ms_serve_requests_total /call requests answered, by HTTP status.\n"
                 "# TYPE ms_serve_requests_total counter\n");
  for (const auto& [status, n] : requests_by_status_) {
    fmt::format_to(add, "ms_serve_requests_total{{code=\"{}\"}} {}\n", status, n);
    if (status >= 400) errors += n;
  }
  fmt::format_to(
      add,
      "# HELP ms_serve_errors_total /call requests that ended with a 4xx or 5xx status (499: "
      "the client left before its answer).\n"
      "# TYPE ms_serve_errors_total counter\nms_serve_errors_total {}\n"
      "# HELP ms_serve_queue_depth Inputs waiting for a batch.\n"
      "# TYPE ms_serve_queue_depth gauge\nms_serve_queue_depth {}\n"
      "# HELP ms_serve_inputs_running Inputs in batches being run.\n"
      "# TYPE ms_serve_inputs_running gauge\nms_serve_inputs_running {}\n",
      errors, queue_depth, running);
  write_histogram(out, "ms_serve_request_duration_seconds",
                  "Seconds from a /call request's arrival to its answer.", kLatencyBounds,
                  latency_counts_, latency_sum_);
  write_histogram(out, "ms_serve_batch_size", "Inputs per batch run through the model.",
                  kBatchBounds, batch_counts_, static_cast<double>(batch_inputs_));
  fmt::format_to(add,
                 "# HELP ms_serve_batch_seconds_total Seconds spent running batches.\n"
                 "# TYPE ms_serve_batch_seconds_total counter\nms_serve_batch_seconds_total {}\n",
                 batch_seconds_);
  return out;
}

}  // namespace ms::serve

// Dynamic batching for `ms serve`: inputs of concurrent requests wait in one queue and are run
// through the pipeline together, up to a batch size or a wait, grouped by length.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ms/core/export.h"
#include "ms/infer/pipeline.h"

namespace ms::serve {

using Clock = std::chrono::steady_clock;

struct BatcherOptions {
  std::size_t max_batch = 32;              ///< inputs per forward pass, at most
  std::chrono::milliseconds max_wait{5};   ///< the oldest input waits this long for others
  std::size_t max_queue = 1024;            ///< inputs waiting, at most; submit() refuses more
  std::size_t workers = 1;                 ///< batches run at once (see infer::JobOptions)
  /// Called after each batch, from the worker that ran it (metrics).
  std::function<void(std::size_t inputs, double seconds)> on_batch;
};

/// The inputs of one request and, once run, their results.
class MS_API Submission {
 public:
  explicit Submission(std::vector<infer::PipelineInput> inputs);
  const std::vector<infer::PipelineInput>& inputs() const { return inputs_; }
  /// Valid after DynamicBatcher::wait() returned true.
  std::vector<infer::PipelineResult>& results() { return results_; }

 private:
  friend class DynamicBatcher;
  std::vector<infer::PipelineInput> inputs_;
  std::vector<infer::PipelineResult> results_;
  std::size_t remaining_;  // inputs without a result yet
  bool abandoned_ = false;
  std::condition_variable done_;
};

/// Runs submitted inputs through one pipeline on `workers` threads. A batch is cut when
/// `max_batch` inputs wait or the oldest has waited `max_wait`; it holds the oldest input and the
/// waiting inputs closest to it in length (pipeline.cost()), so texts of similar length share a
/// batch and pad little while no input waits behind newer ones for long. A batch that fails is
/// rerun input by input (infer::run_batch_isolated), so one bad input fails alone.
class MS_API DynamicBatcher {
 public:
  DynamicBatcher(infer::Pipeline& pipeline, BatcherOptions options);
  /// Drains (see drain()) and joins the workers.
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  /// Queues a request's inputs (all or none). nullptr when the queue cannot take them all or the
  /// batcher is draining: the caller answers 503.
  std::shared_ptr<Submission> submit(std::vector<infer::PipelineInput> inputs);
  /// Waits until every input of `submission` has its result (true), or until `deadline` (false:
  /// inputs not yet started are dropped from the queue and the submission is abandoned).
  bool wait(Submission& submission, Clock::time_point deadline);

  /// Inputs waiting (not yet in a batch).
  std::size_t queue_depth() const;
  /// Inputs in batches being run.
  std::size_t running() const;

  /// Holds (true) or releases (false) the workers: held, they start no batch. For tests that need
  /// a queue in a known state (full, or drained on shutdown).
  void hold(bool held);
  /// Refuses new submissions and runs what is queued, even when held; returns at once.
  void drain();

 private:
  struct Pending {
    std::shared_ptr<Submission> submission;
    std::size_t index;  // into submission->inputs()
    std::size_t cost;
    Clock::time_point queued;
  };

  void work();
  std::vector<Pending> take_batch_locked();

  infer::Pipeline& pipeline_;
  const BatcherOptions options_;
  mutable std::mutex mu_;
  std::condition_variable work_;
  std::deque<Pending> queue_;
  std::size_t running_ = 0;
  bool held_ = false;
  bool draining_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace ms::serve

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
  std::size_t max_batch = 32;  ///< inputs per forward pass, at most
  /// How long the oldest input waits for others while a worker is free. 0: a free worker starts
  /// at once with what is queued; under load batches still form, while every worker is busy.
  std::chrono::milliseconds max_wait{0};
  std::size_t max_queue = 1024;  ///< inputs waiting, at most; submit() refuses more
  std::size_t workers = 1;       ///< batches run at once (see infer::JobOptions)
  /// Intra-op threads the workers share: a batch runs with threads / (batches running), so one
  /// request alone gets every core and a busy server one core per batch.
  int threads = 1;
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

/// Runs submitted inputs through one pipeline on `workers` threads. A free worker cuts a batch
/// when `max_batch` inputs wait or the oldest has waited `max_wait`: its share of the queue (split
/// evenly over the free workers, at most `max_batch`), holding the oldest input and the waiting
/// inputs closest to it in length (pipeline.cost()), so texts of similar length share a batch and
/// pad little while no input waits behind newer ones for long. The batch runs as forward passes of
/// inputs of similar length (padding adds at most a quarter of the tokens). A forward pass that
/// fails is rerun input by input (infer::run_batch_isolated), so one bad input fails alone.
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
  enum class WaitResult { kDone, kTimedOut, kClientGone };
  /// Waits until every input of `submission` has its result (kDone), until `deadline`
  /// (kTimedOut), or until `client_gone` (asked every kClientCheckInterval) says the requester
  /// left (kClientGone). Unless done, inputs not yet started are dropped from the queue and the
  /// submission is abandoned: a client that gave up (and perhaps retries) costs no more work.
  WaitResult wait(Submission& submission, Clock::time_point deadline,
                  const std::function<bool()>& client_gone = nullptr);
  static constexpr std::chrono::milliseconds kClientCheckInterval{200};

  /// Inputs waiting (not yet in a batch).
  std::size_t queue_depth() const;
  /// Inputs in batches being run.
  std::size_t running() const;
  /// The worker threads: `workers`, or 1 for a pipeline that is not concurrent().
  std::size_t workers() const { return worker_count_; }

  /// Holds (true) or releases (false) the workers: held, they start no batch. For tests that need
  /// a queue in a known state (full, or drained on shutdown).
  void hold(bool held);
  /// Refuses new submissions and runs what is queued, even when held; returns at once.
  void drain();
  /// Whether drain() was called (submit() refuses everything).
  bool draining() const;

 private:
  struct Pending {
    std::shared_ptr<Submission> submission;
    std::size_t index;  // into submission->inputs()
    std::size_t cost;
    Clock::time_point queued;
  };

  void work();
  std::vector<Pending> take_batch_locked(std::size_t size);
  // The batch's inputs (indices) cut into forward passes of similar length, longest first.
  static std::vector<std::vector<std::size_t>> length_groups(const std::vector<Pending>& batch);

  infer::Pipeline& pipeline_;
  const BatcherOptions options_;
  mutable std::mutex mu_;
  std::condition_variable work_;
  std::deque<Pending> queue_;
  std::size_t reserved_ = 0;      // places taken by submissions computing their costs
  std::size_t running_ = 0;       // inputs in batches being run
  std::size_t busy_workers_ = 0;  // workers running a batch
  bool held_ = false;
  bool draining_ = false;
  std::size_t worker_count_ = 1;  // set before the threads start
  std::vector<std::thread> workers_;
};

}  // namespace ms::serve

// See ms/serve/batcher.h.
#include "ms/serve/batcher.h"

#include <algorithm>
#include <numeric>

#include "ms/core/error.h"
#include "ms/infer/job.h"

namespace ms::serve {

Submission::Submission(std::vector<infer::PipelineInput> inputs)
    : inputs_(std::move(inputs)), results_(inputs_.size()), remaining_(inputs_.size()) {}

DynamicBatcher::DynamicBatcher(infer::Pipeline& pipeline, BatcherOptions options)
    : pipeline_(pipeline), options_(std::move(options)) {
  MS_CHECK(options_.max_batch >= 1, ErrorCode::kUsage, "--max-batch must be at least 1");
  MS_CHECK(options_.max_queue >= 1, ErrorCode::kUsage, "--max-queue must be at least 1");
  MS_CHECK(options_.max_wait.count() >= 0, ErrorCode::kUsage, "--max-wait-ms must be >= 0");
  const std::size_t workers =
      pipeline_.concurrent() ? std::max<std::size_t>(1, options_.workers) : 1;
  for (std::size_t i = 0; i < workers; ++i) {
    workers_.emplace_back([this, workers] {
      // Several workers share the cores: each forward pass gets one intra-op thread (the
      // reasoning of infer::JobOptions::workers).
      if (workers > 1) pipeline_.prepare_worker(1);
      work();
    });
  }
}

DynamicBatcher::~DynamicBatcher() {
  drain();
  for (auto& t : workers_) t.join();
}

std::shared_ptr<Submission> DynamicBatcher::submit(std::vector<infer::PipelineInput> inputs) {
  // Costs are computed outside the lock: for text they tokenise.
  std::vector<std::size_t> costs;
  costs.reserve(inputs.size());
  for (const auto& in : inputs) costs.push_back(pipeline_.cost(in));
  auto submission = std::make_shared<Submission>(std::move(inputs));
  const auto now = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_ || queue_.size() + costs.size() > options_.max_queue) return nullptr;
  for (std::size_t i = 0; i < costs.size(); ++i) queue_.push_back({submission, i, costs[i], now});
  if (!costs.empty()) work_.notify_all();
  return submission;
}

bool DynamicBatcher::wait(Submission& submission, Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (submission.done_.wait_until(lock, deadline, [&] { return submission.remaining_ == 0; })) {
    return true;
  }
  submission.abandoned_ = true;
  queue_.erase(std::remove_if(queue_.begin(), queue_.end(),
                              [&](const Pending& p) { return p.submission.get() == &submission; }),
               queue_.end());
  return false;
}

std::size_t DynamicBatcher::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

std::size_t DynamicBatcher::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_;
}

void DynamicBatcher::hold(bool held) {
  std::lock_guard<std::mutex> lock(mu_);
  held_ = held;
  work_.notify_all();
}

void DynamicBatcher::drain() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
  work_.notify_all();
}

std::vector<DynamicBatcher::Pending> DynamicBatcher::take_batch_locked() {
  std::vector<Pending> batch;
  if (queue_.size() <= options_.max_batch) {
    batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    return batch;
  }
  // The oldest input, and the others nearest to it in cost (ties: the older first).
  const std::size_t anchor = queue_.front().cost;
  auto distance = [anchor](std::size_t c) { return c > anchor ? c - anchor : anchor - c; };
  std::vector<std::size_t> order(queue_.size() - 1);
  std::iota(order.begin(), order.end(), 1);
  const auto nearer = [&](std::size_t a, std::size_t b) {
    const std::size_t da = distance(queue_[a].cost), db = distance(queue_[b].cost);
    return da != db ? da < db : a < b;
  };
  std::nth_element(order.begin(), order.begin() + (options_.max_batch - 2), order.end(), nearer);
  std::vector<bool> taken(queue_.size(), false);
  taken[0] = true;
  for (std::size_t k = 0; k + 1 < options_.max_batch; ++k) taken[order[k]] = true;
  std::deque<Pending> rest;
  for (std::size_t i = 0; i < queue_.size(); ++i) {
    (taken[i] ? batch.emplace_back(std::move(queue_[i])) : rest.emplace_back(std::move(queue_[i])));
  }
  queue_.swap(rest);
  return batch;
}

void DynamicBatcher::work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_.wait(lock, [&] { return draining_ || (!held_ && !queue_.empty()); });
    if (queue_.empty()) {
      if (draining_) return;
      continue;
    }
    if (held_ && !draining_) continue;
    // Wait for company unless the batch is full, the oldest input has waited enough, or the
    // server is draining.
    if (!draining_ && queue_.size() < options_.max_batch) {
      const auto due = queue_.front().queued + options_.max_wait;
      if (Clock::now() < due) {
        work_.wait_until(lock, due);
        continue;
      }
    }
    std::vector<Pending> batch = take_batch_locked();
    running_ += batch.size();
    lock.unlock();

    std::vector<const infer::PipelineInput*> inputs;
    inputs.reserve(batch.size());
    for (const Pending& p : batch) inputs.push_back(&p.submission->inputs()[p.index]);
    const auto t0 = Clock::now();
    std::vector<infer::PipelineResult> results = infer::run_batch_isolated(pipeline_, inputs);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (options_.on_batch) options_.on_batch(batch.size(), seconds);

    lock.lock();
    running_ -= batch.size();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Submission& s = *batch[i].submission;
      s.results_[batch[i].index] = std::move(results[i]);
      if (--s.remaining_ == 0 && !s.abandoned_) s.done_.notify_all();
    }
  }
}

}  // namespace ms::serve

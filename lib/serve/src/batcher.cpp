// See ms/serve/batcher.h.
#include "ms/serve/batcher.h"

#include <algorithm>
#include <exception>
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
  worker_count_ = pipeline_.concurrent() ? std::max<std::size_t>(1, options_.workers) : 1;
  workers_.reserve(worker_count_);
  try {
    for (std::size_t i = 0; i < worker_count_; ++i) workers_.emplace_back([this] { work(); });
  } catch (const std::exception& e) {
    // Out of threads (ulimit -u, address space for their stacks: std::system_error) or memory
    // for one's state (std::bad_alloc): the workers already started must end and be joined here,
    // since a joinable std::thread destroyed by the unwinding vector calls std::terminate.
    const std::size_t started = workers_.size();
    drain();
    for (auto& t : workers_) t.join();
    workers_.clear();
    throw Error(ErrorCode::kIo,
                fmt::format("cannot start {} worker threads ({} started): {}", worker_count_,
                            started, e.what()),
                "start fewer workers (--workers, --threads) or raise the thread and memory limits");
  }
}

DynamicBatcher::~DynamicBatcher() {
  drain();
  for (auto& t : workers_) t.join();
}

std::shared_ptr<Submission> DynamicBatcher::submit(std::vector<infer::PipelineInput> inputs) {
  const std::size_t n = inputs.size();
  {
    // Places are reserved before the costs are computed (outside the lock: for text they
    // tokenise, and the pipeline keeps the tokens for run()), so an input whose cost was computed
    // is never refused afterwards.
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_ || queue_.size() + reserved_ + n > options_.max_queue) return nullptr;
    reserved_ += n;
  }
  auto submission = std::make_shared<Submission>(std::move(inputs));
  std::vector<std::size_t> costs;
  costs.reserve(n);
  try {
    for (const auto& in : submission->inputs()) costs.push_back(pipeline_.cost(in));
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    reserved_ -= n;
    work_.notify_all();  // a draining worker may be waiting for the reservation to end
    throw;
  }
  const auto now = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  reserved_ -= n;
  for (std::size_t i = 0; i < n; ++i) queue_.push_back({submission, i, costs[i], now});
  // Also when n is 0: a draining worker waits for every reservation to end.
  work_.notify_all();
  return submission;
}

DynamicBatcher::WaitResult DynamicBatcher::wait(Submission& submission, Clock::time_point deadline,
                                                const std::function<bool()>& client_gone) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto done = [&] { return submission.remaining_ == 0; };
  WaitResult result = WaitResult::kTimedOut;
  for (;;) {
    const auto until =
        client_gone ? std::min(deadline, Clock::now() + kClientCheckInterval) : deadline;
    if (submission.done_.wait_until(lock, until, done)) return WaitResult::kDone;
    if (Clock::now() >= deadline) break;
    lock.unlock();
    const bool gone = client_gone();  // a poll() of its socket: not under the lock
    lock.lock();
    if (done()) return WaitResult::kDone;
    if (gone) {
      result = WaitResult::kClientGone;
      break;
    }
  }
  submission.abandoned_ = true;
  const auto dropped = std::stable_partition(queue_.begin(), queue_.end(), [&](const Pending& p) {
    return p.submission.get() != &submission;
  });
  for (auto it = dropped; it != queue_.end(); ++it)
    pipeline_.forget(submission.inputs()[it->index]);
  queue_.erase(dropped, queue_.end());
  return result;
}

bool DynamicBatcher::draining() const {
  std::lock_guard<std::mutex> lock(mu_);
  return draining_;
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

namespace {

// A forward pass pads every input to the longest; inputs are grouped so that padding adds at most
// this share of tokens. (With a few dozen requests of lognormal lengths in one batch, padding to
// the longest made every sentence cost 1.3 times as much as alone.)
constexpr double kPaddingSlack = 1.25;

}  // namespace

std::vector<std::vector<std::size_t>> DynamicBatcher::length_groups(
    const std::vector<Pending>& batch) {
  std::vector<std::size_t> order(batch.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return batch[a].cost > batch[b].cost; });
  std::vector<std::vector<std::size_t>> groups;
  double longest = 0, tokens = 0;
  for (std::size_t i : order) {
    const double cost = static_cast<double>(batch[i].cost);
    if (!groups.empty()) {
      const double padded = longest * static_cast<double>(groups.back().size() + 1);
      if (padded <= kPaddingSlack * (tokens + cost)) {
        groups.back().push_back(i);
        tokens += cost;
        continue;
      }
    }
    groups.push_back({i});
    longest = cost;
    tokens = cost;
  }
  return groups;
}

std::vector<DynamicBatcher::Pending> DynamicBatcher::take_batch_locked(std::size_t size) {
  std::vector<Pending> batch;
  if (queue_.size() <= size) {
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
  if (size > 1) {
    std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(size - 2),
                     order.end(), nearer);
  }
  std::vector<bool> taken(queue_.size(), false);
  taken[0] = true;
  for (std::size_t k = 0; k + 1 < size; ++k) taken[order[k]] = true;
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
      // A submission admitted before the drain may still be computing its costs: its inputs
      // are about to be queued and must be run, not left to time out.
      if (draining_ && reserved_ == 0) return;
      if (draining_) work_.wait(lock, [&] { return reserved_ == 0 || !queue_.empty(); });
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
    // The free workers split the queue, so that a burst of requests keeps every core busy
    // instead of making one large batch on one core.
    const std::size_t free_workers = worker_count_ - busy_workers_;
    const std::size_t share = (queue_.size() + free_workers - 1) / free_workers;
    std::vector<Pending> batch = take_batch_locked(std::min(options_.max_batch, share));
    running_ += batch.size();
    ++busy_workers_;
    // One batch alone gets every thread; concurrent batches share them.
    const int threads = std::max(1, options_.threads / static_cast<int>(busy_workers_));
    lock.unlock();
    if (worker_count_ > 1) pipeline_.prepare_worker(threads);

    std::vector<infer::PipelineResult> results(batch.size());
    for (const std::vector<std::size_t>& group : length_groups(batch)) {
      // A forward pass whose requests were all given up (timed out, or their clients left) is
      // not run: nobody waits for it, and a stop waits for the batch.
      {
        std::lock_guard<std::mutex> guard(mu_);
        const bool wanted = std::any_of(group.begin(), group.end(), [&](std::size_t i) {
          return !batch[i].submission->abandoned_;
        });
        if (!wanted) {
          for (std::size_t i : group)
            pipeline_.forget(batch[i].submission->inputs()[batch[i].index]);
          continue;
        }
      }
      std::vector<const infer::PipelineInput*> inputs;
      inputs.reserve(group.size());
      for (std::size_t i : group) inputs.push_back(&batch[i].submission->inputs()[batch[i].index]);
      const auto t0 = Clock::now();
      std::vector<infer::PipelineResult> out = infer::run_batch_isolated(pipeline_, inputs);
      const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      if (options_.on_batch) options_.on_batch(group.size(), seconds);
      for (std::size_t k = 0; k < group.size(); ++k) results[group[k]] = std::move(out[k]);
    }

    lock.lock();
    running_ -= batch.size();
    --busy_workers_;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Submission& s = *batch[i].submission;
      s.results_[batch[i].index] = std::move(results[i]);
      if (--s.remaining_ == 0 && !s.abandoned_) s.done_.notify_all();
    }
  }
}

}  // namespace ms::serve

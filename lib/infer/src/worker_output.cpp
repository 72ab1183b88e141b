// The launcher's copy of its workers' stderr (see worker_output.h).
#include "ms/infer/worker_output.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <utility>

#include "ms/core/text.h"

namespace ms::infer {
namespace {

constexpr std::string_view kErrorStart = "ms: error: ";
constexpr std::string_view kWarningStart = "ms: warning: ";

}  // namespace

ErrorDeduplicator::ErrorDeduplicator(std::size_t workers, Sink sink)
    : streams_(workers), sink_(std::move(sink)) {}

void ErrorDeduplicator::add(std::size_t worker, std::string_view bytes) {
  Stream& s = streams_.at(worker);
  s.partial.append(bytes);
  for (std::size_t end; (end = s.partial.find('\n')) != std::string::npos;) {
    std::string text = s.partial.substr(0, end + 1);
    s.partial.erase(0, end + 1);
    line(s, std::move(text));
  }
}

void ErrorDeduplicator::close(std::size_t worker) {
  Stream& s = streams_.at(worker);
  if (!s.partial.empty()) line(s, std::exchange(s.partial, std::string()) + "\n");
  finish_error(s);
}

void ErrorDeduplicator::line(Stream& s, std::string text) {
  // The hint and "(run with --verbose ...)" lines under an error are indented.
  if (!s.error.empty() && starts_with(text, "  ")) {
    s.error += text;
    return;
  }
  finish_error(s);
  if (starts_with(text, kErrorStart)) {
    s.error = std::move(text);
  } else if (starts_with(text, kWarningStart)) {
    // Ranks meet the same conditions alike (the mean loss, the run's end, an evaluation's
    // values): the k-th time a warning is written prints once, by whichever worker writes it
    // first; a warning only one worker meets still prints every time.
    const std::size_t occurrence = ++s.warnings[text];
    std::size_t& printed = printed_warnings_[text];
    if (occurrence > printed) {
      printed = occurrence;
      sink_(text);
    }
  } else {
    sink_(text);
  }
}

void ErrorDeduplicator::finish_error(Stream& s) {
  if (s.error.empty()) return;
  if (seen_.insert(s.error).second) {
    sink_(s.error);
  } else {
    ++repeated_;
  }
  s.error.clear();
}

WorkerStderr::WorkerStderr(std::vector<int> read_fds)
    : fds_(std::move(read_fds)),
      errors_(fds_.size(),
              [](const std::string& text) {
                std::fwrite(text.data(), 1, text.size(), stderr);
                std::fflush(stderr);
              }),
      closed_(fds_.size(), false),
      thread_([this] { pump(); }) {}

WorkerStderr::~WorkerStderr() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

void WorkerStderr::pump() {
  std::vector<char> buffer(1 << 16);
  for (;;) {
    std::vector<pollfd> polled;
    std::vector<std::size_t> worker_of;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
      for (std::size_t w = 0; w < fds_.size(); ++w) {
        if (closed_[w]) continue;
        polled.push_back({fds_[w], POLLIN, 0});
        worker_of.push_back(w);
      }
    }
    if (polled.empty()) return;
    // The period bounds how late a stop request is seen; data wakes the poll at once.
    const int ready = ::poll(polled.data(), polled.size(), 100);
    if (ready < 0 && errno != EINTR) return;
    for (std::size_t i = 0; ready > 0 && i < polled.size(); ++i) {
      if (polled[i].revents == 0) continue;
      const std::size_t w = worker_of[i];
      const ssize_t n = ::read(polled[i].fd, buffer.data(), buffer.size());
      if (n > 0) {
        errors_.add(w, std::string_view(buffer.data(), static_cast<std::size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      errors_.close(w);  // end of stream (or a read error: nothing more will come)
      std::lock_guard<std::mutex> lock(mutex_);
      closed_[w] = true;
      closed_changed_.notify_all();
    }
  }
}

void WorkerStderr::wait_closed(std::size_t worker, double seconds) {
  std::unique_lock<std::mutex> lock(mutex_);
  closed_changed_.wait_for(lock, std::chrono::duration<double>(seconds),
                           [&] { return closed_.at(worker); });
}

std::size_t WorkerStderr::finish(double seconds) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    closed_changed_.wait_for(lock, std::chrono::duration<double>(seconds), [&] {
      for (bool c : closed_)
        if (!c) return false;
      return true;
    });
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  return errors_.repeated_errors();
}

}  // namespace ms::infer

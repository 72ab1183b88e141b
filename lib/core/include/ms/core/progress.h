// Progress reporting for long work: a bar on stderr, drawn only when stderr is a terminal.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "ms/core/export.h"

namespace ms {

/// A thread-safe progress bar. On a pipe or file (or with MS_NO_PROGRESS=1) it draws nothing, so
/// scripts and logs stay clean. Redraws at most ten times a second.
class MS_API Progress {
 public:
  enum class Unit { kItems, kBytes };

  /// `total` may be 0 when unknown (then only the count and rate are shown).
  Progress(std::string label, std::uint64_t total, Unit unit = Unit::kItems);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(std::uint64_t amount);
  void set_total(std::uint64_t total);
  /// Draws the final state and ends the line; `complete` false adds "of TOTAL (stopped)".
  /// Called by the destructor if not called before (as stopped when an exception unwinds).
  void finish(bool complete = true);

  std::uint64_t done() const { return done_.load(); }

  /// Whether bars are drawn in this process (stderr is a terminal and MS_NO_PROGRESS is unset).
  static bool enabled();

  /// "1.5 MiB", "830 B": used by bars and by messages that report sizes.
  static std::string format_bytes(double bytes);

 private:
  void draw(bool final_draw);

  std::string label_;
  std::atomic<std::uint64_t> total_;
  std::atomic<std::uint64_t> done_{0};
  Unit unit_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::mutex draw_mutex_;
};

}  // namespace ms

#include "ms/core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

namespace ms {

bool Progress::enabled() {
  static const bool on = [] {
    const char* off = std::getenv("MS_NO_PROGRESS");
    if (off != nullptr && *off != '\0' && std::string(off) != "0") return false;
    return isatty(STDERR_FILENO) == 1;
  }();
  return on;
}

std::string Progress::format_bytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024.0 && unit < 4) {
    bytes /= 1024.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} {}", bytes, kUnits[unit])
                   : fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

Progress::Progress(std::string label, std::uint64_t total, Unit unit)
    : label_(std::move(label)),
      total_(total),
      unit_(unit),
      enabled_(enabled()),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

// Destroyed while an exception unwinds the stack: the work did not complete.
Progress::~Progress() { finish(std::uncaught_exceptions() == 0); }

void Progress::advance(std::uint64_t amount) {
  done_.fetch_add(amount);
  if (enabled_) draw(false);
}

void Progress::set_total(std::uint64_t total) { total_.store(total); }

void Progress::finish(bool complete) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(draw_mutex_);
  if (finished_) return;
  finished_ = true;
  // Draw the final line while holding the lock, bypassing the rate limit.
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double done = static_cast<double>(done_.load());
  const double total = static_cast<double>(total_.load());
  const auto show = [this](double n) {
    return unit_ == Unit::kBytes ? format_bytes(n) : fmt::format("{:.0f}", n);
  };
  // Work that stopped early says how far it got, so that the line is not read as done.
  std::string amount = show(done);
  if (!complete) amount += (total > 0 ? " of " + show(total) : std::string()) + " (stopped)";
  std::fprintf(stderr, "\r\033[K%s: %s in %.1fs\n", label_.c_str(), amount.c_str(), seconds);
}

void Progress::draw(bool final_draw) {
  std::unique_lock<std::mutex> lock(draw_mutex_, std::try_to_lock);
  if (!lock.owns_lock() || finished_) return;  // another thread is drawing; skip this update
  const auto now = std::chrono::steady_clock::now();
  if (!final_draw && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double done = static_cast<double>(done_.load());
  const double total = static_cast<double>(total_.load());
  const double rate = seconds > 0 ? done / seconds : 0.0;
  std::string amount, speed;
  if (unit_ == Unit::kBytes) {
    amount = total > 0 ? format_bytes(done) + " / " + format_bytes(total) : format_bytes(done);
    speed = format_bytes(rate) + "/s";
  } else {
    amount = total > 0 ? fmt::format("{:.0f} / {:.0f}", done, total) : fmt::format("{:.0f}", done);
    speed = fmt::format("{:.1f}/s", rate);
  }
  std::string bar;
  if (total > 0) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(kWidth * std::min(1.0, done / total));
    bar = "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] ";
    bar += fmt::format("{:3.0f}% ", 100.0 * std::min(1.0, done / total));
  }
  std::fprintf(stderr, "\r\033[K%s: %s%s %s", label_.c_str(), bar.c_str(), amount.c_str(),
               speed.c_str());
  std::fflush(stderr);
}

}  // namespace ms

#include "run_log.h"

#include <sys/time.h>

#include <algorithm>
#include <ctime>
#include <utility>

#include "ms/core/error.h"
#include "ms/core/file.h"

namespace ms::trainer {
namespace {

// Python logging's level names, as ModelScope's log lines carry them.
const char* level_name(log::Level level) {
  switch (level) {
    case log::Level::kDebug:
      return "DEBUG";
    case log::Level::kInfo:
      return "INFO";
    case log::Level::kWarning:
      return "WARNING";
    case log::Level::kError:
      return "ERROR";
    case log::Level::kOff:
      break;
  }
  return "?";
}

// Python logging's asctime: "2026-12-05 21:30:05,123", local time.
std::string asctime_now() {
  timeval now{};
  ::gettimeofday(&now, nullptr);
  std::tm tm{};
  localtime_r(&now.tv_sec, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return fmt::format("{},{:03}", text, now.tv_usec / 1000);
}

}  // namespace

std::string run_timestamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%d_%H%M%S", &tm);
  return text;
}

RunLog::RunLog(std::filesystem::path file) : file_(std::move(file)), console_level_(log::level()) {
  replaced_sink_ = log::wrap_sink([this](log::Sink console) -> log::Sink {
    return [this, console](log::Level level, std::string_view message) {
      if (level >= console_level_) console(level, message);
      write(level, message);
    };
  });
  log::set_level(std::min(console_level_, log::Level::kInfo));
}

RunLog::~RunLog() {
  log::set_level(console_level_);
  log::set_sink(std::move(replaced_sink_));
}

void RunLog::write(log::Level level, std::string_view message) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (failed_) return;
  try {
    // Whole lines only, as the JSON log: a full disk must not leave half a line.
    append_whole(file_,
                 fmt::format("{} - ms - {} - {}\n", asctime_now(), level_name(level), message));
  } catch (const Error& e) {
    // Losing the text log must not end the run (the checkpoints matter more); said once.
    failed_ = true;
    if (console_level_ <= log::Level::kWarning) {
      std::fprintf(stderr, "ms: warning: the text log stops here: %s\n", e.what());
    }
  }
}

}  // namespace ms::trainer

// ModelScope's <work_dir>/<timestamp>.log: the text log of a training run, beside the JSON log
// <timestamp>.log.json. It keeps what the run said (its messages at INFO and above, and the
// TextLoggerHook's lines) after the terminal that showed them is gone, as ModelScope's trainer
// keeps its logger's output there.
#pragma once

#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

#include "ms/core/log.h"

namespace ms::trainer {

/// The local time as ModelScope names a run's logs: "20261205_213005".
std::string run_timestamp();

/// For its lifetime, every ms::log message at INFO and above (DEBUG too when the level asks for
/// it) is also appended to `file`, whatever the console shows, as a line
/// "2026-12-05 21:30:05,123 - ms - INFO - message". Made on the worker that owns the work dir.
class RunLog {
 public:
  explicit RunLog(std::filesystem::path file);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  /// Appends one line (the TextLoggerHook's console lines come this way).
  void write(log::Level level, std::string_view message);

 private:
  std::filesystem::path file_;
  log::Level console_level_;  // what the console showed before: it still shows only that
  log::Sink replaced_sink_;
  std::mutex mutex_;
  bool failed_ = false;  // a write failed (a full disk): the run goes on without the file
};

}  // namespace ms::trainer

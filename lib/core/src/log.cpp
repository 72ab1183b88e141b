#include "ms/core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "ms/core/error.h"
#include "ms/core/progress.h"

namespace ms::log {
namespace {

const char* level_tag(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
    case Level::kOff:
      return "off";
  }
  return "?";
}

void stderr_sink(Level level, std::string_view message) {
  // One fprintf per line keeps lines from concurrent threads whole. Where a progress bar may be
  // on the line, clear it first, so that the message does not start in the middle of the bar
  // (the bar redraws itself below).
  const char* clear_bar = Progress::enabled() ? "\r\033[K" : "";
  std::fprintf(stderr, "%sms: %s: %.*s\n", clear_bar, level_tag(level),
               static_cast<int>(message.size()), message.data());
}

Level initial_level() {
  const char* env = std::getenv("MS_LOG_LEVEL");
  if (env == nullptr || *env == '\0') return Level::kWarning;
  try {
    return parse_level(env);
  } catch (const Error&) {
    // A misspelt level must not silently hide or show messages other than asked: said once.
    std::fprintf(stderr,
                 "ms: warning: MS_LOG_LEVEL=%s is not a log level (debug, info, warning, error, "
                 "off): warnings and errors are shown\n",
                 env);
    return Level::kWarning;
  }
}

std::atomic<Level>& level_ref() {
  static std::atomic<Level> current{initial_level()};
  return current;
}

std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}

Sink& sink_ref() {
  static Sink sink = stderr_sink;
  return sink;
}

// Whether this thread is inside the sink: a message the sink logs itself would wait for the lock
// it holds, so it goes to stderr instead.
thread_local bool t_in_sink = false;

void check_not_in_sink() {
  MS_CHECK(!t_in_sink, ErrorCode::kUsage,
           "ms::log: the sink cannot be replaced from inside a sink");
}

}  // namespace

void set_level(Level level) { level_ref().store(level); }
Level level() { return level_ref().load(); }

Level parse_level(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warning" || name == "warn") return Level::kWarning;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  throw Error(ErrorCode::kUsage, fmt::format("unknown log level '{}'", name),
              "use one of: debug, info, warning, error, off");
}

Sink set_sink(Sink sink) {
  check_not_in_sink();
  std::lock_guard<std::mutex> lock(sink_mutex());
  Sink previous = sink_ref();
  sink_ref() = sink ? std::move(sink) : Sink(stderr_sink);
  return previous;
}

Sink wrap_sink(const std::function<Sink(Sink current)>& make) {
  check_not_in_sink();
  std::lock_guard<std::mutex> lock(sink_mutex());
  Sink previous = sink_ref();
  // A message `make` logs goes to stderr (the lock is held here), as one from inside a sink.
  t_in_sink = true;
  Sink wrapped;
  try {
    wrapped = make(previous);
  } catch (...) {
    t_in_sink = false;
    throw;
  }
  t_in_sink = false;
  sink_ref() = wrapped ? std::move(wrapped) : Sink(stderr_sink);
  return previous;
}

void write(Level level, std::string_view message) {
  if (level < level_ref().load() || level == Level::kOff) return;
  if (t_in_sink) {
    stderr_sink(level, message);
    return;
  }
  std::lock_guard<std::mutex> lock(sink_mutex());
  t_in_sink = true;
  try {
    sink_ref()(level, message);
  } catch (...) {
    // A sink that throws must not end the work that logged (a server thread would terminate
    // the process): the message goes to stderr.
    stderr_sink(level, message);
  }
  t_in_sink = false;
}

}  // namespace ms::log

// Levelled logging to a replaceable sink (stderr by default); never writes to stdout.
#pragma once

#include <fmt/format.h>

#include <functional>
#include <string>
#include <string_view>

#include "ms/core/export.h"

namespace ms::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

/// Receives each message that passes the level filter, one at a time (calls are serialised by a
/// lock). A message the sink itself logs goes to stderr, and so does one whose sink throws (the
/// exception is swallowed: logging never fails the caller's work); replacing the sink from inside
/// it is kUsage.
using Sink = std::function<void(Level, std::string_view)>;

/// Messages below `level` are dropped. Default: kWarning, or $MS_LOG_LEVEL
/// (debug|info|warning|error|off).
MS_API void set_level(Level level);
MS_API Level level();

/// Parses "debug", "info", "warning"/"warn", "error", "off"; throws ms::Error(kUsage) otherwise.
MS_API Level parse_level(std::string_view name);

/// Replaces the sink; passing nullptr restores the default stderr sink. Returns the previous one.
MS_API Sink set_sink(Sink sink);

/// Replaces the sink by `make(current sink)` in one step, so that no message from another thread
/// falls between reading the current sink and installing the one that forwards to it. Returns
/// the sink replaced (to restore with set_sink). `make` runs under the lock (what it logs goes to
/// stderr). Sinks wrapped so are unwrapped in the reverse order.
MS_API Sink wrap_sink(const std::function<Sink(Sink current)>& make);

MS_API void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kDebug) write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kInfo) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kWarning)
    write(Level::kWarning, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kError) write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace ms::log

// Stop points for the end-to-end tests, compiled in only with -DMS_TEST_HOOKS=ON.
#pragma once

#include <atomic>
#include <csignal>

#include "ms/core/settings.h"

namespace ms::hub::detail {

/// When the environment variable `variable` names `stage`, the process stops itself (SIGSTOP)
/// there, so that a test acts at that very point (kills it or the hub, commits to the repo) and
/// then kills or continues it. Once per process: a download that lists its repo again does not
/// stop again. Without MS_TEST_HOOKS, nothing.
inline void stop_here_for_tests([[maybe_unused]] const char* variable,
                                [[maybe_unused]] const char* stage) {
#ifdef MS_TEST_HOOKS
  static std::atomic<bool> stopped{false};
  if (env_var(variable).value_or("") == stage && !stopped.exchange(true)) std::raise(SIGSTOP);
#endif
}

}  // namespace ms::hub::detail

// Stop points for the end-to-end tests, compiled in only with -DMS_TEST_HOOKS=ON.
#pragma once

#include <unistd.h>

#include <atomic>
#include <csignal>

#include "ms/core/settings.h"

namespace ms::hub::detail {

/// When the environment variable `variable` names `stage`, the process stops itself (SIGSTOP)
/// there, so that a test acts at that very point (kills it or the hub, commits to the repo) and
/// then kills or continues it. Once per process: a download that lists its repo again does not
/// stop again. With MS_TEST_STOP_HOLD=1 the thread that stopped does not go on once continued
/// (a test that signals the stopped run: the signal's handling, not a race with the rest of the
/// run, decides how it ends). Without MS_TEST_HOOKS, nothing.
inline void stop_here_for_tests([[maybe_unused]] const char* variable,
                                [[maybe_unused]] const char* stage) {
#ifdef MS_TEST_HOOKS
  static std::atomic<bool> stopped{false};
  if (env_var(variable).value_or("") != stage || stopped.exchange(true)) return;
  std::raise(SIGSTOP);
  if (env_var("MS_TEST_STOP_HOLD").value_or("") == "1") {
    for (;;) ::pause();
  }
#endif
}

}  // namespace ms::hub::detail

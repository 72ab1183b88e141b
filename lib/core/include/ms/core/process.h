// This host and its processes, for files named after the process that writes them.
#pragma once

#include <string>

#include "ms/core/export.h"

namespace ms {

/// This machine's host name (gethostname), "localhost" where it has none.
MS_API std::string host_name();

/// Whether a process of this id exists on this host (one of another user's included). A PID can
/// be reused: true may be another process, never false for a live one.
MS_API bool process_alive(long pid);

}  // namespace ms

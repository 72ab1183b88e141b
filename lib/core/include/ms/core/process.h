// This host, for files named after the machine that writes them.
#pragma once

#include <string>

#include "ms/core/export.h"

namespace ms {

/// This machine's host name (gethostname), "localhost" where it has none.
MS_API std::string host_name();

}  // namespace ms

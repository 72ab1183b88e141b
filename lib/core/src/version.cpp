#include "ms/core/version.h"

namespace ms {

const char* version() { return MS_VERSION_STRING; }

}  // namespace ms

// The ms version, set by CMake from project(VERSION).
#pragma once

namespace ms {

/// "0.1.0"
const char* version();

}  // namespace ms

// The headers the torch-heaviest targets' sources parse, compiled once per target
// (ms_precompile_torch_headers, cmake/MsModule.cmake). LibTorch's headers are most of such a
// source's compile time (a trainer hook: 24 of 32 s in the front end, 300,000 lines). Only headers
// that change nothing by being seen earlier belong here; sources still include what they use, and a
// build with -DMS_PRECOMPILED_HEADERS=OFF checks that they do.
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

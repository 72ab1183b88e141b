// Device specifications given on the command line: cpu, gpu, gpu:N, cuda, cuda:N, auto.
#pragma once

#include <string>
#include <string_view>

#include "ms/core/export.h"

namespace ms {

/// A parsed --device value. It names what the user asked for; whether that device exists is
/// checked by the torch layer, which honours it exactly (only kAuto may fall back to the CPU).
struct MS_API DeviceSpec {
  enum class Kind { kCpu, kCuda, kAuto };
  Kind kind = Kind::kCpu;
  int index = -1;  ///< CUDA ordinal, or -1 for "the default GPU" (gpu / cuda without :N)

  /// Canonical text: "cpu", "cuda", "cuda:1" or "auto".
  std::string to_string() const;
  bool operator==(const DeviceSpec& other) const {
    return kind == other.kind && index == other.index;
  }
};

/// Parses a device string, case-insensitively. Throws ms::Error(kUsage) naming the accepted forms
/// for anything else ("gpu:-1", "cuda:x", "tpu", ...).
MS_API DeviceSpec parse_device(std::string_view text);

/// The CPU cores this process may run on: its affinity mask (a cpuset, taskset or Slurm
/// allocation), not the machine's count; at least 1.
MS_API unsigned usable_cores();

}  // namespace ms

#include "ms/core/device.h"

#include <sched.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <thread>

#include "ms/core/error.h"

namespace ms {
namespace {

constexpr const char* kAcceptedForms =
    "accepted: cpu, gpu, gpu:N, cuda, cuda:N, auto (N = 0, 1, ...)";

[[noreturn]] void bad_device(std::string_view text) {
  throw Error(ErrorCode::kUsage, fmt::format("invalid device '{}'", text), kAcceptedForms);
}

int parse_ordinal(std::string_view digits, std::string_view whole) {
  if (digits.empty() || digits.size() > 4) bad_device(whole);
  int value = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) bad_device(whole);
    value = value * 10 + (c - '0');
  }
  return value;
}

}  // namespace

std::string DeviceSpec::to_string() const {
  switch (kind) {
    case Kind::kCpu:
      return "cpu";
    case Kind::kAuto:
      return "auto";
    case Kind::kCuda:
      return index < 0 ? "cuda" : fmt::format("cuda:{}", index);
  }
  return "cpu";
}

DeviceSpec parse_device(std::string_view text) {
  std::string lowered(text);
  for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string_view s = lowered;
  if (s == "cpu") return {DeviceSpec::Kind::kCpu, -1};
  if (s == "auto") return {DeviceSpec::Kind::kAuto, -1};
  for (std::string_view prefix : {std::string_view("gpu"), std::string_view("cuda")}) {
    if (s == prefix) return {DeviceSpec::Kind::kCuda, -1};
    if (s.size() > prefix.size() && s.substr(0, prefix.size()) == prefix &&
        s[prefix.size()] == ':') {
      return {DeviceSpec::Kind::kCuda, parse_ordinal(s.substr(prefix.size() + 1), text)};
    }
  }
  bad_device(text);
}

unsigned usable_cores() {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
    return static_cast<unsigned>(std::max(1, CPU_COUNT(&allowed)));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace ms

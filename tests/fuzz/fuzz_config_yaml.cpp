// libFuzzer target: configuration.yaml text (and trainer configs) -> ms::Config::parse and what `ms
// config show` does with the tree (fuzz_config.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ms::fuzz::exercise_config(std::string_view(reinterpret_cast<const char*>(data), size), "yaml");
  return 0;
}

// libFuzzer target: a .safetensors file -> the header parser load_safetensors() runs before any
// tensor is made (lib/tensor/src/safetensors_header.cpp, torch-free, compiled in here).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "ms/core/error.h"
#include "safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view file(reinterpret_cast<const char*>(data), size);
  try {
    const auto header = ms::tensor::parse_safetensors_header(file, "fuzz.safetensors");
    // What load_safetensors() relies on: every tensor's bytes lie inside the file and match its
    // shape, so building a tensor over them never reads outside the mapping.
    for (const auto& t : header.tensors) {
      std::uint64_t numel = 1;
      for (const std::int64_t d : t.shape) {
        if (d < 0) __builtin_trap();
        numel *= static_cast<std::uint64_t>(d);
      }
      if (t.begin > t.end || header.data_start + t.end > size ||
          t.end - t.begin != numel * t.element_size) {
        __builtin_trap();
      }
    }
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);  // A documented rejection (kIntegrity naming the file).
  }
  return 0;
}

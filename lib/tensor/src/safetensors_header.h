// The torch-free half of safetensors: the file's header, checked against the file's size. Kept
// apart from the tensors (safetensors.cpp) so that the fuzzer (tests/fuzz) reaches the one parser
// without LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ms::tensor {

/// One tensor of a safetensors header.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;                ///< "F32", "BF16", ... (one of safetensors_dtype_size's)
  std::size_t element_size = 0;     ///< bytes per element of `dtype`
  std::vector<std::int64_t> shape;  ///< every element count fits int64 and the byte count fits
  std::size_t begin = 0;            ///< byte offsets in the data section: begin <= end, and
  std::size_t end = 0;              ///< end - begin = numel * element_size, end <= data size
};

/// A parsed header: where the data section starts and the tensors, sorted by name.
struct SafetensorsHeader {
  std::size_t data_start = 0;  ///< 8 + the header's length
  std::vector<SafetensorsEntry> tensors;
};

/// The element size of a safetensors dtype name, or 0 for a name this reader does not support.
std::size_t safetensors_dtype_size(std::string_view dtype);

/// Parses the header of the safetensors file `file` (all of its bytes). Throws ms::Error
/// (kIntegrity) naming `source` for anything that is not a valid header for a file of that size.
SafetensorsHeader parse_safetensors_header(std::string_view file, const std::string& source);

}  // namespace ms::tensor

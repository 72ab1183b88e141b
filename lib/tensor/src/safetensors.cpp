// safetensors files <-> tensors; the header is parsed and checked in safetensors_header.cpp.
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/ScalarType.h>

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "mapped_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/tensor/weights.h"
#include "safetensors_header.h"

namespace ms::tensor {
namespace {

struct DtypeInfo {
  const char* name;
  c10::ScalarType type;
};

// Element sizes are the header parser's (safetensors_dtype_size); this maps names to torch types.
constexpr DtypeInfo kDtypes[] = {
    {"F64", c10::ScalarType::Double}, {"F32", c10::ScalarType::Float},
    {"F16", c10::ScalarType::Half},   {"BF16", c10::ScalarType::BFloat16},
    {"I64", c10::ScalarType::Long},   {"I32", c10::ScalarType::Int},
    {"I16", c10::ScalarType::Short},  {"I8", c10::ScalarType::Char},
    {"U8", c10::ScalarType::Byte},    {"BOOL", c10::ScalarType::Bool},
};

c10::ScalarType scalar_type(const std::string& dtype) {
  for (const auto& d : kDtypes) {
    if (dtype == d.name) return d.type;
  }
  fail(ErrorCode::kInternal, "internal error: safetensors dtype {} has no torch type", dtype);
}

}  // namespace

WeightMap load_safetensors(const std::filesystem::path& path) {
  auto map = MappedFile::open(path);
  const SafetensorsHeader header = parse_safetensors_header(map->view(), path.string());
  WeightMap out;
  for (const SafetensorsEntry& entry : header.tensors) {
    void* data = const_cast<unsigned char*>(map->bytes()) + header.data_start + entry.begin;
    const auto options = at::TensorOptions().dtype(scalar_type(entry.dtype));
    at::Tensor t;
    if (reinterpret_cast<std::uintptr_t>(data) % entry.element_size == 0) {
      auto keep = map;
      t = at::from_blob(
          data, entry.shape, [keep](void*) {}, options);
    } else {
      t = at::empty(entry.shape, options);
      std::memcpy(t.data_ptr(), data, entry.end - entry.begin);
    }
    out.emplace(entry.name, std::move(t));
  }
  return out;
}

void save_safetensors(const std::filesystem::path& path, const WeightMap& weights) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& [name, tensor] : weights) {
    const at::Tensor t = tensor.contiguous();
    const DtypeInfo* dtype = nullptr;
    for (const auto& d : kDtypes) {
      if (d.type == t.scalar_type()) dtype = &d;
    }
    MS_CHECK(dtype != nullptr, ErrorCode::kUsage,
             "tensor '{}': dtype {} cannot be stored in safetensors", name,
             c10::toString(t.scalar_type()));
    const std::size_t n = t.numel() * safetensors_dtype_size(dtype->name);
    header[name] = {{"dtype", dtype->name},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {data.size(), data.size() + n}}};
    data.append(static_cast<const char*>(t.data_ptr()), n);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i)
    file[i] = static_cast<char>((static_cast<std::uint64_t>(h.size()) >> (8 * i)) & 0xFF);
  file += h;
  file += data;
  write_file_atomic(path, file);
}

}  // namespace ms::tensor

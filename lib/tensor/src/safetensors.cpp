// safetensors: u64 little-endian header size N, N bytes of JSON, then the raw data section.
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/ScalarType.h>

#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

#include "mapped_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/tensor/weights.h"

namespace ms::tensor {
namespace {

struct DtypeInfo {
  const char* name;
  c10::ScalarType type;
  std::size_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", c10::ScalarType::Double, 8}, {"F32", c10::ScalarType::Float, 4},
    {"F16", c10::ScalarType::Half, 2},   {"BF16", c10::ScalarType::BFloat16, 2},
    {"I64", c10::ScalarType::Long, 8},   {"I32", c10::ScalarType::Int, 4},
    {"I16", c10::ScalarType::Short, 2},  {"I8", c10::ScalarType::Char, 1},
    {"U8", c10::ScalarType::Byte, 1},    {"BOOL", c10::ScalarType::Bool, 1},
};

[[noreturn]] void bad(const std::filesystem::path& path, const std::string& what) {
  throw Error(ErrorCode::kIntegrity,
              fmt::format("{} is not a valid safetensors file: {}", path.string(), what),
              "re-download or re-export the weights");
}

}  // namespace

WeightMap load_safetensors(const std::filesystem::path& path) {
  auto map = MappedFile::open(path);
  if (map->size < 8) bad(path, fmt::format("only {} bytes long", map->size));
  const auto* bytes = map->bytes();
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > map->size - 8)
    bad(path, fmt::format("header size {} exceeds the file", header_size));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_size);
  } catch (const nlohmann::json::exception& e) {
    bad(path, std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) bad(path, "header is not a JSON object");
  const std::size_t data_start = 8 + header_size;
  const std::size_t data_size = map->size - data_start;
  WeightMap out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& name = it.key();
    const auto& spec = it.value();
    if (!spec.is_object() || !spec.contains("dtype") || !spec.contains("shape") ||
        !spec.contains("data_offsets")) {
      bad(path, fmt::format("tensor '{}' lacks dtype, shape or data_offsets", name));
    }
    const DtypeInfo* dtype = nullptr;
    const std::string dname = spec["dtype"].is_string() ? spec["dtype"].get<std::string>() : "?";
    for (const auto& d : kDtypes) {
      if (dname == d.name) dtype = &d;
    }
    if (dtype == nullptr)
      bad(path, fmt::format("tensor '{}' has unsupported dtype '{}'", name, dname));
    std::vector<int64_t> shape;
    std::size_t numel = 1;
    for (const auto& d : spec["shape"]) {
      if (!d.is_number_unsigned()) bad(path, fmt::format("tensor '{}' has a bad shape", name));
      // The byte count must not wrap: [2^62, 32] of F32 would otherwise need "0 bytes".
      const auto dim = d.get<std::uint64_t>();
      const std::uint64_t limit = std::numeric_limits<int64_t>::max() / dtype->size;
      if (dim > limit || (dim != 0 && numel > limit / dim))
        bad(path, fmt::format("tensor '{}' has a shape {} too large for any file", name,
                              spec["shape"].dump()));
      shape.push_back(static_cast<int64_t>(dim));
      numel *= dim;
    }
    const auto& off = spec["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned()) {
      bad(path, fmt::format("tensor '{}' has bad data_offsets", name));
    }
    const auto begin = off[0].get<std::size_t>(), end = off[1].get<std::size_t>();
    if (begin > end || end > data_size || end - begin != numel * dtype->size) {
      bad(path, fmt::format(
                    "tensor '{}' ({} {}) has data_offsets [{}, {}] that do not fit its size or the "
                    "file ({} data bytes)",
                    name, dname, spec["shape"].dump(), begin, end, data_size));
    }
    void* data = const_cast<unsigned char*>(bytes) + data_start + begin;
    const auto options = at::TensorOptions().dtype(dtype->type);
    at::Tensor t;
    if (reinterpret_cast<std::uintptr_t>(data) % dtype->size == 0) {
      auto keep = map;
      t = at::from_blob(
          data, shape, [keep](void*) {}, options);
    } else {
      t = at::empty(shape, options);
      std::memcpy(t.data_ptr(), data, end - begin);
    }
    out.emplace(name, std::move(t));
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
    const std::size_t n = t.numel() * dtype->size;
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

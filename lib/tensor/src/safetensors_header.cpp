// safetensors: u64 little-endian header size N, N bytes of JSON, then the raw data section.
#include "safetensors_header.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "ms/core/error.h"

namespace ms::tensor {
namespace {

struct DtypeSize {
  const char* name;
  std::size_t size;
};

constexpr DtypeSize kDtypeSizes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                     {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};

[[noreturn]] void bad(const std::string& source, const std::string& what) {
  throw Error(ErrorCode::kIntegrity,
              fmt::format("{} is not a valid safetensors file: {}", source, what),
              "re-download or re-export the weights");
}

}  // namespace

std::size_t safetensors_dtype_size(std::string_view dtype) {
  for (const auto& d : kDtypeSizes) {
    if (dtype == d.name) return d.size;
  }
  return 0;
}

SafetensorsHeader parse_safetensors_header(std::string_view file, const std::string& source) {
  if (file.size() < 8) bad(source, fmt::format("only {} bytes long", file.size()));
  const auto* bytes = reinterpret_cast<const unsigned char*>(file.data());
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > file.size() - 8)
    bad(source, fmt::format("header size {} exceeds the file", header_size));
  nlohmann::json header;
  // A tensor named twice: JSON parsers keep one of the two, and which one is theirs to choose.
  std::set<std::string> names;
  std::string twice;
  const auto note_duplicates = [&](int depth, nlohmann::json::parse_event_t event,
                                   nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string() &&
        !names.insert(parsed.get<std::string>()).second && twice.empty()) {
      twice = parsed.get<std::string>();
    }
    return true;
  };
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_size, note_duplicates);
  } catch (const nlohmann::json::exception& e) {
    bad(source, std::string("header is not JSON: ") + e.what());
  }
  if (!twice.empty()) bad(source, fmt::format("tensor '{}' is listed twice", twice));
  if (!header.is_object()) bad(source, "header is not a JSON object");
  SafetensorsHeader out;
  out.data_start = 8 + header_size;
  const std::size_t data_size = file.size() - out.data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    SafetensorsEntry entry;
    entry.name = it.key();
    const std::string& name = entry.name;
    const auto& spec = it.value();
    if (!spec.is_object() || !spec.contains("dtype") || !spec.contains("shape") ||
        !spec.contains("data_offsets")) {
      bad(source, fmt::format("tensor '{}' lacks dtype, shape or data_offsets", name));
    }
    entry.dtype = spec["dtype"].is_string() ? spec["dtype"].get<std::string>() : "?";
    entry.element_size = safetensors_dtype_size(entry.dtype);
    if (entry.element_size == 0)
      bad(source, fmt::format("tensor '{}' has unsupported dtype '{}'", name, entry.dtype));
    std::size_t numel = 1;
    for (const auto& d : spec["shape"]) {
      if (!d.is_number_unsigned()) bad(source, fmt::format("tensor '{}' has a bad shape", name));
      // The byte count must not wrap: [2^62, 32] of F32 would otherwise need "0 bytes".
      const auto dim = d.get<std::uint64_t>();
      const std::uint64_t limit = std::numeric_limits<int64_t>::max() / entry.element_size;
      if (dim > limit || (dim != 0 && numel > limit / dim))
        bad(source, fmt::format("tensor '{}' has a shape {} too large for any file", name,
                                spec["shape"].dump()));
      entry.shape.push_back(static_cast<std::int64_t>(dim));
      numel *= dim;
    }
    const auto& off = spec["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned()) {
      bad(source, fmt::format("tensor '{}' has bad data_offsets", name));
    }
    entry.begin = off[0].get<std::size_t>();
    entry.end = off[1].get<std::size_t>();
    if (entry.begin > entry.end || entry.end > data_size ||
        entry.end - entry.begin != numel * entry.element_size) {
      bad(source,
          fmt::format("tensor '{}' ({} {}) has data_offsets [{}, {}] that do not fit its size or "
                      "the file ({} data bytes)",
                      name, entry.dtype, spec["shape"].dump(), entry.begin, entry.end, data_size));
    }
    out.tensors.push_back(std::move(entry));
  }
  // Two tensors sharing bytes would change together: Python's safetensors refuses such files.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const SafetensorsEntry& e : out.tensors)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->begin < b->begin; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      bad(source, fmt::format("tensors '{}' and '{}' overlap (data_offsets [{}, {}] and [{}, {}])",
                              by_offset[i - 1]->name, by_offset[i]->name, by_offset[i - 1]->begin,
                              by_offset[i - 1]->end, by_offset[i]->begin, by_offset[i]->end));
    }
  }
  // Every data byte belongs to a tensor, as Python's safetensors requires ("file not fully
  // covered"): bytes past the last tensor (a file damaged, or two joined, or grown by truncate)
  // or between two were read without a word, and the file then failed in transformers.
  std::size_t covered = 0;
  for (const SafetensorsEntry* e : by_offset) {
    if (e->begin != covered)
      bad(source, fmt::format("data bytes [{}, {}) belong to no tensor (before '{}')", covered,
                              e->begin, e->name));
    covered = e->end;
  }
  if (covered != data_size)
    bad(source, fmt::format("{} data bytes after the last tensor's belong to no tensor (the file "
                            "is longer than its header says)",
                            data_size - covered));
  return out;
}

}  // namespace ms::tensor

// A whole file mapped into memory (private, copy-on-write), shared by the weight readers.
#pragma once

#include <sys/mman.h>

#include <filesystem>
#include <memory>
#include <string_view>

namespace ms::tensor {

struct MappedFile {
  void* base = MAP_FAILED;
  std::size_t size = 0;

  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (base != MAP_FAILED) ::munmap(base, size);
  }

  /// Maps `path` read-write but private: tensors over it may be modified without touching the
  /// file. Throws ms::Error (kNotFound, kIo). An empty file gives size 0 and no mapping.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);

  const unsigned char* bytes() const { return static_cast<const unsigned char*>(base); }
  std::string_view view() const {
    return size == 0 ? std::string_view() : std::string_view(static_cast<const char*>(base), size);
  }
};

}  // namespace ms::tensor

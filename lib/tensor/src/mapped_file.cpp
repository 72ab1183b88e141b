#include "mapped_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ms/core/error.h"

namespace ms::tensor {

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  MS_CHECK(fd >= 0, errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo, "cannot open {}: {}",
           path.string(), std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(ErrorCode::kIo, "cannot stat {}: {}", path.string(), std::strerror(errno));
  }
  auto map = std::make_shared<MappedFile>();
  map->size = static_cast<std::size_t>(st.st_size);
  int map_errno = 0;
  if (map->size > 0) {
    map->base = ::mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    map_errno = errno;
  }
  ::close(fd);
  MS_CHECK(map->size == 0 || map->base != MAP_FAILED, ErrorCode::kIo, "cannot map {}: {}",
           path.string(), std::strerror(map_errno));
  return map;
}

}  // namespace ms::tensor

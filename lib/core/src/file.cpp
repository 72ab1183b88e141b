#include "ms/core/file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "ms/core/error.h"

namespace ms {
namespace fs = std::filesystem;

namespace {
constexpr const char* kTempInfix = ".tmp.";

// "PATH: no such file", with where a relative path was looked for.
Error no_such_file(const fs::path& path) {
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  return Error(
      ErrorCode::kNotFound, fmt::format("{}: no such file", path.string()),
      path.is_relative() && !ec
          ? fmt::format("a relative path is read from the working folder, {}", cwd.string())
          : "check the path");
}
}  // namespace

void check_reachable(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return;
  const int err = errno;
  if (err == ENOENT) {
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(path, ec))) {
      const fs::path target = fs::read_symlink(path, ec);
      throw Error(
          ErrorCode::kNotFound,
          fmt::format("{} is a link to '{}', which does not exist", path.string(), target.string()),
          "make the link lead to the file, or replace it by the file");
    }
    return;
  }
  if (err == ENOTDIR) return;  // a file where a folder of the path should be: nothing there
  throw Error(ErrorCode::kIo,
              fmt::format("{}: cannot be reached: {}", path.string(), std::strerror(err)),
              err == ELOOP          ? "a symbolic link on the path leads back to itself: fix it"
              : err == ENAMETOOLONG ? "give a shorter path (relative to a nearer folder)"
              : err == EACCES       ? "a folder on the path may not be searched: check its "
                                      "permissions"
                                    : "");
}

bool optional_regular_file(const fs::path& path, ErrorCode other_code) {
  check_reachable(path);
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) return false;
  if (fs::is_regular_file(status)) return true;
  const char* kind = fs::is_directory(status) ? "a folder"
                     : fs::is_fifo(status)    ? "a FIFO"
                     : fs::is_socket(status)  ? "a socket"
                     : fs::is_character_file(status) || fs::is_block_file(status)
                         ? "a device"
                         : "something else";
  throw Error(other_code, fmt::format("{} is {}, not a file", path.string(), kind),
              "replace it by the file, or remove it");
}

std::string read_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    check_reachable(path);
    throw no_such_file(path);
  }
  if (fs::is_directory(path, ec)) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: is a directory, expected a file", path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::kIo,
                fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  }
  // A regular file is read into a string of its size: through a stream buffer and a copy of it,
  // a 3 GB data file took 6 GB at the peak.
  const std::uintmax_t size = fs::is_regular_file(path, ec) ? fs::file_size(path, ec) : 0;
  std::string out;
  if (!ec && size > 0) {
    out.resize(static_cast<std::size_t>(size));
    in.read(out.data(), static_cast<std::streamsize>(size));
    out.resize(static_cast<std::size_t>(in.gcount()));  // a file that shrank meanwhile
    if (in.bad()) throw Error(ErrorCode::kIo, fmt::format("{}: read failed", path.string()));
    if (in.gcount() < static_cast<std::streamsize>(size)) return out;
    in.clear();  // the read stopped at the size: a file that grew meanwhile goes on below
  }
  std::ostringstream rest;
  rest << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::kIo, fmt::format("{}: read failed", path.string()));
  out += rest.str();
  return out;
}

std::string read_regular_file(const fs::path& path, std::uintmax_t max_bytes) {
  // Opened without blocking (a FIFO's open waits for a writer otherwise), asked what it is, and
  // read through the same descriptor (the file checked is the file read).
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      check_reachable(path);
      throw no_such_file(path);
    }
    throw Error(ErrorCode::kIo,
                fmt::format("{}: cannot open: {}", path.string(), std::strerror(err)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw Error(ErrorCode::kIo,
                fmt::format("{}: cannot stat: {}", path.string(), std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: is {}, expected a regular file", path.string(), kind));
  }
  MS_CHECK(static_cast<std::uintmax_t>(st.st_size) <= max_bytes, ErrorCode::kUsage,
           "{}: {} bytes is more than the {} bytes such a file may have", path.string(),
           static_cast<std::uintmax_t>(st.st_size), max_bytes);
  std::string out;
  out.reserve(static_cast<std::size_t>(st.st_size));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw Error(ErrorCode::kIo,
                  fmt::format("{}: read failed: {}", path.string(), std::strerror(errno)));
    }
    if (n == 0) return out;
    out.append(buffer, static_cast<std::size_t>(n));
    // A file that grows while it is read is not read past its limit.
    MS_CHECK(out.size() <= max_bytes, ErrorCode::kUsage,
             "{}: more than the {} bytes such a file may have", path.string(), max_bytes);
  }
}

void write_all_at(int fd, const char* data, std::size_t n, std::uint64_t offset,
                  const fs::path& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, data, std::min(n, kWritePiece), static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {  // 0 would loop for ever; it means the file cannot take more
      throw Error(ErrorCode::kIo, fmt::format("{}: write failed: {}", path.string(),
                                              w < 0 ? std::strerror(errno) : "nothing written"));
    }
    data += w;
    n -= static_cast<std::size_t>(w);
    offset += static_cast<std::uint64_t>(w);
  }
}

void append_whole(const fs::path& path, std::string_view data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    throw Error(ErrorCode::kIo,
                fmt::format("{}: cannot open to append: {}", path.string(), std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    throw Error(ErrorCode::kIo,
                fmt::format("{}: cannot stat: {}", path.string(), std::strerror(error)));
  }
  try {
    write_all_at(fd, data.data(), data.size(), static_cast<std::uint64_t>(st.st_size), path);
  } catch (...) {
    // Back to the old end: what did get written is a torn record.
    (void)::ftruncate(fd, st.st_size);
    ::close(fd);
    throw;
  }
  MS_CHECK(::close(fd) == 0, ErrorCode::kIo, "{}: close failed after appending: {}", path.string(),
           std::strerror(errno));
}

bool is_inside_folder(const std::filesystem::path& path, const std::filesystem::path& folder) {
  std::error_code ec;
  const auto resolved_folder = std::filesystem::weakly_canonical(folder, ec);
  if (ec) return false;
  const auto within = [&](const fs::path& resolved) {
    const auto inside = resolved.lexically_relative(resolved_folder);
    return !inside.empty() && *inside.begin() != ".." && inside != ".";
  };
  // The name itself is inside where its folder is, even when it is a link leading out (a
  // model's weights linked to a blob store): writing it would write through the link.
  const fs::path absolute = fs::absolute(path, ec);
  if (ec) return false;
  const fs::path parent = fs::weakly_canonical(absolute.parent_path(), ec);
  if (!ec && within(parent / absolute.filename())) return true;
  const fs::path resolved = fs::weakly_canonical(absolute, ec);
  return !ec && within(resolved);
}

std::string folder_creation_failure(const fs::path& dir, const std::error_code& ec) {
  if (ec == std::errc::file_exists || ec == std::errc::no_such_file_or_directory) {
    fs::path prefix;
    for (const fs::path& part : dir) {
      prefix /= part;
      std::error_code ignored;
      if (fs::is_symlink(prefix, ignored) && !fs::exists(prefix, ignored)) {
        return fmt::format("{} is a link to {}, which does not exist", prefix.string(),
                           fs::read_symlink(prefix, ignored).string());
      }
    }
  }
  return ec.message();
}

void make_directories(const fs::path& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw Error(ErrorCode::kIo,
                fmt::format("{} {}: cannot create the folder: {}", what, dir.string(),
                            folder_creation_failure(dir, ec)),
                "check that no file stands in its path and that the file system is writable");
  }
}

namespace {
constexpr std::size_t kTempSuffixSize = 6;  // mkstemp's XXXXXX

fs::path folder_of(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

// The temporary files that write_file_atomic writes next to `path` and renames are named
// ".NAME.tmp.XXXXXX": this prefix and mkstemp's six characters.
std::string temp_prefix(const fs::path& path) {
  return "." + path.filename().string() + kTempInfix;
}

std::string temp_pattern(const fs::path& path) {
  return (folder_of(path) / (temp_prefix(path) + std::string(kTempSuffixSize, 'X'))).string();
}

// ".NAME" + `infix` + six characters, NAME not empty.
bool has_temp_shape(std::string_view name, std::string_view infix) {
  const std::size_t at = name.rfind(infix);
  return name.size() > 1 && name[0] == '.' && at != std::string_view::npos && at > 1 &&
         name.size() == at + infix.size() + kTempSuffixSize;
}

bool is_unfinished_write(std::string_view name) { return has_temp_shape(name, kTempInfix); }

// Locks a temp file just made, for as long as it is written (see remove_abandoned_writes).
// False when another process's sweep removed it before the lock was taken: it has no name left,
// and the caller makes another. On a file system without flock the file is written unlocked.
bool lock_new_temp_file(int fd) {
  int rc;
  do rc = ::flock(fd, LOCK_EX);
  while (rc != 0 && errno == EINTR);
  struct stat st {};
  return rc != 0 || ::fstat(fd, &st) != 0 || st.st_nlink > 0;
}
}  // namespace

bool is_temp_write_name(std::string_view name) {
  return is_unfinished_write(name) || has_temp_shape(name, kExportTempInfix);
}

std::size_t remove_unfinished_writes(const fs::path& dir) {
  std::error_code ec;
  std::size_t removed = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry;
    if (is_unfinished_write(it->path().filename().string()) && it->is_regular_file(entry) &&
        fs::remove(it->path(), entry)) {
      ++removed;
    }
  }
  return removed;
}

namespace {

// Removes the entries of `folder` named `prefix` + mkstemp's six characters, files or (`folders`)
// folders, whose lock can be taken: a writer holds its temp entry's lock until the entry has its
// final name, so a lock we can take is a dead writer's. (A finished writer's temp name is gone.)
std::size_t remove_unlocked_temps(const fs::path& folder, const std::string& prefix, bool folders) {
  std::error_code ec;
  std::size_t removed = 0;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() != prefix.size() + kTempSuffixSize ||
        name.compare(0, prefix.size(), prefix) != 0)
      continue;
    const int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
                                                  (folders ? O_DIRECTORY : 0));
    if (fd < 0) continue;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && (folders ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)) &&
        ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      std::error_code gone;
      if (folders ? fs::remove_all(it->path(), gone) > 0 && !gone
                  : ::unlink(it->path().c_str()) == 0)
        ++removed;
    }
    ::close(fd);
  }
  return removed;
}

}  // namespace

std::size_t remove_abandoned_writes(const fs::path& path) {
  return remove_unlocked_temps(folder_of(path), temp_prefix(path), false);
}

std::size_t remove_abandoned_folders(const fs::path& path, std::string_view infix) {
  return remove_unlocked_temps(folder_of(path), "." + path.filename().string() + std::string(infix),
                               true);
}

int lock_folder(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;  // removed before it could be opened
  int rc;
  do rc = ::flock(fd, LOCK_EX);
  while (rc != 0 && errno == EINTR);
  // A sweep that took the lock first may have removed it meanwhile (as for temp files); where
  // the file system has no flock it is held open, unlocked, all the same.
  struct stat st {};
  const bool statted = ::fstat(fd, &st) == 0;
  const int saved = statted ? ENOENT : errno;
  if (!statted || st.st_nlink == 0) {
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

LockedTempFolder make_locked_temp_folder(const fs::path& path, std::string_view infix,
                                         const std::string& hint) {
  const fs::path parent = folder_of(path);
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string pattern = (parent / ("." + path.filename().string() + std::string(infix) +
                                     std::string(kTempSuffixSize, 'X')))
                              .string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw Error(ErrorCode::kIo,
                  fmt::format("cannot make a folder in {} (for {}): {}", parent.string(),
                              path.string(), std::strerror(errno)),
                  hint);
    }
    const int lock = lock_folder(pattern);
    if (lock < 0 && errno == ENOENT) continue;  // another writer's sweep removed it first
    if (lock < 0) {
      const int error = errno;
      ::rmdir(pattern.c_str());
      throw Error(ErrorCode::kIo,
                  fmt::format("cannot open the folder {} (for {}): {}", pattern, path.string(),
                              std::strerror(error)),
                  hint);
    }
    // mkdtemp makes the folder private (0700); the result is an ordinary folder. chmod(2) would
    // clear the setgid bit it inherited from a group's folder (and with it the group of what is
    // written inside), so the bit is given again.
    struct stat st {};
    const mode_t setgid = ::fstat(lock, &st) == 0 ? (st.st_mode & S_ISGID) : 0;
    ::fchmod(lock, (0777 & ~current_umask()) | setgid);
    return {pattern, lock};
  }
  throw Error(ErrorCode::kIo,
              fmt::format("{}: every folder made in {} to write it was removed at once by "
                          "another process",
                          path.string(), parent.string()),
              hint);
}

mode_t current_umask() {
  // Read from /proc: setting the umask to read it back would race with other threads creating
  // files.
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Umask:", 0) == 0)
      return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
  }
  return 022;
}

void write_file_atomic(const fs::path& path, std::string_view data, unsigned mode) {
  write_file_atomic(
      path, [data](const FileSink& sink) { sink(data.data(), data.size()); }, mode);
}

void write_file_atomic(const fs::path& path, const std::function<void(const FileSink&)>& produce,
                       unsigned mode) {
  const fs::path parent = folder_of(path);
  std::error_code ec;
  // The temporary file is renamed over the path, which would replace a device or a pipe
  // (`--save-batch /dev/null`, run as root, would delete /dev/null) with a plain file.
  const fs::file_status existing = fs::symlink_status(path, ec);
  if (!ec && fs::exists(existing) && !fs::is_regular_file(existing) && !fs::is_symlink(existing) &&
      !fs::is_directory(existing)) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} is not a regular file (a device, pipe or socket): ms writes "
                            "files whole and would replace it",
                            path.string()),
                "give the path of a file to write");
  }
  fs::create_directories(parent, ec);
  if (ec)
    throw Error(ErrorCode::kIo, fmt::format("{}: cannot create folder: {}", parent.string(),
                                            folder_creation_failure(parent, ec)));

  std::string temp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    MS_CHECK(attempt < 8, ErrorCode::kIo,
             "{}: every temp file made in {} was removed at once by another process", path.string(),
             parent.string());
    temp = temp_pattern(path);
    // Close-on-exec: a child started meanwhile (`ms train --nproc`) must not hold the lock.
    fd = mkostemp(temp.data(), O_CLOEXEC);
    if (fd < 0) {
      throw Error(ErrorCode::kIo, fmt::format("{}: cannot create temp file: {}", parent.string(),
                                              std::strerror(errno)));
    }
    if (!lock_new_temp_file(fd)) {
      close(fd);
      fd = -1;
    }
  }
  auto cleanup_and_fail = [&](const char* what) {
    const int saved = errno;
    close(fd);
    unlink(temp.c_str());
    throw Error(ErrorCode::kIo,
                fmt::format("{}: {}: {}", path.string(), what, std::strerror(saved)));
  };
  try {
    std::uint64_t offset = 0;
    produce([&](const void* data, std::size_t n) {
      write_all_at(fd, static_cast<const char*>(data), n, offset, path);
      offset += n;
    });
  } catch (...) {
    close(fd);
    unlink(temp.c_str());
    throw;
  }
  // A new file as open(2) would make it: `mode` less the umask. A replaced file keeps its
  // permissions, as writing it in place would, but never more than `mode` (a file the user made
  // private stays private when written again; credentials stay 0600).
  mode_t permissions = static_cast<mode_t>(mode) & ~current_umask();
  std::error_code status_error;
  const fs::file_status replaced = fs::status(path, status_error);
  if (!status_error && fs::is_regular_file(replaced))
    permissions = static_cast<mode_t>(mode) & static_cast<mode_t>(replaced.permissions()) & 07777;
  if (fchmod(fd, permissions) != 0) cleanup_and_fail("chmod failed");
  if (fsync(fd) != 0) cleanup_and_fail("fsync failed");
  // Renamed while still open: the lock marks the temp file as being written until it has its
  // final name, so that no remove_abandoned_writes takes it for a dead writer's.
  if (std::rename(temp.c_str(), path.c_str()) != 0) cleanup_and_fail("rename failed");
  // The data is on disk under its name (fsync above); a failing close can only be reported.
  MS_CHECK(close(fd) == 0, ErrorCode::kIo, "{}: close failed after writing: {}", path.string(),
           std::strerror(errno));
}

}  // namespace ms

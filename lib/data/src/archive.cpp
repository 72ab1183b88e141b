// Zip extraction with path checks, size and entry limits, and an atomic rename into place.
#include "ms/data/archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>
#include <vector>

#include "dataset_formats.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/hub/repo_id.h"
#include "ms/hub/sha256.h"

#if MS_WITH_ZIP
#include <zip.h>
#include <zlib.h>
#endif

namespace fs = std::filesystem;

namespace ms::data {

ExtractLimits ExtractLimits::from_env() {
  ExtractLimits limits;
  auto read = [](const char* name, std::uint64_t& out) {
    if (auto v = env_var(name)) {
      try {
        std::size_t used = 0;
        const unsigned long long n = std::stoull(*v, &used);
        MS_CHECK(used == v->size(), ErrorCode::kUsage, "{}={} is not a number", name, *v);
        out = n;
      } catch (const std::logic_error&) {
        fail(ErrorCode::kUsage, "{}={} is not a number", name, *v);
      }
    }
  };
  read("MS_DATASET_MAX_EXTRACT_BYTES", limits.max_bytes);
  read("MS_DATASET_MAX_EXTRACT_ENTRIES", limits.max_entries);
  read("MS_DATASET_MAX_EXTRACT_RATIO", limits.max_ratio);
  return limits;
}

bool zip_supported() { return MS_WITH_ZIP != 0; }

std::string data_file_extension(const fs::path& path) {
  const std::string ext = detail::lower_extension(path);
  return ext == ".gz" ? detail::lower_extension(path.stem()) : ext;
}

namespace {

// A text file saved as UTF-16 (Excel's "Unicode text", Windows Notepad) starts with its
// byte-order mark; said as such rather than as "invalid UTF-8" at line 1.
void refuse_utf16(std::string_view text, const fs::path& path) {
  if (text.size() < 2) return;
  const auto b0 = static_cast<unsigned char>(text[0]), b1 = static_cast<unsigned char>(text[1]);
  if ((b0 == 0xFF && b1 == 0xFE) || (b0 == 0xFE && b1 == 0xFF)) {
    throw Error(ErrorCode::kIntegrity,
                fmt::format("{} is UTF-16 text (it starts with a UTF-16 byte-order mark); data "
                            "files are read as UTF-8",
                            path.string()),
                fmt::format("convert it: iconv -f UTF-16 -t UTF-8 '{}' > 'converted{}'",
                            path.string(), data_file_extension(path)));
  }
}

// The compression a data file's first bytes name ("gzip", "bzip2", "xz", "zstd", "lz4", "zip"),
// or null for plain text. By the bytes, as Hugging Face's datasets tells compression
// ("train.csv.bak" may be gzip, "train.csv.gz" may be plain): no text file starts with these.
const char* compression_of(std::string_view bytes) {
  const auto starts = [bytes](std::string_view magic) {
    return bytes.size() >= magic.size() && bytes.compare(0, magic.size(), magic) == 0;
  };
  for (const auto& [magic, kind] : {std::pair<std::string_view, const char*>{"\x1F\x8B", "gzip"},
                                    {"BZh", "bzip2"},
                                    {std::string_view("\xFD"
                                                      "7zXZ\0",
                                                      6),
                                     "xz"},
                                    {"\x28\xB5\x2F\xFD", "zstd"},
                                    {"\x04\x22\x4D\x18", "lz4"},
                                    {"PK\x03\x04", "zip"}}) {
    // "BZh" then a block size digit: bzip2 (a CSV could start with "BZh" as text otherwise).
    if (starts(magic) && (std::string_view(kind) != "bzip2" ||
                          (bytes.size() > 3 && bytes[3] >= '1' && bytes[3] <= '9')))
      return kind;
  }
  return nullptr;
}

}  // namespace

DataFileStart read_data_file_start(const fs::path& path, std::size_t max_bytes,
                                   const ExtractLimits& limits) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!ec && fs::is_regular_file(status)) {
    const std::uintmax_t size = fs::file_size(path, ec);
    if (!ec && size > max_bytes) {
      std::ifstream in(path, std::ios::binary);
      std::string start(max_bytes, '\0');
      in.read(start.data(), static_cast<std::streamsize>(max_bytes));
      MS_CHECK(in.good(), ErrorCode::kIo, "{}: read failed: {}", path.string(),
               std::strerror(errno));
      if (compression_of(start) == nullptr) {
        refuse_utf16(start, path);
        return {std::move(start), false};
      }
    }
  }
  // Compressed (a start of the packed bytes says nothing of the rows), a pipe, or short.
  return {read_data_file(path, limits), true};
}

std::string read_data_file(const fs::path& path, const ExtractLimits& limits) {
  // A device never ends (/dev/zero grew to 7 GB before the kernel killed ms). A FIFO is read as a
  // pipe is, to its writer's end: `csv:/dev/stdin` after a `|` is a shell user's way in.
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!ec &&
      (fs::is_character_file(status) || fs::is_block_file(status) || fs::is_socket(status))) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} is a {}, not a data file", path.string(),
                            fs::is_socket(status) ? "socket" : "device"),
                "name a CSV, TSV or JSON lines file (a pipe is read to its end: `... | ms dataset "
                "head csv:/dev/stdin`)");
  }
  return decode_data_file(read_file(path), path, limits);
}

std::string decode_data_file(std::string packed, const fs::path& path,
                             const ExtractLimits& limits) {
  const char* compression = compression_of(packed);
  if (compression != nullptr && std::string_view(compression) != "gzip") {
    throw Error(ErrorCode::kMissingComponent,
                fmt::format("{}: {} data is not read (Hugging Face's datasets decompresses "
                            "it; ms reads gzip)",
                            path.string(), compression),
                "decompress it first, or recompress it with gzip");
  }
  if (compression == nullptr) {
    refuse_utf16(packed, path);
    return packed;
  }
#if MS_WITH_ZIP
  z_stream zs{};
  MS_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, ErrorCode::kInternal,
           "zlib: cannot start inflating {}", path.string());
  struct End {
    z_stream& zs;
    ~End() { inflateEnd(&zs); }
  } end{zs};
  auto corrupt = [&](const std::string& what) {
    throw Error(ErrorCode::kIntegrity, fmt::format("{}: {}", path.string(), what),
                "the file is not whole gzip data: download it again, or decompress it (gunzip) "
                "to see what is wrong");
  };
  auto too_big = [&](const std::string& what) {
    throw Error(ErrorCode::kIntegrity, fmt::format("{}: {}", path.string(), what),
                "a decompression bomb, or a genuine file past the limit: raise the variable "
                "named if the file is to be trusted");
  };
  std::string out;
  std::uint64_t offset = 0;
  // gzip members one after another (`cat a.gz b.gz`) are one stream, as gunzip reads them.
  while (offset < packed.size()) {
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(packed.data() + offset));
    zs.avail_in = static_cast<uInt>(std::min<std::uint64_t>(packed.size() - offset, 1u << 30));
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      if (out.size() + (1u << 20) > out.capacity())
        out.reserve(std::max<std::size_t>(out.capacity() * 2, 1u << 20));
      const std::size_t before = out.size();
      out.resize(out.capacity());
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + before);
      zs.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - before, 1u << 30));
      rc = inflate(&zs, Z_NO_FLUSH);
      out.resize(out.size() - zs.avail_out);
      if (rc == Z_BUF_ERROR && zs.avail_in == 0) corrupt("the gzip data ends early");
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        corrupt(fmt::format("corrupt gzip data ({})", zs.msg != nullptr ? zs.msg : "zlib error"));
      if (out.size() > limits.max_bytes)
        too_big(fmt::format("decompresses to more than {} bytes (MS_DATASET_MAX_EXTRACT_BYTES)",
                            limits.max_bytes));
      if (limits.max_ratio != 0 && out.size() > limits.ratio_floor &&
          out.size() / std::max<std::uint64_t>(packed.size(), 1) > limits.max_ratio)
        too_big(
            fmt::format("decompresses to more than {} bytes per compressed byte "
                        "(MS_DATASET_MAX_EXTRACT_RATIO)",
                        limits.max_ratio));
    }
    offset = packed.size() - zs.avail_in;
    // Zero padding after the last member (tar-style blocks) ends the stream.
    if (packed.find_first_not_of('\0', offset) == std::string::npos) break;
    MS_CHECK(inflateReset(&zs) == Z_OK, ErrorCode::kInternal, "zlib: cannot reset");
  }
  refuse_utf16(out, path);
  return out;
#else
  (void)limits;
  throw Error(ErrorCode::kMissingComponent,
              fmt::format("{}: gzip-compressed data cannot be read: this ms was built without "
                          "MS_WITH_ZIP",
                          path.string()),
              "decompress it first (gunzip), or rebuild with -DMS_WITH_ZIP=ON");
#endif
}

namespace {
// An extraction is written in ".NAME" + this + six characters beside its folder NAME, held with
// lock_folder() until renamed into place: a folder of that name whose lock can be taken is a
// killed extraction's (Ctrl-C, SIGKILL), which the next read of the same archive removes.
constexpr std::string_view kExtractTempInfix = ".ms-extract-";
}  // namespace

#if MS_WITH_ZIP
namespace {

[[noreturn]] void bad_archive(const fs::path& zip_path, const std::string& what) {
  throw Error(ErrorCode::kIntegrity, fmt::format("{}: {}", zip_path.string(), what),
              "the archive is unsafe or corrupt; it was not extracted");
}

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct FileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

// What an archive has written so far, against its limits.
struct Budget {
  const ExtractLimits& limits;
  std::uint64_t archive_size;  // the zip file's size on disk: a fact, unlike header fields
  std::uint64_t total = 0;     // bytes written for all entries so far
};

[[noreturn]] void too_compressed(const fs::path& zip_path, const std::string& what,
                                 std::uint64_t written, std::uint64_t compressed,
                                 std::uint64_t ratio) {
  throw Error(ErrorCode::kIntegrity,
              fmt::format("{}: {} inflates to more than {} times its compressed size ({} bytes "
                          "from {}): a zip bomb?",
                          zip_path.string(), what, ratio, written, compressed),
              "nothing was extracted; if you trust the archive, raise "
              "MS_DATASET_MAX_EXTRACT_RATIO (0 turns the ratio check off)");
}

// `compressed` is the entry's compressed size as the central directory gives it, capped at the
// archive's size: libzip feeds the inflater no more than that for the entry, so a lying header can
// only loosen the per-entry ratio, never the per-archive one (which uses the file's real size).
// Uncompressed sizes in the headers play no part: only the bytes written are counted.
void write_entry(zip_t* archive, zip_uint64_t index, const fs::path& zip_path,
                 const std::string& name, const fs::path& target, std::uint64_t compressed,
                 Budget& budget) {
  const ExtractLimits& limits = budget.limits;
  std::uint64_t& total = budget.total;
  std::uint64_t written = 0;
  std::unique_ptr<zip_file_t, FileCloser> file(zip_fopen_index(archive, index, 0));
  if (!file) bad_archive(zip_path, fmt::format("entry '{}': {}", name, zip_strerror(archive)));
  const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 && (errno == EEXIST || errno == EISDIR || errno == ENOTDIR)) {
    bad_archive(zip_path, fmt::format("entry '{}' clashes with an earlier entry ({})", name,
                                      std::strerror(errno)));
  }
  if (fd < 0) {
    throw Error(ErrorCode::kIo,
                fmt::format("cannot create '{}': {}", target.string(), std::strerror(errno)));
  }
  std::vector<char> buffer(1 << 16);
  while (true) {
    const zip_int64_t n = zip_fread(file.get(), buffer.data(), buffer.size());
    if (n < 0) {
      ::close(fd);
      bad_archive(zip_path, fmt::format("entry '{}': {}", name, zip_file_strerror(file.get())));
    }
    if (n == 0) break;
    // Count actual bytes: the sizes in the directory are the archive's claim, not a fact.
    total += static_cast<std::uint64_t>(n);
    written += static_cast<std::uint64_t>(n);
    if (total > limits.max_bytes) {
      ::close(fd);
      bad_archive(zip_path,
                  fmt::format("extracts to more than {} bytes (MS_DATASET_MAX_EXTRACT_BYTES)",
                              limits.max_bytes));
    }
    if (limits.max_ratio > 0) {
      // Divisions rather than products, which could overflow for a huge ratio setting.
      if (written > limits.ratio_floor && written / limits.max_ratio > compressed) {
        ::close(fd);
        too_compressed(zip_path, fmt::format("entry '{}'", name), written, compressed,
                       limits.max_ratio);
      }
      if (total > limits.ratio_floor && total / limits.max_ratio > budget.archive_size) {
        ::close(fd);
        too_compressed(zip_path, "the archive", total, budget.archive_size, limits.max_ratio);
      }
    }
    for (zip_int64_t done = 0; done < n;) {
      const ssize_t w = ::write(fd, buffer.data() + done, static_cast<std::size_t>(n - done));
      if (w < 0) {
        const int err = errno;
        ::close(fd);
        throw Error(ErrorCode::kIo,
                    fmt::format("cannot write '{}': {}", target.string(), std::strerror(err)));
      }
      done += w;
    }
  }
  if (::close(fd) != 0) {
    throw Error(ErrorCode::kIo,
                fmt::format("cannot write '{}': {}", target.string(), std::strerror(errno)));
  }
}

bool is_link_entry(zip_t* archive, zip_uint64_t index) {
  zip_uint8_t opsys = 0;
  zip_uint32_t attributes = 0;
  if (zip_file_get_external_attributes(archive, index, 0, &opsys, &attributes) != 0) return false;
  return opsys == ZIP_OPSYS_UNIX && S_ISLNK(attributes >> 16);
}

bool climbs_or_absolute(const std::string& target) {
  if (target.empty() || target[0] == '/' || target.find('\\') != std::string::npos) return true;
  std::size_t start = 0;
  while (start <= target.size()) {
    std::size_t end = target.find('/', start);
    if (end == std::string::npos) end = target.size();
    if (target.compare(start, end - start, "..") == 0) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

void extract_zip(const fs::path& zip_path, const fs::path& dest, const ExtractLimits& limits) {
  int error = 0;
  std::unique_ptr<zip_t, ZipCloser> archive(
      zip_open(zip_path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &error));
  if (!archive) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, error);
    const std::string message = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    if (error == ZIP_ER_NOENT || error == ZIP_ER_OPEN) {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("cannot open zip '{}': {}", zip_path.string(), message));
    }
    bad_archive(zip_path, "not a readable zip archive: " + message);
  }
  const zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  if (static_cast<std::uint64_t>(count) > limits.max_entries) {
    bad_archive(
        zip_path,
        fmt::format("{} entries is more than the limit of {} (MS_DATASET_MAX_EXTRACT_ENTRIES)",
                    count, limits.max_entries));
  }
  // Check every name and the declared sizes before writing anything.
  std::uint64_t declared = 0;
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t st;
    if (zip_stat_index(archive.get(), i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME)) {
      bad_archive(zip_path, fmt::format("entry {} is unreadable", i));
    }
    std::string name = st.name;
    if (!name.empty() && name.back() == '/') name.pop_back();
    if (!hub::is_safe_repo_path(name)) {
      bad_archive(zip_path, fmt::format("unsafe entry name '{}' (absolute, '..' or odd characters)",
                                        st.name));
    }
    if (st.valid & ZIP_STAT_SIZE) declared += st.size;
  }
  if (declared > limits.max_bytes) {
    bad_archive(
        zip_path,
        fmt::format("declares {} bytes, more than the limit of {} (MS_DATASET_MAX_EXTRACT_BYTES)",
                    declared, limits.max_bytes));
  }

  std::error_code size_error;
  Budget budget{limits, static_cast<std::uint64_t>(fs::file_size(zip_path, size_error))};
  if (size_error) {
    throw Error(ErrorCode::kIo,
                fmt::format("cannot stat '{}': {}", zip_path.string(), size_error.message()));
  }
  if (!dest.parent_path().empty()) fs::create_directories(dest.parent_path());
  const LockedTempFolder made = make_locked_temp_folder(
      dest, kExtractTempInfix, "check that the cache folder is writable and has free space");
  const std::string temp = made.path.string();
  try {
    std::vector<std::pair<std::string, std::string>> links;  // made last: name, target
    for (zip_int64_t i = 0; i < count; ++i) {
      std::string name = zip_get_name(archive.get(), i, 0);
      try {
        const bool is_dir = !name.empty() && name.back() == '/';
        if (is_dir) name.pop_back();
        const fs::path target = fs::path(temp) / name;
        if (is_dir) {
          fs::create_directories(target);
          continue;
        }
        fs::create_directories(target.parent_path());
        if (is_link_entry(archive.get(), i)) {
          std::unique_ptr<zip_file_t, FileCloser> file(zip_fopen_index(archive.get(), i, 0));
          if (!file) bad_archive(zip_path, fmt::format("entry '{}' is unreadable", name));
          std::string link(4096, '\0');
          const zip_int64_t n = zip_fread(file.get(), link.data(), link.size());
          if (n <= 0 || n >= static_cast<zip_int64_t>(link.size())) {
            bad_archive(zip_path, fmt::format("symlink entry '{}' is unreadable", name));
          }
          link.resize(static_cast<std::size_t>(n));
          if (climbs_or_absolute(link)) {
            bad_archive(zip_path,
                        fmt::format("symlink '{}' -> '{}' points outside the archive", name, link));
          }
          links.emplace_back(name, link);
          continue;
        }
        zip_stat_t st;
        zip_stat_init(&st);
        std::uint64_t compressed = budget.archive_size;
        if (zip_stat_index(archive.get(), i, 0, &st) == 0 && (st.valid & ZIP_STAT_COMP_SIZE))
          compressed = std::min<std::uint64_t>(st.comp_size, budget.archive_size);
        write_entry(archive.get(), i, zip_path, name, target, compressed, budget);
      } catch (const fs::filesystem_error& e) {
        bad_archive(zip_path, fmt::format("entry '{}' clashes with an earlier entry ({})", name,
                                          e.code().message()));
      }
    }
    for (const auto& [name, link] : links) {
      std::error_code link_error;
      fs::create_symlink(link, fs::path(temp) / name, link_error);
      if (link_error) {
        bad_archive(zip_path, fmt::format("symlink entry '{}' clashes with an earlier entry ({})",
                                          name, link_error.message()));
      }
    }
    std::error_code ec;
    fs::rename(temp, dest, ec);
    if (ec) {
      // Another process finished the same extraction first: keep theirs.
      fs::remove_all(temp);
      if (!fs::is_directory(dest)) {
        throw Error(ErrorCode::kIo, fmt::format("cannot move extracted '{}' to '{}': {}", temp,
                                                dest.string(), ec.message()));
      }
    }
    ::close(made.lock);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(temp, ec);
    ::close(made.lock);
    throw;
  }
}
#else
void extract_zip(const fs::path& zip_path, const fs::path&, const ExtractLimits&) {
  throw Error(ErrorCode::kMissingComponent,
              fmt::format("cannot read '{}': zip support is not built in", zip_path.string()),
              "rebuild with -DMS_WITH_ZIP=ON (Debian package libzip-dev)");
}
#endif

fs::path extract_zip_cached(const fs::path& zip_path, const fs::path& cache_root) {
  std::error_code ec;
  MS_CHECK(fs::is_regular_file(zip_path, ec), ErrorCode::kNotFound, "zip file '{}' does not exist",
           zip_path.string());
  // Hashing a large archive on every load is slow: remember the digest per (path, size, mtime).
  struct stat st {};
  MS_CHECK(::stat(zip_path.c_str(), &st) == 0, ErrorCode::kIo, "cannot stat '{}': {}",
           zip_path.string(), std::strerror(errno));
  const std::string stat_key = hub::sha256_hex(
      fmt::format("{}\n{}\n{}.{}", fs::absolute(zip_path).lexically_normal().string(),
                  static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
                  static_cast<long long>(st.st_mtim.tv_nsec)));
  const fs::path memo = cache_root / ".digests" / stat_key.substr(0, 32);
  std::string digest;
  if (fs::is_regular_file(memo, ec)) {
    digest = read_file(memo);
    if (digest.size() != 64 || digest.find_first_not_of("0123456789abcdef") != std::string::npos) {
      digest.clear();
    }
  }
  if (digest.empty()) {
    digest = hub::sha256_file(zip_path);
    write_file_atomic(memo, digest);
  }
  const fs::path dest = cache_root / digest.substr(0, 16);
  // What an extraction of this archive killed on its way left (it had not finished).
  const std::size_t removed = remove_abandoned_folders(dest, kExtractTempInfix);
  if (removed > 0) {
    log::info("{}: removed {} unfinished extraction(s) of a stopped run", dest.string(), removed);
  }
  if (fs::is_directory(dest, ec)) {
    log::info("reusing extracted {} at {}", zip_path.string(), dest.string());
    return dest;
  }
  fs::create_directories(cache_root);
  log::info("extracting {} into {}", zip_path.string(), dest.string());
  extract_zip(zip_path, dest);
  return dest;
}

}  // namespace ms::data

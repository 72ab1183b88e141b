#include "ms/hub/download.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_set>

#include "download_writers.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/progress.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/hub/cache.h"
#include "ms/hub/sha256.h"
#include "ms/hub/sha256_checkpoints.h"
#include "test_stops.h"

namespace ms::hub {
namespace fs = std::filesystem;

bool path_matches(const std::string& path, const std::string& pattern) {
  std::string p = pattern;
  if (!p.empty() && p.back() == '/') p += '*';
  return ::fnmatch(p.c_str(), path.c_str(), 0) == 0;
}

bool selected_by_patterns(const std::string& path, const std::vector<std::string>& include,
                          const std::vector<std::string>& exclude) {
  for (const std::string& p : exclude) {
    if (path_matches(path, p)) return false;
  }
  if (include.empty()) return true;
  for (const std::string& p : include) {
    if (path_matches(path, p)) return true;
  }
  return false;
}

namespace {

constexpr int kHashAttempts = 3;

// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// Names the folder and the options that choose it: the usual cause is a --local-dir,
// --cache-dir or MODELSCOPE_CACHE this user cannot write.
[[noreturn]] void cannot_create_folder(const fs::path& folder, const std::error_code& ec) {
  const bool too_long = ec == std::errc::filename_too_long;
  throw Error(ErrorCode::kIo,
              fmt::format("{}: cannot create folder: {}", folder.string(),
                          folder_creation_failure(folder, ec)),
              too_long ? "the repo's folders nest deeper than this file system takes (PATH_MAX "
                         "4096 bytes, 255 per name): a shorter --local-dir may do, or fetch "
                         "other files with --include"
                       : "choose a --local-dir / --cache-dir / MODELSCOPE_CACHE that this user "
                         "can write");
}

struct Failure {
  std::string path;
  Error error;
};

// Shared state of one download run.
struct Run {
  const DownloadOptions& options;
  HubClient& client;
  RepoCache& cache;
  const CacheLayout& layout;
  std::string revision;
  Progress* progress = nullptr;
  std::mutex mutex;  // guards cache and failures
  std::vector<Failure> failures;
  std::atomic<std::uint64_t> fetched{0};
  std::chrono::steady_clock::time_point last_save{};
  bool unsaved = false;

  void record_failure(const std::string& path, const Error& e) {
    std::lock_guard<std::mutex> lock(mutex);
    failures.push_back({path, e});
  }
  void commit(const FileEntry& entry, const fs::path& temp) {
    std::lock_guard<std::mutex> lock(mutex);
    // Rewriting the index after every file is quadratic for repos of thousands of files, so it
    // is saved at most every half second here, and once more at the end of the run.
    const auto now = std::chrono::steady_clock::now();
    const bool save = now - last_save >= std::chrono::milliseconds(500);
    cache.put(entry.path, entry.revision, temp, save);
    if (save) last_save = now;
    unsaved = !save;
    // Per-file report above the total bar, on a terminal only.
    if (progress != nullptr && Progress::enabled()) {
      std::fprintf(stderr, "\r\033[K  %s (%s)\n", entry.path.c_str(),
                   Progress::format_bytes(static_cast<double>(entry.size)).c_str());
    }
  }
  void advance(std::uint64_t n) {
    fetched.fetch_add(n);
    if (progress != nullptr) progress->advance(n);
  }
};

// The file's sha256 in a fresh listing of the revision: "" when the listing fails or no longer
// has the file.
std::string sha256_listed_now(Run& run, const FileEntry& entry) {
  try {
    for (const FileEntry& e : run.client.list_files(run.options.type, run.options.repo,
                                                    run.revision, HubClient::Missing::kExpected)) {
      if (e.path == entry.path) return e.sha256;
    }
  } catch (const Error& e) {
    log::info("{}: could not list the repo again to check for a change: {}", entry.path, e.what());
  }
  return "";
}

// Other bytes than the listing promised, and a fresh listing names another version: a commit
// to the branch landed since the listing. snapshot_download() then lists again and goes on.
[[noreturn]] void changed_on_hub(const FileEntry& entry, const std::string& listed_now) {
  throw Error(ErrorCode::kIntegrity,
              fmt::format("{}: changed on the hub during the download (listed sha256 {}, now {})",
                          entry.path, entry.sha256, listed_now),
              "run the command again to fetch the new version (--revision with a tag is not "
              "changed by commits); nothing was stored in the cache");
}

// After every try gave other bytes than the listing promised: either the file changed on the hub
// since the listing, or the hub serves corrupt data. A fresh listing tells them apart, so the
// hint says the right thing.
[[noreturn]] void integrity_failure(Run& run, const FileEntry& entry, const std::string& got) {
  const std::string listed_now = sha256_listed_now(run, entry);
  if (!listed_now.empty() && listed_now != entry.sha256) changed_on_hub(entry, listed_now);
  throw Error(ErrorCode::kIntegrity,
              fmt::format("{}: sha256 mismatch after {} tries (expected {}, got {})", entry.path,
                          kHashAttempts, entry.sha256, got),
              "the hub serves corrupt data for this file; nothing was stored in the cache");
}

// Clears the temp area's way for `path`: partial files of an earlier run can sit where a folder
// must go, or a folder of them where the file goes, when the hub changed a folder into a file or
// the reverse. The temp area is ms's own, so they are just removed.
void clear_temp_path(const fs::path& temp_dir, const std::string& path) {
  std::error_code ec;
  fs::path p = temp_dir;
  const std::vector<std::string> segments = split(path, '/');
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    p /= segments[i];
    const auto status = fs::symlink_status(p, ec);
    if (fs::exists(status) && !fs::is_directory(status)) fs::remove(p, ec);
  }
  const fs::path target = temp_dir / path;
  if (fs::is_directory(fs::symlink_status(target, ec))) fs::remove_all(target, ec);
}

// A whole file whose chain of checkpointed intervals broke: either the data or the hub's
// checkpoints are wrong. One chain over the file on disk tells which, without fetching it again.
std::string digest_after_broken_chain(const std::string& what, const Sha256ChainResult& chain,
                                      int fd, std::uint64_t size, const fs::path& path) {
  log::warn(
      "{}: bytes {}-{} do not end in the hub's sha256 checkpoint; hashing the whole file "
      "in one chain",
      what, chain.bad_from, chain.bad_to - 1);
  Sha256 hasher;
  hasher.update_from_file(fd, size, path);
  return hasher.hex_digest();
}

// Threads that hash one big file from the hub's sha256 checkpoints: the cores left over by the
// receiving thread and (for a local hub) the server, up to 4 (4 x 1.3 GB/s outruns any link);
// under 2, the file is hashed in one chain. Ranged parts take at least 2: their bytes land all
// over the file, and one chain following the contiguous prefix leaves most of it for a pass at
// the end (2 GiB in 8 parts on 2 cores: 3.2-3.8 s with 2 threads, 4.0-4.3 s in one chain).
// MS_HASH_LANES=N (1-16) overrides, for tests.
std::size_t hash_lanes(bool ranged_parts) {
  if (auto n = env_whole_number("MS_HASH_LANES", 1, 16)) return static_cast<std::size_t>(*n);
  const unsigned cores = std::thread::hardware_concurrency();
  const std::size_t spare = cores >= 4 ? std::min<std::size_t>(cores - 2, 4) : 1;
  return ranged_parts ? std::max<std::size_t>(spare, 2) : spare;
}

// Single-stream download into `<temp_dir>/<Path>` (the same temp path Python uses, so either
// client resumes the other's partial file), hashing while streaming. `use_checkpoints` false
// hashes in one chain whatever the hub sends (its checkpoints failed before).
void fetch_whole(Run& run, const FileEntry& entry, bool use_checkpoints = true) {
  const fs::path temp = run.layout.temp_dir / entry.path;
  std::error_code ec;
  clear_temp_path(run.layout.temp_dir, entry.path);
  fs::create_directories(temp.parent_path(), ec);
  if (ec) cannot_create_folder(temp.parent_path(), ec);
  const std::string url =
      run.client.file_url(run.options.type, run.options.repo, run.revision, entry.path);
  std::string last_digest;
  // Once an interval failed its checkpoint, later tries hash in one chain: checkpoints that are
  // wrong while the data is right then cost one more transfer, not the download.
  for (int attempt = 0; attempt < kHashAttempts; ++attempt) {
    Fd fd(::open(temp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666));
    if (fd.fd < 0) fail(ErrorCode::kIo, "{}: cannot open: {}", temp.string(), std::strerror(errno));
    struct stat st {};
    ::fstat(fd.fd, &st);
    std::uint64_t have = static_cast<std::uint64_t>(st.st_size);
    if (have > entry.size) {
      if (::ftruncate(fd.fd, 0) != 0) fail(ErrorCode::kIo, "{}: truncate failed", temp.string());
      have = 0;
    }
    Sha256 hasher;
    if (have > 0) {
      // The resumed prefix is hashed from disk so the digest covers the whole file.
      hasher.update_from_file(fd.fd, have, temp);
      log::info("{}: resuming at byte {} of {}", entry.path, have, entry.size);
      run.advance(0);
    }
    std::uint64_t written = 0;
    std::optional<Sha256ChainResult> chain;  // from the checkpointed hash, when it ran
    if (have < entry.size) {
      std::uint64_t offset = have;
      // Big files are hashed on a second thread, as they arrive. On 2 cores shared with a local
      // hub this took a 2 GiB file from 2.36-2.71 s (hashed inline) to about 1.6 s (curl -o:
      // 1.34-1.71 s); one core has no second thread to give.
      bool threaded = entry.size - have >= (8u << 20) && std::thread::hardware_concurrency() >= 2;
      if (auto force = env_whole_number("MS_HASH_THREAD", 0, 1)) threaded = *force == 1;
      std::string checkpoints_header;  // the response's, known once its first byte is here
      std::optional<HashingWriter> out;
      DataSink sink = [&](const char* data, std::size_t n) {
        if (offset + n > entry.size) return false;
        if (!out) {
          std::optional<Sha256Checkpoints> checkpoints;
          const std::size_t lanes = hash_lanes(false);
          if (have == 0 && threaded && use_checkpoints && lanes >= 2)
            checkpoints = Sha256Checkpoints::parse(checkpoints_header, entry.size);
          if (checkpoints) {
            out.emplace(fd.fd, entry.size, temp, *checkpoints, lanes);
          } else {
            out.emplace(fd.fd, have, entry.size - have, temp, hasher, threaded);
          }
        }
        out->append(data, n);
        offset += n;
        run.advance(n);
        return true;
      };
      try {
        run.client.download_range(url, have, entry.size, sink, written, entry.size,
                                  &checkpoints_header);
      } catch (const Error&) {
        if (out) out->abandon();  // what arrived is valid: keep it for the next run to resume from
        throw;
      }
      if (out) {
        out->finish();
        if (out->checkpointed()) chain = out->chain_result();
      }
    }
    const std::uint64_t total = have + written;
    const bool size_ok = total == entry.size;
    std::string digest;
    if (!chain) {
      digest = hasher.hex_digest();
    } else if (chain->held) {
      digest = chain->digest;
    } else if (size_ok) {
      digest = digest_after_broken_chain(entry.path, *chain, fd.fd, total, temp);
      use_checkpoints = false;  // a re-fetch, if the data was bad, hashes in one chain too
    }
    const bool hash_ok = !digest.empty() && (entry.sha256.empty() || digest == entry.sha256);
    if (size_ok && hash_ok) {
      run.commit(entry, temp);
      return;
    }
    last_digest = digest;
    ::unlink(temp.c_str());
    // A new version on the hub comes again on every try: fetching it twice more would only
    // waste the transfers.
    if (!entry.sha256.empty()) {
      const std::string listed_now = sha256_listed_now(run, entry);
      if (!listed_now.empty() && listed_now != entry.sha256) changed_on_hub(entry, listed_now);
    }
    log::warn(
        "{}: {} (try {}/{}); fetching it again", entry.path,
        size_ok ? "sha256 mismatch" : fmt::format("got {} bytes, expected {}", total, entry.size),
        attempt + 1, kHashAttempts);
  }
  integrity_failure(run, entry, last_digest);
}

// A ranged download's data and progress files, next to the single-stream temp path.
constexpr const char* kPartialSuffix = ".ms-partial";
constexpr const char* kPartsSuffix = ".ms-parts";

// Ranged, parallel download of one big file. The data goes into `<temp>.ms-partial` at its
// offsets; `<temp>.ms-parts` records how many bytes of each part are on disk, so a killed run
// resumes every part where it stopped. The hash starts with the first bytes to arrive: one
// thread follows the contiguous prefix, or, with the hub's sha256 checkpoints, each interval is
// hashed from its own start as its bytes land, on several threads, so no second pass over the
// whole file is left for the end.
class PartedFile {
 public:
  PartedFile(Run& run, FileEntry entry, int parts) : run_(run), entry_(std::move(entry)) {
    const fs::path base = run.layout.temp_dir / entry_.path;
    data_path_ = base.string() + kPartialSuffix;
    state_path_ = base.string() + kPartsSuffix;
    // Rounded up without overflow; never 0, so the loop below ends whatever the size.
    const std::uint64_t part =
        std::max<std::uint64_t>(1, entry_.size / parts + (entry_.size % parts != 0 ? 1 : 0));
    for (std::uint64_t start = 0; start < entry_.size; start += part) {
      parts_.push_back({start, std::min(entry_.size, start + part)});
    }
    done_.reset(new std::atomic<std::uint64_t>[parts_.size()]);
    url_ = run.client.file_url(run.options.type, run.options.repo, run.revision, entry_.path);
  }

  // Normally finish() has joined the hashers and closed the files; this covers a run cut short.
  ~PartedFile() {
    abort_.store(true);
    join_hashers();
    if (data_fd_ >= 0) ::close(data_fd_);
    if (state_fd_ >= 0) ::close(state_fd_);
  }
  PartedFile(const PartedFile&) = delete;
  PartedFile& operator=(const PartedFile&) = delete;

  std::size_t part_count() const { return parts_.size(); }

  // Opens the files and restores progress; called once before parts run.
  void open() {
    std::error_code ec;
    clear_temp_path(run_.layout.temp_dir, entry_.path);
    fs::create_directories(data_path_.parent_path(), ec);
    state_fd_ = ::open(state_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (state_fd_ < 0)
      fail(ErrorCode::kIo, "{}: cannot open: {}", state_path_.string(), std::strerror(errno));
    const std::string header =
        fmt::format("ms-parts 1 {} {} {}\n", entry_.size, parts_.size(), entry_.sha256);
    header_size_ = header.size();
    std::string existing(header.size() + parts_.size() * kRecord, '\0');
    const ssize_t n = ::pread(state_fd_, existing.data(), existing.size(), 0);
    bool resumed = n == static_cast<ssize_t>(existing.size()) &&
                   existing.compare(0, header.size(), header) == 0;
    const std::uint64_t adopted = resumed ? 0 : adopt_single_stream_partial();
    data_fd_ = ::open(data_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (data_fd_ < 0)
      fail(ErrorCode::kIo, "{}: cannot open: {}", data_path_.string(), std::strerror(errno));
    struct stat st {};
    ::fstat(data_fd_, &st);
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      const std::uint64_t span = parts_[i].end - parts_[i].start;
      std::uint64_t have = 0;
      if (resumed) {
        have = std::strtoull(existing.c_str() + header.size() + i * kRecord, nullptr, 10);
      } else if (adopted > parts_[i].start) {
        have = std::min(span, adopted - parts_[i].start);  // the prefix covers this part (or some)
      }
      // Bytes claimed but not on disk (the file is shorter) are fetched again.
      if (have > span || parts_[i].start + have > static_cast<std::uint64_t>(st.st_size)) have = 0;
      done_[i].store(have);
    }
    if (!resumed) {
      if ((adopted == 0 && ::ftruncate(data_fd_, 0) != 0) || ::ftruncate(state_fd_, 0) != 0)
        fail(ErrorCode::kIo, "{}: truncate failed", data_path_.string());
      write_all_at(state_fd_, header.data(), header.size(), 0, state_path_);
      for (std::size_t i = 0; i < parts_.size(); ++i) save(i);
    }
    std::uint64_t have = 0;
    for (std::size_t i = 0; i < parts_.size(); ++i) have += done_[i].load();
    if (have > 0)
      log::info("{}: resuming with {} of {} bytes on disk", entry_.path, have, entry_.size);
    if (::ftruncate(data_fd_, static_cast<off_t>(entry_.size)) != 0)
      fail(ErrorCode::kIo, "{}: cannot size", data_path_.string());
    remaining_.store(parts_.size());
    headers_.resize(parts_.size());
  }

  // Fetches part `i`; the worker that finishes the last part verifies and commits the file.
  void run_part(std::size_t i) {
    try {
      const Part& p = parts_[i];
      std::uint64_t written = 0;
      const std::uint64_t have = done_[i].load();
      BufferedWriter out(data_fd_, p.start + have, data_path_);
      // Each flushed MiB is recorded at once (a 21-byte pwrite), so a kill loses at most the
      // unflushed buffer of each part.
      auto landed = [&](std::size_t n) {
        if (n == 0) return;
        done_[i].fetch_add(n);
        save(i);
        wake_hasher();
      };
      DataSink sink = [&](const char* data, std::size_t n) {
        if (abort_.load()) return false;
        // The first bytes of any part bring the hub's headers: the hash can start.
        std::call_once(hashing_started_, [&] { start_hashing(headers_[i]); });
        const std::uint64_t offset = p.start + have + written;
        if (offset + n > p.end) return false;
        landed(out.append(data, n));
        run_.advance(n);
        return true;
      };
      try {
        if (p.start + have < p.end)
          run_.client.download_range(url_, p.start + have, p.end, sink, written, entry_.size,
                                     &headers_[i]);
      } catch (const Error&) {
        landed(out.flush());
        save(i);
        throw;
      }
      landed(out.flush());
      save(i);
    } catch (const Error& e) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = e;
      abort_.store(true);
    }
    wake_hasher();
    if (remaining_.fetch_sub(1) == 1) finish();
  }

 private:
  struct Part {
    std::uint64_t start;
    std::uint64_t end;
  };
  static constexpr std::size_t kRecord = 21;

  // A single-stream partial file at `<temp>` (left by Python's client, which resumes only that
  // form, or by an earlier fetch_whole) becomes the start of the parted file, so its bytes are
  // neither fetched again nor left behind in the temp area. Returns how many bytes it gave.
  std::uint64_t adopt_single_stream_partial() {
    const fs::path single = run_.layout.temp_dir / entry_.path;
    std::error_code ec;
    if (!fs::is_regular_file(fs::symlink_status(single, ec))) return 0;
    const std::uint64_t size = fs::file_size(single, ec);
    if (ec || size == 0 || size > entry_.size) {
      fs::remove(single, ec);  // empty or longer than the file: nothing to keep
      return 0;
    }
    fs::rename(single, data_path_, ec);
    if (ec) {
      log::warn("{}: cannot take over the partial file {}: {}", entry_.path, single.string(),
                ec.message());
      return 0;
    }
    return size;
  }

  void save(std::size_t i) {
    const std::string record = fmt::format("{:020d}\n", done_[i].load());
    write_all_at(state_fd_, record.data(), record.size(), header_size_ + i * kRecord, state_path_);
  }

  void wake_hasher() {
    std::lock_guard<std::mutex> lock(hash_mutex_);
    hash_cv_.notify_all();
  }

  // End of the bytes on disk without a gap from `pos` on (`pos` itself if that byte is missing).
  std::uint64_t contiguous_from(std::uint64_t pos) const {
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      if (pos >= parts_[i].end) continue;
      const std::uint64_t end = parts_[i].start + done_[i].load();
      if (end <= pos) return pos;
      if (end < parts_[i].end) return end;
      pos = parts_[i].end;  // this part is complete: go on into the next
    }
    return pos;
  }

  // Called once, with the headers of the first response to bring data, or from finish() (with
  // none) when every part was on disk already.
  void start_hashing(const std::string& checkpoints_header) {
    std::optional<Sha256Checkpoints> checkpoints;
    const std::size_t lanes = hash_lanes(true);
    if (lanes >= 2) checkpoints = Sha256Checkpoints::parse(checkpoints_header, entry_.size);
    links_ = sha256_links(checkpoints ? &*checkpoints : nullptr, entry_.size);
    const std::size_t threads = std::min(checkpoints ? lanes : 1, links_.size());
    try {
      for (std::size_t lane = 0; lane < threads; ++lane) {
        hashers_.emplace_back([this, lane, threads] { hash_links(lane, threads); });
      }
    } catch (const std::system_error& e) {  // out of threads: fail this file, not the process
      abort_.store(true);
      join_hashers();
      throw Error(ErrorCode::kIo,
                  fmt::format("{}: cannot start a hashing thread: {}", entry_.path, e.what()));
    }
    if (checkpoints) {
      log::info("{}: hashing {} intervals on {} threads from the hub's sha256 checkpoints",
                entry_.path, links_.size(), threads);
    }
  }

  // Links lane, lane + stride, ... in order, each as its bytes land on disk.
  void hash_links(std::size_t lane, std::size_t stride) {
    try {
      std::vector<char> buf(4 << 20);
      for (std::size_t k = lane; k < links_.size(); k += stride) {
        Sha256Link& link = links_[k];
        std::uint64_t pos = link.from;
        while (pos < link.to && !abort_.load()) {
          const std::uint64_t avail = std::min(link.to, contiguous_from(pos));
          if (avail <= pos) {
            std::unique_lock<std::mutex> lock(hash_mutex_);
            hash_cv_.wait_for(lock, std::chrono::milliseconds(20));
            continue;
          }
          while (pos < avail) {
            const ssize_t n =
                ::pread(data_fd_, buf.data(), std::min<std::uint64_t>(buf.size(), avail - pos),
                        static_cast<off_t>(pos));
            if (n <= 0) {
              abort_.store(true);
              break;
            }
            link.hasher.update(buf.data(), static_cast<std::size_t>(n));
            pos += static_cast<std::uint64_t>(n);
          }
        }
        if (pos < link.to) return;  // aborted
      }
    } catch (...) {  // out of memory, say: the file then counts as not hashed
      abort_.store(true);
    }
  }

  void join_hashers() {
    wake_hasher();
    for (std::thread& thread : hashers_) {
      if (thread.joinable()) thread.join();
    }
  }

  void finish() {
    try {
      std::call_once(hashing_started_, [&] { start_hashing(std::string()); });
    } catch (const Error& e) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = e;
    }
    join_hashers();
    ::close(data_fd_);
    ::close(state_fd_);
    data_fd_ = state_fd_ = -1;
    try {
      if (error_) throw *error_;
      Sha256ChainResult chain = finish_sha256_chain(links_);
      const bool complete = std::all_of(links_.begin(), links_.end(),
                                        [](const Sha256Link& link) { return link.complete(); });
      const bool checkpointed = links_.size() > 1;
      std::string digest = chain.digest;
      if (!chain.held && complete && checkpointed) {
        const int fd = ::open(data_path_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
          fail(ErrorCode::kIo, "{}: cannot open: {}", data_path_.string(), std::strerror(errno));
        Fd closer(fd);
        digest = digest_after_broken_chain(entry_.path, chain, fd, entry_.size, data_path_);
      }
      if (!digest.empty() && (entry_.sha256.empty() || digest == entry_.sha256)) {
        run_.commit(entry_, data_path_);
        ::unlink(state_path_.c_str());
        return;
      }
      log::warn("{}: sha256 mismatch after a ranged download; fetching it again as one stream",
                entry_.path);
      ::unlink(data_path_.c_str());
      ::unlink(state_path_.c_str());
      fetch_whole(run_, entry_, /*use_checkpoints=*/!checkpointed);
    } catch (const Error& e) {
      run_.record_failure(entry_.path, e);
    }
  }

  Run& run_;
  FileEntry entry_;
  std::string url_;
  fs::path data_path_;
  fs::path state_path_;
  std::vector<Part> parts_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> done_;
  std::size_t header_size_ = 0;
  int data_fd_ = -1;
  int state_fd_ = -1;
  std::atomic<std::size_t> remaining_{0};
  std::atomic<bool> abort_{false};
  std::mutex error_mutex_;
  std::optional<Error> error_;
  std::vector<std::string> headers_;  // per part: its response's X-Ms-Sha256-Checkpoints
  std::once_flag hashing_started_;
  std::vector<Sha256Link> links_;  // the file's hash chain: one link, or one per interval
  std::vector<std::thread> hashers_;
  std::mutex hash_mutex_;
  std::condition_variable hash_cv_;
};

// "the repo has 3 file(s), e.g. a, b, c": a hint for patterns or names that matched nothing.
std::string listing_hint(const std::vector<FileEntry>& listed) {
  std::vector<std::string> examples;
  for (std::size_t i = 0; i < listed.size() && i < 5; ++i) examples.push_back(listed[i].path);
  return fmt::format("the repo has {} file(s){}{}", listed.size(),
                     examples.empty() ? "" : ", e.g. ", join(examples, ", "));
}

// Git's own files in a model repo (.gitattributes, which the hub adds to every repo, and
// .gitignore, in any folder): a model download leaves them out, as Python's get_model_files
// does (modelscope up to 1.37; 1.38+ fetches them). Named exactly as a FILE, one is fetched.
bool is_git_file_of_model(const std::string& path, RepoType type) {
  if (type != RepoType::kModel) return false;
  const std::string base = path.substr(path.rfind('/') + 1);  // npos + 1 == 0: the whole path
  return base == ".gitignore" || base == ".gitattributes";
}

// What a listing is: the hub's (whose git files a model download leaves out) or the files a
// cache folder holds (what an offline run serves: the folder is what it holds).
enum class Listing { kHub, kFolder };

std::vector<FileEntry> select(const std::vector<FileEntry>& listed, const DownloadOptions& options,
                              Listing listing) {
  // A FILE that is a listed path names that file only, even where it reads as a glob too
  // ("[a].txt"), as Python's `modelscope download REPO FILE` fetches the path named.
  std::vector<bool> names_a_path(options.files.size(), false);
  for (std::size_t i = 0; i < options.files.size(); ++i) {
    for (const FileEntry& e : listed)
      names_a_path[i] = names_a_path[i] || e.path == options.files[i];
  }
  // What the hints count and name: the files a download of the whole repo would fetch.
  std::vector<FileEntry> visible;
  for (const FileEntry& e : listed) {
    if (listing == Listing::kFolder || !is_git_file_of_model(e.path, options.type))
      visible.push_back(e);
  }
  std::vector<FileEntry> out;
  std::vector<bool> file_used(options.files.size(), false);
  // Matched, then left out: by --include/--exclude, or as git's own file of a model.
  std::vector<bool> left_out_by_patterns(options.files.size(), false);
  std::vector<bool> left_out_as_git_file(options.files.size(), false);
  for (const FileEntry& e : listed) {
    bool named_exactly = false;
    std::vector<std::size_t> matching;
    for (std::size_t i = 0; i < options.files.size(); ++i) {
      const bool match =
          names_a_path[i] ? e.path == options.files[i] : path_matches(e.path, options.files[i]);
      if (!match) continue;
      matching.push_back(i);
      named_exactly = named_exactly || names_a_path[i];
    }
    if (!options.files.empty() && matching.empty()) continue;
    const bool by_patterns = !selected_by_patterns(e.path, options.include, options.exclude);
    const bool as_git_file =
        listing == Listing::kHub && !named_exactly && is_git_file_of_model(e.path, options.type);
    for (std::size_t i : matching) {
      if (by_patterns)
        left_out_by_patterns[i] = true;
      else if (as_git_file)
        left_out_as_git_file[i] = true;
      else
        file_used[i] = true;
    }
    if (!by_patterns && !as_git_file) out.push_back(e);
  }
  for (std::size_t i = 0; i < options.files.size(); ++i) {
    if (file_used[i]) continue;
    const std::string revision = options.revision.empty() ? kDefaultRevision : options.revision;
    // The file is there: saying "no such file" (with "did you mean" the same name) would send
    // the user looking in the repo for what the command itself left out.
    if (left_out_by_patterns[i]) {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("{}: every file matching '{}' at revision '{}' is left out by "
                              "--include/--exclude{}",
                              options.repo.str(), options.files[i], revision,
                              left_out_as_git_file[i] ? " or as git's own files (.gitattributes, "
                                                        ".gitignore), which model downloads "
                                                        "leave out"
                                                      : ""),
                  "drop the --include/--exclude pattern that leaves it out");
    }
    if (left_out_as_git_file[i]) {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("{}: '{}' matches only git's own files at revision '{}' "
                              "(.gitattributes, .gitignore), which model downloads leave out",
                              options.repo.str(), options.files[i], revision),
                  "name the file's path exactly to fetch it");
    }
    std::vector<std::string> names;
    for (const FileEntry& e : visible) names.push_back(e.path);
    std::string hint = did_you_mean(options.files[i], names);
    if (hint.empty()) hint = listing_hint(visible);
    throw Error(ErrorCode::kNotFound,
                fmt::format("{} has no file matching '{}' at revision '{}'", options.repo.str(),
                            options.files[i], revision),
                hint);
  }
  // Patterns that select nothing are most likely a typo; a script would otherwise go on with an
  // empty folder and fail later, far from the cause.
  if (out.empty() && !visible.empty() && (!options.include.empty() || !options.exclude.empty())) {
    std::vector<std::string> filters;
    if (!options.include.empty())
      filters.push_back(fmt::format("--include '{}'", join(options.include, ",")));
    if (!options.exclude.empty())
      filters.push_back(fmt::format("--exclude '{}'", join(options.exclude, ",")));
    throw Error(
        ErrorCode::kNotFound,
        fmt::format("no file of {} is selected by {}", options.repo.str(), join(filters, " and ")),
        listing_hint(visible));
  }
  return out;
}

// Names the first few of `names`, quoted, and how many more there are.
std::string quoted_list(const std::vector<std::string>& names) {
  constexpr std::size_t kShown = 5;
  std::vector<std::string> shown;
  for (std::size_t i = 0; i < names.size() && i < kShown; ++i)
    shown.push_back("'" + names[i] + "'");
  std::string out = join(shown, ", ");
  if (names.size() > kShown) out += fmt::format(" and {} more", names.size() - kShown);
  return out;
}

// Whether the file at `file` is the one the hub lists: the same size and, when the hub gives
// one, the same sha256 (what modelscope 1.38+ checks before it fetches a file again).
// Without a sha256 from the hub, the size alone decides only where `size_will_do`.
bool file_matches_listing(const fs::path& file, const FileEntry& entry, bool size_will_do) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec) || fs::file_size(file, ec) != entry.size || ec) return false;
  if (entry.sha256.empty()) return size_will_do;
  try {
    return sha256_file(file) == entry.sha256;
  } catch (const Error& e) {
    log::info("{}: cannot read it to check it ({}); fetching it again", file.string(), e.what());
    return false;
  }
}

// The revision folder an offline run reads from a snapshot cache, as modelscope 1.38+ picks it
// with local_files_only: the one asked for; without one, master, main, or the only one there.
fs::path offline_snapshot_dir(const DownloadOptions& options, const CacheLayout& layout) {
  if (!options.revision.empty()) return layout.repo_dir;
  const std::vector<std::string> cached = cached_revisions(layout);
  for (const char* name : {kDefaultRevision, "main"}) {
    if (std::find(cached.begin(), cached.end(), name) != cached.end())
      return layout.snapshots_dir / name;
  }
  if (cached.size() == 1) {
    log::warn("{}: no revision given; offline, the only cached one, '{}', is used",
              options.repo.str(), cached.front());
    return layout.snapshots_dir / cached.front();
  }
  if (cached.size() > 1) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("{}: no revision given and {} holds several: {}", options.repo.str(),
                            layout.snapshots_dir.string(), quoted_list(cached)),
                "pass --revision to pick one");
  }
  return layout.repo_dir;
}

// The files of a folder modelscope 1.38+ downloaded into (a snapshot folder, or a --local-dir
// without an index): everything in it but partial files and the layout's bookkeeping.
std::vector<FileEntry> files_in_folder(const CacheLayout& layout, const fs::path& dir,
                                       const std::string& revision) {
  std::vector<FileEntry> listed;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code kind_ec;
    if (!it->is_regular_file(kind_ec)) continue;
    const std::string rel = it->path().lexically_relative(dir).generic_string();
    const std::string ext = it->path().extension().string();
    if (ext == ".incomplete" || ext == ".parallel_tmp") continue;
    if (!is_safe_repo_path(rel) || is_bookkeeping_path(layout, rel)) continue;
    FileEntry f;
    f.path = rel;
    f.revision = revision;
    f.size = it->file_size(kind_ec);
    listed.push_back(f);
  }
  std::sort(listed.begin(), listed.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
  return listed;
}

// --offline: what the cache folder holds, whichever client wrote it (Python's
// local_files_only=True reads the same): an indexed folder's .msc entries that are on disk, or a
// snapshot folder's files. Nothing is fetched, so anything asked for and absent is an error that
// names every such file, not only the first.
DownloadResult offline_result(const DownloadOptions& options, CacheLayout layout) {
  std::vector<FileEntry> listed;
  std::vector<std::string> gone;  // indexed, but the file was deleted from the folder
  if (layout.kind == CacheKind::kSnapshots) {
    layout.repo_dir = offline_snapshot_dir(options, layout);
    const std::string revision =
        layout.repo_dir.lexically_relative(layout.snapshots_dir).generic_string();
    listed = files_in_folder(layout, layout.repo_dir, revision);
    if (listed.empty()) {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("{} is not in the cache ({} holds no files)", options.repo.str(),
                              layout.repo_dir.string()),
                  "download it once without --offline (and without MODELSCOPE_OFFLINE=1)");
    }
  } else {
    RepoCache cache(layout.repo_dir);
    if (cache.entries().empty() && options.local_dir) {
      // modelscope 1.38+ leaves a --local-dir without an index: its files are the snapshot.
      listed = files_in_folder(layout, layout.repo_dir,
                               options.revision.empty() ? kDefaultRevision : options.revision);
    }
    // An index with no entries is a repo downloaded with no files (only .gitattributes).
    std::error_code index_ec;
    const bool indexed_once = fs::is_regular_file(layout.repo_dir / ".msc", index_ec);
    if (cache.entries().empty() && listed.empty() && !indexed_once) {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("{} is not in the cache ({} has no .msc index)", options.repo.str(),
                              layout.repo_dir.string()),
                  "download it once without --offline (and without MODELSCOPE_OFFLINE=1)");
    }
    for (const CacheIndexEntry& e : cache.entries()) {
      std::error_code ec;
      const fs::path p = layout.repo_dir / e.path;
      if (!is_safe_repo_path(e.path)) continue;
      if (!fs::is_regular_file(p, ec)) {
        if (selected_by_patterns(e.path, options.include, options.exclude)) gone.push_back(e.path);
        continue;
      }
      FileEntry f;
      f.path = e.path;
      f.revision = e.revision;
      f.size = fs::file_size(p, ec);
      listed.push_back(f);
    }
  }
  std::vector<std::string> absent;
  for (const std::string& wanted : options.files) {
    bool found = false;
    for (const FileEntry& e : listed) {
      if (e.path == wanted || path_matches(e.path, wanted)) {
        found = selected_by_patterns(e.path, options.include, options.exclude);
        if (found) break;
      }
    }
    // A file named outright that is in the folder though nothing lists it: modelscope 1.38+
    // writes into an indexed folder without indexing, and a repo file may be named like a
    // partial (`notes.incomplete`). Python's local_files_only serves it; so does ms.
    std::error_code file_ec;
    if (!found && wanted.find_first_of("*?[") == std::string::npos && is_safe_repo_path(wanted) &&
        !is_bookkeeping_path(layout, wanted) &&
        fs::is_regular_file(layout.repo_dir / wanted, file_ec) &&
        selected_by_patterns(wanted, options.include, options.exclude)) {
      FileEntry f;
      f.path = wanted;
      f.revision = options.revision.empty() ? kDefaultRevision : options.revision;
      f.size = fs::file_size(layout.repo_dir / wanted, file_ec);
      listed.push_back(f);
      found = true;
    }
    if (!found) absent.push_back(wanted);
  }
  if (!absent.empty()) {
    std::vector<std::string> deleted;
    for (const std::string& g : gone) {
      for (const std::string& a : absent) {
        if (g == a || path_matches(g, a)) deleted.push_back(g);
      }
    }
    std::string why = deleted.empty()
                          ? ""
                          : fmt::format(" ({} recorded in .msc but deleted from the folder)",
                                        quoted_list(deleted));
    throw Error(ErrorCode::kNotFound,
                fmt::format("{}: {} of {} requested file(s) not in the cache {}: {}{}",
                            options.repo.str(), absent.size(), options.files.size(),
                            layout.repo_dir.string(), quoted_list(absent), why),
                "download them once without --offline (and without MODELSCOPE_OFFLINE=1)");
  }
  if (options.files.empty() && !gone.empty()) {
    log::warn(
        "{}: {} file(s) recorded in .msc are missing from {}: {}; run without --offline to "
        "fetch them again",
        options.repo.str(), gone.size(), layout.repo_dir.string(), quoted_list(gone));
  }
  // One version per file is kept, whichever revision fetched it last; .mv names that revision.
  // As Python's local_files_only, the files are served anyway, but a different one is said.
  const std::string cached =
      layout.kind == CacheKind::kIndexed ? cached_revision(layout.repo_dir) : "";
  if (!options.revision.empty() && !cached.empty() && cached != options.revision) {
    log::warn(
        "{}: {} was last downloaded at revision '{}', not '{}'; offline, its files are "
        "used as they are",
        options.repo.str(), layout.repo_dir.string(), cached, options.revision);
  }
  // Partial files of an interrupted download (ms's or Python's, in the temp area they share):
  // the folder may lack those files, which offline there is no listing to tell.
  std::vector<std::string> partial;
  std::error_code temp_ec;
  for (fs::recursive_directory_iterator it(layout.temp_dir, temp_ec), end;
       !temp_ec && it != end && partial.size() < 1000; it.increment(temp_ec)) {
    std::error_code type_ec;
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {  // bookkeeping (a lock folder), not a partial
      if (it->is_directory(type_ec)) it.disable_recursion_pending();
      continue;
    }
    // A ranged download's record of its parts goes with its partial file: one file, not two.
    if (name.size() > 9 && name.compare(name.size() - 9, 9, kPartsSuffix) == 0) continue;
    if (it->is_regular_file(type_ec))
      partial.push_back(it->path().lexically_relative(layout.temp_dir).generic_string());
  }
  // A partial of a file the folder holds (another download finished it: Python's, or ms's into
  // the same cache) is stale, not a gap: only the others are worth a warning.
  std::vector<std::string> stale;
  std::vector<std::string> lacking;
  for (const std::string& p : partial) {
    // A ranged download's partial is PATH.ms-partial; a single stream's (and Python's) is PATH.
    const std::string path =
        ends_with(p, kPartialSuffix) ? p.substr(0, p.size() - std::strlen(kPartialSuffix)) : p;
    const bool held = std::any_of(listed.begin(), listed.end(),
                                  [&](const FileEntry& e) { return e.path == path; });
    (held ? stale : lacking).push_back(p);
  }
  if (!lacking.empty()) {
    log::warn(
        "{}: an interrupted download left {} partial file(s) in {} ({}): offline, the cached "
        "copy may lack those files; run without --offline to finish it",
        options.repo.str(), lacking.size(), layout.temp_dir.string(), quoted_list(lacking));
  }
  if (!stale.empty()) {
    log::info(
        "{}: {} holds partial file(s) of files the cache has ({}): the cached copies are used; "
        "the next download without --offline removes the partials",
        options.repo.str(), layout.temp_dir.string(), quoted_list(stale));
  }
  DownloadResult result;
  result.local_path = layout.repo_dir;
  result.revision = options.revision.empty() ? kDefaultRevision : options.revision;
  if (layout.kind == CacheKind::kSnapshots && options.revision.empty())
    result.revision = listed.front().revision;  // the revision folder picked
  for (const FileEntry& e : select(listed, options, Listing::kFolder)) {
    result.files.push_back({e.path, e.size, true, e.revision, e.sha256});
    result.bytes_cached += e.size;
  }
  return result;
}

// Whether the endpoint's host is this machine (127.0.0.0/8, ::1, localhost).
bool is_loopback(const std::string& endpoint) {
  std::string host =
      endpoint.substr(endpoint.find("://") == std::string::npos ? 0 : endpoint.find("://") + 3);
  host = host.substr(0, host.find('/'));
  if (!host.empty() && host[0] == '[') return host.rfind("[::1]", 0) == 0;
  host = host.substr(0, host.find(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0;
}

// Removes what earlier, interrupted runs left in the temp area for files that are now in the
// cache: a single-stream partial (`<path>`, the form Python's client writes) and ms's ranged
// form (`<path>.ms-partial`, `<path>.ms-parts`). Otherwise a run killed in one form and finished
// in the other (or by the other client) leaves up to a whole file behind for good.
void discard_partials(const fs::path& temp_dir, const std::vector<DownloadedFile>& files) {
  std::error_code ec;
  if (!fs::is_directory(temp_dir, ec)) return;
  for (const DownloadedFile& f : files) {
    const fs::path base = temp_dir / f.path;
    for (const fs::path& p :
         {base, fs::path(base.string() + kPartialSuffix), fs::path(base.string() + kPartsSuffix)}) {
      if (fs::is_regular_file(fs::symlink_status(p, ec))) fs::remove(p, ec);
    }
  }
}

// Why this user cannot write to `dir` (the repo's cache folder or --local-dir, `what` names
// which, or the nearest folder above it that exists): a shared cache another user owns, or
// read-only media (EACCES, EROFS). Empty when it can.
std::string why_unwritable(const fs::path& dir, const char* what) {
  fs::path p = dir;
  std::error_code ec;
  while (!fs::exists(p, ec) && p.has_relative_path()) p = p.parent_path();
  if (::access(p.c_str(), W_OK) == 0) return {};
  const int error = errno;
  if (error != EACCES && error != EROFS && error != EPERM) return {};
  if (p == dir)
    return fmt::format("{}: cannot write to the {}: {}", dir.string(), what, std::strerror(error));
  return fmt::format("{}: cannot create the {}: cannot write to {}: {}", dir.string(), what,
                     p.string(), std::strerror(error));
}

// A cache root or --local-dir that is a file: said so, rather than as a failure to make the
// lock folder or the repo's folder inside it ("FILE/.lock: cannot create folder").
void refuse_file_as_folder(const fs::path& folder, const std::string& what,
                           const std::string& how_to_choose) {
  // The folder, or the first of its parents that exists (a cache below a file cannot be made).
  std::error_code ec;
  fs::path existing = folder;
  while (!existing.empty() && !fs::exists(existing, ec) && existing.has_parent_path() &&
         existing.parent_path() != existing)
    existing = existing.parent_path();
  if (existing.empty() || !fs::exists(existing, ec) || fs::is_directory(existing, ec)) return;
  throw Error(ErrorCode::kIo,
              existing == folder
                  ? fmt::format("{} {} is a file, not a folder", what, folder.string())
                  : fmt::format("{} {} cannot be made: {} is a file, not a folder", what,
                                folder.string(), existing.string()),
              fmt::format("{} a folder (it is created when missing)", how_to_choose));
}

// Whether a modelscope 1.38+ process is downloading `path` of the repo now: it holds its
// per-file lock (filelock's flock on `<cache root>/.lock/file_<sha256 of the key>.lock`).
bool python_is_downloading(const CacheLayout& layout, RepoType type, const RepoId& repo,
                           const std::string& path) {
  std::string key = "modelscope-hub-download-lock-v2";
  for (const std::string& part :
       {std::string("file"), std::string(type == RepoType::kModel ? "model" : "dataset"),
        repo.str(), path}) {
    key.push_back('\0');
    key += part;
  }
  const fs::path lock = layout.python_lock_dir / ("file_" + sha256_hex(key) + ".lock");
  const int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;  // never locked (or not ours to read): no download in progress
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases the shared lock, if it was taken
  return held;
}

// Removes what Python modelscope 1.38+ leaves of a file whose download it did not finish
// (`<path>.incomplete`, `<path>.parallel_tmp`, beside where the file goes) once the file is whole:
// a killed Python download finished by ms left them for good, and Python's later offline reads
// listed them as files. Not a repo file of that name (`listed`: the revision's whole listing),
// and not while a Python process downloading that file holds its lock (it would lose its
// partial mid-write and start again).
void discard_python_partials(const CacheLayout& layout, RepoType type, const RepoId& repo,
                             const std::vector<DownloadedFile>& files,
                             const std::vector<FileEntry>& listed) {
  std::unordered_set<std::string> repo_files;
  for (const FileEntry& e : listed) repo_files.insert(e.path);
  std::error_code ec;
  for (const DownloadedFile& f : files) {
    const fs::path base = layout.repo_dir / f.path;
    for (const char* suffix : {".incomplete", ".parallel_tmp"}) {
      const fs::path p(base.string() + suffix);
      if (repo_files.count(f.path + suffix) != 0) continue;
      if (!fs::is_regular_file(fs::symlink_status(p, ec))) continue;
      if (python_is_downloading(layout, type, repo, f.path)) continue;
      fs::remove(p, ec);
    }
  }
}

// Removes the empty folders the temp area keeps after its files moved into the cache.
void remove_empty_dirs(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  std::vector<fs::path> dirs;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) dirs.push_back(it->path());
  }
  // Deepest first, so a parent empties once its children are gone.
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
    return a.native().size() > b.native().size();
  });
  for (const fs::path& d : dirs) fs::remove(d, ec);  // fails (harmlessly) when not empty
}

}  // namespace

// See ms/hub/download.h. The revision `.mv` records (`Revision:<rev>,CreatedAt:<t>` for models, the
// bare revision for datasets), or "" when there is none.
std::string cached_revision(const fs::path& repo_dir) {
  std::error_code ec;
  if (!fs::is_regular_file(repo_dir / ".mv", ec)) return "";
  std::string text;
  try {
    text = read_file(repo_dir / ".mv");
  } catch (const Error&) {
    return "";
  }
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  text = text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
  if (text.rfind("Revision:", 0) == 0) text = text.substr(9, text.find(',') - 9);
  return text;
}

ExclusiveLock::ExclusiveLock(const fs::path& path, Target target) {
  const fs::path folder = target == Target::kFolder ? path : path.parent_path();
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) cannot_create_folder(folder, ec);
  if (target == Target::kFolder) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } else {
    // Open for writing (NFSv4 takes an exclusive flock only on such a descriptor); a lock file
    // another user of a shared cache made (0644 under umask 022) is opened read-only, which
    // flock takes elsewhere.
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    const int first_error = errno;
    if (fd_ < 0 && (first_error == EACCES || first_error == EROFS))
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    errno = first_error;  // the reason to report: the read-only try's ENOENT would hide it
  }
  if (fd_ < 0)
    fail(ErrorCode::kIo, "{}: cannot open for locking: {}", path.string(), std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  log::warn(
      "waiting for another download of the same repo or into the same folder to finish "
      "(lock {})",
      path.string());
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno != EINTR) {
      const int error = errno;
      ::close(fd_);
      fail(ErrorCode::kIo, "{}: lock failed: {}", path.string(), std::strerror(error));
    }
  }
}

ExclusiveLock::~ExclusiveLock() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// How many listings one download may go through when commits land on the branch during it.
constexpr int kListingPasses = 3;

// Whether a fresh listing of the revision differs from `listed` in its paths, sizes or sha256s:
// a commit landed since (false when the listing fails: the failure at hand is then reported).
bool listing_changed(HubClient& client, const DownloadOptions& options, const std::string& revision,
                     const std::vector<FileEntry>& listed) {
  std::vector<FileEntry> now;
  try {
    now = client.list_files(options.type, options.repo, revision, HubClient::Missing::kExpected);
  } catch (const Error& e) {
    log::info("{}: could not list the repo again to check for a change: {}", options.repo.str(),
              e.what());
    return false;
  }
  auto key = [](const FileEntry& e) { return std::tie(e.path, e.sha256, e.size); };
  auto by_key = [&](const FileEntry& a, const FileEntry& b) { return key(a) < key(b); };
  std::vector<FileEntry> before = listed;
  std::sort(before.begin(), before.end(), by_key);
  std::sort(now.begin(), now.end(), by_key);
  return !std::equal(before.begin(), before.end(), now.begin(), now.end(),
                     [&](const FileEntry& a, const FileEntry& b) { return key(a) == key(b); });
}

// One pass: list the revision, fetch what the cache lacks. `listing_changed_out` is set when the
// pass failed and the listing is no longer the one it worked from.
DownloadResult download_pass(const DownloadOptions& options, const HubOptions& hub,
                             bool& listing_changed_out) {
  for (const std::string& f : options.files) {
    if (f.find_first_of("*?[") == std::string::npos) check_repo_path(f);
  }
  const CacheLayout layout = cache_layout(options.type, options.repo, options.cache_dir,
                                          options.local_dir, options.revision);
  if (!options.local_dir) check_cache_folder_holds(layout, options.repo);
  if (options.offline || offline_mode()) {
    adopt_legacy_folder(layout);
    return offline_result(options, layout);
  }

  HubClient client(hub);
  const std::string revision = options.revision.empty() ? kDefaultRevision : options.revision;
  // The repo's lock, where Python's client takes it too ...
  std::optional<ExclusiveLock> repo_lock;
  // A cache folder this user may read but not write (another user's cache, read-only media): a
  // run that finds every file in place has nothing to write, so it takes no lock and writes
  // nothing (no index, no .mv), as Python checks for cache hits before it locks. Anything to
  // fetch is exit 74.
  std::string read_only;
  bool local_dir_read_only = false;  // read_only is about --local-dir, not the cache
  if (!options.dry_run) {
    // The lock lives in the cache even for a --local-dir download.
    const bool given = options.cache_dir && !options.cache_dir->empty();
    refuse_file_as_folder(given ? *options.cache_dir : ms::cache_dir(), "the cache folder",
                          given ? "pass --cache-dir" : "set MODELSCOPE_CACHE (or --cache-dir) to");
    if (options.local_dir)
      refuse_file_as_folder(*options.local_dir, "the --local-dir folder", "pass --local-dir");
    read_only =
        why_unwritable(layout.repo_dir, options.local_dir ? "--local-dir folder" : "cache folder");
    local_dir_read_only = !read_only.empty() && options.local_dir;
    if (read_only.empty())
      read_only = why_unwritable(layout.lock_file.parent_path(), "cache folder");
  }
  if (!options.dry_run && read_only.empty()) {
    repo_lock.emplace(layout.lock_file, ExclusiveLock::Target::kLockFile);
    adopt_legacy_folder(layout);
  }

  std::vector<FileEntry> listed;
  std::vector<RevisionInfo> revisions;
  try {
    listed = client.list_files(options.type, options.repo, revision);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNotFound || options.type != RepoType::kModel) throw;
    // Tell a missing repo from a missing revision, and name the revisions that exist.
    revisions = client.revisions(options.type, options.repo);
    std::vector<std::string> names;
    for (const RevisionInfo& r : revisions) names.push_back(r.name);
    throw Error(ErrorCode::kNotFound,
                fmt::format("{} has no branch or tag '{}' (it has: {})", options.repo.str(),
                            revision, join(names, ", ")),
                did_you_mean(revision, names));
  }
  // MS_TEST_DOWNLOAD_STOP=listed (test builds): stops after the first listing, for a test to
  // commit to the repo there.
  detail::stop_here_for_tests("MS_TEST_DOWNLOAD_STOP", "listed");
  {
    std::vector<std::string> paths;
    for (const FileEntry& e : listed) paths.push_back(e.path);
    if (auto clash = find_normalization_clash(paths)) {
      // On macOS both would be written to one file, the second silently replacing the first.
      throw Error(ErrorCode::kIntegrity,
                  fmt::format("{}: the hub lists '{}' and '{}', which differ only by Unicode "
                              "normalisation (one file on macOS); nothing was downloaded",
                              options.repo.str(), printable_path(clash->first),
                              printable_path(clash->second)),
                  "ask the repo's owner to delete one of them");
    }
  }
  std::vector<FileEntry> selected = select(listed, options, Listing::kHub);
  // Repo files named like the folder's own bookkeeping would overwrite the index (or sit in the
  // temp area and be cleared as partials), and then be reported cached with the wrong bytes.
  std::vector<std::string> unstorable;
  for (const FileEntry& e : selected) {
    if (is_bookkeeping_path(layout, e.path)) unstorable.push_back(e.path);
  }
  for (const std::string& path : unstorable) {
    // Asked for by name, it is an error rather than a warning: the command could not do its job.
    if (std::find(options.files.begin(), options.files.end(), path) != options.files.end()) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("{}: '{}' cannot be stored: the {} keeps its own bookkeeping under "
                              "that name",
                              options.repo.str(), path,
                              options.local_dir ? "--local-dir folder" : "cache folder"),
                  "rename it in the repo; without naming it, ms download skips it with a warning");
    }
  }
  if (!unstorable.empty()) {
    log::warn("{}: skipping {}: the {} keeps its own bookkeeping under these names",
              options.repo.str(), quoted_list(unstorable),
              options.local_dir ? "--local-dir folder" : "cache folder");
    selected.erase(
        std::remove_if(selected.begin(), selected.end(),
                       [&](const FileEntry& e) { return is_bookkeeping_path(layout, e.path); }),
        selected.end());
  }

  // ... and the destination folder's, taken once the repo is known to exist: runs with different
  // cache roots (so different repo locks) can share a --local-dir, and each rewrites its .msc.
  std::optional<ExclusiveLock> folder_lock;
  if (!options.dry_run && read_only.empty()) {
    folder_lock.emplace(layout.repo_dir, ExclusiveLock::Target::kFolder);
    // What a killed run left of the bookkeeping files' writes: a run that finds every file in
    // place writes none of them again, so write_file_atomic would not clear them.
    remove_abandoned_index_writes(layout.repo_dir);
  }
  // A dry run (or a run that cannot write) moves nothing, so it reads a legacy folder where a
  // real run would move it from.
  std::error_code legacy_ec;
  const bool legacy_only = (options.dry_run || !read_only.empty()) && !layout.legacy_dir.empty() &&
                           !fs::exists(layout.repo_dir, legacy_ec) &&
                           fs::is_directory(layout.legacy_dir, legacy_ec);
  const bool indexed = layout.kind == CacheKind::kIndexed;
  RepoCache cache(legacy_only ? layout.legacy_dir : layout.repo_dir, indexed);
  DownloadResult result;
  result.local_path = layout.repo_dir;
  result.revision = revision;
  std::vector<FileEntry> to_fetch;
  bool recorded = false;  // index entries added for files found in place
  for (const FileEntry& e : selected) {
    bool hit = indexed && cache.has(e.path, e.revision, e.size);
    // A file the index does not vouch for may still be the right one: modelscope 1.38+ keeps no
    // index (snapshot folders, and a --local-dir or legacy folder it downloads into), so a file
    // with the listed size and sha256 counts as cached, and an indexed folder records it.
    if (!hit && !legacy_only && file_matches_listing(layout.repo_dir / e.path, e, !indexed)) {
      hit = true;
      if (indexed && !options.dry_run) {
        cache.record(e.path, e.revision, false);
        recorded = true;
      }
    }
    result.files.push_back({e.path, e.size, hit, e.revision, e.sha256});
    if (hit) {
      result.bytes_cached += e.size;
    } else {
      result.bytes_to_fetch += e.size;
      to_fetch.push_back(e);
    }
  }
  if (!read_only.empty()) {
    if (!to_fetch.empty() && local_dir_read_only) {
      throw Error(ErrorCode::kIo, read_only,
                  fmt::format("{} of {} file(s) of {} are not in the --local-dir folder, and this "
                              "user cannot write to it: choose a --local-dir this user can write",
                              to_fetch.size(), selected.size(), options.repo.str()));
    }
    if (!to_fetch.empty()) {
      throw Error(ErrorCode::kIo, read_only,
                  fmt::format("{} of {} file(s) of {} are not in the cache, and this user cannot "
                              "write to it: ask its owner to download them, or use a cache of "
                              "your own (MODELSCOPE_CACHE or --cache-dir)",
                              to_fetch.size(), selected.size(), options.repo.str()));
    }
    // Files found in place but not indexed stay unindexed: the index cannot be written.
    log::info("{}: every file is in the cache, which this user cannot write to; nothing to do",
              options.repo.str());
  }
  if (options.dry_run || !read_only.empty()) {
    result.requests = client.request_count();
    return result;
  }
  if (recorded) cache.save();

  std::error_code ec;
  fs::create_directories(layout.repo_dir, ec);
  if (ec)
    fail(ErrorCode::kIo, "{}: cannot create the cache folder: {}", layout.repo_dir.string(),
         ec.message());

  if (!to_fetch.empty()) {
    Progress progress(fmt::format("{} ({} files)", options.repo.str(), to_fetch.size()),
                      result.bytes_to_fetch, Progress::Unit::kBytes);
    Run run{options, client, cache, layout, revision, &progress, {}, {}, {}, {}, false};
    const int workers = std::max(1, options.max_workers);
    // Ranged parts buy bandwidth from a remote hub, but (without the hub's sha256 checkpoints)
    // cost a second pass over the data for the hash. A hub on this machine gives one stream all
    // the bandwidth there is, so there a file is one stream: on a 16-core machine a 2 GiB file
    // took 1.6 s as one stream against 3.1-3.9 s in 8 parts (bench/README.md).
    int max_parts = workers;
    if (options.max_parts > 0) {
      max_parts = options.max_parts;
    } else if (download_parts() > 0) {
      max_parts = download_parts();
    } else if (is_loopback(hub.endpoint)) {
      max_parts = 1;
    }
    std::vector<std::function<void()>> tasks;
    std::vector<std::unique_ptr<PartedFile>> parted;
    // Big files first: their parts keep every connection busy while small files fill gaps.
    std::vector<FileEntry> order = to_fetch;
    std::stable_sort(order.begin(), order.end(),
                     [](const FileEntry& a, const FileEntry& b) { return a.size > b.size; });
    for (const FileEntry& e : order) {
      // A name so long that the parts' files (NAME.ms-partial) could not be made on a file
      // system of 255-byte names is fetched as one stream, under its own name.
      const bool parts_fit =
          fs::path(e.path).filename().string().size() + std::strlen(kPartialSuffix) <= 255;
      if (max_parts > 1 && e.size >= options.part_threshold && parts_fit) {
        const std::uint64_t by_size =
            std::max<std::uint64_t>(1, e.size / std::max<std::uint64_t>(1, options.min_part_size));
        const int parts = static_cast<int>(std::min<std::uint64_t>(max_parts, by_size));
        parted.push_back(std::make_unique<PartedFile>(run, e, parts));
        PartedFile* pf = parted.back().get();
        bool opened = true;
        try {
          pf->open();
        } catch (const Error& err) {
          run.record_failure(e.path, err);
          opened = false;
        }
        if (!opened) continue;
        for (std::size_t i = 0; i < pf->part_count(); ++i)
          tasks.push_back([pf, i] { pf->run_part(i); });
      } else {
        tasks.push_back([&run, e] {
          try {
            fetch_whole(run, e);
          } catch (const Error& err) {
            run.record_failure(e.path, err);
          }
        });
      }
    }
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> threads;
    const std::size_t n_threads = std::min<std::size_t>(workers, tasks.size());
    for (std::size_t t = 0; t < n_threads; ++t) {
      threads.emplace_back([&] {
        for (std::size_t i = next.fetch_add(1); i < tasks.size(); i = next.fetch_add(1)) {
          try {
            tasks[i]();
          } catch (const std::exception& e) {
            run.record_failure("?", Error(ErrorCode::kInternal, e.what()));
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    // Saved once more after the last file is closed even when the last commit saved it: on NFS
    // and FUSE a file's mtime can move at close, after the index that vouches for it.
    if (run.unsaved || indexed) {
      try {
        cache.save();
      } catch (Error& e) {
        // When files failed, the cause (a full disk while writing one) is theirs: report them,
        // with the index that could not be saved after them as context.
        if (run.failures.empty()) throw;
        run.failures.front().error.add_context(
            fmt::format("and then saving the cache index failed too: {}", e.what()));
      }
    }
    progress.finish(run.failures.empty());
    if (!run.failures.empty()) {
      const Failure* worst = &run.failures.front();
      for (const Failure& f : run.failures) {
        if (f.error.code() == ErrorCode::kIntegrity) worst = &f;
      }
      Error e = worst->error;
      if (run.failures.size() > 1) {
        e.add_context(fmt::format("downloading {}: {} of {} files failed", options.repo.str(),
                                  run.failures.size(), to_fetch.size()));
      }
      // Files that failed because a commit changed them (other bytes, another size) are fetched
      // again from a new listing; those that arrived are in the cache already.
      listing_changed_out = listing_changed(client, options, revision, listed);
      throw e;
    }
  }

  discard_partials(layout.temp_dir, result.files);
  discard_python_partials(layout, options.type, options.repo, result.files, listed);
  remove_empty_dirs(layout.temp_dir);
  if (!indexed) {
    // A snapshot repo's temp area is its own (`<repo>/._____temp/<revision>`): leave no empty
    // folders beside `snapshots/` (a failure just means something is still in there).
    std::error_code ec;
    for (fs::path p = layout.temp_dir;
         p != layout.snapshots_dir.parent_path() && fs::remove(p, ec);)
      p = p.parent_path();
  }
  // A --local-dir gets .msc and .mv but no .mdl, as Python's client leaves it: .mdl only names
  // the repo of a cache folder (for `modelscope scan-cache`), which a chosen folder is not.
  // An index even when the repo has no files to list, so that --offline finds it downloaded.
  if (indexed && !fs::exists(layout.repo_dir / ".msc", ec)) cache.save();
  if (!options.local_dir) cache.write_model_meta(options.repo.str());
  if (!indexed) {
    // A snapshot folder has no .mv or .mdl: its name is the revision.
  } else if (options.type == RepoType::kModel) {
    std::int64_t created_at = 0;
    std::string current;
    if (fs::is_regular_file(layout.repo_dir / ".mv", ec))
      current = read_file(layout.repo_dir / ".mv");
    if (!to_fetch.empty() || current.rfind("Revision:" + revision + ",", 0) != 0) {
      try {
        for (const RevisionInfo& r : client.revisions(options.type, options.repo)) {
          if (r.name == revision) created_at = r.created_at;
        }
      } catch (const Error& e) {
        log::info("revisions of {}: {}", options.repo.str(), e.what());
      }
      cache.write_version(fmt::format("Revision:{},CreatedAt:{}", revision, created_at));
    }
  } else {
    cache.write_version(revision);
  }
  if (!layout.dotted_link.empty() && !fs::exists(fs::symlink_status(layout.dotted_link, ec))) {
    fs::create_directory_symlink(layout.repo_dir.filename(), layout.dotted_link, ec);
    if (ec)
      log::warn("{}: cannot create the dotted-name link: {}", layout.dotted_link.string(),
                ec.message());
  }
  result.requests = client.request_count();
  return result;
}

}  // namespace

DownloadResult snapshot_download(const DownloadOptions& options, const HubOptions& hub) {
  // A branch's files are fetched by its name, so a commit during the download serves some of them
  // at the new commit: their bytes do not match the listing. The files that did are kept, and a
  // new listing fetches the rest, so the result is one commit's files (it failed with exit 7).
  for (int pass = 1;; ++pass) {
    bool changed = false;
    try {
      return download_pass(options, hub, changed);
    } catch (const Error& e) {
      if (!changed || pass >= kListingPasses) throw;
      log::warn(
          "{}: the hub's '{}' changed during the download (a new commit): {}; listing it "
          "again ({}/{})",
          options.repo.str(), options.revision.empty() ? kDefaultRevision : options.revision,
          e.what(), pass + 1, kListingPasses);
    }
  }
}

}  // namespace ms::hub

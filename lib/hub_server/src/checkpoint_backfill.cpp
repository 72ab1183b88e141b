#include "checkpoint_backfill.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/hub/sha256_checkpoints.h"

namespace ms::hub_server {

CheckpointBackfill::~CheckpointBackfill() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CheckpointBackfill::request(const std::string& sha256) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_ || seen_.count(sha256) != 0 || queue_.size() >= kMaxQueued) return;
  seen_.insert(sha256);
  queue_.push_back(sha256);
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  wake_.notify_one();
}

void CheckpointBackfill::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    const std::string sha256 = queue_.front();
    queue_.pop_front();
    lock.unlock();
    bool corrupt = false;
    try {
      corrupt = !backfill(sha256);
    } catch (const std::exception& e) {
      log::warn("hub serve: cannot take the sha256 checkpoints of blob {}: {}", sha256, e.what());
    }
    lock.lock();
    // Done (or failed for a passing reason): should the checkpoints go missing again, the next
    // request asks again. A corrupt blob is not hashed again in this process.
    if (!corrupt) seen_.erase(sha256);
  }
}

bool CheckpointBackfill::backfill(const std::string& sha256) {
  const std::string path = store_.blob_path(sha256).string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;  // gone, or never stored: nothing to do
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0) return true;
  hub::CheckpointingSha256 hasher(static_cast<std::uint64_t>(size));
  std::vector<char> buffer(4 << 20);
  std::uint64_t offset = 0;
  while (offset < static_cast<std::uint64_t>(size)) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return true;
    }
    const ssize_t got = ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return true;  // shrank underneath us
    hasher.update(buffer.data(), static_cast<std::size_t>(got));
    offset += static_cast<std::uint64_t>(got);
  }
  const std::string actual = hasher.hex_digest();
  if (actual != sha256) {
    log::warn("hub serve: blob {} hashes to {}: the file on disk is corrupt", sha256, actual);
    return false;
  }
  if (!hasher.checkpoints().states.empty())
    store_.save_blob_checkpoints(sha256, hasher.checkpoints());
  return true;
}

}  // namespace ms::hub_server

// Writers for downloads (private to lib/hub/src): BufferedWriter gathers network pieces into
// 1 MiB writes for ranged parts; HashingWriter writes a single stream and hashes it as it goes,
// in one chain or, with the hub's sha256 checkpoints, interval by interval on several threads.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/hub/sha256.h"
#include "ms/hub/sha256_checkpoints.h"

namespace ms::hub {

// Collects small network chunks into 1 MiB pwrite() calls.
class BufferedWriter {
 public:
  BufferedWriter(int fd, std::uint64_t offset, const std::filesystem::path& path)
      : fd_(fd), offset_(offset), path_(path) {
    buffer_.reserve(kSize);
  }
  // Returns the number of bytes that reached the file with this call.
  std::size_t append(const char* data, std::size_t n) {
    std::size_t flushed = 0;
    if (buffer_.size() + n > kSize) flushed = flush();
    if (n >= kSize) {
      write_all_at(fd_, data, n, offset_, path_);
      offset_ += n;
      return flushed + n;
    }
    buffer_.insert(buffer_.end(), data, data + n);
    return flushed;
  }
  std::size_t flush() {
    const std::size_t n = buffer_.size();
    if (n == 0) return 0;
    write_all_at(fd_, buffer_.data(), n, offset_, path_);
    offset_ += n;
    buffer_.clear();
    return n;
  }

 private:
  static constexpr std::size_t kSize = 1u << 20;
  int fd_;
  std::uint64_t offset_;
  const std::filesystem::path& path_;
  std::vector<char> buffer_;
};

// Collects what the network delivers (16 KiB per libcurl callback) into 1 MiB blocks, writes each
// block, and hashes it: inline, or, for big transfers on a machine with cores to spare, on other
// threads. Such a thread hashes a block from memory while it is still in a small ring; when it
// has fallen further behind (it shares the cores with the receiving thread and, for a local hub,
// the server), it reads the block back from the file instead. So the receiving thread never
// waits for the hash and does little more than curl -o does: on 2 cores, waiting for a ring slot
// had cost it 0.26-0.39 s per 2 GiB, while a bigger ring falls out of the CPU caches.
//
// One chain of SHA-256 runs on one core (1.3-2 GB/s with SHA-NI), slower than loopback can
// deliver. With the hub's checkpoints (ms/hub/sha256_checkpoints.h) the file is hashed interval
// by interval on several "lanes" (threads, interval k on lane k % lanes), each interval from its
// starting state, and checked against the next state.
class HashingWriter {
 public:
  /// One chain: `hasher` (which may already hold a resumed prefix) takes the bytes written from
  /// `offset` on, inline or on one thread; `expected` bytes are due (it only sizes the buffers).
  HashingWriter(int fd, std::uint64_t offset, std::uint64_t expected,
                const std::filesystem::path& path, Sha256& hasher, bool threaded)
      : fd_(fd),
        start_(offset),
        offset_(offset),
        path_(path),
        lanes_(threaded ? 1 : 0),
        block_size_(static_cast<std::size_t>(
            std::min<std::uint64_t>(kBlock, std::max<std::uint64_t>(expected, 1)))),
        slots_(threaded ? ring_slots() : 1) {
    segments_.emplace_back();
    segments_.back().hasher = &hasher;
    start_lanes();
  }
  /// Checkpointed: all `size` bytes of the file from offset 0, hashed interval by interval on
  /// `lanes` threads (at least 2). `checkpoints` fit `size` (Sha256Checkpoints::parse).
  HashingWriter(int fd, std::uint64_t size, const std::filesystem::path& path,
                const Sha256Checkpoints& checkpoints, std::size_t lanes)
      : fd_(fd),
        start_(0),
        offset_(0),
        path_(path),
        lanes_(std::min(std::max<std::size_t>(lanes, 2), checkpoints.states.size() + 1)),
        block_size_(kBlock),
        slots_(ring_slots()),
        links_(sha256_links(&checkpoints, size)) {
    static_assert(kBlock == kSha256CheckpointGranule, "a block must never straddle two intervals");
    for (Sha256Link& link : links_) {
      segments_.push_back({link.from / kBlock, (link.to + kBlock - 1) / kBlock, &link.hasher});
    }
    start_lanes();
  }
  ~HashingWriter() { stop(); }
  HashingWriter(const HashingWriter&) = delete;
  HashingWriter& operator=(const HashingWriter&) = delete;

  void append(const char* data, std::size_t n) {
    while (n > 0) {
      if (fill_ == 0) claim_slot();
      const std::size_t take = std::min(n, block_size_ - fill_);
      std::memcpy(current().data.get() + fill_, data, take);
      fill_ += take;
      data += take;
      n -= take;
      if (fill_ == block_size_) hand_over();
    }
  }
  /// Writes the last partial block and waits until every byte is hashed; throws what a hashing
  /// thread hit.
  void finish() {
    if (fill_ > 0) hand_over();
    stop();
    if (error_) std::rethrow_exception(error_);
    if (lanes_ > 0) {
      log::info("{}: hashed {} block(s) from memory, {} read back from the file{}", path_.string(),
                filled_ - reread_.load(), reread_.load(),
                checkpointed() ? fmt::format(", {} intervals on {} threads from the hub's sha256 "
                                             "checkpoints",
                                             segments_.size(), lanes_)
                               : std::string());
    }
  }
  /// What arrived is valid data to resume from: it reaches the file; the hash is abandoned.
  void abandon() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      abandoned_ = true;
      block_ready_.notify_all();
    }
    stop();
    if (fill_ > 0) write_all_at(fd_, current().data.get(), fill_, offset_, path_);
    fill_ = 0;
  }

  bool checkpointed() const { return !links_.empty(); }
  /// Checkpointed, after finish(): what the intervals' chain proves.
  Sha256ChainResult chain_result() { return finish_sha256_chain(links_); }

 private:
  static constexpr std::size_t kBlock = 1u << 20;
  static constexpr std::size_t kRing = 8;  // 32-128 measured slower: the ring leaves the caches
  static constexpr std::uint64_t kNone = ~std::uint64_t{0};

  static std::size_t ring_slots() {
#ifdef MS_TEST_HOOKS
    // MS_TEST_HASH_RING=N (1-64): the ring size.
    const auto v = env_var("MS_TEST_HASH_RING");
    const long n = v ? std::atol(v->c_str()) : 0;
    if (n >= 1 && n <= 64) return static_cast<std::size_t>(n);
#endif
    return kRing;
  }

  // Whether a hashing thread waits, before each block, until the receiving thread has reused
  // the block's slot (or the stream ended): every block but the last ring's worth is then read
  // back from the file, whatever the scheduling. MS_TEST_HASH_READ_BACK=1 in a test build only.
  static bool hold_until_reused() {
#ifdef MS_TEST_HOOKS
    return env_var("MS_TEST_HASH_READ_BACK").value_or("") == "1";
#else
    return false;
#endif
  }

  struct Slot {
    std::unique_ptr<char[]> data;  // allocated on first use, never zero-filled
    std::uint64_t block = kNone;   // the block it holds; kNone while it is being filled
    bool hashing = false;          // a hashing thread is reading it
  };

  // Blocks [first_block, end_block) hashed in one chain: the whole stream, or one interval.
  struct Segment {
    std::uint64_t first_block = 0;
    std::uint64_t end_block = kNone;  // kNone: to the end of the stream
    Sha256* hasher = nullptr;         // the caller's, or a link's (each lane-owned until join)
  };

  void start_lanes() {
    try {
      for (std::size_t lane = 0; lane < lanes_; ++lane) {
        threads_.emplace_back([this, lane] { lane_loop(lane); });
      }
    } catch (const std::system_error& e) {
      stop();  // the threads that did start must be joined before they are destroyed
      throw Error(ErrorCode::kIo,
                  fmt::format("{}: cannot start a hashing thread: {}", path_.string(), e.what()));
    }
  }

  Slot& current() { return slots_[filled_ % slots_.size()]; }

  // Takes the slot for the next block. Its previous block, if not hashed yet, will be read back
  // from the file; only a slot a hashing thread is reading right now (one block) is waited for.
  void claim_slot() {
    Slot& slot = current();
    if (lanes_ > 0) {
      std::unique_lock<std::mutex> lock(mutex_);
      slot_free_.wait(lock, [&] { return !slot.hashing; });
      slot.block = kNone;
    }
    if (!slot.data) slot.data.reset(new char[block_size_]);
  }

  // The block being filled is complete (or the transfer ended): to the file, then to the hash.
  void hand_over() {
    Slot& slot = current();
    const std::size_t size = fill_;
    fill_ = 0;
    write_all_at(fd_, slot.data.get(), size, offset_, path_);
    offset_ += size;
    if (lanes_ == 0) {
      segments_.front().hasher->update(slot.data.get(), size);
      ++filled_;
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    slot.block = filled_;
    ++filled_;
    written_ = offset_;
    if (lanes_ == 1) {
      block_ready_.notify_one();
    } else {
      block_ready_.notify_all();
    }
  }

  // Lane `lane` hashes segments lane, lane + lanes_, ... in order, block by block as they arrive.
  void lane_loop(std::size_t lane) {
    std::unique_ptr<char[]> reread;  // for blocks whose slot was reused
    std::unique_lock<std::mutex> lock(mutex_);
    for (std::size_t k = lane; k < segments_.size(); k += lanes_) {
      Segment& segment = segments_[k];
      for (std::uint64_t block = segment.first_block; block < segment.end_block; ++block) {
        // With the hold, until block + slots_.size() (it takes this block's slot) is handed over.
        const std::uint64_t due = hold_ ? block + slots_.size() : block;
        block_ready_.wait(
            lock, [&] { return due < filled_ || stopping_ || abandoned_ || error_ != nullptr; });
        if (abandoned_ || error_ || block >= filled_) return;  // stopping: all hashed, or short
        const std::uint64_t from = start_ + block * block_size_;
        const std::size_t size =
            static_cast<std::size_t>(std::min<std::uint64_t>(block_size_, written_ - from));
        Slot& slot = slots_[block % slots_.size()];
        const bool in_memory = slot.block == block;
        if (in_memory) slot.hashing = true;
        lock.unlock();
        try {
          if (in_memory) {
            segment.hasher->update(slot.data.get(), size);
          } else {
            ++reread_;
            if (!reread) reread.reset(new char[block_size_]);
            read_exact(reread.get(), size, from);
            segment.hasher->update(reread.get(), size);
          }
        } catch (...) {
          lock.lock();
          if (in_memory) {  // a read-back block's slot may be another lane's now
            slot.hashing = false;
            slot_free_.notify_all();
          }
          if (!error_) error_ = std::current_exception();
          block_ready_.notify_all();
          return;
        }
        lock.lock();
        if (in_memory) {
          slot.hashing = false;
          slot_free_.notify_all();
        }
      }
    }
  }

  void read_exact(char* data, std::size_t n, std::uint64_t offset) {
    while (n > 0) {
      const ssize_t got = ::pread(fd_, data, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) fail(ErrorCode::kIo, "{}: read back for hashing failed", path_.string());
      data += got;
      n -= static_cast<std::size_t>(got);
      offset += static_cast<std::uint64_t>(got);
    }
  }

  void stop() {
    if (threads_.empty()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      block_ready_.notify_all();
    }
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
  }

  int fd_;
  std::uint64_t start_;   // file offset of block 0
  std::uint64_t offset_;  // next byte to write (receiving thread only)
  const std::filesystem::path& path_;
  std::size_t lanes_;  // hashing threads; 0: hashed inline by the receiving thread
  std::size_t block_size_;
  std::vector<Slot> slots_;
  const bool hold_ = hold_until_reused();
  std::vector<Sha256Link> links_;  // checkpointed: one per interval
  std::vector<Segment> segments_;
  std::size_t fill_ = 0;  // bytes in the block being filled (receiving thread only)
  // Shared with the hashing threads, under mutex_ when there are any:
  std::uint64_t filled_ = 0;   // blocks handed over
  std::uint64_t written_ = 0;  // file offset up to which blocks were handed over
  bool stopping_ = false, abandoned_ = false;
  std::exception_ptr error_;
  std::atomic<std::uint64_t> reread_{0};  // blocks read back from the file
  std::mutex mutex_;
  std::condition_variable block_ready_, slot_free_;
  std::vector<std::thread> threads_;
};

}  // namespace ms::hub

// Takes the SHA-256 checkpoints (ms/hub/sha256_checkpoints.h) of blobs stored without them, as
// blobs stored before checkpoints were recorded are: the first request for such a blob queues
// it, and one background thread hashes queued blobs from disk, one at a time, keeping the states
// only if the bytes hash to the blob's name. Requests never wait for it.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "ms/hub_server/store.h"

namespace ms::hub_server {

class CheckpointBackfill {
 public:
  explicit CheckpointBackfill(Store& store) : store_(store) {}
  ~CheckpointBackfill();  // stops at the next 4 MiB read and joins
  CheckpointBackfill(const CheckpointBackfill&) = delete;
  CheckpointBackfill& operator=(const CheckpointBackfill&) = delete;

  /// Queues blob `sha256` unless it is queued or being hashed already, or was found corrupt (it
  /// is not hashed again and again); at most kMaxQueued wait, later ones are asked for again by
  /// their next request.
  void request(const std::string& sha256);

 private:
  static constexpr std::size_t kMaxQueued = 256;
  void run();
  bool backfill(const std::string& sha256);  // false: the blob is corrupt

  Store& store_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::string> queue_;
  std::set<std::string> seen_;  // queued, being hashed, or corrupt
  bool stopping_ = false;
  std::thread thread_;  // started by the first request
};

}  // namespace ms::hub_server

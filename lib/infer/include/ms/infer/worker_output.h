// What `ms train --nproc N` prints of its workers' stderr. Workers that fail alike (a bad
// config, a refused --resume: every rank reads the same files) would print the same error N
// times, and warnings every rank meets ("nothing left to train") as often; the launcher reads
// their stderr through pipes and prints each distinct error once, and each warning as often as
// one worker wrote it.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ms/core/export.h"

namespace ms::infer {

/// Lines go through as they come; an error block (an "ms: error: " line and the indented lines
/// under it) goes through only the first time its text is seen; a warning line ("ms: warning: ")
/// goes through when one worker has written it more often than it has been printed (several
/// workers writing it once print it once). Not thread-safe: one reader.
class MS_API ErrorDeduplicator {
 public:
  using Sink = std::function<void(const std::string& text)>;
  ErrorDeduplicator(std::size_t workers, Sink sink);

  /// Bytes worker `w` wrote, in any pieces.
  void add(std::size_t worker, std::string_view bytes);
  /// Worker `w`'s stream ended: its last line and its error block are complete.
  void close(std::size_t worker);
  /// Error blocks left out because another worker's had the same text.
  std::size_t repeated_errors() const { return repeated_; }

 private:
  struct Stream {
    std::string partial;                          // the line being written
    std::string error;                            // the error block being written
    std::map<std::string, std::size_t> warnings;  // times this worker wrote each warning line
  };
  void line(Stream& s, std::string text);
  void finish_error(Stream& s);

  std::vector<Stream> streams_;
  Sink sink_;
  std::set<std::string> seen_;
  std::map<std::string, std::size_t> printed_warnings_;  // times each warning line was printed
  std::size_t repeated_ = 0;
};

/// Reads the workers' stderr pipes on a thread of its own into an ErrorDeduplicator that writes
/// to this process's stderr.
class MS_API WorkerStderr {
 public:
  /// Takes the read ends, one per worker, in rank order.
  explicit WorkerStderr(std::vector<int> read_fds);
  ~WorkerStderr();
  WorkerStderr(const WorkerStderr&) = delete;
  WorkerStderr& operator=(const WorkerStderr&) = delete;

  /// Waits until worker `w`'s stream has ended and been printed (it ends when the worker
  /// exits), for at most `seconds`: a child of the worker could still hold it open.
  void wait_closed(std::size_t worker, double seconds);
  /// Waits for every stream as wait_closed does, then stops reading; returns repeated_errors().
  std::size_t finish(double seconds);

 private:
  void pump();

  std::vector<int> fds_;
  ErrorDeduplicator errors_;
  std::mutex mutex_;
  std::condition_variable closed_changed_;
  std::vector<bool> closed_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ms::infer

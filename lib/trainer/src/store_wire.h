// LibTorch 1.x TCPStore's wire protocol, spoken over a socket of our own for the two checks its
// client cannot make: a reply awaited with a deadline (its client reads without one, and decodes a
// stranger's bytes as lengths on a thread of its own, where a bad_alloc aborts the process), and
// the raw join counter that its waitForWorkers leaves quietly when the timeout passes.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ms::trainer {

/// A connection to a TCPStore server (LibTorch 1.x protocol). Every call throws ms::Error
/// (kNetwork) naming `where` when the deadline passes or the peer does not speak the protocol.
class StoreWire {
 public:
  using Clock = std::chrono::steady_clock;

  /// Connects to host:port, retrying a refused connection (the store may not be up yet) until
  /// `deadline`. A name that does not resolve fails at once.
  StoreWire(const std::string& host, int port, Clock::time_point deadline);
  ~StoreWire();
  StoreWire(const StoreWire&) = delete;
  StoreWire& operator=(const StoreWire&) = delete;

  /// The number of keys in the store; a reply that cannot be a count (a stranger's bytes) is
  /// kNetwork.
  std::int64_t num_keys();
  /// Adds `delta` to the counter at `key` (a raw key: TCPStore::add prefixes "/"), returns it.
  std::int64_t add(const std::string& key, std::int64_t delta);

 private:
  void send_all(const void* data, std::size_t n);
  void recv_all(void* data, std::size_t n);

  std::string where_;
  Clock::time_point deadline_;
  int fd_ = -1;
};

/// Throws ms::Error(kNetwork) naming MASTER_ADDR when `host` does not resolve (a name server
/// that asks to try again is not an answer: that is left to the connection's retries).
void check_host_resolves(const std::string& host, int port);

/// "the rendezvous at HOST:PORT accepted the connection but did not answer as a store": the check
/// every client rank makes before LibTorch's client connects. kNetwork after `deadline`.
void check_store_answers(const std::string& host, int port,
                         std::chrono::steady_clock::time_point deadline);

}  // namespace ms::trainer

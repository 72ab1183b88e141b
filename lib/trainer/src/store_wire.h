// PyTorch TCPStore's wire protocols, spoken over a socket of our own:
// - LibTorch 1.x's (ours on Debian), for the two checks its client cannot make: a reply awaited
//   with a deadline (its client reads without one, and decodes a stranger's bytes as lengths on a
//   thread of its own, where a bad_alloc aborts the process), and the raw join counter that its
//   waitForWorkers leaves quietly when the timeout passes;
// - torch 2.x's (a first VALIDATE message, the query codes renumbered), which the store of
//   a newer torchrun's agent speaks and LibTorch 1.x's client does not: ms talks to it with
//   StoreV2Client (store_v2_client.h) over this wire.
// Numbers travel in the host's byte order and strings as a 64-bit length and the bytes, in both.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ms/core/error.h"

namespace ms::trainer {

enum class StoreProtocol {
  kV1,  ///< LibTorch 1.x's TCPStore
  kV2,  ///< torch 2.x's TCPStore (its client validates itself first)
};

/// The store (or whatever listens there) closed or reset the connection instead of answering.
class StoreClosed : public Error {
 public:
  using Error::Error;
};

/// A connection to a TCPStore server. Every call throws ms::Error (kNetwork) naming `where` when
/// the deadline passes or the peer does not speak the protocol. Keys are raw: TCPStore's clients
/// prefix "/" to the keys they are given.
class StoreWire {
 public:
  using Clock = std::chrono::steady_clock;

  /// Connects to host:port, retrying a refused connection (the store may not be up yet) until
  /// `deadline`; a kV2 connection sends its validation. A name that does not resolve fails at
  /// once.
  StoreWire(const std::string& host, int port, Clock::time_point deadline,
            StoreProtocol protocol = StoreProtocol::kV1);
  ~StoreWire();
  StoreWire(const StoreWire&) = delete;
  StoreWire& operator=(const StoreWire&) = delete;

  /// The deadline of the calls from now on.
  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }

  /// The number of keys in the store; a reply that cannot be a count (a stranger's bytes) is
  /// kNetwork.
  std::int64_t num_keys();
  /// num_keys(), or nothing when no reply came before the deadline (another protocol's server
  /// waits for the rest of a query it reads differently).
  std::optional<std::int64_t> try_num_keys();
  /// Adds `delta` to the counter at `key`, returns it.
  std::int64_t add(const std::string& key, std::int64_t delta);

  // kV2 only (StoreV2Client's queries).
  void set(const std::string& key, const std::vector<std::uint8_t>& value);
  /// The value at `key` (empty when the key is absent: wait for it first).
  std::vector<std::uint8_t> get(const std::string& key);
  std::vector<std::uint8_t> compare_set(const std::string& key,
                                        const std::vector<std::uint8_t>& expected,
                                        const std::vector<std::uint8_t>& desired);
  bool check(const std::vector<std::string>& keys);
  /// Whether every key was set before the deadline (when not, the wait is cancelled and the
  /// connection stays usable).
  bool wait(const std::vector<std::string>& keys);
  std::int64_t delete_key(const std::string& key);

  /// Throws the kNetwork error of a store that accepted the connection but did not answer.
  [[noreturn]] void no_answer() const;

 private:
  void send_all(const void* data, std::size_t n);
  void send_string(const std::string& text);
  void send_keys(const std::vector<std::string>& keys);  // a count, then each key
  void send_bytes(const std::vector<std::uint8_t>& bytes);
  void send_query(std::uint8_t v1_code, std::uint8_t v2_code);
  void recv_all(void* data, std::size_t n);
  /// recv_all, or false when the deadline passed first.
  bool recv_within(void* data, std::size_t n);
  std::vector<std::uint8_t> recv_bytes();
  std::int64_t recv_count();

  std::string where_;
  Clock::time_point deadline_;
  StoreProtocol protocol_;
  int fd_ = -1;
};

/// Which protocol the store of torchrun's agent at host:port speaks: each is asked in turn, on a
/// connection of its own, until one answers (the other's question is harmless to each: torch
/// 2.x's libuv store ignores a first message that is not a validation and its classic store
/// drops the connection; a 1.x store drops the connection that sent it half a query); kNetwork
/// when none has by `deadline`, or at once when both hang up (no store listens there).
StoreProtocol agent_store_protocol(const std::string& host, int port,
                                   std::chrono::steady_clock::time_point deadline);

/// Throws ms::Error(kNetwork) naming MASTER_ADDR when `host` does not resolve (a name server
/// that asks to try again is not an answer: that is left to the connection's retries).
void check_host_resolves(const std::string& host, int port);

/// Whether `host` resolves to an address of this machine (one a socket here can bind); true
/// when it cannot tell (the name server failed). Rank 0 hosts the store on MASTER_ADDR, so its
/// MASTER_ADDR must name its own host.
bool names_this_machine(const std::string& host);

/// "the rendezvous at HOST:PORT accepted the connection but did not answer as a store": the check
/// every client rank makes before LibTorch's client connects. kNetwork after `deadline`.
void check_store_answers(const std::string& host, int port,
                         std::chrono::steady_clock::time_point deadline);

}  // namespace ms::trainer

// A c10d::Store that speaks torch 2.x's TCPStore protocol, for LibTorch 1.x builds: the store of
// a torchrun from torch 2.x (the agent hosts it, TORCHELASTIC_USE_AGENT_STORE) reads LibTorch
// 1.x's queries as other ones, so its client would wait for ever. Gloo and ms's own rendezvous
// checks use it as they use a TCPStore. Under LibTorch 2.x, c10d::TCPStore speaks it itself.
#pragma once

#include <torch/version.h>

#if TORCH_VERSION_MAJOR < 2
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <vector>

#include "store_wire.h"

namespace ms::trainer {

class StoreV2Client : public c10d::Store {
 public:
  /// Connects to the store at host:port (retrying a refused connection within `timeout`); every
  /// query then waits at most `timeout` for its answer.
  StoreV2Client(const std::string& host, int port, std::chrono::milliseconds timeout);

  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                  const std::vector<uint8_t>& desired) override;
  /// Waits (the store's timeout) for the key, as TCPStore::get does.
  std::vector<uint8_t> get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t value) override;
  bool deleteKey(const std::string& key) override;
  bool check(const std::vector<std::string>& keys) override;
  int64_t getNumKeys() override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

 private:
  /// The connection, its calls' deadline `timeout` from now (the store's own timeout when none;
  /// c10d's kNoTimeout: none); hold mutex_.
  StoreWire& wire(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  void wait_locked(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);

  std::mutex mutex_;  // one query at a time on the connection
  StoreWire wire_;
};

}  // namespace ms::trainer
#endif

// The self-hosted hub server (`ms hub serve`): the ModelScope HTTP API over a local Store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "ms/core/export.h"

namespace ms::hub_server {

/// Test-only fault injection for file-content downloads (GET .../repo?FilePath=...). Counters are
/// deterministic: the n-th file-content GET (n = 1, 2, ...) answers 500 when n is a multiple of
/// `status500`, else closes the connection halfway through the body when n is a multiple of
/// `reset`, else stalls `stall_seconds` halfway through the body when n is a multiple of `stall`.
/// 0 disables a fault.
struct FaultSpec {
  int status500 = 0;
  int reset = 0;
  int stall = 0;
  double stall_seconds = 2.0;

  bool any() const { return status500 > 0 || reset > 0 || stall > 0; }
};

/// Parses "status500=3,reset=5,stall=7,stall_seconds=2"; ms::Error(kUsage) naming a bad item.
MS_API FaultSpec parse_fault_spec(const std::string& text);

/// How to run a server.
struct ServerOptions {
  std::filesystem::path root;  ///< storage folder (created when missing)
  std::string host = "127.0.0.1";
  int port = 0;                    ///< 0 picks a free port
  std::filesystem::path tls_cert;  ///< with tls_key: serve https
  std::filesystem::path tls_key;
  FaultSpec faults;
  /// Worker threads kept ready; more start (up to 4096) while all are busy, so a slow client
  /// never makes others wait. Each open connection holds one thread.
  int threads = 32;
  int header_timeout_s = 30;                 ///< seconds a client has to send a request's headers
  int max_client_connections = 256;          ///< open connections per client address; more get 503
  std::uint64_t max_json_body = 1ull << 30;  ///< bytes; larger non-blob bodies get 413
  std::uint64_t max_blob_size = 1ull << 40;  ///< bytes; larger blob uploads get 413
};

/// A running hub server. start() binds and serves on background threads; stop() ends it.
class MS_API Server {
 public:
  /// Opens the store; throws ms::Error (kMissingComponent when built without the hub server).
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds the port (ms::Error(kIo) naming host:port when it cannot) and starts serving.
  void start();
  /// The port actually bound (after start()).
  int port() const;
  /// "http://127.0.0.1:PORT" (or https://...).
  std::string endpoint() const;
  /// Blocks until SIGINT, SIGTERM or SIGHUP arrives and returns its number (again for a second
  /// one). Call block_shutdown_signals() first, on the main thread before start(), so that worker
  /// threads do not receive them.
  static int wait_for_shutdown_signal();
  /// Stops taking requests, lets those in flight finish (a minute at most) and joins the threads.
  /// Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Blocks SIGINT, SIGTERM and SIGHUP (unless ignored, as under nohup) in the calling thread (and
/// threads it starts later).
MS_API void block_shutdown_signals();

/// Mints an access token for `user` in the store under `root` (creating the user).
MS_API std::string create_token(const std::filesystem::path& root, const std::string& user);

/// Whether `root` already holds a hub (made by `ms hub serve` or create_token()).
MS_API bool hub_exists(const std::filesystem::path& root);

/// Whether this build includes the hub server.
MS_API bool hub_server_available();

}  // namespace ms::hub_server

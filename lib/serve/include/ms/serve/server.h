// `ms serve`: one model behind ModelScope's service API (POST /call, GET /describe, GET /health)
// plus GET /metrics, with concurrent requests merged into batches (ms/serve/batcher.h).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ms/core/device.h"
#include "ms/core/export.h"
#include "ms/infer/model_dir.h"

namespace ms::serve {

/// The most --workers and --threads a server takes. Each worker is a thread running its own
/// batches (and on the CPU each intra-op thread wants a core): past the largest machines' core
/// counts more only add stacks and contention, and a typo such as 100000 would exhaust the
/// process's threads.
constexpr int kMaxWorkers = 1024;

struct ServeOptions {
  std::string model;                   ///< a model folder or a hub id OWNER/NAME
  std::optional<std::string> task;     ///< default: the model's configuration.json
  std::vector<std::string> overrides;  ///< --set KEY=VALUE
  infer::HubModelOptions hub;
  DeviceSpec device{DeviceSpec::Kind::kCpu, -1};
  std::string dtype = "fp32";          ///< compute type (infer::PipelineOptions::dtype)
  std::optional<int> threads;          ///< LibTorch intra-op threads (default: every core)
  std::optional<std::size_t> workers;  ///< batches run at once (default as `ms infer`)
  std::string host = "127.0.0.1";
  int port = 8000;             ///< 0 picks a free port
  std::size_t max_batch = 32;  ///< inputs per forward pass
  int max_wait_ms = 0;  ///< how long the oldest input waits for company while a worker is free
  std::size_t max_queue = 1024;            ///< waiting inputs; more are answered 503
  std::size_t max_body_bytes = 32u << 20;  ///< larger request bodies are answered 413
  int request_timeout_s = 60;              ///< a request not answered by then gets 504
  /// Seconds a client has to send a request's line and headers (a TLS client its handshake
  /// too); a stop waits this long at most for a request whose headers are still coming.
  int header_timeout_s = 30;
  /// Open connections per client address; more are answered 503 at once. Every local client
  /// (and a reverse proxy on the same host) shares 127.0.0.1.
  std::size_t max_client_connections = 256;
  std::string token;               ///< when set, requests need "Authorization: Bearer TOKEN"
  std::filesystem::path tls_cert;  ///< with tls_key: serve https
  std::filesystem::path tls_key;
  /// Adds POST /_test/hold and /_test/release (the batcher's hold(); test builds only).
  bool test_routes = false;
};

/// A model being served. The constructor loads the model; start() binds and serves on background
/// threads; stop() drains.
class MS_API Server {
 public:
  /// Checks the options, opens the model and builds its pipeline (ms::Error naming the problem).
  explicit Server(ServeOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds (ms::Error kIo naming host:port when it cannot) and starts serving. Once stopped, a
  /// server does not start again (ms::Error kUsage): make a new one.
  void start();
  int port() const;
  /// "http://127.0.0.1:PORT" (or https://...).
  std::string endpoint() const;
  const std::string& task() const;
  std::string device() const;
  std::size_t workers() const;
  const std::filesystem::path& model_dir() const;

  /// Stops accepting, answers every request already queued or running, and joins the threads.
  /// Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Blocks SIGINT, SIGTERM and SIGHUP (unless ignored, as under nohup) in the calling thread (and
/// threads it starts later). Call on the main thread before any other starts (the model's loading
/// starts LibTorch's).
MS_API void block_shutdown_signals();

/// Blocks until SIGINT, SIGTERM or SIGHUP arrives (after block_shutdown_signals()); returns its
/// number.
MS_API int wait_for_shutdown_signal();

/// Whether this build includes `ms serve` (it needs the HTTP front, MS_WITH_HUB_SERVER).
MS_API bool serve_available();

}  // namespace ms::serve

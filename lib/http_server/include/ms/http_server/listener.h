// One HTTP(S) listener set up the way both of ms's servers need it: TLS or the plain front, the
// elastic worker pool, timeouts, a port that is not shared, the accept loop on its own thread, and
// the SIGINT/SIGTERM wait of a foreground server.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "ms/http_server/front.h"

namespace ms::http_server {

/// How to listen. The defaults are the hub's.
struct ListenerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                    ///< 0 picks a free port
  std::filesystem::path tls_cert;  ///< with tls_key: serve https
  std::filesystem::path tls_key;
  /// Worker threads kept ready; more start (up to 4096) while all are busy. Each open connection
  /// holds one thread.
  std::size_t warm_threads = 32;
  int header_timeout_s = 30;  ///< seconds a client has to send a request's headers
  /// Seconds a client has to send a request's body once its headers are in (plain HTTP); 0: no
  /// overall bound (the hub's blob uploads may take hours), only read_timeout_s between bytes.
  int body_timeout_s = 0;
  std::size_t max_client_connections = 256;  ///< open connections per client address
  std::size_t max_body_bytes = 1ull << 30;   ///< httplib refuses larger bodies (413)
  int read_timeout_s = 60;                   ///< a body byte must arrive within this
  int write_timeout_s = 60;
  int keep_alive_timeout_s = 5;  ///< an idle keep-alive connection holds its thread this long
};

/// An httplib server bound and served on a background thread. Routes and handlers are installed
/// on http() between construction and start().
class Listener {
 public:
  /// Checks the options and the TLS files (ms::Error kUsage, kNotFound, kConfig).
  explicit Listener(const ListenerOptions& options);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  httplib::Server& http() { return *http_; }
  /// "http" or "https".
  const char* scheme() const { return tls_ ? "https" : "http"; }

  /// Binds (ms::Error kIo naming host:port when it cannot) and returns once the accept loop runs;
  /// `who` names the server in errors ("hub serve").
  void start(const std::string& who);
  /// The port bound (after start()).
  int port() const { return port_; }
  /// "http://127.0.0.1:PORT" (or https://...).
  std::string endpoint() const;
  /// Stops taking requests (a connection made meanwhile is answered 503), lets requests being
  /// served (or already sent) finish, ends idle connections, then closes the listening socket and
  /// joins the threads. After `grace`, connections still open are cut (a client uploading a body
  /// byte by byte must not hold a shutdown). Idempotent.
  void stop(std::chrono::seconds grace = std::chrono::hours(24));
  /// The first step of stop() alone, which returns at once: no new request is taken, and every
  /// answer from now on says "Connection: close" (a server releasing queued work before stop()
  /// calls this first, so that the answers to that work say it).
  void begin_stop();

 private:
  ListenerOptions options_;
  std::unique_ptr<httplib::Server> http_;
  Front* front_ = nullptr;  // http_, as the front it is
  bool tls_ = false;
  std::thread thread_;
  std::future<void> listen_done_;  // ready when the accept loop and its connections have ended
  int port_ = 0;
  bool started_ = false;
};

/// Blocks SIGINT, SIGTERM and SIGHUP (unless ignored, as under nohup) in the calling thread (and
/// threads it starts later). Call on the main thread before any other starts, so that only
/// wait_for_shutdown_signal() receives them.
void block_shutdown_signals();

/// Blocks until SIGINT, SIGTERM or SIGHUP arrives and returns the signal's number.
int wait_for_shutdown_signal();

}  // namespace ms::http_server

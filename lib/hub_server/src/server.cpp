// Server facade: configures cpp-httplib (TLS, threads, limits), installs the routes and runs the
// accept loop on a background thread.
#include "ms/hub_server/server.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "http_front.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "service.h"

namespace ms::hub_server {

FaultSpec parse_fault_spec(const std::string& text) {
  FaultSpec spec;
  if (text.empty()) return spec;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    char* stop = nullptr;
    const double number = value.empty() ? -1 : std::strtod(value.c_str(), &stop);
    const bool ok = stop && *stop == '\0' && number >= 0 && number < 1e9;
    auto bad = [&](const char* what) {
      throw Error(ErrorCode::kUsage, fmt::format("--inject-faults: bad item '{}': {}", item, what),
                  "use e.g. 'status500=3,reset=5,stall=7,stall_seconds=2'");
    };
    if (!ok) bad("expected KEY=NUMBER (>= 0)");
    if (key == "stall_seconds") {
      spec.stall_seconds = number;
      continue;
    }
    if (number != static_cast<int>(number)) bad("expected a whole number");
    if (key == "status500") {
      spec.status500 = static_cast<int>(number);
    } else if (key == "reset") {
      spec.reset = static_cast<int>(number);
    } else if (key == "stall") {
      spec.stall = static_cast<int>(number);
    } else {
      bad("unknown key (status500, reset, stall, stall_seconds)");
    }
  }
  return spec;
}

// The largest request body taken from a caller without a valid token (logins and the like).
constexpr std::uint64_t kAnonymousBodyLimit = 1u << 20;

// Worker threads at most: one per open connection (a connection keeps its thread), so this
// bounds simultaneous connections; more wait for a thread.
constexpr std::size_t kMaxThreads = 4096;

// Each connection is a file descriptor; the default soft limit (often 1024) would stop accept()
// long before kMaxThreads.
void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

struct Server::Impl {
  explicit Impl(ServerOptions options) : service(std::move(options)) {}

  Service service;
  std::unique_ptr<httplib::Server> http;
  PlainFront* front = nullptr;  // the plain-HTTP front (http), or null with TLS
  std::thread thread;
  int port = 0;
  bool started = false;
};

Server::Server(ServerOptions options) {
  MS_CHECK(!options.root.empty(), ErrorCode::kUsage, "ms hub serve needs --root DIR");
  MS_CHECK(options.tls_cert.empty() == options.tls_key.empty(), ErrorCode::kUsage,
           "--tls-cert and --tls-key go together");
  MS_CHECK(options.threads >= 1 && options.threads <= 1024, ErrorCode::kUsage,
           "threads must be 1..1024, got {}", options.threads);
  MS_CHECK(options.header_timeout_s >= 1 && options.header_timeout_s <= 3600, ErrorCode::kUsage,
           "--header-timeout must be 1..3600 seconds, got {}", options.header_timeout_s);
  MS_CHECK(options.max_client_connections >= 1 && options.max_client_connections <= 100000,
           ErrorCode::kUsage, "--max-client-connections must be 1..100000, got {}",
           options.max_client_connections);
  impl_ = std::make_unique<Impl>(std::move(options));
}

Server::~Server() { stop(); }

void Server::start() {
  MS_ASSERT(!impl_->started);
  Service& service = impl_->service;
  const ServerOptions& o = service.options;
  if (!o.tls_cert.empty()) {
    for (const auto& f : {o.tls_cert, o.tls_key}) {
      if (!std::filesystem::is_regular_file(f)) {
        throw Error(ErrorCode::kNotFound, fmt::format("TLS file {} does not exist", f.string()),
                    "pass --tls-cert and --tls-key the paths of PEM files");
      }
    }
    auto ssl = std::make_unique<httplib::SSLServer>(o.tls_cert.c_str(), o.tls_key.c_str());
    if (!ssl->is_valid()) {
      throw Error(ErrorCode::kConfig,
                  fmt::format("cannot load TLS certificate {} / key {}", o.tls_cert.string(),
                              o.tls_key.string()),
                  "pass a PEM certificate and its unencrypted PEM private key");
    }
    impl_->http = std::move(ssl);
    service.scheme = "https";
  } else {
    FrontLimits limits;
    limits.header_timeout_s = o.header_timeout_s;
    limits.max_client_connections = static_cast<std::size_t>(o.max_client_connections);
    auto front = std::make_unique<PlainFront>(limits);
    impl_->front = front.get();
    impl_->http = std::move(front);
  }
  httplib::Server& http = *impl_->http;
  // --threads are kept warm; more start while every one is busy, so slow or stalled clients
  // cannot hold the hub (they used to queue every other connection behind 32 of them).
  const auto warm = static_cast<std::size_t>(o.threads);
  http.new_task_queue = [warm] {
    return make_elastic_task_queue(warm, std::max<std::size_t>(warm, kMaxThreads)).release();
  };
  raise_open_file_limit();
  http.set_payload_max_length(static_cast<std::size_t>(o.max_blob_size));
  http.set_read_timeout(60);
  http.set_write_timeout(60);
  http.set_keep_alive_max_count(10000);
  // Idle keep-alive connections hold a worker until this expires, which also bounds shutdown.
  http.set_keep_alive_timeout(5);
  http.set_tcp_nodelay(true);
  // httplib's default also sets SO_REUSEPORT, with which a second hub binds a port that one is
  // already serving and the kernel splits the connections between the two. SO_REUSEADDR alone
  // still allows a restart while old connections linger in TIME_WAIT.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  const std::uint64_t max_json = o.max_json_body;
  const std::uint64_t max_blob = o.max_blob_size;
  http.set_pre_routing_handler(
      [max_json, max_blob, &service](const httplib::Request& req, httplib::Response& res) {
        // Range is handled by the content route itself; keep httplib from slicing bodies again.
        // (The Request is a non-const local of httplib's connection loop.)
        const_cast<httplib::Request&>(req).ranges.clear();
        // httplib passes NUL and other control bytes in header fields through; RFC 9110 has a
        // recipient reject them. The error handler closes the connection after this 400.
        for (const auto& [key, value] : req.headers) {
          for (const std::string* field : {&key, &value}) {
            for (char c : *field) {
              const auto u = static_cast<unsigned char>(c);
              if ((u < 0x20 && c != '\t') || u == 0x7f) {
                send_envelope(req, res, 400, nullptr, "control character in a header field");
                return httplib::Server::HandlerResponse::Handled;
              }
            }
          }
        }
        const bool blob =
            req.method == "PUT" && req.path.find("/info/lfs/objects/") != std::string::npos;
        const std::uint64_t limit = blob ? max_blob : max_json;
        if (req.has_header("Content-Length")) {
          std::uint64_t length = 0;
          try {
            length = std::stoull(req.get_header_value("Content-Length"));
          } catch (const std::exception&) {
            send_envelope(req, res, 400, nullptr, "bad Content-Length");
            return httplib::Server::HandlerResponse::Handled;
          }
          if (length > limit) {
            send_envelope(
                req, res, 413, nullptr,
                fmt::format("request body of {} bytes exceeds the limit of {}", length, limit));
            res.set_header("Connection", "close");
            return httplib::Server::HandlerResponse::Handled;
          }
          // httplib reads a body into memory before the route sees it; without this check
          // anyone could make the server hold max_json_body bytes per worker thread.
          if (length > kAnonymousBodyLimit && !identify(service, req).user) {
            send_envelope(req, res, 401, nullptr,
                          fmt::format("request bodies over {} bytes need a valid access token",
                                      kAnonymousBodyLimit));
            res.set_header("Connection", "close");
            return httplib::Server::HandlerResponse::Handled;
          }
        } else if (req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos) {
          send_envelope(req, res, 411, nullptr, "request bodies need a Content-Length header");
          res.set_header("Connection", "close");
          return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
      });
  http.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::error("hub serve: {} {}: {}", req.method, req.path, what);
        send_envelope(req, res, 500, nullptr, "internal error: " + what);
      });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty()) {
      send_envelope(req, res, res.status, nullptr,
                    res.status == 404 ? "no such API: " + req.method + " " + req.path
                                      : "HTTP error " + std::to_string(res.status));
    }
    // A malformed request is answered and its connection closed, not kept for the keep-alive
    // wait (clients reading to EOF saw every such error take 5 s).
    if (front_closes_after(res)) res.set_header("Connection", "close");
  });
  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    front_note_response(res);
    log::debug("hub serve: {} {} -> {}", req.method, req.target, res.status);
  });

  add_repo_routes(http, service);
  add_file_routes(http, service);
  add_upload_routes(http, service);
  add_git_routes(http, service);

  if (o.port == 0) {
    impl_->port = http.bind_to_any_port(o.host);
  } else {
    MS_CHECK(o.port > 0 && o.port < 65536, ErrorCode::kUsage, "--port must be 0..65535, got {}",
             o.port);
    impl_->port = http.bind_to_port(o.host, o.port) ? o.port : -1;
  }
  if (impl_->port <= 0) {
    throw Error(ErrorCode::kIo, fmt::format("cannot listen on {}:{}", o.host, o.port),
                "the port may be in use or the host not an address of this machine; try --port 0");
  }
  if (impl_->front) impl_->front->widen_backlog();
  impl_->thread = std::thread([&http] { http.listen_after_bind(); });
  impl_->started = true;
  // Report ready only once the accept loop runs: httplib's stop() is a no-op before that, so a
  // signal arriving right after the ready line would otherwise leave the server running.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!http.is_running()) {
    MS_CHECK(std::chrono::steady_clock::now() < deadline, ErrorCode::kInternal,
             "hub serve: the HTTP listener did not start within 30 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

int Server::port() const { return impl_->port; }

std::string Server::endpoint() const {
  const std::string& host = impl_->service.options.host;
  const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return fmt::format("{}://{}:{}", impl_->service.scheme, shown, impl_->port);
}

void block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void Server::wait_for_shutdown_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  log::info("hub serve: signal {} received, shutting down", sig);
}

void Server::stop() {
  if (!impl_ || !impl_->started) return;
  impl_->http->stop();
  // Idle and half-sent connections would otherwise hold the join until their clients time out.
  if (impl_->front) impl_->front->drop_connections();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->started = false;
}

std::string create_token(const std::filesystem::path& root, const std::string& user) {
  Store store(root);
  return store.create_token(user);
}

bool hub_exists(const std::filesystem::path& root) { return Store::exists(root); }

bool hub_server_available() { return true; }

}  // namespace ms::hub_server

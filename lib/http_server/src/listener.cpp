// See ms/http_server/listener.h.
#include "ms/http_server/listener.h"

#include <netdb.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <utility>

#include "ms/core/error.h"
#include "ms/http_server/front.h"

namespace ms::http_server {
namespace {

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

// SIGINT, SIGTERM and SIGHUP (the terminal that started the server closed): each stops it as
// SIGTERM does, answering what it holds. A server started ignoring SIGHUP (nohup) goes on
// ignoring it: blocked for sigwait, an ignored signal would be kept pending and end the server.
sigset_t shutdown_signals() {
  static const bool hangup_ignored = [] {
    struct sigaction current {};
    return ::sigaction(SIGHUP, nullptr, &current) == 0 && current.sa_handler == SIG_IGN;
  }();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (!hangup_ignored) sigaddset(&set, SIGHUP);
  return set;
}

// Why binding host:port fails, found by trying it (httplib says only that it failed): the host
// does not resolve (a usage error), or the bind's own errno (in use, not this machine's address,
// a privileged port).
Error listen_error(const std::string& who, const std::string& host, int port) {
  const std::string where = fmt::format("{}: cannot listen on {}:{}", who, host, port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc =
          ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
      rc != 0) {
    return Error(ErrorCode::kUsage,
                 fmt::format("{}: --host {} is not an address, nor a name that resolves ({})",
                             where, host, ::gai_strerror(rc)),
                 "give an address of this machine (127.0.0.1, 0.0.0.0, ::1) or its name");
  }
  int bind_errno = 0;
  const int sock = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, 0);
  if (sock >= 0) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (::bind(sock, found->ai_addr, found->ai_addrlen) != 0) bind_errno = errno;
    ::close(sock);
  } else {
    bind_errno = errno;
  }
  ::freeaddrinfo(found);
  switch (bind_errno) {
    case EADDRINUSE:
      return Error(ErrorCode::kIo, where + ": the port is in use",
                   "stop what listens there, choose another --port, or --port 0 for a free one");
    case EADDRNOTAVAIL:
      return Error(ErrorCode::kIo, where + ": the host is not an address of this machine",
                   "give one of this machine's addresses (127.0.0.1, 0.0.0.0 for all)");
    case EACCES:
      return Error(ErrorCode::kIo, where + ": ports below 1024 need privileges",
                   "choose a --port of 1024 or more");
    case 0:
      break;  // it binds now: the port was freed meanwhile
    default:
      return Error(ErrorCode::kIo, fmt::format("{}: {}", where, std::strerror(bind_errno)),
                   "try --port 0");
  }
  return Error(ErrorCode::kIo, where,
               "the port may be in use or the host not an address of this machine; try --port 0");
}

}  // namespace

Listener::Listener(const ListenerOptions& options) : options_(options) {
  // An IPv6 address as URLs write it, and as endpoint() shows it ("[::1]"), is the address
  // inside the brackets: getaddrinfo() knows only the bare form.
  std::string& host = options_.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']' &&
      host.find(':') != std::string::npos) {
    host = host.substr(1, host.size() - 2);
  }
  const ListenerOptions& o = options_;
  MS_CHECK(o.tls_cert.empty() == o.tls_key.empty(), ErrorCode::kUsage,
           "--tls-cert and --tls-key go together");
  MS_CHECK(o.warm_threads >= 1 && o.warm_threads <= 1024, ErrorCode::kUsage,
           "threads must be 1..1024, got {}", o.warm_threads);
  MS_CHECK(o.header_timeout_s >= 1 && o.header_timeout_s <= 3600, ErrorCode::kUsage,
           "--header-timeout must be 1..3600 seconds, got {}", o.header_timeout_s);
  MS_CHECK(o.body_timeout_s >= 0 && o.body_timeout_s <= 86400, ErrorCode::kUsage,
           "body timeout must be 0..86400 seconds, got {}", o.body_timeout_s);
  MS_CHECK(o.max_client_connections >= 1 && o.max_client_connections <= 100000, ErrorCode::kUsage,
           "--max-client-connections must be 1..100000, got {}", o.max_client_connections);
  MS_CHECK(o.port >= 0 && o.port < 65536, ErrorCode::kUsage, "--port must be 0..65535, got {}",
           o.port);
  SSL_CTX* tls = nullptr;
  if (!o.tls_cert.empty()) {
    const std::pair<const char*, std::filesystem::path> files[] = {{"--tls-cert", o.tls_cert},
                                                                   {"--tls-key", o.tls_key}};
    for (const auto& [option, f] : files) {
      std::error_code ec;
      const std::filesystem::file_status status = std::filesystem::status(f, ec);
      // (A folder on the way that cannot be searched is not a missing file.)
      if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
        throw Error(ErrorCode::kIo, fmt::format("{}: {}: {}", option, f.string(), ec.message()),
                    "check the permissions of the TLS files and the folders above them");
      }
      if (!std::filesystem::exists(status)) {
        throw Error(ErrorCode::kNotFound,
                    fmt::format("{}: TLS file {} does not exist", option, f.string()),
                    "pass --tls-cert and --tls-key the paths of PEM files");
      }
      // A folder (or a device, a pipe) is a wrong argument, not a missing file.
      if (!std::filesystem::is_regular_file(status)) {
        throw Error(ErrorCode::kUsage,
                    std::filesystem::is_directory(status)
                        ? fmt::format("{}: {} is a folder, not a file", option, f.string())
                        : fmt::format("{}: {} is not a regular file", option, f.string()),
                    "pass --tls-cert and --tls-key the paths of PEM files");
      }
    }
    tls = load_tls_context(o.tls_cert.string(), o.tls_key.string());
    if (tls == nullptr) {
      throw Error(ErrorCode::kConfig,
                  fmt::format("cannot load TLS certificate {} / key {}", o.tls_cert.string(),
                              o.tls_key.string()),
                  "pass a PEM certificate and its unencrypted PEM private key");
    }
    tls_ = true;
  }
  FrontLimits limits;
  limits.header_timeout_s = o.header_timeout_s;
  limits.body_timeout_s = o.body_timeout_s;
  limits.max_client_connections = o.max_client_connections;
  auto front = std::make_unique<Front>(limits, tls);
  front_ = front.get();
  http_ = std::move(front);
  httplib::Server& http = *http_;
  // The warm threads are kept; more start while every one is busy, so slow or stalled clients
  // cannot hold the server (they used to queue every other connection behind 32 of them).
  const std::size_t warm = o.warm_threads;
  http.new_task_queue = [warm] {
    return make_elastic_task_queue(warm, std::max(warm, kMaxThreads)).release();
  };
  http.set_payload_max_length(o.max_body_bytes);
  http.set_read_timeout(o.read_timeout_s);
  http.set_write_timeout(o.write_timeout_s);
  http.set_keep_alive_max_count(10000);
  // Idle keep-alive connections hold a worker until this expires, which also bounds shutdown.
  http.set_keep_alive_timeout(o.keep_alive_timeout_s);
  http.set_tcp_nodelay(true);
  // httplib's default also sets SO_REUSEPORT, with which a second server binds a port that one is
  // already serving and the kernel splits the connections between the two. SO_REUSEADDR alone
  // still allows a restart while old connections linger in TIME_WAIT.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
}

Listener::~Listener() { stop(); }

void Listener::start(const std::string& who) {
  MS_CHECK(!started_, ErrorCode::kUsage, "{}: start() called on a server already started", who);
  raise_open_file_limit();
  httplib::Server& http = *http_;
  const ListenerOptions& o = options_;
  if (o.port == 0) {
    port_ = http.bind_to_any_port(o.host);
  } else {
    port_ = http.bind_to_port(o.host, o.port) ? o.port : -1;
  }
  if (port_ <= 0) throw listen_error(who, o.host, o.port);
  front_->widen_backlog();
  front_->end_stop();
  std::promise<void> done;
  listen_done_ = done.get_future();
  thread_ = std::thread([&http, done = std::move(done)]() mutable {
    http.listen_after_bind();  // returns once every connection's job has ended
    done.set_value();
  });
  started_ = true;
  // Report ready only once the accept loop runs: httplib's stop() is a no-op before that, so a
  // signal arriving right after the ready line would otherwise leave the server running.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!http.is_running()) {
    MS_CHECK(std::chrono::steady_clock::now() < deadline, ErrorCode::kInternal,
             "{}: the HTTP listener did not start within 30 s", who);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::string Listener::endpoint() const {
  const std::string& host = options_.host;
  const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return fmt::format("{}://{}:{}", scheme(), shown, port_);
}

void Listener::begin_stop() {
  if (started_) front_->begin_stop();
}

void Listener::stop(std::chrono::seconds grace) {
  if (!started_) return;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  // The front stops taking requests first and lets those in flight finish (idle and half-sent
  // connections would otherwise hold the join until their clients time out); httplib's stop()
  // closes the listening socket and ends streamed responses, so it comes once they are done or
  // the grace is over.
  front_->begin_stop();
  if (!front_->wait_for_early_connections(
          std::min(deadline, std::chrono::steady_clock::now() + kFirstRequestGrace))) {
    // A connection whose first request has not come by now (a silent or trickling client) ends.
    front_->drop_connections(Front::Drop::kNotServing);
    front_->wait_for_early_connections(deadline);
  }
  http_->stop();
  front_->drop_connections(Front::Drop::kNotServing);
  if (listen_done_.wait_until(deadline) == std::future_status::timeout) {
    front_->drop_connections(Front::Drop::kAll);
  }
  if (thread_.joinable()) thread_.join();
  started_ = false;
}

void block_shutdown_signals() {
  const sigset_t set = shutdown_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_shutdown_signal() {
  const sigset_t set = shutdown_signals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace ms::http_server

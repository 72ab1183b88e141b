// Server facade: configures cpp-httplib (TLS, threads, limits), installs the routes and runs the
// accept loop on a background thread.
#include "ms/hub_server/server.h"

#include <chrono>
#include <cstdlib>

#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/http_server/front.h"
#include "ms/http_server/listener.h"
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

struct Server::Impl {
  explicit Impl(ServerOptions options) : service(std::move(options)) {}

  Service service;
  std::unique_ptr<http_server::Listener> listener;
};

Server::Server(ServerOptions options) {
  MS_CHECK(!options.root.empty(), ErrorCode::kUsage, "ms hub serve needs --root DIR");
  http_server::ListenerOptions listen;
  listen.host = options.host;
  listen.port = options.port;
  listen.tls_cert = options.tls_cert;
  listen.tls_key = options.tls_key;
  MS_CHECK(options.threads >= 1 && options.threads <= 1024, ErrorCode::kUsage,
           "--threads must be 1..1024, got {}", options.threads);
  listen.warm_threads = static_cast<std::size_t>(options.threads);
  listen.header_timeout_s = options.header_timeout_s;
  listen.max_client_connections =
      static_cast<std::size_t>(std::max(options.max_client_connections, 0));
  listen.max_body_bytes = static_cast<std::size_t>(options.max_blob_size);
  // The listener checks every option before the store is opened.
  auto listener = std::make_unique<http_server::Listener>(listen);
  impl_ = std::make_unique<Impl>(std::move(options));
  impl_->listener = std::move(listener);
  impl_->service.scheme = impl_->listener->scheme();
}

Server::~Server() { stop(); }

void Server::start() {
  Service& service = impl_->service;
  const ServerOptions& o = service.options;
  httplib::Server& http = impl_->listener->http();
  const std::uint64_t max_json = o.max_json_body;
  const std::uint64_t max_blob = o.max_blob_size;
  // Refuses a request before its body is read: bad header fields, a body over the limits, a large
  // body without a token.
  const auto screen = [max_json, max_blob, &service](const httplib::Request& req,
                                                     httplib::Response& res) {
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
    // httplib decodes gzip, deflate and br; another coding (or a list of them) it passes through
    // as it came, or (a list holding "br") decodes as brotli alone.
    if (const std::string why = http_server::unsupported_content_coding(req); !why.empty()) {
      send_envelope(req, res, 415, nullptr, why);
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
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
      // The same limits hold for what a compressed body decodes to, which the routes other than
      // blob uploads (whose store checks the size) get whole in memory: 1 MiB of gzip sent
      // without a token made 1 GiB there.
      if (!blob && req.has_header("Content-Encoding")) {
        http_server::limit_decoded_body(identify(service, req).user ? limit : kAnonymousBodyLimit);
      }
    } else if (req.has_header("Transfer-Encoding")) {
      // The front let through "chunked" alone, in any case ("Chunked" went past a case-sensitive
      // test here, and its body, with no limit but --max-blob-size, into memory).
      send_envelope(req, res, 411, nullptr, "request bodies need a Content-Length header");
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  };
  http.set_pre_routing_handler(screen);
  // A client that asks before it sends its body (Expect: 100-continue, as curl does for uploads
  // over 1 MB) hears a refusal now, rather than after sending the body. The connection then
  // closes: a body sent anyway is not read.
  http.set_expect_100_continue_handler(
      [screen](const httplib::Request& req, httplib::Response& res) {
        if (screen(req, res) == httplib::Server::HandlerResponse::Unhandled) return 100;
        res.set_header("Connection", "close");
        return res.status;
      });
  http.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        send_server_error(req, res, http_server::exception_text(ep));
      });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty()) {
      const bool headers_too_large = http_server::front_headers_too_large(res);
      const auto headers_timed_out = http_server::front_headers_timed_out(res);
      const auto decoded_limit = http_server::decoded_body_too_large();
      if (decoded_limit) res.status = 413;
      send_envelope(req, res, res.status, nullptr,
                    headers_too_large   ? "the request headers are over 64 KiB"
                    : headers_timed_out ? *headers_timed_out
                    : decoded_limit
                        ? fmt::format("the request body decodes to over {} bytes{}", *decoded_limit,
                                      *decoded_limit == kAnonymousBodyLimit
                                          ? " (larger ones need a valid access token)"
                                          : "")
                    : res.status == 404 ? "no such API: " + req.method + " " + req.path
                    : res.status == 414 ? http_server::request_line_too_long_message()
                                        : "HTTP error " + std::to_string(res.status));
    }
    // A malformed request is answered and its connection closed, not kept for the keep-alive
    // wait (clients reading to EOF saw every such error take 5 s).
    http_server::front_mark_close(req, res);
  });
  http.set_post_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    http_server::front_tidy_headers(req, res);
  });
  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    http_server::front_note_response(res);
    log::debug("hub serve: {} {} -> {}", req.method, req.target, res.status);
  });

  add_repo_routes(http, service);
  add_file_routes(http, service);
  add_upload_routes(http, service);
  add_git_routes(http, service);

  impl_->listener->start("hub serve");
}

int Server::port() const { return impl_->listener->port(); }

std::string Server::endpoint() const { return impl_->listener->endpoint(); }

void block_shutdown_signals() { http_server::block_shutdown_signals(); }

int Server::wait_for_shutdown_signal() { return http_server::wait_for_shutdown_signal(); }

void Server::stop() {
  // Requests in flight get a minute to finish (an upload of a few GB on a LAN; systemd's default
  // stop timeout is 90 s); after that a connection still open, such as a client trickling a body
  // byte by byte, is cut and the upload is left for the client to send again.
  constexpr std::chrono::seconds kShutdownGrace{60};
  if (impl_ && impl_->listener) impl_->listener->stop(kShutdownGrace);
}

std::string create_token(const std::filesystem::path& root, const std::string& user) {
  Store::check_user_name(user);  // a bad name must not leave a new, empty hub behind
  Store store(root);
  return store.create_token(user);
}

bool hub_exists(const std::filesystem::path& root) { return Store::exists(root); }

bool hub_server_available() { return true; }

}  // namespace ms::hub_server

// See ms/serve/server.h. Each HTTP request is parsed on its connection's thread, queued in the
// batcher, and answered from that thread once its inputs have run.
#include "ms/serve/server.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/http_server/front.h"
#include "ms/http_server/listener.h"
#include "ms/infer/job.h"
#include "ms/infer/pipeline.h"
#include "ms/infer/torch_layer.h"
#include "ms/io/resource.h"
#include "ms/serve/batcher.h"
#include "ms/serve/call.h"
#include "ms/serve/metrics.h"

namespace ms::serve {
namespace {

constexpr const char* kJson = "application/json";
// Not an HTTP status (nginx's): a request whose client left before its answer, in /metrics.
constexpr int kClientClosedRequest = 499;

void send_error(httplib::Response& res, int status, const std::string& field,
                const std::string& message, const std::string& request_id) {
  res.status = status;
  res.set_content(error_body(status, field, message, request_id), kJson);
}

// Compares in constant time, so that the answer's timing does not reveal the token's prefix.
bool same_token(const std::string& given, const std::string& expected) {
  return given.size() == expected.size() &&
         CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

}  // namespace

struct Server::Impl {
  ServeOptions options;
  infer::ModelInfo model;
  std::unique_ptr<infer::Pipeline> pipeline;
  Metrics metrics;
  std::unique_ptr<DynamicBatcher> batcher;  // null once stopped
  std::size_t workers = 0;                  // the batcher's, still known once it is gone
  std::unique_ptr<http_server::Listener> listener;
  std::atomic<std::uint64_t> next_request{1};

  bool authorized(const httplib::Request& req) const {
    if (options.token.empty()) return true;
    const std::optional<std::string> token = http_server::bearer_token(req);
    return token && same_token(*token, options.token);
  }

  // 401 unless the request carries the token; true when it may go on.
  bool admit(const httplib::Request& req, httplib::Response& res, const std::string& id) {
    if (authorized(req)) return true;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(
        res, 401, "Authorization",
        "this server needs \"Authorization: Bearer TOKEN\" (the --token it was started with)", id);
    return false;
  }

  std::string new_request_id() {
    return fmt::format("{:x}-{}", static_cast<unsigned>(::getpid()), next_request++);
  }

  // The response's request id (its X-Request-Id, given one now if it has none), for an error
  // body that names it as the header does.
  std::string request_id_of(httplib::Response& res) {
    if (!res.has_header("X-Request-Id")) res.set_header("X-Request-Id", new_request_id());
    return res.get_header_value("X-Request-Id");
  }

  // POST /call. The body is read here rather than by httplib, which would cap a body sent as a
  // form (curl -d's default content type) at 8 KiB.
  void call(const httplib::Request& req, httplib::Response& res,
            const httplib::ContentReader& read_body) {
    const auto t0 = Clock::now();
    // The id answer_expect_continue() gave the request, if it asked before sending its body: one
    // request, one id (a second X-Request-Id header went out beside the first).
    const std::string id = request_id_of(res);
    // Every answer counts in the metrics, an exception's 500 too.
    struct Count {
      Impl& s;
      httplib::Response& res;
      Clock::time_point t0;
      ~Count() {
        s.metrics.request(res.status == -1 ? 500 : res.status,
                          std::chrono::duration<double>(Clock::now() - t0).count());
      }
    } count{*this, res, t0};
    if (!admit(req, res, id)) return;
    if (req.is_multipart_form_data()) {
      res.set_header("Connection", "close");
      send_error(res, 415, "body", "send the body as JSON, not as a multipart form", id);
      return;
    }
    // httplib decodes these (its build links zlib and brotli) and passes any other coding through
    // undecoded, which would then fail as JSON with a misleading message.
    if (const std::string why = http_server::unsupported_content_coding(req); !why.empty()) {
      res.set_header("Connection", "close");
      send_error(res, 415, "body", why, id);
      return;
    }
    std::string body;
    bool too_large = false;
    const bool complete = read_body([&](const char* data, std::size_t size) {
      if (body.size() + size > options.max_body_bytes) {
        too_large = true;
        return false;
      }
      body.append(data, size);
      return true;
    });
    if (!complete) {
      res.set_header("Connection", "close");
      body_failed(req, res, too_large, id);
      return;
    }
    http_server::note_request_read();
    if (body.empty()) {
      // The front reads a request without Content-Length (or chunked encoding) as having no body,
      // as HTTP/1.1 does (curl -X POST without -d).
      send_error(res, 400, "body",
                 "empty request body; send {\"input\": ...} as JSON (with a Content-Length)", id);
      return;
    }
    answer_call(body, res, id, t0);
  }

  // The answer to a body that could not be read whole. httplib's status (set while reading) says
  // 413 for a declared length over the limit and 415 for a Content-Encoding it cannot decode.
  void body_failed(const httplib::Request& req, httplib::Response& res, bool too_large,
                   const std::string& id) {
    const std::string encoding = req.get_header_value("Content-Encoding");
    const auto chunked_refused = http_server::chunked_body_error();
    if (chunked_refused && !chunked_refused->too_large) {
      send_error(res, 400, "body", "chunked request body: " + chunked_refused->message, id);
    } else if (too_large || res.status == 413 || chunked_refused) {
      send_error(res, 413, "body",
                 fmt::format("request body over {} bytes (ms serve --max-body-mb)",
                             options.max_body_bytes),
                 id);
    } else if (res.status == 415) {
      const std::string why = http_server::unsupported_content_coding(req);
      send_error(res, 415, "body",
                 why.empty() ? "Content-Encoding " + encoding + " is not supported" : why, id);
    } else if (http_server::request_body_timed_out()) {
      send_error(res, 408, "body",
                 fmt::format("the request body did not arrive within --request-timeout {} s",
                             options.request_timeout_s),
                 id);
    } else if (http_server::client_hung_up()) {
      // The body stopped because its client closed the connection: no one reads this answer,
      // and /metrics counts it as a client that left (499), not as a bad request.
      send_error(res, kClientClosedRequest, "body",
                 "the client closed its connection before sending the whole body", id);
    } else if (!encoding.empty()) {
      send_error(res, 400, "body",
                 fmt::format("the request body is not valid {} data, or was cut short", encoding),
                 id);
    } else {
      send_error(res, 400, "body", "the request body was cut short", id);
    }
  }

  void answer_call(const std::string& body, httplib::Response& res, const std::string& id,
                   Clock::time_point t0) {
    const auto deadline = t0 + std::chrono::seconds(options.request_timeout_s);
    try {
      // Images fetched for one request share its deadline and, together, the body's size
      // limit: a list of URLs must not hold the server longer or fetch more than one body.
      std::size_t fetched = 0;
      const UrlFetcher fetch = [&](const std::string& url) {
        const auto left =
            std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now()).count();
        if (left < 1 || fetched >= options.max_body_bytes) {
          throw Error(ErrorCode::kUsage,
                      left < 1 ? "the request's time (--request-timeout) ran out fetching images"
                               : "the request's images exceed --max-body-mb together");
        }
        io::ReadOptions read;
        read.max_bytes = options.max_body_bytes - fetched;
        read.total_timeout_s = left;
        read.stall_timeout_s = std::min<long>(read.stall_timeout_s, left);
        std::string bytes = io::read_resource(url, read);
        fetched += bytes.size();
        return bytes;
      };
      // More inputs than --max-queue are 413 (503 would tell the client to retry something that
      // can never fit), refused while parsing.
      CallRequest request = parse_call(model.task, body, fetch, options.max_queue);
      std::shared_ptr<Submission> submission = batcher->submit(std::move(request.inputs));
      if (!submission) {
        res.set_header("Retry-After", "1");
        // The same words as the front's answer to a connection made during the stop.
        send_error(res, 503, "",
                   batcher->draining()
                       ? std::string("the server is shutting down")
                       : fmt::format("the server is busy ({} inputs queued, --max-queue {}); "
                                     "retry later",
                                     batcher->queue_depth(), options.max_queue),
                   id);
        return;
      }
      const auto outcome = batcher->wait(*submission, deadline, http_server::client_hung_up);
      if (outcome == DynamicBatcher::WaitResult::kClientGone) {
        // 499 (nginx's "client closed request") counts it in /metrics; a client that only shut
        // its sending side reads it, and the connection closes.
        send_error(res, kClientClosedRequest, "",
                   "the client closed its connection before the answer; its inputs were dropped",
                   id);
        res.set_header("Connection", "close");
        return;
      }
      if (outcome == DynamicBatcher::WaitResult::kTimedOut) {
        send_error(
            res, 504, "",
            fmt::format("not answered within --request-timeout {} s", options.request_timeout_s),
            id);
        return;
      }
      res.status = 200;
      res.set_content(render_call(request, submission->results()), kJson);
    } catch (const CallError& e) {
      send_error(res, e.status, e.field, e.message, id);
    }
  }

  // A client that asks before it sends its body (Expect: 100-continue, as curl does for bodies
  // over 1 MB) hears now that it would be refused for its token or its declared size, rather
  // than after sending the body. Its connection then closes: a body sent anyway is not read.
  int answer_expect_continue(const httplib::Request& req, httplib::Response& res) {
    if (req.method != "POST" || req.path != "/call") return 100;
    const std::string id = new_request_id();
    res.set_header("X-Request-Id", id);
    const bool too_large = http_server::declared_body_length(req) > options.max_body_bytes;
    if (!admit(req, res, id)) {
    } else if (too_large) {
      send_error(res, 413, "body",
                 fmt::format("request body over {} bytes (ms serve --max-body-mb)",
                             options.max_body_bytes),
                 id);
    } else {
      return 100;
    }
    metrics.request(res.status, 0.0);
    res.set_header("Connection", "close");
    return res.status;
  }

  void install_routes() {
    httplib::Server& http = listener->http();
    http.set_expect_100_continue_handler(
        [this](const httplib::Request& req, httplib::Response& res) {
          return answer_expect_continue(req, res);
        });
    http.Post("/call",
              [this](const httplib::Request& req, httplib::Response& res,
                     const httplib::ContentReader& read_body) { call(req, res, read_body); });
    // Other methods on /call are 405, not "no such API".
    const auto only_post = [this](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "POST");
      send_error(res, 405, "", "/call takes POST", request_id_of(res));
    };
    http.Get("/call", only_post);
    http.Put("/call", only_post);
    http.Delete("/call", only_post);
    http.Patch("/call", only_post);
    http.Options("/call", only_post);
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"Code":200,"Data":{},"Message":"success","RequestId":"","Success":true})",
                      kJson);
    });
    http.Get("/describe", [this](const httplib::Request& req, httplib::Response& res) {
      if (admit(req, res, request_id_of(res))) res.set_content(describe(model.task), kJson);
    });
    http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      if (!admit(req, res, request_id_of(res))) return;
      res.set_content(metrics.render(batcher->queue_depth(), batcher->running()),
                      "text/plain; version=0.0.4");
    });
    if (options.test_routes) {
      http.Post("/_test/hold", [this](const httplib::Request&, httplib::Response& res) {
        batcher->hold(true);
        res.set_content("{}", kJson);
      });
      http.Post("/_test/release", [this](const httplib::Request&, httplib::Response& res) {
        batcher->hold(false);
        res.set_content("{}", kJson);
      });
    }
    http.set_exception_handler(
        [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
          const std::string what = http_server::exception_text(ep);
          const std::string id = request_id_of(res);
          log::error("serve: {} {} (request {}): {}", req.method, req.path, id, what);
          send_error(res, 500, "", "internal error: " + what, id);
        });
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (res.body.empty()) {
        std::string message = "HTTP error " + std::to_string(res.status);
        if (http_server::front_headers_too_large(res))
          message = "the request headers are over 64 KiB";
        if (const auto timed_out = http_server::front_headers_timed_out(res)) message = *timed_out;
        if (res.status == 404)
          message = "no such API: " + req.method + " " + req.path +
                    " (POST /call, GET /describe, /health, /metrics)";
        if (res.status == 413) message = "request body too large (see ms serve --max-body-mb)";
        if (res.status == 414) message = http_server::request_line_too_long_message();
        if (res.status == 400) {
          message =
              "malformed request (its line or headers, or a method other than GET, POST, "
              "PUT, PATCH, DELETE, OPTIONS)";
        }
        if (const auto refused = http_server::chunked_body_error()) {
          res.status = refused->too_large ? 413 : 400;
          message = "chunked request body: " + refused->message;
        }
        send_error(res, res.status, "", message, request_id_of(res));
      }
      http_server::front_mark_close(req, res);
    });
    // Last before the headers go out, for every response httplib writes (a 404's too).
    http.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.has_header("X-Request-Id")) res.set_header("X-Request-Id", new_request_id());
      http_server::front_tidy_headers(req, res);
    });
    http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      http_server::front_note_response(res);
      log::debug("serve: {} {} -> {}", req.method, req.target, res.status);
    });
  }
};

Server::Server(ServeOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = std::move(options);
  const ServeOptions& o = s.options;
  MS_CHECK(o.max_batch >= 1 && o.max_batch <= 65536, ErrorCode::kUsage,
           "--max-batch must be 1..65536, got {}", o.max_batch);
  MS_CHECK(o.max_wait_ms >= 0 && o.max_wait_ms <= 60000, ErrorCode::kUsage,
           "--max-wait-ms must be 0..60000, got {}", o.max_wait_ms);
  MS_CHECK(o.max_queue >= 1 && o.max_queue <= 10000000, ErrorCode::kUsage,
           "--max-queue must be 1..10000000, got {}", o.max_queue);
  MS_CHECK(o.request_timeout_s >= 1 && o.request_timeout_s <= 86400, ErrorCode::kUsage,
           "--request-timeout must be 1..86400 seconds, got {}", o.request_timeout_s);
  // A lone request waits --max-wait-ms for company: at or past its own deadline it would always
  // be answered 504 before any batch ran.
  if (o.max_wait_ms >= static_cast<std::int64_t>(o.request_timeout_s) * 1000) {
    throw Error(ErrorCode::kUsage,
                fmt::format("--max-wait-ms {} is not below --request-timeout ({} s): a request "
                            "that waits alone would time out before its batch runs",
                            o.max_wait_ms, o.request_timeout_s),
                "keep --max-wait-ms a small part of the timeout (tens of milliseconds), or "
                "raise --request-timeout");
  }
  MS_CHECK(o.max_body_bytes >= 1024, ErrorCode::kUsage, "--max-body-mb must be positive");
  MS_CHECK(!o.workers || (*o.workers >= 1 && *o.workers <= std::size_t{kMaxWorkers}),
           ErrorCode::kUsage, "--workers must be 1..{}, got {}", kMaxWorkers, *o.workers);
  MS_CHECK(!o.threads || (*o.threads >= 1 && *o.threads <= kMaxWorkers), ErrorCode::kUsage,
           "--threads must be 1..{}, got {}", kMaxWorkers, *o.threads);
  if (o.host.empty()) {
    throw Error(ErrorCode::kUsage, "--host is empty",
                "give an address: 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)");
  }
  http_server::ListenerOptions listen;
  listen.host = o.host;
  listen.port = o.port;
  listen.tls_cert = o.tls_cert;
  listen.tls_key = o.tls_key;
  listen.warm_threads = 16;
  listen.max_body_bytes = o.max_body_bytes;
  listen.max_client_connections = o.max_client_connections;
  // A body trickled a byte at a time would otherwise hold its connection (and its client's
  // share of --max-client-connections) as long as every byte comes within the read timeout.
  listen.body_timeout_s = o.request_timeout_s;
  listen.header_timeout_s = o.header_timeout_s;
  // Checked (port, TLS files) before the model loads, which takes seconds.
  s.listener = std::make_unique<http_server::Listener>(listen);

  s.model = infer::open_model(o.model, o.task, o.overrides, o.hub);
  infer::PipelineOptions popts;
  popts.device = o.device;
  popts.dtype = o.dtype;
  s.pipeline = infer::pipeline_factory(o.threads).create(s.model, popts);
  BatcherOptions batching;
  batching.max_batch = o.max_batch;
  batching.max_wait = std::chrono::milliseconds(o.max_wait_ms);
  batching.max_queue = o.max_queue;
  batching.workers = infer::worker_count(*s.pipeline, o.workers);
  batching.threads = infer::load_torch_layer().runtime->info().num_threads;
  batching.on_batch = [&s](std::size_t inputs, double seconds) {
    s.metrics.batch(inputs, seconds);
  };
  s.batcher = std::make_unique<DynamicBatcher>(*s.pipeline, std::move(batching));
  s.workers = s.batcher->workers();
  s.install_routes();
}

Server::~Server() { stop(); }

void Server::start() {
  // The batcher's workers end at the stop: a listener started again answered its first request
  // with a null batcher (SIGSEGV).
  MS_CHECK(impl_->batcher != nullptr, ErrorCode::kUsage,
           "this server was stopped, and a stopped ms::serve::Server does not start again: make "
           "a new one");
  impl_->listener->start("serve");
}
int Server::port() const { return impl_->listener->port(); }
std::string Server::endpoint() const { return impl_->listener->endpoint(); }
const std::string& Server::task() const { return impl_->model.task; }
std::string Server::device() const { return impl_->pipeline->device(); }
std::size_t Server::workers() const { return impl_->workers; }
const std::filesystem::path& Server::model_dir() const { return impl_->model.dir; }

void Server::stop() {
  if (!impl_ || !impl_->batcher) return;
  log::info("serve: stopping; draining {} queued and {} running inputs",
            impl_->batcher->queue_depth(), impl_->batcher->running());
  // Queued inputs run (a held batcher is released) while the listener lets the requests that
  // wait for them finish; only then do the workers end. The listener's stop begins first, so
  // that every answer to that work says "Connection: close".
  impl_->listener->begin_stop();
  impl_->batcher->drain();
  // Every queued request is answered or timed out within --request-timeout; a connection still
  // open a few seconds after that is a client too slow to wait for.
  impl_->listener->stop(std::chrono::seconds(impl_->options.request_timeout_s + 5));
  impl_->batcher.reset();
}

void block_shutdown_signals() { http_server::block_shutdown_signals(); }

int wait_for_shutdown_signal() { return http_server::wait_for_shutdown_signal(); }

bool serve_available() { return true; }

}  // namespace ms::serve

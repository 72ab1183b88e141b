#include "ms/hub/client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <unordered_set>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/core/version.h"
#include "ms/hub/pickle.h"
#include "ms/hub/sha256_checkpoints.h"

namespace ms::hub {
namespace {

using json = nlohmann::json;

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string escape(const std::string& s) {
  char* e = curl_easy_escape(nullptr, s.c_str(), static_cast<int>(s.size()));
  std::string out(e);
  curl_free(e);
  return out;
}

std::string random_hex(std::size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string out(n, '0');
  for (char& c : out) c = digits[rng() % 16];
  return out;
}

// One HTTP exchange as curl saw it.
struct Response {
  long status = 0;
  std::string body;
  CURLcode curl_code = CURLE_OK;
  std::string curl_error;
  bool aborted_by_sink = false;
  bool range_ignored = false;         // a ranged GET was answered with the whole file (200)
  bool stopped_at_range_end = false;  // ... and cut on purpose once the range's end arrived
  bool body_too_large = false;
  std::exception_ptr sink_error;
  std::string set_cookie_session;  // the Set-Cookie header value that set m_session_id
  long retry_after_s = -1;
  std::int64_t content_length = -1;  // of the current response, when it says
  bool whole_size_mismatch = false;  // a whole-file answer whose length is not the listed size
  std::string sha256_checkpoints;    // X-Ms-Sha256-Checkpoints of the current response
};

struct Request {
  const char* method = "GET";
  std::string url;
  std::vector<std::string> headers;
  std::string body;    // sent when `upload_fd` < 0 and method is POST/PUT
  int upload_fd = -1;  // file streamed as the PUT body
  std::uint64_t upload_size = 0;
  const DataSink* sink = nullptr;  // receives a 2xx body instead of Response::body
  bool api = true;                 // whole-request timeout applies
  bool expect_partial = false;     // a ranged GET: a 200 carries the whole file, not the range
  std::uint64_t range_from = 0;    // with expect_partial: the range asked for, [from, end)
  std::uint64_t range_end = 0;     // 0: to the end of the file
  std::uint64_t file_size = 0;     // the listed size, when known (0: unknown)
  std::function<void(std::uint64_t)> upload_progress;
  std::vector<std::pair<std::string, std::string>> form;  // sent as multipart/form-data when set
  bool token_to_url_host = false;  // the URL's host gets the token too (an upload href it named)
  // Set to the response's X-Ms-Sha256-Checkpoints (or cleared) before its body is delivered.
  std::string* sha256_checkpoints = nullptr;
};

struct CallbackState {
  Response* response;
  const Request* request;
  std::uint64_t uploaded = 0;
  std::uint64_t whole_body_seen = 0;  // bytes of a whole-file answer to a ranged GET so far
  bool headers_passed = false;        // Request::sha256_checkpoints was set
};

// Hands body bytes to the request's sink; false stops the transfer.
bool deliver(CallbackState* state, const char* data, std::size_t n) {
  Response& r = *state->response;
  // Exceptions must not cross curl's C frames: keep it and rethrow after curl returns.
  bool ok = false;
  if (state->request->sha256_checkpoints != nullptr && !state->headers_passed) {
    *state->request->sha256_checkpoints = r.sha256_checkpoints;
    state->headers_passed = true;
  }
  try {
    ok = (*state->request->sink)(data, n);
  } catch (...) {
    r.sink_error = std::current_exception();
  }
  if (!ok) r.aborted_by_sink = true;
  return ok;
}

size_t on_header(char* buffer, size_t size, size_t count, void* user) {
  auto* state = static_cast<CallbackState*>(user);
  std::string line(buffer, size * count);
  auto lower = line;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (lower.rfind("http/", 0) == 0) {
    // A new response (after a redirect or 100-continue) starts; forget the old one's headers.
    state->response->retry_after_s = -1;
    state->response->content_length = -1;
    state->response->sha256_checkpoints.clear();
  } else if (lower.rfind("set-cookie:", 0) == 0) {
    // The whole header, attributes included: a login stores the cookie as Python's jar would.
    const auto start = line.find_first_not_of(" \t", 11);
    const auto end = line.find_last_not_of(" \t\r\n");
    if (start != std::string::npos && end != std::string::npos && end >= start &&
        line.compare(start, 13, "m_session_id=") == 0)
      state->response->set_cookie_session = line.substr(start, end + 1 - start);
  } else if (lower.rfind("content-length:", 0) == 0) {
    state->response->content_length = std::atoll(line.c_str() + 15);
  } else if (lower.rfind("retry-after:", 0) == 0) {
    state->response->retry_after_s = std::atol(line.c_str() + 12);
  } else if (lower.rfind("x-ms-sha256-checkpoints:", 0) == 0) {
    const auto start = line.find_first_not_of(" \t", 24);
    const auto end = line.find_last_not_of(" \t\r\n");
    if (start != std::string::npos && end != std::string::npos && end >= start)
      state->response->sha256_checkpoints = line.substr(start, end + 1 - start);
  }
  return size * count;
}

size_t on_body(char* ptr, size_t size, size_t count, void* user) {
  auto* state = static_cast<CallbackState*>(user);
  const size_t n = size * count;
  // Only 2xx bodies are data; an error page goes to Response::body for the message.
  Response& r = *state->response;
  const Request& req = *state->request;
  if (req.sink != nullptr && req.expect_partial && r.status == 200) {
    // The hub ignored the Range header and sends the whole file (plain file servers and some
    // proxies do). The bytes before the range are dropped and the transfer is cut at its end,
    // so a partial download still resumes, at the cost of receiving its prefix again.
    r.range_ignored = true;
    if (req.file_size != 0 && r.content_length >= 0 &&
        static_cast<std::uint64_t>(r.content_length) != req.file_size) {
      r.whole_size_mismatch = true;
      return 0;
    }
    const std::uint64_t pos = state->whole_body_seen;
    state->whole_body_seen += n;
    const std::uint64_t from = std::max(pos, req.range_from);
    const std::uint64_t to =
        req.range_end != 0 ? std::min<std::uint64_t>(pos + n, req.range_end) : pos + n;
    if (from < to && !deliver(state, ptr + (from - pos), static_cast<std::size_t>(to - from)))
      return 0;
    if (req.range_end != 0 && pos + n >= req.range_end) {
      r.stopped_at_range_end = true;
      return 0;
    }
    return n;
  }
  if (req.sink != nullptr && r.status >= 200 && r.status < 300) {
    return deliver(state, ptr, n) ? n : 0;
  }
  // API answers (listings of many thousand files) may be large; an error page in answer to a
  // download only needs its start for the message.
  const std::size_t limit = state->request->sink != nullptr ? (1u << 20) : (512u << 20);
  if (r.body.size() + n > limit) {
    if (state->request->sink != nullptr) return n;
    r.body_too_large = true;
    return 0;
  }
  r.body.append(ptr, n);
  return n;
}

size_t on_read(char* buffer, size_t size, size_t count, void* user) {
  auto* state = static_cast<CallbackState*>(user);
  const ssize_t n = ::read(state->request->upload_fd, buffer, size * count);
  if (n < 0) return CURL_READFUNC_ABORT;
  state->uploaded += static_cast<std::uint64_t>(n);
  if (state->request->upload_progress)
    state->request->upload_progress(static_cast<std::uint64_t>(n));
  return static_cast<size_t>(n);
}

// The endpoint's host name as curl matches cookie domains: lower case, no port, no brackets.
std::string endpoint_host(const std::string& endpoint) {
  CURLU* url = curl_url();
  char* host = nullptr;
  std::string out;
  if (url != nullptr && curl_url_set(url, CURLUPART_URL, endpoint.c_str(), 0) == CURLUE_OK &&
      curl_url_get(url, CURLUPART_HOST, &host, 0) == CURLUE_OK && host != nullptr) {
    out = host;
  }
  curl_free(host);
  curl_url_cleanup(url);
  if (out.size() >= 2 && out.front() == '[' && out.back() == ']')
    out = out.substr(1, out.size() - 2);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

// The token as a Netscape cookie-file line for the endpoint's host only (no tail match), so
// that curl's cookie engine sends it to the hub but not to a host the hub redirects to (a CDN,
// or anyone a hostile hub names). CURLOPT_COOKIE would go to every host of a redirect chain.
std::string session_cookie_line(const std::string& endpoint, const std::string& token) {
  if (token.find_first_of("\t\r\n;") != std::string::npos) {
    throw Error(ErrorCode::kUsage, "the access token contains a tab, newline or ';'",
                "pass the token exactly as the hub issued it (--token, MODELSCOPE_API_TOKEN)");
  }
  const std::string host = endpoint_host(endpoint);
  if (host.empty()) {
    throw Error(ErrorCode::kUsage, fmt::format("endpoint '{}' has no host name", endpoint),
                "use a URL such as https://www.modelscope.cn or http://127.0.0.1:8080");
  }
  // domain, tail match, path, secure only, expiry (0: session), name, value
  return fmt::format("{}\tFALSE\t/\tFALSE\t0\tm_session_id\t{}", host, token);
}

// Answers worth another try: the hub failed (5xx) or asked the client to slow down (429, which
// urllib3 retries for Python's client too, after the Retry-After it names).
bool is_retryable_status(long status) { return status >= 500 || status == 429; }

bool is_retryable_curl(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct HubClient::Impl {
  HubOptions options;
  std::mutex pool_mutex;
  std::vector<CURL*> pool;
  std::atomic<std::uint64_t> requests{0};
  std::string user_agent;
  std::string cookie_line;  // Netscape-format m_session_id cookie for the endpoint host
  std::string ca_bundle;

  explicit Impl(HubOptions o) : options(std::move(o)) {
    init_curl_once();
    user_agent = fmt::format("ms/{}; session_id/{}; platform/linux; env/custom; user/unknown",
                             ms::version(), random_hex(32));
    if (options.token && !options.token->empty())
      cookie_line = session_cookie_line(options.endpoint, *options.token);
    // The CA bundle variables Python's requests honours, for hubs with private certificates.
    for (const char* name : {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"}) {
      if (auto v = env_var(name)) {
        ca_bundle = *v;
        break;
      }
    }
  }
  ~Impl() {
    for (CURL* c : pool) curl_easy_cleanup(c);
  }

  CURL* acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mutex);
      if (!pool.empty()) {
        CURL* c = pool.back();
        pool.pop_back();
        return c;
      }
    }
    CURL* c = curl_easy_init();
    MS_CHECK(c != nullptr, ErrorCode::kInternal, "curl_easy_init failed");
    return c;
  }
  void release(CURL* c) {
    std::lock_guard<std::mutex> lock(pool_mutex);
    pool.push_back(c);
  }

  // One try, no retries.
  Response perform(const Request& req) {
    const std::string url_cookie_line = req.token_to_url_host && !cookie_line.empty()
                                            ? session_cookie_line(req.url, *options.token)
                                            : std::string();
    requests.fetch_add(1);
    CURL* c = acquire();
    curl_easy_reset(c);
    Response response;
    CallbackState state{&response, &req};
    char error_buffer[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent.c_str());
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, options.stall_timeout_s);
    if (req.api) curl_easy_setopt(c, CURLOPT_TIMEOUT, options.api_timeout_s);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &state);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &state);
    // The cookie engine keeps its cookies across curl_easy_reset: start each request afresh.
    curl_easy_setopt(c, CURLOPT_COOKIELIST, "ALL");
    if (!cookie_line.empty()) {
      curl_easy_setopt(c, CURLOPT_COOKIELIST, cookie_line.c_str());
      if (!url_cookie_line.empty())
        curl_easy_setopt(c, CURLOPT_COOKIELIST, url_cookie_line.c_str());
    }
    if (!ca_bundle.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_bundle.c_str());
    struct curl_slist* headers = nullptr;
    curl_mime* mime = nullptr;
    headers = curl_slist_append(headers, ("X-Request-ID: " + random_hex(32)).c_str());
    for (const std::string& h : req.headers) headers = curl_slist_append(headers, h.c_str());
    const std::string method = req.method;
    if (method == "PUT" && req.upload_fd >= 0) {
      curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(c, CURLOPT_READDATA, &state);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.upload_size));
      headers = curl_slist_append(headers, "Expect:");
    } else if (!req.form.empty()) {
      mime = curl_mime_init(c);
      for (const auto& [name, value] : req.form) {
        curl_mimepart* part = curl_mime_addpart(mime);
        curl_mime_name(part, name.c_str());
        curl_mime_data(part, value.c_str(), value.size());
      }
      curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    } else if (method == "POST" || method == "PUT") {
      headers = curl_slist_append(headers, "Content-Type: application/json");
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
      if (method == "PUT") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    } else if (method != "GET") {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    // The status must be known before body bytes arrive so that only 2xx bodies reach the sink.
    struct StatusPeek {
      static size_t header(char* b, size_t s, size_t n, void* u) {
        auto* st = static_cast<CallbackState*>(u);
        std::string_view line(b, s * n);
        if (line.rfind("HTTP/", 0) == 0) {
          auto sp = line.find(' ');
          if (sp != std::string_view::npos)
            st->response->status = std::atol(std::string(line.substr(sp + 1, 3)).c_str());
        }
        return on_header(b, s, n, u);
      }
    };
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, StatusPeek::header);
    response.curl_code = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (mime != nullptr) curl_mime_free(mime);
    if (response.curl_code != CURLE_OK) {
      response.curl_error =
          error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(response.curl_code);
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 0) response.status = status;
    release(c);
    return response;
  }

  void backoff(int attempt, long retry_after_s) {
    long ms = std::min<long>(8000, static_cast<long>(options.backoff_ms) << std::min(attempt, 10));
    if (retry_after_s > 0) ms = std::min<long>(retry_after_s * 1000, 30000);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }

  [[noreturn]] void http_error(const Request& req, const Response& r, const std::string& what) {
    std::string message;
    try {
      auto j = json::parse(r.body);
      if (j.is_object()) {
        for (const char* key : {"Message", "message", "error"}) {
          if (j.contains(key) && j[key].is_string()) {
            message = j[key].get<std::string>();
            break;
          }
        }
      }
    } catch (const std::exception&) {
    }
    const std::string detail = message.empty() ? "" : ": " + message;
    if (r.status == 404) {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("{}: not found on {} (HTTP 404{})", what, options.endpoint, detail),
                  options.token ? "check the id and revision"
                                : "check the id; a private repo also needs --token or ms login");
    }
    if (r.status == 401 || r.status == 403) {
      throw Error(
          ErrorCode::kNetwork,
          fmt::format("{}: HTTP {} (not authorised){}", what, r.status, detail),
          options.token
              ? "the token is invalid or lacks access; run 'ms login --token T' with a valid one"
              : "pass --token, set MODELSCOPE_API_TOKEN or run 'ms login --token T'");
    }
    throw Error(ErrorCode::kNetwork,
                fmt::format("{} {}: HTTP {}{}", req.method, req.url, r.status, detail),
                is_retryable_status(r.status) ? "the hub failed or is busy; try again later" : "");
  }

  // Sends with retries on transport errors and 5xx (only idempotent calls unless `retry_post`).
  Response send(const Request& req, const std::string& what, bool retryable = true) {
    for (int attempt = 0;; ++attempt) {
      Response r = perform(req);
      if (r.body_too_large)
        fail(ErrorCode::kNetwork, "{} {}: the answer is over 512 MiB", req.method, req.url);
      const bool transport = r.curl_code != CURLE_OK;
      const bool last = attempt + 1 >= options.max_attempts || !retryable;
      if (transport) {
        if (!is_retryable_curl(r.curl_code) || last) {
          const bool timeout = r.curl_code == CURLE_OPERATION_TIMEDOUT;
          const bool tls = r.curl_code == CURLE_PEER_FAILED_VERIFICATION ||
                           r.curl_code == CURLE_SSL_CACERT_BADFILE;
          // The usual cause: https:// (or a bare host, which means https) for a plain-http hub.
          const bool handshake = r.curl_code == CURLE_SSL_CONNECT_ERROR;
          throw Error(
              ErrorCode::kNetwork, fmt::format("{} {}: {}", req.method, req.url, r.curl_error),
              timeout     ? "the hub did not answer in time; check it is up"
              : tls       ? "the hub's TLS certificate is not trusted; point REQUESTS_CA_BUNDLE "
                            "at its CA certificate"
              : handshake ? "the TLS handshake failed; if the hub serves plain http, give the "
                            "endpoint as http://HOST:PORT (a bare HOST means https)"
                          : "check the endpoint (--endpoint, MODELSCOPE_ENDPOINT) and that the "
                            "hub is reachable");
        }
        log::info("{} {}: {}; retrying ({}/{})", req.method, req.url, r.curl_error, attempt + 1,
                  options.max_attempts);
        backoff(attempt, -1);
        continue;
      }
      if (is_retryable_status(r.status) && !last) {
        log::info("{} {}: HTTP {}; retrying ({}/{})", req.method, req.url, r.status, attempt + 1,
                  options.max_attempts);
        backoff(attempt, r.retry_after_s);
        continue;
      }
      if (r.status >= 400) http_error(req, r, what);
      return r;
    }
  }

  json envelope(const Response& r, const Request& req) {
    json j;
    try {
      j = json::parse(r.body);
    } catch (const std::exception& e) {
      fail(ErrorCode::kNetwork, "{} {}: the hub answered with invalid JSON ({})", req.method,
           req.url, e.what());
    }
    if (j.is_object() && j.contains("Code") && j["Code"].is_number_integer() &&
        j["Code"].get<long>() != 200) {
      const long code = j["Code"].get<long>();
      std::string message = j.value("Message", std::string());
      if (code == 404) fail(ErrorCode::kNotFound, "{} {}: {}", req.method, req.url, message);
      fail(ErrorCode::kNetwork, "{} {}: hub error {}: {}", req.method, req.url, code, message);
    }
    if (j.is_object() && j.contains("Data")) return j["Data"];
    return j;
  }

  json api(const char* method, const std::string& path, const std::string& what,
           const std::string& body = {}, bool retryable = true) {
    Request req;
    req.method = method;
    req.url = options.endpoint + path;
    req.body = body;
    Response r = send(req, what, retryable);
    return envelope(r, req);
  }
};

HubOptions resolve_hub_options(const std::optional<std::string>& endpoint,
                               const std::optional<std::string>& token) {
  HubOptions o;
  o.endpoint = endpoint ? normalize_endpoint(*endpoint) : hub_endpoint();
  check_endpoint(o.endpoint, endpoint ? "--endpoint" : hub_endpoint_source());
  if (token) {
    o.token = *token;
  } else if (auto env = env_var("MODELSCOPE_API_TOKEN")) {
    o.token = *env;
  } else {
    o.token = stored_token();
  }
  if (auto v = env_var("MS_HUB_STALL_TIMEOUT"))
    o.stall_timeout_s = std::max(1L, std::atol(v->c_str()));
  if (auto v = env_var("MS_HUB_RETRIES")) o.max_attempts = std::max(1, std::atoi(v->c_str()));
  return o;
}

HubClient::HubClient(HubOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HubClient::~HubClient() = default;

const HubOptions& HubClient::options() const { return impl_->options; }
std::uint64_t HubClient::request_count() const { return impl_->requests.load(); }

namespace {
std::string repo_path(RepoType type, const RepoId& repo) {
  return fmt::format("/api/v1/{}/{}/{}", repo_type_plural(type), escape(repo.owner),
                     escape(repo.name));
}
std::string describe(RepoType type, const RepoId& repo) {
  return fmt::format("{} {}", repo_type_name(type), repo.str());
}

// Listed files are at most this big (1 PiB): enough for any model, and far from the 64-bit
// overflows a hostile size would cause in part arithmetic.
constexpr std::uint64_t kMaxListedSize = 1ull << 50;

[[noreturn]] void bad_listing(const json& f, const std::string& what) {
  std::string shown = f.dump();
  if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
  throw Error(ErrorCode::kIntegrity,
              fmt::format("the hub listed a bad file entry ({}): {}", what, shown),
              "the hub is misbehaving; nothing was downloaded");
}

// A string member; absent or null gives "", any other type is a bad entry.
std::string listed_text(const json& f, const char* key) {
  const auto it = f.find(key);
  if (it == f.end() || it->is_null()) return {};
  if (!it->is_string()) bad_listing(f, fmt::format("'{}' is not a string", key));
  return it->get<std::string>();
}

FileEntry to_entry(const json& f) {
  FileEntry e;
  e.path = listed_text(f, "Path");
  if (!is_safe_repo_path(e.path)) {
    // A hub listing "../x" or "/etc/x" is hostile or broken; nothing from it is written.
    throw Error(ErrorCode::kIntegrity,
                fmt::format("the hub listed an unsafe file path '{}'", e.path),
                "the hub is misbehaving; nothing was downloaded");
  }
  e.revision = listed_text(f, "Revision");
  // hashlib's hexdigest is lower case; a hub writing upper case means the same digest.
  e.sha256 = listed_text(f, "Sha256");
  std::transform(e.sha256.begin(), e.sha256.end(), e.sha256.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  const auto size = f.find("Size");
  if (size != f.end() && !size->is_null()) {
    // Negative, fractional or absurd sizes would wrap around in offsets and part counts.
    if (!size->is_number_unsigned() || size->get<std::uint64_t>() > kMaxListedSize)
      bad_listing(f, "'Size' is not a byte count");
    e.size = size->get<std::uint64_t>();
  }
  const auto lfs = f.find("IsLFS");
  e.is_lfs = lfs != f.end() && lfs->is_boolean() && lfs->get<bool>();
  return e;
}

// Folders are not files. Model listings also drop git's .gitignore and .gitattributes, in any
// folder, as Python's HubApi.get_model_files does (by the file's base name); dataset listings
// keep them, as Python's dataset downloads do.
bool keep_listed(const json& f, RepoType type) {
  if (!f.is_object()) return false;
  const auto kind = f.find("Type");
  if (kind != f.end() && kind->is_string() && kind->get<std::string>() == "tree") return false;
  if (type != RepoType::kModel) return true;
  const auto path = f.find("Path");
  if (path == f.end() || !path->is_string()) return true;  // to_entry() names the bad entry
  const std::string& p = path->get_ref<const std::string&>();
  const std::string base = p.substr(p.rfind('/') + 1);  // npos + 1 == 0: the whole path
  return base != ".gitignore" && base != ".gitattributes";
}

// Appends the listed files; a path listed twice (a paged listing read while the repo changed)
// is kept once, as first listed. Returns how many listed paths, folders included, were new: a
// page of a recursive listing may hold folders only, and that is not the end of the listing.
std::size_t add_listed(std::vector<FileEntry>& out, std::unordered_set<std::string>& seen,
                       const json& files, RepoType type) {
  std::size_t added = 0;
  std::size_t repeated = 0;
  std::string first_repeated;
  for (const json& f : files) {
    if (!keep_listed(f, type)) {
      // Still progress through the listing; remembered under a NUL prefix no file path has.
      if (f.is_object() && f.contains("Path") && f["Path"].is_string() &&
          seen.insert(std::string(1, '\0') + f["Path"].get<std::string>()).second)
        ++added;
      continue;
    }
    FileEntry e = to_entry(f);
    if (!seen.insert(e.path).second) {
      if (repeated++ == 0) first_repeated = e.path;
      continue;
    }
    out.push_back(std::move(e));
    ++added;
  }
  if (repeated > 0) {
    log::warn("the hub listed {} path(s) more than once (the first: '{}'); using the first entries",
              repeated, first_repeated);
  }
  return added;
}
}  // namespace

std::string HubClient::repo_info(RepoType type, const RepoId& repo) {
  return impl_->api("GET", repo_path(type, repo), describe(type, repo)).dump();
}

std::vector<RevisionInfo> HubClient::revisions(RepoType type, const RepoId& repo) {
  json data = impl_->api("GET", repo_path(type, repo) + "/revisions", describe(type, repo));
  std::vector<RevisionInfo> out;
  const json map = data.is_object() && data.contains("RevisionMap") ? data["RevisionMap"] : data;
  for (const auto& [key, is_tag] :
       {std::pair<const char*, bool>{"Branches", false}, {"Tags", true}}) {
    if (!map.is_object() || !map.contains(key) || !map[key].is_array()) continue;
    for (const json& r : map[key]) {
      RevisionInfo info;
      info.name = r.value("Revision", std::string());
      if (r.contains("CreatedAt") && r["CreatedAt"].is_number())
        info.created_at = r["CreatedAt"].get<std::int64_t>();
      info.is_tag = is_tag;
      if (!info.name.empty()) out.push_back(info);
    }
  }
  return out;
}

std::vector<FileEntry> HubClient::list_files(RepoType type, const RepoId& repo,
                                             const std::string& revision) {
  std::vector<FileEntry> out;
  std::unordered_set<std::string> seen;
  const std::string what = fmt::format("{} at revision '{}'", describe(type, repo), revision);
  if (type == RepoType::kModel) {
    json data = impl_->api(
        "GET",
        repo_path(type, repo) + "/repo/files?Revision=" + escape(revision) + "&Recursive=True",
        what);
    if (data.is_object() && data.contains("Files") && data["Files"].is_array()) {
      add_listed(out, seen, data["Files"], type);
    }
    return out;
  }
  json info = impl_->api("GET", repo_path(type, repo), describe(type, repo));
  std::string id = repo_path(type, repo).substr(std::string("/api/v1/datasets/").size());
  if (info.is_object() && info.contains("Id")) {
    id = info["Id"].is_string() ? info["Id"].get<std::string>() : info["Id"].dump();
  }
  for (int page = 1;; ++page) {
    json data = impl_->api("GET",
                           fmt::format("/api/v1/datasets/{}/repo/tree?Revision={}&Root=/"
                                       "&Recursive=True&PageNumber={}&PageSize=100",
                                       id, escape(revision), page),
                           what);
    std::size_t n = 0;
    std::size_t added = 0;
    if (data.is_object() && data.contains("Files") && data["Files"].is_array()) {
      n = data["Files"].size();
      added = add_listed(out, seen, data["Files"], type);
    }
    // A short page is the last; a full page of nothing new means the hub ignores PageNumber
    // (asking on would repeat the same page up to the cap).
    if (n < 100 || added == 0 || page > 100000) break;
  }
  return out;
}

std::string HubClient::file_url(RepoType type, const RepoId& repo, const std::string& revision,
                                const std::string& path) const {
  if (type == RepoType::kDataset) {
    return fmt::format("{}{}/repo?Source=SDK&Revision={}&FilePath={}&View=False",
                       impl_->options.endpoint, repo_path(type, repo), escape(revision),
                       escape(path));
  }
  return fmt::format("{}{}/repo?Revision={}&FilePath={}", impl_->options.endpoint,
                     repo_path(type, repo), escape(revision), escape(path));
}

void HubClient::download_range(const std::string& url, std::uint64_t offset, std::uint64_t end,
                               const DataSink& sink, std::uint64_t& written,
                               std::uint64_t file_size, std::string* sha256_checkpoints) {
  bool overflow = false;
  DataSink counting = [&](const char* data, std::size_t n) {
    if (end != 0 && offset + written + n > end) {
      overflow = true;
      return false;
    }
    if (!sink(data, n)) return false;
    written += n;
    return true;
  };
  for (int attempt = 0;; ++attempt) {
    const std::uint64_t from = offset + written;
    if (end != 0 && from >= end) return;
    Request req;
    req.url = url;
    req.api = false;
    req.sink = &counting;
    // With a Range header, a 200 carries the whole file rather than the range.
    req.expect_partial = from > 0 || end != 0;
    req.range_from = from;
    req.range_end = end;
    req.file_size = file_size;
    req.sha256_checkpoints = sha256_checkpoints;
    if (sha256_checkpoints != nullptr)
      req.headers.push_back(std::string(kWantSha256CheckpointsHeader) + ": 1");
    if (from > 0 || end != 0) {
      req.headers.push_back(end != 0 ? fmt::format("Range: bytes={}-{}", from, end - 1)
                                     : fmt::format("Range: bytes={}-", from));
    }
    const std::uint64_t before = written;
    Response r = impl_->perform(req);
    if (r.sink_error) std::rethrow_exception(r.sink_error);
    if (overflow) {
      fail(ErrorCode::kNetwork, "GET {}: the hub sent more than the {} bytes asked for", url,
           end - offset);
    }
    if (r.whole_size_mismatch) {
      fail(ErrorCode::kNetwork,
           "GET {}: the hub sent the whole file as {} bytes; the listing says {}", url,
           r.content_length, file_size);
    }
    if (r.aborted_by_sink) fail(ErrorCode::kIo, "GET {}: writing the data failed", url);
    if (r.range_ignored && (from > 0 || (file_size != 0 && end < file_size))) {
      log::warn(
          "GET {}: the hub ignored the Range request; the bytes outside {}-{} came and were "
          "dropped",
          url, from, end == 0 ? std::string() : std::to_string(end - 1));
    }
    if (r.stopped_at_range_end) return;
    const bool last = attempt + 1 >= impl_->options.max_attempts;
    if (r.curl_code == CURLE_OK && r.status >= 200 && r.status < 300) {
      if (end == 0 || offset + written >= end) return;
      // A short body without an error: treat as a reset and resume.
      r.curl_code = CURLE_PARTIAL_FILE;
      r.curl_error = "connection closed early";
    }
    if (r.curl_code != CURLE_OK) {
      if (!is_retryable_curl(r.curl_code) || last) {
        throw Error(ErrorCode::kNetwork, fmt::format("GET {}: {}", url, r.curl_error),
                    "the transfer failed repeatedly; run the command again to resume");
      }
      log::info("GET {}: {}; resuming at byte {} ({}/{})", url, r.curl_error, offset + written,
                attempt + 1, impl_->options.max_attempts);
      // Progress since the last try resets the backoff: a flaky but moving link keeps going.
      impl_->backoff(written > before ? 0 : attempt, -1);
      if (written > before) attempt = 0;
      continue;
    }
    if (is_retryable_status(r.status) && !last) {
      log::info("GET {}: HTTP {}; retrying ({}/{})", url, r.status, attempt + 1,
                impl_->options.max_attempts);
      impl_->backoff(attempt, r.retry_after_s);
      continue;
    }
    if (r.status == 416)
      fail(ErrorCode::kIntegrity, "GET {}: range {}- not satisfiable; the file changed on the hub",
           url, from);
    impl_->http_error(req, r, "GET " + url);
  }
}

LoginResult HubClient::login(const std::string& access_token) {
  Request req;
  req.method = "POST";
  req.url = impl_->options.endpoint + "/api/v1/login";
  req.body = json{{"AccessToken", access_token}}.dump();
  Response r = impl_->send(req, "login", true);
  json data = impl_->envelope(r, req);
  LoginResult out;
  if (data.is_object()) {
    out.git_token = data.value("AccessToken", std::string());
    out.username = data.value("Username", std::string());
    out.email = data.value("Email", std::string());
  }
  if (!r.set_cookie_session.empty()) {
    out.cookie = parse_set_cookie(r.set_cookie_session, impl_->options.endpoint,
                                  static_cast<std::int64_t>(std::time(nullptr)));
    if (out.cookie) out.session_cookie = out.cookie->value;
  }
  return out;
}

void HubClient::create_repo(RepoType type, const RepoId& repo, bool is_private, bool exist_ok) {
  if (exist_ok) {
    try {
      repo_info(type, repo);
      return;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNotFound) throw;
    }
  }
  const int visibility = is_private ? 1 : 5;
  json body = {{"Path", repo.owner},
               {"Name", repo.name},
               {"ChineseName", repo.name},
               {"Visibility", visibility},
               {"License", "Apache License 2.0"}};
  try {
    if (type == RepoType::kDataset) {
      // Datasets are created with a multipart form, as modelscope sends it.
      Request req;
      req.method = "POST";
      req.url = impl_->options.endpoint + "/api/v1/datasets";
      req.form = {{"Name", repo.name},
                  {"ChineseName", repo.name},
                  {"Owner", repo.owner},
                  {"License", "Apache License 2.0"},
                  {"Visibility", std::to_string(visibility)},
                  {"Description", ""}};
      impl_->envelope(impl_->send(req, "create " + describe(type, repo), false), req);
      return;
    }
    impl_->api("POST", fmt::format("/api/v1/{}", repo_type_plural(type)),
               "create " + describe(type, repo), body.dump(), false);
  } catch (const Error&) {
    // Another client (two uploads started together) may have created it since the check above.
    if (!exist_ok) throw;
    bool exists = false;
    try {
      repo_info(type, repo);
      exists = true;
    } catch (const Error&) {
    }
    if (!exists) throw;  // the create's own failure
  }
}

std::vector<std::string> HubClient::lfs_upload_hrefs(
    RepoType type, const RepoId& repo,
    const std::vector<std::pair<std::string, std::uint64_t>>& objects) {
  std::vector<std::string> out(objects.size());
  for (std::size_t start = 0; start < objects.size(); start += 64) {
    json objs = json::array();
    for (std::size_t i = start; i < objects.size() && i < start + 64; ++i) {
      objs.push_back({{"oid", objects[i].first}, {"size", objects[i].second}});
    }
    json body = {{"operation", "upload"}, {"objects", objs}};
    json data =
        impl_->api("POST",
                   fmt::format("/api/v1/repos/{}/{}/{}/info/lfs/objects/batch",
                               repo_type_plural(type), escape(repo.owner), escape(repo.name)),
                   "LFS batch for " + describe(type, repo), body.dump(), true);
    const json list =
        data.is_object() && data.contains("objects") ? data["objects"] : json::array();
    for (const json& o : list) {
      const std::string oid = o.value("oid", std::string());
      std::string href;
      if (o.contains("actions") && o["actions"].is_object() && o["actions"].contains("upload")) {
        href = o["actions"]["upload"].value("href", std::string());
      }
      for (std::size_t i = start; i < objects.size() && i < start + 64; ++i) {
        if (objects[i].first == oid) out[i] = href;
      }
    }
  }
  return out;
}

void HubClient::put_blob(const std::string& href, const std::string& local_path, std::uint64_t size,
                         const std::function<void(std::uint64_t)>& progress) {
  const std::string url = href.rfind("http", 0) == 0 ? href : impl_->options.endpoint + href;
  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(local_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      fail(ErrorCode::kIo, "{}: cannot open for upload: {}", local_path, std::strerror(errno));
    struct CloseOnExit {
      int fd;
      ~CloseOnExit() { ::close(fd); }
    } close_on_exit{fd};  // perform() may throw (a bad href) before curl reads the file
    Request req;
    req.method = "PUT";
    req.url = url;
    req.api = false;
    req.upload_fd = fd;
    req.upload_size = size;
    // The hub named this URL for the upload, as Python's client sends the cookie to it; a
    // redirect from there to yet another host still goes without.
    req.token_to_url_host = true;
    std::uint64_t sent = 0;
    req.upload_progress = [&](std::uint64_t n) {
      sent += n;
      if (progress) progress(n);
    };
    Response r = impl_->perform(req);
    const bool last = attempt + 1 >= impl_->options.max_attempts;
    const bool failed = r.curl_code != CURLE_OK || is_retryable_status(r.status);
    if (failed && !last && (r.curl_code == CURLE_OK || is_retryable_curl(r.curl_code))) {
      if (progress && sent > 0)
        progress(static_cast<std::uint64_t>(-static_cast<std::int64_t>(sent)));
      impl_->backoff(attempt, r.retry_after_s);
      continue;
    }
    if (r.curl_code != CURLE_OK) fail(ErrorCode::kNetwork, "PUT {}: {}", url, r.curl_error);
    if (r.status >= 400) impl_->http_error(req, r, "upload of " + local_path);
    // Blob stores may answer a PUT with an empty body; a JSON one may still carry an error Code.
    if (!r.body.empty()) impl_->envelope(r, req);
    return;
  }
}

std::string HubClient::commit(RepoType type, const RepoId& repo, const std::string& revision,
                              const std::string& body_json) {
  // A commit carries its whole content, so retrying a failed one cannot apply it twice with
  // different results; the hub stores blobs by content.
  json data = impl_->api("POST",
                         fmt::format("/api/v1/repos/{}/{}/{}/commit/{}", repo_type_plural(type),
                                     escape(repo.owner), escape(repo.name), escape(revision)),
                         "commit to " + describe(type, repo), body_json, true);
  if (data.is_object()) {
    for (const char* key : {"oid", "Oid", "CommitId", "Revision"}) {
      if (data.contains(key) && data[key].is_string()) return data[key].get<std::string>();
    }
  }
  return {};
}

void HubClient::create_tag(RepoType type, const RepoId& repo, const std::string& tag,
                           const std::string& ref) {
  json body = {{"TagName", tag}, {"Ref", ref}};
  impl_->api("POST", repo_path(type, repo) + "/repo/tag",
             "tag " + tag + " of " + describe(type, repo), body.dump(), false);
}

std::optional<std::string> stored_token() {
  const auto dir = credentials_dir();
  std::error_code ec;
  const auto cookies = dir / "cookies";
  if (std::filesystem::is_regular_file(cookies, ec)) {
    try {
      // As in Python's ModelScopeConfig.get_cookies(): an expired m_session_id is no login.
      return find_pickled_cookie(read_file(cookies), "m_session_id",
                                 static_cast<std::int64_t>(std::time(nullptr)));
    } catch (const Error& e) {
      log::warn("{}: cannot read the stored login ({}); run 'ms login --token T'", cookies.string(),
                e.what());
    }
  }
  // Earlier versions of `ms login` stored the cookie value alone, in ms_session_id.
  const auto legacy = dir / "ms_session_id";
  if (!std::filesystem::is_regular_file(legacy, ec)) return std::nullopt;
  std::string token;
  try {
    token = read_file(legacy);
  } catch (const Error& e) {
    log::warn("{}: cannot read the stored login ({})", legacy.string(), e.what());
    return std::nullopt;
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  if (token.empty()) return std::nullopt;
  return token;
}

LoginResult login_and_store(HubClient& client, const std::string& access_token) {
  LoginResult result = client.login(access_token);
  const auto dir = credentials_dir();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    fail(ErrorCode::kIo, "{}: cannot create the credentials folder: {}", dir.string(),
         ec.message());
  ::chmod(dir.c_str(), 0700);
  if (!result.git_token.empty()) write_file_atomic(dir / "git_token", result.git_token, 0600);
  write_file_atomic(dir / "user", result.username + ":" + result.email, 0600);
  if (!std::filesystem::exists(dir / "session", ec))
    write_file_atomic(dir / "session", random_hex(32), 0600);

  // `cookies` is the jar Python's ModelScopeConfig.save_cookies() pickles: the hub's m_session_id
  // cookie as requests keeps it, or, when the hub set none, one for the endpoint's host carrying
  // the token (which the hub accepts as m_session_id, as HubApi's token cookies show).
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  Cookie cookie;
  if (result.cookie) {
    cookie = *result.cookie;
  } else {
    cookie.name = "m_session_id";
    cookie.domain = cookie_request_host(client.options().endpoint);
  }
  if (cookie.value.empty()) cookie.value = access_token;
  // Without an expiry the login would never lapse in Python and one already past would be no
  // login at all; both get 30 days, the span HubApi.login's documentation gives a login.
  constexpr std::int64_t kLoginSeconds = 30LL * 24 * 3600;
  if (!cookie.expires || *cookie.expires <= now) cookie.expires = now + kLoginSeconds;
  result.cookie = cookie;
  result.session_cookie = cookie.value;
  // Replaces whatever was there, a corrupt file included: it is never read here.
  write_file_atomic(dir / "cookies", pickle_cookie_jar({cookie}), 0600);
  // The jar supersedes the ms_session_id of earlier ms versions, which would otherwise outlive it.
  std::filesystem::remove(dir / "ms_session_id", ec);
  return result;
}

}  // namespace ms::hub

#include "transport.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/core/version.h"
#include "ms/hub/sha256_checkpoints.h"

namespace ms::hub {

std::string token_problem(std::string_view token) {
  return token.find_first_of("\t\r\n;") != std::string_view::npos
             ? "the access token contains a tab, newline or ';'"
             : "";
}

}  // namespace ms::hub

namespace ms::hub::detail {
namespace {

using json = nlohmann::json;

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

// Hands upload progress on; false when the callback threw (exceptions must not cross curl's C
// frames: kept, and rethrown once curl returns).
bool report_upload_progress(CallbackState* state, std::uint64_t n) {
  if (!state->request->upload_progress) return true;
  try {
    state->request->upload_progress(n);
    return true;
  } catch (...) {
    state->response->sink_error = std::current_exception();
    return false;
  }
}

size_t on_read(char* buffer, size_t size, size_t count, void* user) {
  auto* state = static_cast<CallbackState*>(user);
  const ssize_t n = ::read(state->request->upload_fd, buffer, size * count);
  if (n < 0) return CURL_READFUNC_ABORT;
  // A file cut short while it is sent (curl would wait for the promised bytes until its stall
  // timeout, and each retry again): stopped here, and not retried.
  if (n == 0 && state->uploaded < state->request->upload_size) {
    state->response->upload_ended_early = true;
    return CURL_READFUNC_ABORT;
  }
  state->uploaded += static_cast<std::uint64_t>(n);
  if (!report_upload_progress(state, static_cast<std::uint64_t>(n))) return CURL_READFUNC_ABORT;
  return static_cast<size_t>(n);
}

// libcurl sends a request again on a fresh connection when a reused one turns out dead (the hub
// restarted, a proxy closed it) before any answer: the body must then start over. Without this
// callback curl gives up with "necessary data rewind wasn't possible", and the upload failed
// where a retry would have worked.
int on_seek(void* user, curl_off_t offset, int origin) {
  auto* state = static_cast<CallbackState*>(user);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  if (::lseek(state->request->upload_fd, static_cast<off_t>(offset), SEEK_SET) < 0)
    return CURL_SEEKFUNC_FAIL;
  // Progress goes back by the bytes to be sent again (modular: the counters are unsigned).
  const auto to = static_cast<std::uint64_t>(offset);
  const std::uint64_t back = to - state->uploaded;
  state->uploaded = to;
  return report_upload_progress(state, back) ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
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
    case CURLE_SEND_FAIL_REWIND:  // each try sends the whole request again from the start
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string random_hex(std::size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string out(n, '0');
  for (char& c : out) c = digits[rng() % 16];
  return out;
}

// The token as a Netscape cookie-file line for the endpoint's host only (no tail match), so
// that curl's cookie engine sends it to the hub but not to a host the hub redirects to (a CDN,
// or anyone a hostile hub names). CURLOPT_COOKIE would go to every host of a redirect chain.
std::string session_cookie_line(const std::string& endpoint, const std::string& token) {
  if (const std::string problem = token_problem(token); !problem.empty()) {
    throw Error(ErrorCode::kUsage, problem,
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
bool is_refusal_status(long status) {
  return status == 400 || status == 409 || status == 413 || status == 422;
}

Transport::Transport(HubOptions options) : options_(std::move(options)) {
  user_agent_ = fmt::format("ms/{}; session_id/{}; platform/linux; env/custom; user/unknown",
                            ms::version(), random_hex(32));
  if (options_.token && !options_.token->empty())
    cookie_line_ = session_cookie_line(options_.endpoint, *options_.token);
}

Response Transport::perform(const Request& req) {
  const std::string url_cookie_line = req.token_to_url_host && !cookie_line_.empty()
                                          ? session_cookie_line(req.url, *options_.token)
                                          : std::string();
  requests_.fetch_add(1);
  CURL* c = pool_.acquire();
  Response response;
  CallbackState state{&response, &req};
  char error_buffer[CURL_ERROR_SIZE] = {0};
  io::CurlSettings settings;
  settings.connect_timeout_s = options_.connect_timeout_s;
  settings.stall_timeout_s = options_.stall_timeout_s;
  if (req.api) settings.total_timeout_s = options_.api_timeout_s;
  settings.user_agent = user_agent_;
  io::configure_curl_easy(c, settings, error_buffer);
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024L);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &state);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &state);
  // The cookie engine keeps its cookies across curl_easy_reset: start each request afresh.
  curl_easy_setopt(c, CURLOPT_COOKIELIST, "ALL");
  if (!cookie_line_.empty()) {
    curl_easy_setopt(c, CURLOPT_COOKIELIST, cookie_line_.c_str());
    if (!url_cookie_line.empty()) curl_easy_setopt(c, CURLOPT_COOKIELIST, url_cookie_line.c_str());
  }
  struct curl_slist* headers = nullptr;
  curl_mime* mime = nullptr;
  headers = curl_slist_append(headers, ("X-Request-ID: " + random_hex(32)).c_str());
  for (const std::string& h : req.headers) headers = curl_slist_append(headers, h.c_str());
  const std::string method = req.method;
  if (method == "PUT" && req.upload_fd >= 0) {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &state);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &state);
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
    response.curl_error = io::curl_error_text(response.curl_code, error_buffer);
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0) response.status = status;
  if (const char* answered = nullptr;
      curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &answered) == CURLE_OK && answered != nullptr)
    response.effective_url = answered;
  pool_.release(c);
  return response;
}

void Transport::backoff(int attempt, long retry_after_s) const {
  long ms = std::min<long>(8000, static_cast<long>(options_.backoff_ms) << std::min(attempt, 10));
  if (retry_after_s > 0) ms = std::min<long>(retry_after_s * 1000, 30000);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

namespace {

// ": MESSAGE" from an error answer's JSON (`Message`, `message` or `error`), or "" when it has
// none (an answer that is not JSON simply has no message).
std::string hub_message(const Response& r) {
  json j;
  JsonParseError ignored;
  if (!try_parse_json(r.body, j, ignored) || !j.is_object()) return "";
  for (const char* key : {"Message", "message", "error"}) {
    if (j.contains(key) && j[key].is_string()) return ": " + j[key].get<std::string>();
  }
  return "";
}

}  // namespace

void Transport::http_error(const Request& req, const Response& r, const std::string& what) const {
  const std::string detail = hub_message(r);
  if (r.status == 404) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("{}: not found on {} (HTTP 404{})", what, options_.endpoint, detail),
                options_.token ? "check the id and revision"
                               : "check the id; a private repo also needs --token or ms login");
  }
  // A 403 from elsewhere (a storage host a download was redirected to, a proxy) is not the
  // hub's word on the token, which it was not sent.
  const bool from_hub =
      r.effective_url.empty() || starts_with(r.effective_url, options_.endpoint + "/");
  if (r.status == 403 && options_.token && from_hub) {
    // The hub knows the token (an unknown one is 401) and refuses its user this: a permission, not
    // a fault worth a retry nor a token to replace by logging in again. Exit 2, as for the other
    // refusals below: the request as it stands cannot succeed.
    throw Error(
        ErrorCode::kUsage,
        fmt::format("{}: HTTP 403 (forbidden: the token's user lacks permission){}", what, detail),
        fmt::format("the token is valid, but its user lacks permission on that owner "
                    "or repo ({}): use a token of a user who has it, or a repo under "
                    "the token user's own name",
                    what));
  }
  if (r.status == 403 && !from_hub) {
    throw Error(ErrorCode::kNetwork,
                fmt::format("{}: HTTP 403 from {} (forbidden){}", what, r.effective_url, detail),
                "the hub sent the request on to that host, which refused it (an expired link): "
                "run the command again");
  }
  if (r.status == 401 || r.status == 403) {
    throw Error(
        ErrorCode::kNetwork, fmt::format("{}: HTTP {} (not authorised){}", what, r.status, detail),
        options_.token
            ? "the hub does not accept the token (invalid or expired); run 'ms login --token T' "
              "with a valid one"
            : "pass --token, set MODELSCOPE_API_TOKEN or run 'ms login --token T'");
  }
  if (is_refusal_status(r.status)) {
    // The hub understood the request and refused what it asked for (a path, a branch name, a
    // commit to a tag): trying again cannot help, so this is not a network error.
    throw Error(
        ErrorCode::kUsage,
        fmt::format("{} {}: the hub refused it (HTTP {}){}", req.method, req.url, r.status, detail),
        detail.empty() ? "the request was refused as it stands (its paths, names or "
                         "sizes); change it and run again"
                       : "the hub's message says what it refused; change that and run "
                         "again");
  }
  throw Error(ErrorCode::kNetwork,
              fmt::format("{} {}: HTTP {}{}", req.method, req.url, r.status, detail),
              is_retryable_status(r.status) ? "the hub failed or is busy; try again later" : "");
}

Response Transport::send(const Request& req, const std::string& what, bool retryable) {
  for (int attempt = 0;; ++attempt) {
    Response r = perform(req);
    if (r.body_too_large)
      fail(ErrorCode::kNetwork, "{} {}: the answer is over 512 MiB", req.method, req.url);
    const bool transport = r.curl_code != CURLE_OK;
    const bool last = attempt + 1 >= options_.max_attempts || !retryable;
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
                options_.max_attempts);
      backoff(attempt, -1);
      continue;
    }
    if (is_retryable_status(r.status) && !last) {
      log::info("{} {}: HTTP {}; retrying ({}/{})", req.method, req.url, r.status, attempt + 1,
                options_.max_attempts);
      backoff(attempt, r.retry_after_s);
      continue;
    }
    if (r.status >= 400) http_error(req, r, what);
    return r;
  }
}

void Transport::download_range(const std::string& url, std::uint64_t offset, std::uint64_t end,
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
    Response r = perform(req);
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
    const bool last = attempt + 1 >= options_.max_attempts;
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
                attempt + 1, options_.max_attempts);
      // Progress since the last try resets the backoff: a flaky but moving link keeps going.
      backoff(written > before ? 0 : attempt, -1);
      if (written > before) attempt = 0;
      continue;
    }
    if (is_retryable_status(r.status) && !last) {
      log::info("GET {}: HTTP {}; retrying ({}/{})", url, r.status, attempt + 1,
                options_.max_attempts);
      backoff(attempt, r.retry_after_s);
      continue;
    }
    if (r.status == 416)
      fail(ErrorCode::kIntegrity, "GET {}: range {}- not satisfiable; the file changed on the hub",
           url, from);
    http_error(req, r, "GET " + url);
  }
}

Response Transport::put_file(const std::string& url, const std::string& local_path,
                             std::uint64_t size,
                             const std::function<void(std::uint64_t)>& progress) {
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
    Response r = perform(req);
    if (r.sink_error) std::rethrow_exception(r.sink_error);  // the progress display's own error
    if (r.upload_ended_early) {
      fail(ErrorCode::kIo,
           "{}: changed while uploading (it ended after {} of {} bytes); run the "
           "upload again",
           local_path, sent, size);
    }
    const bool last = attempt + 1 >= options_.max_attempts;
    const bool failed = r.curl_code != CURLE_OK || is_retryable_status(r.status);
    if (failed && !last && (r.curl_code == CURLE_OK || is_retryable_curl(r.curl_code))) {
      if (progress && sent > 0)
        progress(static_cast<std::uint64_t>(-static_cast<std::int64_t>(sent)));
      log::info("PUT {}: {}; retrying ({}/{})", url,
                r.curl_code != CURLE_OK ? r.curl_error : fmt::format("HTTP {}", r.status),
                attempt + 1, options_.max_attempts);
      backoff(attempt, r.retry_after_s);
      continue;
    }
    if (r.curl_code != CURLE_OK) fail(ErrorCode::kNetwork, "PUT {}: {}", url, r.curl_error);
    if (r.status < 400) return r;
    // A blob store the LFS batch sent the upload to has 400s of its own (S3's RequestTimeout).
    if (!starts_with(url, options_.endpoint + "/"))
      fail(ErrorCode::kNetwork, "PUT {}: HTTP {}{}", url, r.status, hub_message(r));
    if (r.status == 400) {
      // The hub checks a blob's size and sha256 against those declared: the bytes it got are
      // not the ones hashed (the file changed while it was read, or they were damaged).
      throw Error(ErrorCode::kIntegrity,
                  fmt::format("upload of {}: the hub refused the bytes sent (HTTP 400){}",
                              local_path, hub_message(r)),
                  "if the file is being written to, wait until it is done; then run the upload "
                  "again");
    }
    http_error(req, r, "upload of " + local_path);
  }
}

}  // namespace ms::hub::detail

// The hub client's transport layer (private to lib/hub): one HTTP exchange over the shared curl
// stack (ms/io/curl.h), retries with backoff, ranged downloads that resume, streamed uploads.
// The REST calls (client.cpp) and the credentials (credentials.cpp) sit on top of it.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ms/hub/client.h"
#include "ms/io/curl.h"

namespace ms::hub::detail {

/// `n` random lower-case hex digits (request ids, session ids).
std::string random_hex(std::size_t n);

/// The token as a Netscape cookie-file line for `url`'s host only; ms::Error(kUsage) for a token
/// curl's cookie engine cannot carry or a URL without a host.
std::string session_cookie_line(const std::string& url, const std::string& token);

/// Answers worth another try: 5xx and 429.
bool is_retryable_status(long status);
/// Whether an HTTP status says the hub refused what the request asked for (400, 409, 413, 422):
/// not a fault of the network or the hub, so an error of usage.
bool is_refusal_status(long status);

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
  bool upload_ended_early = false;   // the file being PUT ended before upload_size bytes
  std::string sha256_checkpoints;    // X-Ms-Sha256-Checkpoints of the current response
  std::string effective_url;         // the URL that answered (after redirects)
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

/// Sends requests to one hub with its options: pooled curl handles (connections kept alive), the
/// token as a cookie for the hub's host only, retries of resets, stalls and 5xx with backoff.
class Transport {
 public:
  explicit Transport(HubOptions options);

  const HubOptions& options() const { return options_; }
  /// HTTP requests sent so far, tries included.
  std::uint64_t request_count() const { return requests_.load(); }

  /// One try, no retries; transport failures are in the Response.
  Response perform(const Request& req);

  /// Sends with retries on transport errors, 429 and 5xx (only when `retryable`); an error answer
  /// (4xx, or 5xx after the last try) throws through http_error(), naming `what`.
  Response send(const Request& req, const std::string& what, bool retryable = true);

  /// HubClient::download_range(): a ranged GET that resumes after resets and stalls.
  void download_range(const std::string& url, std::uint64_t offset, std::uint64_t end,
                      const DataSink& sink, std::uint64_t& written, std::uint64_t file_size,
                      std::string* sha256_checkpoints);

  /// PUTs `local_path` (`size` bytes) to `url`, retrying from the start of the file; `progress`
  /// gets byte counts (negative after a failed try). Returns the hub's (2xx) answer.
  Response put_file(const std::string& url, const std::string& local_path, std::uint64_t size,
                    const std::function<void(std::uint64_t)>& progress);

  /// Throws the error for an error answer: kNotFound for 404, kNetwork with a login hint for
  /// 401/403, kUsage for a refusal (is_refusal_status), kNetwork naming the URL otherwise.
  [[noreturn]] void http_error(const Request& req, const Response& r,
                               const std::string& what) const;

 private:
  void backoff(int attempt, long retry_after_s) const;

  HubOptions options_;
  io::CurlPool pool_;
  std::atomic<std::uint64_t> requests_{0};
  std::string user_agent_;
  std::string cookie_line_;  // Netscape-format m_session_id cookie for the endpoint host
};

}  // namespace ms::hub::detail

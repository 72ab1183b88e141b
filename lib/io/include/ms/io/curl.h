// The one libcurl stack: global initialisation once per process and one way to configure easy
// handles (protocols, redirects, timeouts, user agent, CA bundle), for the io module's URL reader
// and the hub client. Only code that drives libcurl itself includes this header.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace ms::io {

/// How an easy handle talks to a server.
struct CurlSettings {
  long connect_timeout_s = 10;  ///< give up connecting after this long
  long stall_timeout_s = 30;    ///< a transfer below 1 byte/s for this long fails (timeout)
  long total_timeout_s = 0;     ///< limit on the whole transfer; 0: none
  std::string user_agent;       ///< empty: "ms/<version>"
};

/// Calls curl_global_init once per process; thread-safe.
void init_curl();

/// An owned easy handle.
using CurlEasy = std::unique_ptr<CURL, void (*)(CURL*)>;

/// A new easy handle (libcurl initialised first); ms::Error(kInternal) when libcurl has none.
CurlEasy make_curl_easy();

/// Applies what every request of ms has: http and https only (redirects too, at most 10), no
/// signals, the timeouts and user agent of `settings`, `error_buffer` (CURL_ERROR_SIZE bytes) for
/// curl's message, and the CA bundle Python's requests honours ($REQUESTS_CA_BUNDLE, else
/// $CURL_CA_BUNDLE, else $SSL_CERT_FILE) for servers with private certificates. Proxies come
/// from libcurl's own variables (http_proxy, HTTPS_PROXY, NO_PROXY), which requests reads too.
/// `settings` and `error_buffer` must outlive the transfer.
void configure_curl_easy(CURL* handle, const CurlSettings& settings, char* error_buffer);

/// The message for a failed transfer: curl's error buffer when it holds one, else the text of
/// `code`.
std::string curl_error_text(CURLcode code, const char* error_buffer);

/// Percent-escapes `text` for a URL path segment or query value.
std::string url_escape(std::string_view text);

/// Easy handles kept between requests, so that connections stay alive. Thread-safe.
class CurlPool {
 public:
  CurlPool();
  ~CurlPool();
  CurlPool(const CurlPool&) = delete;
  CurlPool& operator=(const CurlPool&) = delete;

  /// A pooled handle reset to libcurl's defaults (it keeps its connections), or a new one.
  CURL* acquire();
  /// Gives a handle from acquire() back for the next request.
  void release(CURL* handle);

 private:
  std::mutex mutex_;
  std::vector<CURL*> handles_;
};

}  // namespace ms::io

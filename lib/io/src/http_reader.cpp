#include "http_reader.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "ms/core/error.h"
#include "ms/core/version.h"

namespace ms::io::detail {
namespace {

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Sink {
  std::string data;
  std::size_t max_bytes = 0;
  bool over_limit = false;
};

size_t on_data(char* ptr, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  if (sink->max_bytes != 0 && sink->data.size() + n > sink->max_bytes) {
    sink->over_limit = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  sink->data.append(ptr, n);
  return n;
}

}  // namespace

std::string read_http(std::string_view url_view, const ReadOptions& options) {
  init_curl_once();
  const std::string url(url_view);
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  MS_CHECK(curl != nullptr, ErrorCode::kInternal, "curl_easy_init failed");
  Sink sink;
  sink.max_bytes = options.max_bytes;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  const std::string agent = std::string("ms/") + ms::version();
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl.get(), CURLOPT_USERAGENT, agent.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, options.connect_timeout_s);
  // A transfer slower than 1 byte/s for stall_timeout_s seconds is treated as stalled.
  curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_TIME, options.stall_timeout_s);
  if (options.total_timeout_s > 0)
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, options.total_timeout_s);
  curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl.get(), CURLOPT_REDIR_PROTOCOLS_STR, "http,https");

  const CURLcode rc = curl_easy_perform(curl.get());
  if (sink.over_limit) {
    fail(ErrorCode::kIo, "GET {}: response is over the limit of {} bytes", url, options.max_bytes);
  }
  if (rc != CURLE_OK) {
    const std::string why = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
    const bool timeout = rc == CURLE_OPERATION_TIMEDOUT;
    throw Error(ErrorCode::kNetwork, fmt::format("GET {}: {}", url, why),
                timeout ? "the server did not answer in time; check it is up or raise the timeout"
                        : "check the address and that the server is reachable");
  }
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status == 404 || status == 410) {
    fail(ErrorCode::kNotFound, "GET {}: HTTP {} (not found)", url, status);
  }
  if (status >= 400) {
    fail(ErrorCode::kNetwork, "GET {}: HTTP {}", url, status);
  }
  return std::move(sink.data);
}

}  // namespace ms::io::detail

#include "http_reader.h"

#include "ms/core/error.h"
#include "ms/io/curl.h"

namespace ms::io::detail {
namespace {

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
  const std::string url(url_view);
  const CurlEasy curl = make_curl_easy();
  Sink sink;
  sink.max_bytes = options.max_bytes;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  CurlSettings settings;
  settings.connect_timeout_s = options.connect_timeout_s;
  settings.stall_timeout_s = options.stall_timeout_s;
  settings.total_timeout_s = options.total_timeout_s;
  configure_curl_easy(curl.get(), settings, error_buffer);
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &sink);

  const CURLcode rc = curl_easy_perform(curl.get());
  if (sink.over_limit) {
    fail(ErrorCode::kIo, "GET {}: response is over the limit of {} bytes", url, options.max_bytes);
  }
  if (rc != CURLE_OK) {
    const std::string why = curl_error_text(rc, error_buffer);
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

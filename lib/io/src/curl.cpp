#include "ms/io/curl.h"

#include <optional>

#include "ms/core/error.h"
#include "ms/core/settings.h"
#include "ms/core/version.h"

namespace ms::io {
namespace {

// The CA bundle variables Python's requests honours, in its order; read once per process.
const std::optional<std::string>& ca_bundle() {
  static const std::optional<std::string> bundle = []() -> std::optional<std::string> {
    for (const char* name : {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"}) {
      if (auto v = env_var(name)) return v;
    }
    return std::nullopt;
  }();
  return bundle;
}

const std::string& default_user_agent() {
  static const std::string agent = std::string("ms/") + ms::version();
  return agent;
}

}  // namespace

void init_curl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

CurlEasy make_curl_easy() {
  init_curl();
  CurlEasy handle(curl_easy_init(), curl_easy_cleanup);
  MS_CHECK(handle != nullptr, ErrorCode::kInternal, "curl_easy_init failed");
  return handle;
}

void configure_curl_easy(CURL* c, const CurlSettings& settings, char* error_buffer) {
  const std::string& agent =
      settings.user_agent.empty() ? default_user_agent() : settings.user_agent;
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_USERAGENT, agent.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, settings.connect_timeout_s);
  // A transfer slower than 1 byte/s for stall_timeout_s seconds is treated as stalled.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, settings.stall_timeout_s);
  if (settings.total_timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT, settings.total_timeout_s);
  if (const auto& bundle = ca_bundle()) curl_easy_setopt(c, CURLOPT_CAINFO, bundle->c_str());
}

std::string curl_error_text(CURLcode code, const char* error_buffer) {
  return error_buffer != nullptr && error_buffer[0] != '\0' ? std::string(error_buffer)
                                                            : std::string(curl_easy_strerror(code));
}

std::string url_escape(std::string_view text) {
  init_curl();
  char* escaped = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  MS_CHECK(escaped != nullptr, ErrorCode::kInternal, "curl_easy_escape failed");
  std::string out(escaped);
  curl_free(escaped);
  return out;
}

CurlPool::CurlPool() { init_curl(); }

CurlPool::~CurlPool() {
  for (CURL* c : handles_) curl_easy_cleanup(c);
}

CURL* CurlPool::acquire() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!handles_.empty()) {
      CURL* c = handles_.back();
      handles_.pop_back();
      curl_easy_reset(c);
      return c;
    }
  }
  return make_curl_easy().release();
}

void CurlPool::release(CURL* handle) {
  std::lock_guard<std::mutex> lock(mutex_);
  handles_.push_back(handle);
}

}  // namespace ms::io

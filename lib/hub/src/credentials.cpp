// HubClient's credentials layer: which token a client sends (option, environment, stored
// login) and the login files shared with Python's modelscope (credentials/cookies and friends).
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/hub/client.h"
#include "ms/hub/pickle.h"
#include "transport.h"

namespace ms::hub {

HubOptions resolve_hub_options(const std::optional<std::string>& endpoint,
                               const std::optional<std::string>& token) {
  HubOptions o;
  o.endpoint = endpoint ? normalize_endpoint(*endpoint) : hub_endpoint();
  check_endpoint(o.endpoint, endpoint ? "--endpoint" : hub_endpoint_source());
  if (token) {
    o.token = *token;
  } else if (auto env = api_token_env()) {
    o.token = *env;
  } else {
    o.token = stored_token();
  }
  if (auto v = env_whole_number("MS_HUB_STALL_TIMEOUT", 1, 86400)) o.stall_timeout_s = *v;
  if (auto v = env_whole_number("MS_HUB_RETRIES", 1, 100)) o.max_attempts = static_cast<int>(*v);
  // Read later, inside a transfer: checked here, before any byte moves.
  env_whole_number("MS_HASH_LANES", 1, 16);
  env_whole_number("MS_HASH_THREAD", 0, 1);
  download_parts();
  return o;
}

namespace {

// The login stored in one credentials folder.
std::optional<std::string> stored_login_in(const std::filesystem::path& dir) {
  std::error_code ec;
  const auto cookies = dir / "cookies";
  if (std::filesystem::is_regular_file(cookies, ec)) {
    try {
      // As in Python's ModelScopeConfig.get_cookies(): an expired m_session_id is no login
      // (and a readable jar decides: the legacy file below is not consulted then).
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

}  // namespace

std::optional<std::string> stored_token() {
  // Each Python release logs in to its own folder (credentials_dirs()); the one touched last
  // holds the current login, or the logout made since.
  const auto dir = active_credentials_dir();
  if (!dir) return std::nullopt;
  return stored_login_in(*dir);
}

LoginResult login_and_store(HubClient& client, const std::string& access_token) {
  LoginResult result = client.login(access_token);

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
  const std::string jar = pickle_cookie_jar({cookie});

  // Every folder some modelscope version reads (credentials_dirs()), so that Python sees this
  // login whichever version the user runs.
  std::string session;  // one install id for all folders, as one client would keep
  for (const auto& dir : credentials_dirs()) {
    std::error_code ec;
    if (session.empty() && std::filesystem::is_regular_file(dir / "session", ec)) {
      try {
        session = read_file(dir / "session");
      } catch (const Error&) {
      }
    }
  }
  if (session.empty()) session = detail::random_hex(32);
  for (const auto& dir : credentials_dirs()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      fail(ErrorCode::kIo, "{}: cannot create the credentials folder: {}", dir.string(),
           ec.message());
    ::chmod(dir.c_str(), 0700);
    // A killed login's temp copies of these files would otherwise stay for good, token and all
    // (write_file_atomic leaves sweeping to the folder's owner).
    for (const char* name : {"git_token", "user", "session", "cookies"})
      remove_abandoned_writes(dir / name);
    if (!result.git_token.empty()) write_file_atomic(dir / "git_token", result.git_token, 0600);
    write_file_atomic(dir / "user", result.username + ":" + result.email, 0600);
    if (!std::filesystem::exists(dir / "session", ec))
      write_file_atomic(dir / "session", session, 0600);
    // Replaces whatever was there, a corrupt file included: it is never read here.
    write_file_atomic(dir / "cookies", jar, 0600);
    // The jar supersedes the ms_session_id of earlier ms versions, which would otherwise outlive
    // it.
    std::filesystem::remove(dir / "ms_session_id", ec);
  }
  return result;
}

}  // namespace ms::hub

#include "ms/core/settings.h"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "ms/core/error.h"
#include "ms/core/text.h"

namespace ms {

std::optional<std::string> env_var(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

bool env_flag(const char* name) {
  auto value = env_var(name);
  if (!value) return false;
  std::string v = *value;
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

std::optional<long long> env_whole_number(const char* name, long long min, long long max) {
  const auto value = env_var(name);
  if (!value) return std::nullopt;
  const std::optional<long long> number = parse_whole_number(*value, min, max);
  if (!number) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: '{}' is not a whole number from {} to {}", name, *value, min, max),
                fmt::format("set {} to a number in that range, or unset it for the default", name));
  }
  return number;
}

std::filesystem::path home_dir() {
  if (auto home = env_var("HOME")) return *home;
  if (const passwd* pw = getpwuid(getuid()); pw != nullptr && pw->pw_dir != nullptr)
    return pw->pw_dir;
  return "/";
}

namespace {
std::filesystem::path expand_user(const std::string& path) {
  if (path == "~") return home_dir();
  if (path.rfind("~/", 0) == 0) return home_dir() / path.substr(2);
  return path;
}
}  // namespace

std::filesystem::path cache_dir() {
  if (auto dir = env_var("MODELSCOPE_CACHE")) return expand_user(*dir);
  return home_dir() / ".cache" / "modelscope" / "hub";
}

std::filesystem::path snapshot_cache_root() {
  if (auto dir = env_var("MODELSCOPE_CACHE")) return expand_user(*dir);
  return home_dir() / ".cache" / "modelscope";
}

std::vector<std::filesystem::path> credentials_dirs() {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  auto add = [&dirs](const fs::path& dir) {
    const fs::path clean = dir.lexically_normal();
    if (std::find(dirs.begin(), dirs.end(), clean) == dirs.end()) dirs.push_back(clean);
  };
  if (auto env = env_var("MODELSCOPE_CREDENTIALS_PATH")) {
    std::error_code ec;
    fs::path path = fs::absolute(expand_user(*env), ec);
    if (ec) path = expand_user(*env);
    // modelscope-hub takes a file here for the file inside its folder; 1.37 and older cannot use
    // a file at all, so only the newer clients' folder is left.
    if (fs::is_regular_file(path, ec)) {
      add(path.parent_path() / "credentials");
      return dirs;
    }
    // 1.37 and older keep the files in the folder itself. 1.38 and newer take the folder as the
    // config folder that holds `credentials/` (except for a not yet existing folder named
    // "credentials", read as the folder itself: the first entry), so both are written.
    add(path);
    add(path / "credentials");
    return dirs;
  }
  add(home_dir() / ".modelscope" / "credentials");
  const auto config = env_var("MODELSCOPE_HOME");
  add((config ? expand_user(*config) : home_dir() / ".modelscope") / "credentials");
  return dirs;
}

std::filesystem::path credentials_dir() { return credentials_dirs().front(); }

std::optional<std::filesystem::path> active_credentials_dir() {
  namespace fs = std::filesystem;
  // A login writes its folder and a logout deletes files from it: either way the folder's own
  // modification time moves, so the folder touched last holds the current state, a logout
  // included (an older login left in another folder must not outlive it).
  std::optional<fs::path> newest;
  fs::file_time_type newest_time{};
  for (const fs::path& dir : credentials_dirs()) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    const fs::file_time_type time = fs::last_write_time(dir, ec);
    if (ec) continue;
    if (!newest || time > newest_time) {
      newest = dir;
      newest_time = time;
    }
  }
  return newest;
}

std::string normalize_endpoint(std::string endpoint) {
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  // A bare domain gets https://; any other scheme is kept, so that check_endpoint() can name it.
  if (endpoint.find("://") == std::string::npos) endpoint = "https://" + endpoint;
  return endpoint;
}

std::string hub_endpoint() {
  if (auto endpoint = env_var("MODELSCOPE_ENDPOINT")) return normalize_endpoint(*endpoint);
  if (auto domain = env_var("MODELSCOPE_DOMAIN")) return normalize_endpoint(*domain);
  return "https://www.modelscope.cn";
}

std::string hub_endpoint_source() {
  if (env_var("MODELSCOPE_ENDPOINT")) return "MODELSCOPE_ENDPOINT";
  if (env_var("MODELSCOPE_DOMAIN")) return "MODELSCOPE_DOMAIN";
  return "the default endpoint";
}

void check_endpoint(const std::string& endpoint, const std::string& source) {
  const std::string::size_type scheme_end = endpoint.find("://");
  const std::string scheme = endpoint.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: '{}' is not an http:// or https:// URL", source, endpoint),
                "give the hub as https://HOST[:PORT], http://HOST:PORT or a bare HOST[:PORT]");
  }
  const std::string rest = endpoint.substr(scheme_end + 3);
  // HOST, [IPv6] or either with :PORT, and nothing else: the API paths are appended to it, so a
  // path, query or user name would end up inside every URL (and a password in every error).
  std::string host = rest, port;
  bool has_port = false;
  if (!rest.empty() && rest.front() == '[') {
    const std::string::size_type close = rest.find(']');
    host = rest.substr(0, close == std::string::npos ? rest.size() : close + 1);
    const std::string after = close == std::string::npos ? "" : rest.substr(close + 1);
    has_port = !after.empty();
    port = has_port ? after.substr(1) : "";
    if (close == std::string::npos || (has_port && after.front() != ':')) host.clear();
  } else if (const std::string::size_type colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    has_port = true;
  }
  const bool host_ok = !host.empty() && host.find_first_of("/?#@ \t\r\n") == std::string::npos &&
                       (host.front() == '[' || host.find(':') == std::string::npos);
  const bool port_ok = !has_port || (is_decimal(port) && port.size() <= 5 && std::stoi(port) >= 1 &&
                                     std::stoi(port) <= 65535);
  if (!host_ok || !port_ok) {
    const bool user_info = rest.find('@') != std::string::npos;
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: '{}' is not a hub address (a host and an optional port from 1 "
                            "to 65535; no path, query or user name)",
                            source, user_info ? scheme + "://<user info hidden>" : endpoint),
                "give the hub as https://HOST[:PORT], http://HOST:PORT or a bare HOST[:PORT], "
                "e.g. https://www.modelscope.cn");
  }
}

std::optional<std::string> api_token_env() { return env_var("MODELSCOPE_API_TOKEN"); }

bool offline_mode() { return env_flag("MODELSCOPE_OFFLINE"); }

int download_parts() {
  return static_cast<int>(env_whole_number("MS_DOWNLOAD_PARTS", 1, 1024).value_or(0));
}

}  // namespace ms

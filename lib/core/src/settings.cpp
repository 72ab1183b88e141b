#include "ms/core/settings.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "ms/core/error.h"

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
  const bool has_host = !rest.empty() && rest.front() != ':' && rest.front() != '/';
  const bool has_space = rest.find_first_of(" \t\r\n") != std::string::npos;
  if (!has_host || has_space) {
    throw Error(ErrorCode::kUsage, fmt::format("{}: '{}' names no valid host", source, endpoint),
                "give the hub as https://HOST[:PORT], e.g. https://www.modelscope.cn");
  }
}

std::optional<std::string> api_token_env() { return env_var("MODELSCOPE_API_TOKEN"); }

bool offline_mode() { return env_flag("MODELSCOPE_OFFLINE"); }

int download_parts() {
  const auto parts = env_var("MS_DOWNLOAD_PARTS");
  return parts ? std::max(1, std::atoi(parts->c_str())) : 0;
}

std::optional<std::string> token_source() {
  if (api_token_env()) return std::string("MODELSCOPE_API_TOKEN");
  std::error_code ec;
  const auto dir = active_credentials_dir();
  if (!dir) return std::nullopt;
  for (const char* name : {"cookies", "git_token"}) {
    const auto path = *dir / name;
    if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) > 0) {
      return path.string();
    }
  }
  return std::nullopt;
}

}  // namespace ms

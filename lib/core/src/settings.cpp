#include "ms/core/settings.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

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

std::filesystem::path credentials_dir() {
  if (auto dir = env_var("MODELSCOPE_CREDENTIALS_PATH")) return expand_user(*dir);
  return home_dir() / ".modelscope" / "credentials";
}

std::string normalize_endpoint(std::string endpoint) {
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  if (endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0) {
    endpoint = "https://" + endpoint;
  }
  return endpoint;
}

std::string hub_endpoint() {
  if (auto endpoint = env_var("MODELSCOPE_ENDPOINT")) return normalize_endpoint(*endpoint);
  if (auto domain = env_var("MODELSCOPE_DOMAIN")) return normalize_endpoint(*domain);
  return "https://www.modelscope.cn";
}

std::optional<std::string> token_source() {
  if (env_var("MODELSCOPE_API_TOKEN")) return std::string("MODELSCOPE_API_TOKEN");
  std::error_code ec;
  for (const char* name : {"cookies", "git_token"}) {
    const auto path = credentials_dir() / name;
    if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) > 0) {
      return path.string();
    }
  }
  return std::nullopt;
}

}  // namespace ms

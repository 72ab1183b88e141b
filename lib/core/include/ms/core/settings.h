// Process-wide settings read from the environment, under ModelScope's variable names.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace ms {

/// Value of an environment variable, or nullopt when unset or empty.
std::optional<std::string> env_var(const char* name);

/// True for "1", "true", "yes", "on" (any case).
bool env_flag(const char* name);

/// $HOME, falling back to the password database.
std::filesystem::path home_dir();

/// $MODELSCOPE_CACHE, else ~/.cache/modelscope/hub (the layout Python's modelscope uses).
std::filesystem::path cache_dir();

/// $MODELSCOPE_CREDENTIALS_PATH, else ~/.modelscope/credentials.
std::filesystem::path credentials_dir();

/// Hub endpoint as a URL without trailing slash: $MODELSCOPE_ENDPOINT, else $MODELSCOPE_DOMAIN,
/// else https://www.modelscope.cn. A bare domain gets https://; http:// URLs are kept as given.
std::string hub_endpoint();

/// Normalises an endpoint given by the user (bare domain -> https://, trailing '/' removed).
std::string normalize_endpoint(std::string endpoint);

/// Where a token would come from, if any: "MODELSCOPE_API_TOKEN" or the credentials file path.
std::optional<std::string> token_source();

}  // namespace ms

// Process-wide settings read from the environment, under ModelScope's variable names.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ms/core/export.h"

namespace ms {

/// Value of an environment variable, or nullopt when unset or empty.
MS_API std::optional<std::string> env_var(const char* name);

/// True for "1", "true", "yes", "on" (any case).
MS_API bool env_flag(const char* name);

/// A whole-number environment variable within [min, max], or nullopt when unset or empty. Any
/// other value is ms::Error(kUsage) naming the variable and the range: a typo in a CI script's
/// tuning must not silently become another setting.
MS_API std::optional<long long> env_whole_number(const char* name, long long min, long long max);

/// $HOME, falling back to the password database.
MS_API std::filesystem::path home_dir();

/// $MODELSCOPE_CACHE, else ~/.cache/modelscope/hub (the layout Python's modelscope uses).
MS_API std::filesystem::path cache_dir();

/// $MODELSCOPE_CACHE, else ~/.cache/modelscope: the root under which modelscope 1.38 and newer
/// (modelscope-hub) keep `models/OWNER--NAME/snapshots/REV/` (and `datasets/...`).
MS_API std::filesystem::path snapshot_cache_root();

/// Every folder a supported Python modelscope reads its login from (no duplicates):
/// 1.37 and older read $MODELSCOPE_CREDENTIALS_PATH itself (default ~/.modelscope/credentials);
/// 1.38 and newer read `<config>/credentials`, <config> being $MODELSCOPE_CREDENTIALS_PATH when
/// it is a folder (its parent when it is a file), else $MODELSCOPE_HOME, else ~/.modelscope.
/// `ms login` writes to all of them; the stored token is read from active_credentials_dir().
MS_API std::vector<std::filesystem::path> credentials_dirs();

/// The first of credentials_dirs(): where modelscope 1.37 and older keep the login.
MS_API std::filesystem::path credentials_dir();

/// The one of credentials_dirs() whose state is current: the folder modified last (a login
/// writes it, a logout deletes from it), or nullopt when none exists. Its login, or its lack of
/// one, is the login: an older copy in another folder does not outlive a logout.
MS_API std::optional<std::filesystem::path> active_credentials_dir();

/// Hub endpoint as a URL without trailing slash: $MODELSCOPE_ENDPOINT, else $MODELSCOPE_DOMAIN,
/// else https://www.modelscope.cn. A bare domain gets https://; http:// URLs are kept as given.
MS_API std::string hub_endpoint();

/// Normalises an endpoint given by the user (bare domain -> https://, trailing '/' removed).
/// Other schemes are kept as given; check_endpoint() rejects them.
MS_API std::string normalize_endpoint(std::string endpoint);

/// Throws a usage Error naming `source` (an option or env var) unless `endpoint` (normalised) is
/// an http:// or https:// URL with a host.
MS_API void check_endpoint(const std::string& endpoint, const std::string& source);

/// The option or env var hub_endpoint() took its value from ("MODELSCOPE_ENDPOINT", ...).
MS_API std::string hub_endpoint_source();

/// $MODELSCOPE_API_TOKEN: the hub token given through the environment, if any.
MS_API std::optional<std::string> api_token_env();

/// $MODELSCOPE_OFFLINE (a flag): hub downloads use only the cache and make no network call.
MS_API bool offline_mode();

/// $MS_DOWNLOAD_PARTS: the most ranged parts per big file of a download (at least 1), or 0 when
/// unset (the downloader picks).
MS_API int download_parts();

}  // namespace ms

// The pickles modelscope keeps in its cache and credentials: the cache index (`.msc`, `.mdl`) and
// the login's cookie jar (credentials/`cookies`), read and written with ms/core/pickle.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ms/core/export.h"
#include "ms/hub/cookie.h"

namespace ms::hub {

/// One cache index entry of `.msc`: a repo path and the revision (commit id) it came from.
struct CacheIndexEntry {
  std::string path;
  std::string revision;
};

/// Pickles list[{'Path': str, 'Revision': str}] with protocol 4, as Python's pickle.dump does.
MS_API std::string pickle_cache_index(const std::vector<CacheIndexEntry>& entries);

/// Reads a `.msc` pickle (protocols 2-5). Entries lacking 'Path' or 'Revision' string values are
/// skipped. Throws ms::Error(kIntegrity) on anything that is not a list of str-keyed dicts.
MS_API std::vector<CacheIndexEntry> unpickle_cache_index(std::string_view data);

/// Pickles a dict[str, str] (`.mdl` holds {'id': 'owner/name'}), protocol 4.
MS_API std::string pickle_str_dict(const std::map<std::string, std::string>& dict);

/// Reads a pickled dict whose keys are str; values that are not str are skipped.
/// Throws ms::Error(kIntegrity) when the data is not such a pickle.
MS_API std::map<std::string, std::string> unpickle_str_dict(std::string_view data);

/// The value of cookie `name` in a pickled cookie jar (Python modelscope's credentials/cookies:
/// a requests RequestsCookieJar), unless it expired before `now` (unix seconds). Throws
/// ms::Error(kIntegrity) when the data is not a pickle this reader understands.
MS_API std::optional<std::string> find_pickled_cookie(std::string_view data,
                                                      const std::string& name, std::int64_t now);

/// Pickles a requests.cookies.RequestsCookieJar holding `cookies` (protocol 4), as Python's
/// ModelScopeConfig.save_cookies() writes `cookies`: pickle.load gives the jar back with the
/// standard library and requests only. Cookies with the same domain, path and name: the last wins.
MS_API std::string pickle_cookie_jar(const std::vector<Cookie>& cookies);

}  // namespace ms::hub

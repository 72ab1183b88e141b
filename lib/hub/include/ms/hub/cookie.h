// HTTP cookies as Python's http.cookiejar keeps them: the login's m_session_id for `cookies`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ms/core/export.h"

namespace ms::hub {

/// One http.cookiejar.Cookie (Netscape, version 0) with the fields Python's requests fills in
/// from a Set-Cookie header.
struct Cookie {
  std::string name;
  std::string value;
  std::string domain;               ///< ".example.com" for a Domain attribute, else the host
  bool domain_specified = false;    ///< the header carried a Domain attribute
  bool domain_initial_dot = false;  ///< that attribute started with '.'
  std::string path = "/";
  bool path_specified = true;
  bool secure = false;
  bool http_only = false;
  std::optional<std::int64_t> expires;  ///< unix seconds; none: ends with the session
};

/// The host of an http(s) URL as http.cookiejar names it (its "effective request host"): lower
/// case, without user info or port, with ".local" appended to a name that has no dot.
MS_API std::string cookie_request_host(std::string_view url);

/// Parses one Set-Cookie header value (what follows "Set-Cookie:") received from `url` at unix
/// time `now`, with Python's rules: Max-Age wins over Expires, a Domain attribute gets a leading
/// '.', a Domain that does not cover the host is ignored. Unlike Python, a missing Path means "/"
/// (not the request's folder), so a login applies to the whole hub. Returns nullopt when the
/// header has no name=value pair.
MS_API std::optional<Cookie> parse_set_cookie(std::string_view header, std::string_view url,
                                              std::int64_t now);

}  // namespace ms::hub

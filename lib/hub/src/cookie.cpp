#include "ms/hub/cookie.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <string>

#include "ms/core/text.h"

namespace ms::hub {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view strip_quotes(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

// HTTP dates in the forms servers send in Expires (RFC 1123, RFC 850, Netscape's dashes,
// asctime), always UTC. Unparsable dates give nullopt, as http2time gives None in Python.
std::optional<std::int64_t> parse_http_date(std::string_view text) {
  const std::string s(strip_quotes(trim(text)));
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S", "%a, %d-%b-%Y %H:%M:%S", "%a %b %d %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = ::strptime(s.c_str(), format, &tm);
    if (end == nullptr) continue;
    const std::string_view rest = trim(end);
    if (!rest.empty() && lower(rest) != "gmt" && lower(rest) != "utc") continue;
    // Two-digit years (RFC 850): 69-99 are 19xx, the rest 20xx, as POSIX's %y reads them.
    const int year = tm.tm_year + 1900;
    if (year >= 0 && year < 100) tm.tm_year = (year < 69 ? year + 2000 : year + 1900) - 1900;
    return static_cast<std::int64_t>(::timegm(&tm));
  }
  return std::nullopt;
}

// Whether `host` is `domain` (which starts with '.') or lies under it.
bool domain_covers(const std::string& domain, const std::string& host) {
  const std::string dotted = "." + host;
  return dotted.size() >= domain.size() &&
         dotted.compare(dotted.size() - domain.size(), domain.size(), domain) == 0;
}

}  // namespace

std::string cookie_request_host(std::string_view url) {
  std::string_view rest = url;
  if (const auto scheme = rest.find("://"); scheme != std::string_view::npos)
    rest.remove_prefix(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  // Python cuts a trailing ":digits" (so "[::1]:8080" keeps its brackets).
  if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    const std::string_view port = rest.substr(colon + 1);
    if (std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c) != 0; }))
      rest = rest.substr(0, colon);
  }
  std::string host = lower(rest);
  // http.cookiejar's eff_request_host: a host without a dot is treated as HOST.local, and the
  // cookie's domain must be that name for Python to send it back.
  if (host.find('.') == std::string::npos) host += ".local";
  return host;
}

namespace {

// Python's http.client decodes header bytes as ISO-8859-1, so a byte >= 0x80 is that code
// point. Doing the same keeps every pickled string valid UTF-8, which pickle.load requires.
std::string latin1_to_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (const unsigned char c : bytes) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

}  // namespace

std::optional<Cookie> parse_set_cookie(std::string_view raw_header, std::string_view url,
                                       std::int64_t now) {
  const std::string decoded = latin1_to_utf8(raw_header);
  std::string_view header = decoded;
  Cookie cookie;
  const std::string host = cookie_request_host(url);
  cookie.domain = host;
  std::optional<std::int64_t> max_age_expires;
  std::optional<std::int64_t> date_expires;
  bool first = true;
  while (true) {
    const auto semi = header.find(';');
    const std::string_view part = trim(header.substr(0, semi));
    const auto eq = part.find('=');
    const std::string_view key = trim(part.substr(0, eq));
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view() : trim(part.substr(eq + 1));
    if (first) {
      if (eq == std::string_view::npos || key.empty()) return std::nullopt;
      cookie.name = std::string(key);
      cookie.value = std::string(value);
      first = false;
    } else if (!key.empty()) {
      const std::string k = lower(key);
      if (k == "domain" && !strip_quotes(value).empty()) {
        std::string domain = lower(strip_quotes(value));
        const bool initial_dot = domain.front() == '.';
        if (!initial_dot) domain.insert(0, ".");
        // Python drops a cookie whose Domain does not cover the host; ms keeps the login and
        // scopes it to the host instead.
        if (domain_covers(domain, host)) {
          cookie.domain = domain;
          cookie.domain_specified = true;
          cookie.domain_initial_dot = initial_dot;
        }
      } else if (k == "path") {
        const std::string_view path = strip_quotes(value);
        if (!path.empty() && path.front() == '/') cookie.path = std::string(path);
      } else if (k == "max-age") {
        const std::string digits(value);
        char* end = nullptr;
        const long long seconds = std::strtoll(digits.c_str(), &end, 10);
        // Python's int has no limit; here a huge Max-Age saturates instead of overflowing into
        // the past (which would make the login look expired at once).
        constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
        if (!digits.empty() && end != nullptr && *end == '\0')
          max_age_expires = seconds > 0 && seconds > kMax - now ? kMax : now + seconds;
      } else if (k == "expires") {
        date_expires = parse_http_date(value);
      } else if (k == "secure") {
        cookie.secure = true;
      } else if (k == "httponly") {
        cookie.http_only = true;
      }
    }
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
  cookie.expires = max_age_expires ? max_age_expires : date_expires;
  return cookie;
}

}  // namespace ms::hub

// libFuzzer target: the pieces of hub traffic lib/hub parses from untrusted text: repo ids and
// repo paths (from the command line, a hub's file list, a zip's entry names), Set-Cookie headers
// of a login answer and the hosts of endpoint URLs. The input is split at its first two newlines.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "ms/core/error.h"
#include "ms/hub/cookie.h"
#include "ms/hub/repo_id.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nl1 = input.find('\n');
  const std::string_view first = input.substr(0, nl1);
  const std::string_view rest = nl1 == std::string_view::npos ? "" : input.substr(nl1 + 1);
  const std::size_t nl2 = rest.find('\n');
  const std::string_view second = rest.substr(0, nl2);
  const std::string_view third = nl2 == std::string_view::npos ? "" : rest.substr(nl2 + 1);

  try {
    const ms::hub::RepoId id = ms::hub::parse_repo_id(first);
    // An accepted id round-trips and names a cache folder without separators.
    if (ms::hub::parse_repo_id(id.str()).str() != id.str()) __builtin_trap();
    if (id.cache_name().find('/') != std::string::npos) __builtin_trap();
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);
  }
  const std::string path(first);
  const bool safe = ms::hub::is_safe_repo_path(path);
  try {
    (void)ms::hub::check_repo_path(path);
    if (!safe) __builtin_trap();  // the two checks agree
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);
    if (safe) __builtin_trap();
  }
  const std::string url = "https://" + std::string(second) + "/api/v1/login";
  (void)ms::hub::cookie_request_host(url);
  (void)ms::hub::cookie_request_host(second);
  (void)ms::hub::parse_set_cookie(third, url, 1700000000);
  (void)ms::hub::parse_set_cookie(input, "http://127.0.0.1:8080/api/v1/login", 1700000000);
  return 0;
}

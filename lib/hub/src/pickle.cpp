#include "ms/hub/pickle.h"

#include <cstdint>
#include <map>
#include <optional>
#include <unordered_set>

#include "ms/core/error.h"
#include "ms/core/pickle.h"

namespace ms::hub {
namespace {

using namespace pickle::opcode;
using pickle::Value;
using pickle::ValuePtr;
using pickle::Writer;

[[noreturn]] void corrupt(const std::string& why) {
  throw Error(
      ErrorCode::kIntegrity, "not a modelscope pickle: " + why,
      "the file is damaged or was not written by modelscope; delete it (a cache index is rebuilt, "
      "a login is made again with 'ms login')");
}

// The pickle's value; whatever the reader refuses is a damaged modelscope file.
ValuePtr read(std::string_view data) {
  try {
    return pickle::unpickle(data).value;
  } catch (const Error& e) {
    corrupt(e.what());
  }
}

std::map<std::string, std::string> to_str_dict(const ValuePtr& v) {
  if (!v->is_mapping()) corrupt("expected a dict");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : v->pairs) {
    if (!key->is_string()) corrupt("dict key is not a str");
    if (value->is_string()) out[key->text] = value->text;
  }
  return out;
}

// Depth-first search for an object (or dict) with name == `cookie` and a str value (an
// http.cookiejar.Cookie).
// Each container is searched once: memo references can share one container among many parents
// (or make it its own child), and a hostile file of a few hundred bytes would otherwise send the
// search down 2^64 paths.
void find_cookie(const ValuePtr& v, const std::string& cookie, std::int64_t now,
                 std::optional<std::string>& out, int depth,
                 std::unordered_set<const Value*>& seen) {
  if (out || depth > 64 || !seen.insert(v.get()).second) return;
  if (v->is_sequence()) {
    for (const ValuePtr& item : v->items) find_cookie(item, cookie, now, out, depth + 1, seen);
    return;
  }
  if (!v->is_mapping()) return;
  const std::string* name = nullptr;
  const std::string* value = nullptr;
  std::optional<std::int64_t> expires;
  for (const auto& [key, val] : v->pairs) {
    if (!key->is_string()) continue;
    if (key->text == "name" && val->is_string()) name = &val->text;
    if (key->text == "value" && val->is_string()) value = &val->text;
    if (key->text == "expires" && val->kind == Value::Kind::kInt) expires = val->i;
  }
  if (name != nullptr && value != nullptr && *name == cookie) {
    if (!expires || *expires > now) out = *value;
    return;
  }
  for (const auto& [key, val] : v->pairs) find_cookie(val, cookie, now, out, depth + 1, seen);
}

}  // namespace

std::optional<std::string> find_pickled_cookie(std::string_view data, const std::string& name,
                                               std::int64_t now) {
  std::optional<std::string> out;
  std::unordered_set<const Value*> seen;
  find_cookie(read(data), name, now, out, 0, seen);
  return out;
}

namespace {

// An http.cookiejar.Cookie as Python pickles one: the class, NEWOBJ with no arguments (no
// __init__), then BUILD with its __dict__ in the order Cookie.__init__ assigns it.
void pickle_cookie(Writer& w, const Cookie& c) {
  w.global("http.cookiejar", "Cookie");
  w.op(kEmptyTuple);
  w.op(kNewObj);
  w.memoize();
  w.op(kEmptyDict);
  w.memoize();
  w.op(kMark);
  w.str("version");
  w.integer(0);
  w.str("name");
  w.str(c.name);
  w.str("value");
  w.str(c.value);
  w.str("port");
  w.none();
  w.str("port_specified");
  w.boolean(false);
  w.str("domain");
  w.str(c.domain);
  w.str("domain_specified");
  w.boolean(c.domain_specified);
  w.str("domain_initial_dot");
  w.boolean(c.domain_initial_dot);
  w.str("path");
  w.str(c.path);
  w.str("path_specified");
  w.boolean(c.path_specified);
  w.str("secure");
  w.boolean(c.secure);
  w.str("expires");
  if (c.expires) {
    w.integer(*c.expires);
  } else {
    w.none();
  }
  // http.cookiejar discards cookies without an expiry at the end of the session.
  w.str("discard");
  w.boolean(!c.expires);
  w.str("comment");
  w.none();
  w.str("comment_url");
  w.none();
  w.str("rfc2109");
  w.boolean(false);
  w.str("_rest");
  w.op(kEmptyDict);
  w.memoize();
  if (c.http_only) {
    w.str("HttpOnly");
    w.none();
    w.op(kSetItem);
  }
  w.op(kSetItems);
  w.op(kBuild);
}

}  // namespace

std::string pickle_cookie_jar(const std::vector<Cookie>& cookies) {
  // CookieJar._cookies nests domain -> path -> name -> Cookie.
  std::map<std::string, std::map<std::string, std::map<std::string, const Cookie*>>> tree;
  for (const Cookie& c : cookies) tree[c.domain][c.path][c.name] = &c;

  Writer w;
  w.global("requests.cookies", "RequestsCookieJar");
  w.op(kEmptyTuple);
  w.op(kNewObj);
  w.memoize();
  // The state RequestsCookieJar.__setstate__ takes: its __dict__ less the lock, which
  // __setstate__ creates anew.
  w.op(kEmptyDict);
  w.memoize();
  w.op(kMark);
  w.str("_policy");
  // The policy is made by calling DefaultCookiePolicy() (REDUCE) instead of restoring a copy of
  // its attributes, so it has whatever attributes the loading Python's version defines.
  w.global("http.cookiejar", "DefaultCookiePolicy");
  w.op(kEmptyTuple);
  w.op(kReduce);
  w.memoize();
  w.str("_cookies");
  w.op(kEmptyDict);
  w.memoize();
  for (const auto& [domain, paths] : tree) {
    w.str(domain);
    w.op(kEmptyDict);
    w.memoize();
    for (const auto& [path, names] : paths) {
      w.str(path);
      w.op(kEmptyDict);
      w.memoize();
      for (const auto& [name, cookie] : names) {
        w.str(name);
        pickle_cookie(w, *cookie);
        w.op(kSetItem);
      }
      w.op(kSetItem);
    }
    w.op(kSetItem);
  }
  w.op(kSetItems);
  w.op(kBuild);
  return w.finish();
}

std::string pickle_cache_index(const std::vector<CacheIndexEntry>& entries) {
  Writer w;
  w.op(kEmptyList);
  w.memoize();
  for (std::size_t i = 0; i < entries.size(); i += 1000) {
    const bool single = entries.size() == 1;
    if (!single) w.op(kMark);
    for (std::size_t j = i; j < entries.size() && j < i + 1000; ++j) {
      w.dict({{"Path", entries[j].path}, {"Revision", entries[j].revision}});
    }
    w.op(single ? kAppend : kAppends);
  }
  return w.finish();
}

std::vector<CacheIndexEntry> unpickle_cache_index(std::string_view data) {
  const ValuePtr root = read(data);
  if (!root->is_sequence()) corrupt("expected a list");
  std::vector<CacheIndexEntry> out;
  for (const ValuePtr& item : root->items) {
    auto dict = to_str_dict(item);
    auto path = dict.find("Path");
    auto revision = dict.find("Revision");
    if (path == dict.end() || revision == dict.end()) continue;
    out.push_back({path->second, revision->second});
  }
  return out;
}

std::string pickle_str_dict(const std::map<std::string, std::string>& dict) {
  Writer w;
  w.dict({dict.begin(), dict.end()});
  return w.finish();
}

std::map<std::string, std::string> unpickle_str_dict(std::string_view data) {
  return to_str_dict(read(data));
}

}  // namespace ms::hub

// Envelope, authentication and error mapping shared by all routes.
#include "service.h"

#include <openssl/rand.h>
#include <strings.h>

#include "ms/config/json_file.h"
#include "ms/core/encoding.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/http_server/front.h"

namespace ms::hub_server {
namespace {

int status_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUsage:
    case ErrorCode::kConfig:
    case ErrorCode::kIntegrity:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    default:
      return 500;
  }
}

std::string request_id(const httplib::Request& req) {
  std::string id = req.get_header_value("X-Request-ID");
  if (!id.empty() && id.size() <= 64) return id;
  unsigned char raw[16];
  RAND_bytes(raw, sizeof raw);
  static const char* kHex = "0123456789abcdef";
  for (unsigned char c : raw) {
    id += kHex[c >> 4];
    id += kHex[c & 15];
  }
  return id;
}

}  // namespace

std::string request_token(const httplib::Request& req) {
  if (std::optional<std::string> token = http_server::bearer_token(req)) return *token;
  const std::string auth = req.get_header_value("Authorization");
  if (auth.size() > 6 && auth.size() < 4096 && strncasecmp(auth.c_str(), "basic ", 6) == 0) {
    const auto decoded = base64_decode(auth.substr(6));
    const std::size_t colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon != std::string::npos) return decoded->substr(colon + 1);
  }
  // Cookie: a=b; m_session_id=TOKEN; c=d
  const std::string cookies = req.get_header_value("Cookie");
  std::size_t pos = 0;
  while (pos < cookies.size()) {
    std::size_t end = cookies.find(';', pos);
    if (end == std::string::npos) end = cookies.size();
    std::string item = cookies.substr(pos, end - pos);
    const std::size_t first = item.find_first_not_of(' ');
    if (first != std::string::npos) item = item.substr(first);
    if (item.rfind("m_session_id=", 0) == 0) {
      std::string value = item.substr(13);
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      return value;
    }
    pos = end + 1;
  }
  return {};
}

Caller identify(Service& service, const httplib::Request& req) {
  Caller caller;
  const std::string token = request_token(req);
  if (token.empty()) return caller;
  caller.presented_token = true;
  caller.user = service.store.user_for_token(token);
  return caller;
}

void send_envelope(const httplib::Request& req, httplib::Response& res, int status,
                   nlohmann::json data, const std::string& message, const nlohmann::json& extra) {
  nlohmann::ordered_json out;
  out["Code"] = status;
  out["Data"] = std::move(data);
  out["Message"] = message;
  out["RequestId"] = request_id(req);
  out["Success"] = status == 200;
  if (extra.is_object()) {
    for (const auto& [key, value] : extra.items()) out[key] = value;
  }
  res.status = status;
  res.set_content(response_text(out), "application/json");
}

void send_ok_text(const httplib::Request& req, httplib::Response& res, std::string data_json) {
  // The envelope of send_envelope, in its order, around the text.
  std::string body = "{\"Code\":200,\"Data\":";
  body.reserve(body.size() + data_json.size() + 128);
  body += data_json;
  data_json = std::string();  // freed before the tail is added
  body += ",\"Message\":\"success\",\"RequestId\":";
  body += response_text(nlohmann::json(request_id(req)));
  body += ",\"Success\":true}";
  res.status = 200;
  res.body = std::move(body);
  res.set_header("Content-Type", "application/json");
}

void send_server_error(const httplib::Request& req, httplib::Response& res,
                       const std::string& cause) {
  const std::string id = request_id(req);
  log::error("hub serve: {} {} (request {}): {}", req.method, req.path, id, cause);
  send_envelope(req, res, 500, nullptr,
                fmt::format("internal error: the hub could not complete the request; its log "
                            "has the cause under request {}",
                            id),
                {{"RequestId", id}});
}

void guarded(const httplib::Request& req, httplib::Response& res,
             const std::function<void()>& body) {
  try {
    body();
  } catch (const HttpError& e) {
    send_envelope(req, res, e.status, nullptr, e.message);
  } catch (const StoreDamaged& e) {
    send_server_error(req, res, e.what());
  } catch (const Error& e) {
    const int status = status_for(e.code());
    if (status >= 500) {
      send_server_error(req, res, e.what());
    } else {
      send_envelope(req, res, status, nullptr, e.what());
    }
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong JSON type in the request.
    send_envelope(req, res, 400, nullptr, std::string("bad request body: ") + e.what());
  } catch (const std::exception& e) {
    send_server_error(req, res, e.what());
  }
}

void add_routes(httplib::Server& server, Service& service, const std::vector<Route>& routes) {
  for (const Route& route : routes) {
    httplib::Server::Handler handler = [&service, run = route.handler](const httplib::Request& req,
                                                                       httplib::Response& res) {
      guarded(req, res, [&] { run(service, req, res); });
    };
    switch (route.method) {
      case Method::kGet:
        server.Get(route.pattern, std::move(handler));
        break;
      case Method::kPost:
        server.Post(route.pattern, std::move(handler));
        break;
      case Method::kPut:
        server.Put(route.pattern, std::move(handler));
        break;
      case Method::kDelete:
        server.Delete(route.pattern, std::move(handler));
        break;
    }
  }
}

hub::RepoType parse_type(const std::string& plural) {
  return plural == "datasets" ? hub::RepoType::kDataset : hub::RepoType::kModel;
}

bool can_see(const RepoRecord& repo, const Caller& caller) {
  return repo.visibility == kPublic || (repo.visibility == kInternal && caller.user) ||
         (caller.user && *caller.user == repo.owner);
}

RepoRecord repo_for_read(Service& service, const Caller& caller, hub::RepoType type,
                         const std::string& owner, const std::string& name) {
  auto repo = service.store.find_repo(type, owner, name);
  if (!repo || !can_see(*repo, caller)) {
    throw HttpError{404,
                    fmt::format("{} {}/{} does not exist", hub::repo_type_name(type), owner, name)};
  }
  return *repo;
}

RepoRecord dataset_for_read_by_id(Service& service, const Caller& caller, const std::string& id) {
  std::optional<RepoRecord> found;
  try {
    found = service.store.find_repo_by_id(std::stoll(id));
  } catch (const std::exception&) {
  }
  if (!found || found->type != hub::RepoType::kDataset || !can_see(*found, caller)) {
    throw HttpError{404, "dataset " + id + " does not exist"};
  }
  return *found;
}

RepoRecord repo_for_write(Service& service, const Caller& caller, hub::RepoType type,
                          const std::string& owner, const std::string& name) {
  if (!caller.user) {
    throw HttpError{401, caller.presented_token ? "the access token is invalid"
                                                : "authentication required: send an access token "
                                                  "(cookie m_session_id or Authorization: Bearer)"};
  }
  RepoRecord repo = repo_for_read(service, caller, type, owner, name);
  if (*caller.user != repo.owner) {
    throw HttpError{403, fmt::format("user {} may not write to {}/{}", *caller.user, owner, name)};
  }
  return repo;
}

std::string base_url(Service& service, const httplib::Request& req) {
  std::string host = req.get_header_value("Host");
  if (host.empty() || host.find_first_of("/ \r\n") != std::string::npos) {
    // An IPv6 address is bracketed in a URL (--host may give it either way).
    const std::string& own = service.options.host;
    const bool bare_ipv6 = own.find(':') != std::string::npos && own.front() != '[';
    host = (bare_ipv6 ? "[" + own + "]" : own) + ":" + std::to_string(req.local_port);
  }
  return service.scheme + "://" + host;
}

std::string param(const httplib::Request& req, const char* key, const std::string& fallback) {
  return req.has_param(key) ? req.get_param_value(key) : fallback;
}

nlohmann::json json_body(const httplib::Request& req) {
  // The checked parser: a body nested 100,000 deep or holding 1e999 is a 400, not a crash or 500.
  nlohmann::json body;
  JsonParseError error;
  if (!try_parse_json(req.body, body, error)) {
    throw HttpError{400, fmt::format("the request body is not valid JSON: line {}, column {}: {}",
                                     error.line, error.column, error.reason)};
  }
  if (!body.is_object()) throw HttpError{400, "the request body must be a JSON object"};
  return body;
}

CommitRecord resolve_revision(Service& service, const RepoRecord& repo,
                              const std::string& revision) {
  const std::string rev = revision.empty() ? std::string(hub::kDefaultRevision) : revision;
  auto commit = service.store.resolve(repo.id, rev);
  if (!commit) {
    throw HttpError{
        404, fmt::format("revision '{}' of {}/{} does not exist", rev, repo.owner, repo.name)};
  }
  return *commit;
}

}  // namespace ms::hub_server

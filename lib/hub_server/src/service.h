// Shared state and helpers of the hub server's route handlers (private to lib/hub_server).
#pragma once

#include <httplib.h>

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint_backfill.h"
#include "git_export.h"
#include "ms/hub_server/server.h"
#include "ms/hub_server/store.h"

namespace ms::hub_server {

/// An HTTP error answered with the ModelScope envelope.
struct HttpError {
  int status;
  std::string message;
};

/// Everything a handler needs: the store, the options and the fault counter.
struct Service {
  explicit Service(ServerOptions opts)
      : options(std::move(opts)), store(options.root), git(store), backfill(store) {}

  ServerOptions options;
  Store store;
  GitExporter git;              ///< read-only git view of the store (routes_git.cpp)
  CheckpointBackfill backfill;  ///< sha256 checkpoints for blobs stored without them
  std::string scheme = "http";
  std::atomic<std::uint64_t> content_gets{0};  ///< file-content GETs so far (fault counters)
};

/// Who sent a request: the user of a valid token, if any.
struct Caller {
  std::optional<std::string> user;
  bool presented_token = false;
};

/// Token from `Authorization: Bearer`, the `m_session_id` cookie, or the password of
/// `Authorization: Basic` (git sends the token of a clone URL https://oauth2:TOKEN@host/ so).
std::string request_token(const httplib::Request& req);
Caller identify(Service& service, const httplib::Request& req);

/// The JSON text of a response body. Messages echo request parameters, which can be any bytes
/// (`FilePath=%ff`); invalid UTF-8 becomes U+FFFD instead of failing the response with a 500.
template <typename Json>
std::string response_text(const Json& body) {
  return body.dump(-1, ' ', false, Json::error_handler_t::replace);
}

/// Writes {Code, Data, Message, RequestId, Success}, plus the members of `extra` (an object) at
/// the top level where an endpoint has them (e.g. TotalCount of the commit history).
void send_envelope(const httplib::Request& req, httplib::Response& res, int status,
                   nlohmann::json data, const std::string& message,
                   const nlohmann::json& extra = nullptr);
inline void send_ok(const httplib::Request& req, httplib::Response& res, nlohmann::json data) {
  send_envelope(req, res, 200, std::move(data), "success");
}

/// send_ok with Data given as JSON text (written by the caller piece by piece, for a large
/// listing: no second copy of it as a document).
void send_ok_text(const httplib::Request& req, httplib::Response& res, std::string data_json);

/// Runs `body`, turning HttpError, ms::Error and other exceptions into envelope responses.
/// A 500 for a failure of the hub itself (a full disk, an unwritable store, a bug): the client
/// gets the request id and no details (server paths, SQL); the log gets the cause under that id.
void send_server_error(const httplib::Request& req, httplib::Response& res,
                       const std::string& cause);

void guarded(const httplib::Request& req, httplib::Response& res,
             const std::function<void()>& body);

/// "models"/"datasets" -> RepoType.
hub::RepoType parse_type(const std::string& plural);

/// Whether `caller` may see `repo`: public repos to all, internal ones to any signed-in user,
/// private ones to their owner.
bool can_see(const RepoRecord& repo, const Caller& caller);

/// The repo if it exists and `caller` may see it; HttpError 404 otherwise (private repos look
/// missing to others).
RepoRecord repo_for_read(Service& service, const Caller& caller, hub::RepoType type,
                         const std::string& owner, const std::string& name);
/// The dataset with the numeric hub id `id` (as modelscope addresses datasets in places) if it
/// exists and `caller` may see it; HttpError 404 naming only the id otherwise, so that a private
/// dataset's name does not leak.
RepoRecord dataset_for_read_by_id(Service& service, const Caller& caller, const std::string& id);
/// The repo if `caller` may write to it: 404 when invisible, 401 without a valid token, 403 when
/// the caller is not the owner.
RepoRecord repo_for_write(Service& service, const Caller& caller, hub::RepoType type,
                          const std::string& owner, const std::string& name);

/// Streams the stored blob `sha256` as the response body, honouring a Range header (206, or 416
/// naming the size); `what` names it in errors (a missing blob file is an I/O error).
void send_stored_blob(Service& service, const httplib::Request& req, httplib::Response& res,
                      const std::string& sha256, const std::string& what);

/// "scheme://host:port" as the client reached this server (from the Host header), for links the
/// client follows (LFS upload and download hrefs).
std::string base_url(Service& service, const httplib::Request& req);

/// Query parameter or `fallback`.
std::string param(const httplib::Request& req, const char* key, const std::string& fallback = "");

/// Parses a JSON body; HttpError 400 naming the problem.
nlohmann::json json_body(const httplib::Request& req);

/// The commit a revision names; HttpError 404 naming it.
CommitRecord resolve_revision(Service& service, const RepoRecord& repo,
                              const std::string& revision);

/// Answers one request. It may throw: add_routes() runs it inside guarded().
using RouteHandler =
    std::function<void(Service& service, const httplib::Request& req, httplib::Response& res)>;

enum class Method { kGet, kPost, kPut, kDelete };

/// One row of a route table: method, path pattern (an httplib regex) and its named handler.
struct Route {
  Method method;
  std::string pattern;
  RouteHandler handler;
};

/// Registers `routes` in order (httplib tries patterns in registration order); each handler runs
/// inside guarded(), so errors become envelope answers.
void add_routes(httplib::Server& server, Service& service, const std::vector<Route>& routes);

void add_repo_routes(httplib::Server& server, Service& service);
void add_file_routes(httplib::Server& server, Service& service);
void add_upload_routes(httplib::Server& server, Service& service);
void add_git_routes(httplib::Server& server, Service& service);

}  // namespace ms::hub_server

// Routes that write: the LFS batch check, blob upload (verified while streaming), commits with
// inline and LFS files, and file deletion.
#include "ms/core/encoding.h"
#include "ms/core/error.h"
#include "ms/hub/repo_id.h"
#include "service.h"

namespace ms::hub_server {
namespace {

using nlohmann::json;

std::string checked_path(const json& action) {
  const json p = action.value("path", json());
  if (!p.is_string()) throw HttpError{400, "each commit action needs a string 'path'"};
  const std::string path = p.get<std::string>();
  const std::string problem = hub::repo_path_problem(path);
  if (!problem.empty()) {
    throw HttpError{400, "invalid path '" + hub::printable_path(path) + "': " + problem};
  }
  return path;
}

// LFS batch check: for each {oid, size}, an upload href unless the hub has the blob already.
void handle_lfs_upload_batch(Service& service, const httplib::Request& req,
                             httplib::Response& res) {
  const Caller caller = identify(service, req);
  RepoRecord repo =
      repo_for_write(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]);
  const json body = json_body(req);
  const json objects = body.value("objects", json());
  if (!objects.is_array()) throw HttpError{400, "'objects' must be an array"};
  if (objects.size() > 10000) throw HttpError{400, "at most 10000 objects per batch"};
  json out = json::array();
  for (const json& o : objects) {
    const json oid = o.is_object() ? o.value("oid", json()) : json();
    const json size = o.is_object() ? o.value("size", json()) : json();
    if (!oid.is_string() || !is_sha256_hex(oid.get<std::string>()) || !size.is_number_unsigned()) {
      throw HttpError{400, "each object needs 'oid' (64 lower-case hex) and 'size' (bytes)"};
    }
    const std::string sha = oid.get<std::string>();
    const std::uint64_t n = size.get<std::uint64_t>();
    json item = {{"oid", sha}, {"size", n}};
    // Present only if the caller can read a repo holding it; otherwise the bytes must come
    // (proof of possession), or a sha256 would unlock other users' private files.
    auto have = service.store.blob_size(sha);
    if (!have || *have != n || !service.store.blob_readable_by(sha, caller.user)) {
      item["actions"] = {
          {"upload",
           {{"href", fmt::format("{}/api/v1/repos/{}/{}/{}/info/lfs/objects/{}?size={}",
                                 base_url(service, req), std::string(req.matches[1]), repo.owner,
                                 repo.name, sha, n)},
            {"expires_in", 86400}}}};
    }
    out.push_back(item);
  }
  send_ok(req, res, {{"objects", out}});
}

// A blob body streams into the store as it arrives, so this route takes a content reader.
void handle_put_blob(Service& service, const httplib::Request& req, httplib::Response& res,
                     const httplib::ContentReader& reader) {
  const Caller caller = identify(service, req);
  const RepoRecord repo =
      repo_for_write(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]);
  if (!req.has_header("Content-Length")) {
    throw HttpError{411, "blob uploads need a Content-Length header"};
  }
  std::uint64_t size = 0;
  try {
    size = std::stoull(req.get_header_value("Content-Length"));
  } catch (const std::exception&) {
    throw HttpError{400, "bad Content-Length"};
  }
  const std::string declared = param(req, "size");
  if (!declared.empty() && declared != std::to_string(size)) {
    throw HttpError{
        400, fmt::format("Content-Length {} differs from the declared size {}", size, declared)};
  }
  BlobWriter writer = service.store.begin_blob(req.matches[4], size);
  std::optional<Error> failure;
  reader([&](const char* data, std::size_t length) {
    try {
      writer.write(data, length);
      return true;
    } catch (const Error& e) {
      failure = e;
      return false;
    }
  });
  if (failure) throw *failure;
  writer.finish();
  service.store.add_repo_blob(repo.id, req.matches[4]);
  send_ok(req, res, {{"oid", std::string(req.matches[4])}, {"size", size}});
}

void handle_commit(Service& service, const httplib::Request& req, httplib::Response& res) {
  const Caller caller = identify(service, req);
  RepoRecord repo =
      repo_for_write(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]);
  const std::string branch = req.matches[4];
  const json body = json_body(req);
  const json actions = body.value("actions", json());
  if (!actions.is_array()) throw HttpError{400, "'actions' must be an array"};
  std::vector<CommitAction> changes;
  for (const json& a : actions) {
    if (!a.is_object()) throw HttpError{400, "each commit action must be an object"};
    CommitAction change;
    change.path = checked_path(a);
    const std::string kind = a.value("action", std::string("create"));
    if (kind == "delete") {
      change.kind = CommitAction::Kind::kDelete;
    } else if (kind == "create" || kind == "update") {
      const std::string type = a.value("type", std::string("normal"));
      if (type == "lfs") {
        change.lfs = true;
        change.sha256 = a.value("sha256", std::string());
        const json size = a.value("size", json());
        if (!size.is_number_unsigned()) {
          throw HttpError{400, "file '" + change.path + "': lfs entries need a 'size'"};
        }
        change.size = size.get<std::uint64_t>();
      } else if (type == "normal") {
        const std::string encoding = a.value("encoding", std::string("base64"));
        const std::string content = a.value("content", std::string());
        if (encoding == "base64") {
          auto decoded = base64_decode(content);
          if (!decoded) {
            throw HttpError{400, "file '" + change.path + "': content is not valid base64"};
          }
          change.content = std::move(*decoded);
        } else {
          change.content = content;
        }
        const json size = a.value("size", json());
        if (size.is_number_unsigned() && size.get<std::uint64_t>() != change.content.size()) {
          throw HttpError{
              400, fmt::format("file '{}': declared size {} but content has {} bytes", change.path,
                               size.get<std::uint64_t>(), change.content.size())};
        }
      } else {
        throw HttpError{400, "file '" + change.path + "': unknown type '" + type + "'"};
      }
    } else {
      throw HttpError{400, "unknown commit action '" + kind + "'"};
    }
    changes.push_back(std::move(change));
  }
  const std::string message = body.value("commit_message", std::string());
  const std::string description = body.value("commit_description", std::string());
  try {
    CommitRecord c = service.store.commit(
        repo.id, branch, changes, description.empty() ? message : message + "\n\n" + description,
        *caller.user);
    send_ok(req, res, {{"oid", c.id}, {"commit_id", c.id}, {"branch", branch}});
  } catch (const Error& e) {
    // A missing blob or file is a bad commit, not a missing repo.
    if (e.code() == ErrorCode::kNotFound) throw HttpError{400, e.what()};
    throw;
  }
}

// Single-file deletion as the Python client sends it (a commit with one delete action).
void handle_delete_file(Service& service, const httplib::Request& req, httplib::Response& res) {
  const Caller caller = identify(service, req);
  RepoRecord repo =
      repo_for_write(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]);
  const std::string path = param(req, "FilePath");
  if (!hub::is_safe_repo_path(path)) throw HttpError{400, "invalid FilePath '" + path + "'"};
  CommitAction change;
  change.kind = CommitAction::Kind::kDelete;
  change.path = path;
  try {
    CommitRecord c = service.store.commit(repo.id, param(req, "Revision", hub::kDefaultRevision),
                                          {change}, "Delete " + path, *caller.user);
    send_ok(req, res, {{"oid", c.id}});
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound) throw HttpError{404, e.what()};
    throw;
  }
}

}  // namespace

void add_upload_routes(httplib::Server& server, Service& service) {
  const std::string repos_re = R"(/api/v1/repos/(models|datasets)/([^/]+)/([^/]+))";
  const std::string repo_re = R"(/api/v1/(models|datasets)/([^/]+)/([^/]+))";
  add_routes(server, service,
             {{Method::kPost, repos_re + "/info/lfs/objects/batch", handle_lfs_upload_batch}});
  server.Put(repos_re + "/info/lfs/objects/([0-9a-f]{64})",
             [&service](const httplib::Request& req, httplib::Response& res,
                        const httplib::ContentReader& reader) {
               guarded(req, res, [&] { handle_put_blob(service, req, res, reader); });
             });
  add_routes(server, service,
             {
                 {Method::kPost, repos_re + "/commit/(.+)", handle_commit},
                 {Method::kDelete, repo_re + "/file", handle_delete_file},
                 {Method::kDelete, repo_re + "/repo", handle_delete_file},
             });
}

}  // namespace ms::hub_server

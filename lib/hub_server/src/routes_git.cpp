// Read-only git over HTTP ("dumb" protocol: info/refs, HEAD, loose objects), so that
// `git clone {endpoint}/{owner}/{name}.git` works, as Python's HubApi.create_repo needs, plus the
// git-lfs batch API for downloads so that LFS files check out with git-lfs installed. Pushing is
// refused with a message git (and git-lfs) show (uploads go through the HTTP API).
#include <algorithm>
#include <unordered_map>
#include <vector>

#include "git_export.h"
#include "ms/core/error.h"
#include "service.h"

namespace ms::hub_server {
namespace {

constexpr const char* kPushRefused =
    "ms hub serve does not accept git pushes; upload with HubApi.upload_folder / upload_file, "
    "`modelscope upload` or `ms upload`";

// One git pkt-line: 4 hex digits of length (including themselves), then the payload.
std::string pkt_line(const std::string& payload) {
  return fmt::format("{:04x}", payload.size() + 4) + payload;
}

// The repo a git URL names. Models are /{owner}/{name}.git, datasets /datasets/{owner}/{name}.git.
// An anonymous caller gets a Basic challenge for a repo it cannot see, so that git retries with
// the token from the clone URL (https://oauth2:TOKEN@host/...). A missing repo gets the same
// answer, so that the challenge does not tell which private repos exist.
RepoRecord git_repo(Service& service, const httplib::Request& req, httplib::Response& res) {
  const hub::RepoType type =
      req.matches[1].length() > 0 ? hub::RepoType::kDataset : hub::RepoType::kModel;
  const Caller caller = identify(service, req);
  auto repo = service.store.find_repo(type, req.matches[2], req.matches[3]);
  if (!caller.user && (!repo || !can_see(*repo, caller))) {
    res.set_header("WWW-Authenticate", "Basic realm=\"ms hub serve\"");
    throw HttpError{401, "authentication required"};
  }
  return repo_for_read(service, caller, type, req.matches[2], req.matches[3]);
}

// Runs `body` for each branch and tag with its git snapshot, until it returns true.
template <typename Fn>
void for_each_ref(Service& service, const RepoRecord& repo, Fn&& body) {
  for (const RefRecord& ref : service.store.refs(repo.id)) {
    auto commit = service.store.find_commit(ref.commit_id);
    if (!commit) continue;
    if (body(ref, *service.git.snapshot(*commit, service.store.user_email(commit->author)))) return;
  }
}

// Sizes of the LFS files of every branch and tag, by sha256: what this repo may serve via LFS.
std::unordered_map<std::string, std::uint64_t> lfs_objects(Service& service,
                                                           const RepoRecord& repo) {
  std::unordered_map<std::string, std::uint64_t> out;
  for_each_ref(service, repo, [&](const RefRecord&, const GitSnapshot& snapshot) {
    out.insert(snapshot.lfs_objects.begin(), snapshot.lfs_objects.end());
    return false;
  });
  return out;
}

void send_lfs_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(response_text(body), "application/vnd.git-lfs+json");
}

// The refs of the dumb HTTP protocol; a push (git-receive-pack) gets an error line instead.
void handle_info_refs(Service& service, const httplib::Request& req, httplib::Response& res) {
  if (param(req, "service") == "git-receive-pack") {
    // A smart-protocol advertisement holding only an error line: git prints it and stops.
    res.set_content(pkt_line("# service=git-receive-pack\n") + "0000" +
                        pkt_line(std::string("ERR ") + kPushRefused + "\n"),
                    "application/x-git-receive-pack-advertisement");
    return;
  }
  const RepoRecord repo = git_repo(service, req, res);
  // Dumb protocol: "<sha1>\t<ref>" lines, sorted by ref name as `git update-server-info` does.
  std::vector<std::pair<std::string, std::string>> lines;
  for_each_ref(service, repo, [&](const RefRecord& ref, const GitSnapshot& snapshot) {
    lines.emplace_back((ref.is_tag ? "refs/tags/" : "refs/heads/") + ref.name,
                       snapshot.commit_sha1);
    return false;
  });
  std::sort(lines.begin(), lines.end());
  std::string body;
  for (const auto& [name, sha1] : lines) body += sha1 + "\t" + name + "\n";
  res.set_content(body, "text/plain");
}

void handle_head(Service& service, const httplib::Request& req, httplib::Response& res) {
  git_repo(service, req, res);
  res.set_content(fmt::format("ref: refs/heads/{}\n", hub::kDefaultRevision), "text/plain");
}

// A loose object of any snapshot of the repo's refs.
void handle_object(Service& service, const httplib::Request& req, httplib::Response& res) {
  const RepoRecord repo = git_repo(service, req, res);
  const std::string sha1 = std::string(req.matches[4]) + std::string(req.matches[5]);
  std::string found;
  for_each_ref(service, repo, [&](const RefRecord&, const GitSnapshot& snapshot) {
    auto it = snapshot.objects.find(sha1);
    if (it == snapshot.objects.end()) return false;
    found = service.git.loose_object(it->second);
    return true;
  });
  if (found.empty()) throw HttpError{404, "no git object " + sha1};
  res.set_content(found, "application/x-git-loose-object");
}

// git-lfs batch API (https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md):
// downloads point at handle_lfs_object, with the caller's Authorization header passed on.
void handle_lfs_download_batch(Service& service, const httplib::Request& req,
                               httplib::Response& res) {
  const RepoRecord repo = git_repo(service, req, res);
  const nlohmann::json body = json_body(req);
  if (body.value("operation", std::string()) != "download") {
    send_lfs_json(res, 403, {{"message", kPushRefused}});
    return;
  }
  const auto available = lfs_objects(service, repo);
  const std::string prefix =
      base_url(service, req) + req.path.substr(0, req.path.find(".git/") + 4);
  nlohmann::json header = nlohmann::json::object();
  if (req.has_header("Authorization")) {
    header["Authorization"] = req.get_header_value("Authorization");
  }
  nlohmann::json objects = nlohmann::json::array();
  for (const nlohmann::json& o : body.value("objects", nlohmann::json::array())) {
    const std::string oid = o.is_object() ? o.value("oid", std::string()) : "";
    auto it = available.find(oid);
    if (it == available.end()) {
      objects.push_back(
          {{"oid", oid}, {"error", {{"code", 404}, {"message", "object not in this repo"}}}});
      continue;
    }
    objects.push_back({{"oid", oid},
                       {"size", it->second},
                       {"authenticated", true},
                       {"actions",
                        {{"download",
                          {{"href", prefix + "/info/lfs/objects/" + oid},
                           {"header", header},
                           {"expires_in", 86400}}}}}});
  }
  send_lfs_json(res, 200, {{"transfer", "basic"}, {"objects", objects}});
}

void handle_lfs_object(Service& service, const httplib::Request& req, httplib::Response& res) {
  const RepoRecord repo = git_repo(service, req, res);
  const std::string oid = req.matches[4];
  // Only blobs of this repo: sha256 alone must not reach other repos' files.
  if (lfs_objects(service, repo).count(oid) == 0) {
    throw HttpError{404, "LFS object " + oid + " is not in this repo"};
  }
  send_stored_blob(service, req, res, oid, "LFS object " + oid);
}

void handle_receive_pack(Service&, const httplib::Request& req, httplib::Response& res) {
  send_envelope(req, res, 403, nullptr, kPushRefused);
}

}  // namespace

void add_git_routes(httplib::Server& server, Service& service) {
  const std::string repo_re = R"(/(datasets/)?([^/]+)/([^/]+)\.git)";
  add_routes(
      server, service,
      {
          {Method::kGet, repo_re + "/info/refs", handle_info_refs},
          {Method::kGet, repo_re + "/HEAD", handle_head},
          {Method::kGet, repo_re + R"(/objects/([0-9a-f]{2})/([0-9a-f]{38}))", handle_object},
          {Method::kPost, repo_re + "/info/lfs/objects/batch", handle_lfs_download_batch},
          {Method::kGet, repo_re + "/info/lfs/objects/([0-9a-f]{64})", handle_lfs_object},
          {Method::kPost, repo_re + "/git-receive-pack", handle_receive_pack},
      });
}

}  // namespace ms::hub_server

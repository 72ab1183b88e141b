// Read-only git over HTTP ("dumb" protocol: info/refs, HEAD, loose objects), so that
// `git clone {endpoint}/{owner}/{name}.git` works, as Python's HubApi.create_repo needs. Pushing is
// refused with a message git shows as "remote error: ..." (uploads go through the HTTP API).
#include <algorithm>

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
// A private repo asked for without credentials gets a Basic challenge, so that git retries with
// the token from the clone URL (https://oauth2:TOKEN@host/...).
RepoRecord git_repo(Service& service, const httplib::Request& req, httplib::Response& res) {
  const hub::RepoType type =
      req.matches[1].length() > 0 ? hub::RepoType::kDataset : hub::RepoType::kModel;
  const Caller caller = identify(service, req);
  auto repo = service.store.find_repo(type, req.matches[2], req.matches[3]);
  if (repo && !can_see(*repo, caller) && !caller.user) {
    res.set_header("WWW-Authenticate", "Basic realm=\"ms hub serve\"");
    throw HttpError{401, "authentication required"};
  }
  return repo_for_read(service, caller, type, req.matches[2], req.matches[3]);
}

// Runs `body` for each branch and tag with its git snapshot.
template <typename Fn>
void for_each_ref(Service& service, const RepoRecord& repo, Fn&& body) {
  for (const RefRecord& ref : service.store.refs(repo.id)) {
    auto commit = service.store.find_commit(ref.commit_id);
    if (!commit) continue;
    body(ref, *service.git.snapshot(*commit, service.store.user_email(commit->author)));
  }
}

}  // namespace

void add_git_routes(httplib::Server& server, Service& service) {
  const std::string repo_re = R"(/(datasets/)?([^/]+)/([^/]+)\.git)";

  server.Get(repo_re + "/info/refs", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] {
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
      });
      std::sort(lines.begin(), lines.end());
      std::string body;
      for (const auto& [name, sha1] : lines) body += sha1 + "\t" + name + "\n";
      res.set_content(body, "text/plain");
    });
  });

  server.Get(repo_re + "/HEAD", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] {
      git_repo(service, req, res);
      res.set_content("ref: refs/heads/master\n", "text/plain");
    });
  });

  server.Get(repo_re + R"(/objects/([0-9a-f]{2})/([0-9a-f]{38}))",
             [&](const httplib::Request& req, httplib::Response& res) {
               guarded(req, res, [&] {
                 const RepoRecord repo = git_repo(service, req, res);
                 const std::string sha1 = std::string(req.matches[4]) + std::string(req.matches[5]);
                 std::string found;
                 for_each_ref(service, repo, [&](const RefRecord&, const GitSnapshot& snapshot) {
                   auto it = snapshot.objects.find(sha1);
                   if (found.empty() && it != snapshot.objects.end()) {
                     found = service.git.loose_object(it->second);
                   }
                 });
                 if (found.empty()) throw HttpError{404, "no git object " + sha1};
                 res.set_content(found, "application/x-git-loose-object");
               });
             });

  server.Post(repo_re + "/git-receive-pack",
              [&](const httplib::Request& req, httplib::Response& res) {
                send_envelope(req, res, 403, nullptr, kPushRefused);
              });
}

}  // namespace ms::hub_server

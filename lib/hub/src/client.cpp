// HubClient's REST layer: the hub API calls (/api/v1) and their JSON answers. The transport
// (curl, retries, ranges) is in transport.cpp, the stored login in credentials.cpp.
#include "ms/hub/client.h"

#include <algorithm>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/io/curl.h"
#include "transport.h"

namespace ms::hub {

using detail::Request;
using detail::Response;
using json = nlohmann::json;

struct HubClient::Impl {
  explicit Impl(HubOptions o) : transport(std::move(o)) {}

  const HubOptions& options() const { return transport.options(); }

  // The Data of the hub's {Code, Data, Message} envelope; a Code other than 200 is an error
  // naming the request.
  static json envelope(const Response& r, const std::string& method, const std::string& url) {
    // The checked parser: a hostile hub's 100,000-deep answer must not overflow the stack later.
    json j;
    JsonParseError error;
    if (!try_parse_json(r.body, j, error)) {
      fail(ErrorCode::kNetwork,
           "{} {}: the hub answered with invalid JSON (line {}, column {}: {})", method, url,
           error.line, error.column, error.reason);
    }
    if (j.is_object() && j.contains("Code") && j["Code"].is_number_integer() &&
        j["Code"].get<long>() != 200) {
      const long code = j["Code"].get<long>();
      std::string message = j.value("Message", std::string());
      if (code == 404) fail(ErrorCode::kNotFound, "{} {}: {}", method, url, message);
      if (detail::is_refusal_status(code)) {
        throw Error(ErrorCode::kUsage,
                    fmt::format("{} {}: the hub refused it ({}): {}", method, url, code, message),
                    "the hub's message says what it refused; change that and run again");
      }
      fail(ErrorCode::kNetwork, "{} {}: hub error {}: {}", method, url, code, message);
    }
    if (j.is_object() && j.contains("Data")) return j["Data"];
    return j;
  }
  static json envelope(const Response& r, const Request& req) {
    return envelope(r, req.method, req.url);
  }

  // `probe`: a 404 is an expected answer the caller acts on (does the repo exist yet?), not an
  // error for the user, so the token is not checked for it.
  json api(const char* method, const std::string& path, const std::string& what,
           const std::string& body = {}, bool retryable = true, bool probe = false) {
    Request req;
    req.method = method;
    req.url = transport.options().endpoint + path;
    req.body = body;
    try {
      Response r = transport.send(req, what, retryable);
      return envelope(r, req);
    } catch (Error& e) {
      if (e.code() == ErrorCode::kNotFound && !probe) explain_not_found(e);
      throw;
    }
  }

  // A 404 to a request that sent a token: a hub answers 404, not 401, for a private repo the
  // token's user may not see, and (reading an invalid or expired token as none) for every
  // private repo, so the 404 alone cannot tell "no such repo" from "a token gone bad". The hub's
  // users/me says which (once per client; any other answer leaves the 404 as it is).
  void explain_not_found(Error& e) {
    const auto& token = transport.options().token;
    if (!token || token->empty()) return;
    // Download workers list the repo again after a checksum mismatch, so 404s may come from
    // several threads at once.
    std::lock_guard<std::mutex> lock(token_mutex);
    if (!token_checked) check_token(e.what());
    if (token_user) {
      e.set_hint(
          fmt::format("check the id and revision; a private repo is found only with a "
                      "token of a user who may read it (this token is {}'s)",
                      *token_user));
    }
  }

  // GET users/me with the token: throws for a token the hub refuses; sets token_user when the
  // hub names its user.
  void check_token(const std::string& not_found) {
    token_checked = true;
    Request req;
    req.method = "GET";
    req.url = transport.options().endpoint + "/openapi/v1/users/me";
    // The OpenAPI routes take the token as a Bearer header (modelscope 1.40 sends it so); the
    // session cookie goes along as on every request.
    req.headers.push_back("Authorization: Bearer " + *transport.options().token);
    const Response r = transport.perform(req);
    if (r.curl_code != CURLE_OK) return;
    // Only 401 says the token is not one: a 403 is a token known but not allowed there.
    if (r.status == 401) {
      throw Error(ErrorCode::kNetwork,
                  fmt::format("{}; and the hub does not accept the access token (HTTP 401 from "
                              "/openapi/v1/users/me): it is invalid or has expired",
                              not_found),
                  "run 'ms login --token T' with a valid token (or pass --token T)");
    }
    json j;
    JsonParseError ignored;
    if (r.status != 200 || !try_parse_json(r.body, j, ignored) || !j.is_object()) return;
    const json& data = j.contains("data") ? j["data"] : j.contains("Data") ? j["Data"] : j;
    if (!data.is_object() || !data.contains("username") || !data["username"].is_string()) return;
    token_user = data["username"].get<std::string>();
  }

  detail::Transport transport;
  std::mutex token_mutex;  // guards token_checked and token_user
  bool token_checked = false;
  std::optional<std::string> token_user;  // whose the token is, as users/me said
};

HubClient::HubClient(HubOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HubClient::~HubClient() = default;

const HubOptions& HubClient::options() const { return impl_->options(); }
std::uint64_t HubClient::request_count() const { return impl_->transport.request_count(); }

namespace {
std::string repo_path(RepoType type, const RepoId& repo) {
  return fmt::format("/api/v1/{}/{}/{}", repo_type_plural(type), io::url_escape(repo.owner),
                     io::url_escape(repo.name));
}
std::string describe(RepoType type, const RepoId& repo) {
  return fmt::format("{} {}", repo_type_name(type), repo.str());
}

// Listed files are at most this big (1 PiB): enough for any model, and far from the 64-bit
// overflows a hostile size would cause in part arithmetic.
constexpr std::uint64_t kMaxListedSize = 1ull << 50;

[[noreturn]] void bad_listing(const json& f, const std::string& what) {
  std::string shown = f.dump();
  if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
  throw Error(ErrorCode::kIntegrity,
              fmt::format("the hub listed a bad file entry ({}): {}", what, shown),
              "the hub is misbehaving; nothing was downloaded");
}

// A string member; absent or null gives "", any other type is a bad entry.
std::string listed_text(const json& f, const char* key) {
  const auto it = f.find(key);
  if (it == f.end() || it->is_null()) return {};
  if (!it->is_string()) bad_listing(f, fmt::format("'{}' is not a string", key));
  return it->get<std::string>();
}

FileEntry to_entry(const json& f) {
  FileEntry e;
  e.path = listed_text(f, "Path");
  const std::string problem = repo_path_problem(e.path);
  if (!problem.empty()) {
    // A hub listing "../x", "/etc/x" or ".git/config" is hostile or broken; nothing from it is
    // written.
    throw Error(
        ErrorCode::kIntegrity,
        fmt::format("the hub listed an unsafe file path '{}': {}", printable_path(e.path), problem),
        "the hub is misbehaving; nothing was downloaded");
  }
  e.revision = listed_text(f, "Revision");
  // hashlib's hexdigest is lower case; a hub writing upper case means the same digest.
  e.sha256 = listed_text(f, "Sha256");
  std::transform(e.sha256.begin(), e.sha256.end(), e.sha256.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  const auto size = f.find("Size");
  if (size != f.end() && !size->is_null()) {
    // Negative, fractional or absurd sizes would wrap around in offsets and part counts.
    if (!size->is_number_unsigned() || size->get<std::uint64_t>() > kMaxListedSize)
      bad_listing(f, "'Size' is not a byte count");
    e.size = size->get<std::uint64_t>();
  }
  const auto lfs = f.find("IsLFS");
  e.is_lfs = lfs != f.end() && lfs->is_boolean() && lfs->get<bool>();
  return e;
}

// Folders are not files. Everything else is listed, git's own files included: which of them a
// download leaves out is the download's choice (select() in download.cpp), and an upload must
// see them to skip the ones the hub holds already.
bool keep_listed(const json& f) {
  if (!f.is_object()) return false;
  const auto kind = f.find("Type");
  return kind == f.end() || !kind->is_string() || kind->get<std::string>() != "tree";
}

// Appends the listed files; a path listed twice (a paged listing read while the repo changed)
// is kept once, as first listed. Returns how many listed paths, folders included, were new: a
// page of a recursive listing may hold folders only, and that is not the end of the listing.
std::size_t add_listed(std::vector<FileEntry>& out, std::unordered_set<std::string>& seen,
                       const json& files) {
  std::size_t added = 0;
  std::size_t repeated = 0;
  std::string first_repeated;
  for (const json& f : files) {
    if (!keep_listed(f)) {
      // Still progress through the listing; remembered under a NUL prefix no file path has.
      if (f.is_object() && f.contains("Path") && f["Path"].is_string() &&
          seen.insert(std::string(1, '\0') + f["Path"].get<std::string>()).second)
        ++added;
      continue;
    }
    FileEntry e = to_entry(f);
    if (!seen.insert(e.path).second) {
      if (repeated++ == 0) first_repeated = e.path;
      continue;
    }
    out.push_back(std::move(e));
    ++added;
  }
  if (repeated > 0) {
    log::warn("the hub listed {} path(s) more than once (the first: '{}'); using the first entries",
              repeated, first_repeated);
  }
  return added;
}
}  // namespace

std::string HubClient::repo_info(RepoType type, const RepoId& repo, Missing missing) {
  return impl_
      ->api("GET", repo_path(type, repo), describe(type, repo), {}, true,
            missing == Missing::kExpected)
      .dump();
}

std::vector<RevisionInfo> HubClient::revisions(RepoType type, const RepoId& repo) {
  json data = impl_->api("GET", repo_path(type, repo) + "/revisions", describe(type, repo));
  std::vector<RevisionInfo> out;
  const json map = data.is_object() && data.contains("RevisionMap") ? data["RevisionMap"] : data;
  for (const auto& [key, is_tag] :
       {std::pair<const char*, bool>{"Branches", false}, {"Tags", true}}) {
    if (!map.is_object() || !map.contains(key) || !map[key].is_array()) continue;
    for (const json& r : map[key]) {
      RevisionInfo info;
      info.name = r.value("Revision", std::string());
      if (r.contains("CreatedAt") && r["CreatedAt"].is_number())
        info.created_at = r["CreatedAt"].get<std::int64_t>();
      info.is_tag = is_tag;
      if (!info.name.empty()) out.push_back(info);
    }
  }
  return out;
}

std::vector<FileEntry> HubClient::list_files(RepoType type, const RepoId& repo,
                                             const std::string& revision, Missing missing) {
  const bool probe = missing == Missing::kExpected;
  std::vector<FileEntry> out;
  std::unordered_set<std::string> seen;
  const std::string what = fmt::format("{} at revision '{}'", describe(type, repo), revision);
  if (type == RepoType::kModel) {
    json data =
        impl_->api("GET",
                   repo_path(type, repo) + "/repo/files?Revision=" + io::url_escape(revision) +
                       "&Recursive=True",
                   what, {}, true, probe);
    if (data.is_object() && data.contains("Files") && data["Files"].is_array()) {
      add_listed(out, seen, data["Files"]);
    }
    return out;
  }
  json info = impl_->api("GET", repo_path(type, repo), describe(type, repo), {}, true, probe);
  std::string id = repo_path(type, repo).substr(std::string("/api/v1/datasets/").size());
  if (info.is_object() && info.contains("Id")) {
    id = info["Id"].is_string() ? info["Id"].get<std::string>() : info["Id"].dump();
  }
  for (int page = 1;; ++page) {
    json data = impl_->api("GET",
                           fmt::format("/api/v1/datasets/{}/repo/tree?Revision={}&Root=/"
                                       "&Recursive=True&PageNumber={}&PageSize=100",
                                       id, io::url_escape(revision), page),
                           what, {}, true, probe);
    std::size_t n = 0;
    std::size_t added = 0;
    if (data.is_object() && data.contains("Files") && data["Files"].is_array()) {
      n = data["Files"].size();
      added = add_listed(out, seen, data["Files"]);
    }
    // A short page is the last; a full page of nothing new means the hub ignores PageNumber
    // (asking on would repeat the same page up to the cap).
    if (n < 100 || added == 0 || page > 100000) break;
  }
  return out;
}

std::string HubClient::file_url(RepoType type, const RepoId& repo, const std::string& revision,
                                const std::string& path) const {
  if (type == RepoType::kDataset) {
    return fmt::format("{}{}/repo?Source=SDK&Revision={}&FilePath={}&View=False",
                       impl_->options().endpoint, repo_path(type, repo), io::url_escape(revision),
                       io::url_escape(path));
  }
  return fmt::format("{}{}/repo?Revision={}&FilePath={}", impl_->options().endpoint,
                     repo_path(type, repo), io::url_escape(revision), io::url_escape(path));
}

void HubClient::download_range(const std::string& url, std::uint64_t offset, std::uint64_t end,
                               const DataSink& sink, std::uint64_t& written,
                               std::uint64_t file_size, std::string* sha256_checkpoints) {
  impl_->transport.download_range(url, offset, end, sink, written, file_size, sha256_checkpoints);
}

LoginResult HubClient::login(const std::string& access_token) {
  // Access tokens are printable ASCII; anything else is a paste gone wrong (and would not survive
  // the JSON body or a Cookie header).
  for (const unsigned char c : access_token) {
    MS_CHECK(c > 0x20 && c < 0x7f, ErrorCode::kUsage,
             "the access token holds a byte that no token has (0x{:02x}): tokens are printable "
             "ASCII without spaces",
             static_cast<unsigned>(c));
  }
  Request req;
  req.method = "POST";
  req.url = impl_->options().endpoint + "/api/v1/login";
  req.body = json{{"AccessToken", access_token}}.dump();
  Response r = impl_->transport.send(req, "login", true);
  json data = impl_->envelope(r, req);
  LoginResult out;
  if (data.is_object()) {
    out.git_token = data.value("AccessToken", std::string());
    out.username = data.value("Username", std::string());
    out.email = data.value("Email", std::string());
  }
  if (!r.set_cookie_session.empty()) {
    out.cookie = parse_set_cookie(r.set_cookie_session, impl_->options().endpoint,
                                  static_cast<std::int64_t>(std::time(nullptr)));
    if (out.cookie) out.session_cookie = out.cookie->value;
  }
  return out;
}

void HubClient::create_repo(RepoType type, const RepoId& repo, bool is_private, bool exist_ok) {
  if (exist_ok) {
    try {
      repo_info(type, repo, Missing::kExpected);
      return;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNotFound) throw;
    }
  }
  const int visibility = is_private ? 1 : 5;
  json body = {{"Path", repo.owner},
               {"Name", repo.name},
               {"ChineseName", repo.name},
               {"Visibility", visibility},
               {"License", "Apache License 2.0"}};
  try {
    if (type == RepoType::kDataset) {
      // Datasets are created with a multipart form, as modelscope sends it.
      Request req;
      req.method = "POST";
      req.url = impl_->options().endpoint + "/api/v1/datasets";
      req.form = {{"Name", repo.name},
                  {"ChineseName", repo.name},
                  {"Owner", repo.owner},
                  {"License", "Apache License 2.0"},
                  {"Visibility", std::to_string(visibility)},
                  {"Description", ""}};
      impl_->envelope(impl_->transport.send(req, "create " + describe(type, repo), false), req);
      return;
    }
    impl_->api("POST", fmt::format("/api/v1/{}", repo_type_plural(type)),
               "create " + describe(type, repo), body.dump(), false);
  } catch (const Error&) {
    // Another client (two uploads started together) may have created it since the check above.
    if (!exist_ok) throw;
    bool exists = false;
    try {
      repo_info(type, repo);
      exists = true;
    } catch (const Error&) {
    }
    if (!exists) throw;  // the create's own failure
  }
}

std::vector<std::string> HubClient::lfs_upload_hrefs(
    RepoType type, const RepoId& repo,
    const std::vector<std::pair<std::string, std::uint64_t>>& objects) {
  std::vector<std::string> out(objects.size());
  for (std::size_t start = 0; start < objects.size(); start += 64) {
    json objs = json::array();
    for (std::size_t i = start; i < objects.size() && i < start + 64; ++i) {
      objs.push_back({{"oid", objects[i].first}, {"size", objects[i].second}});
    }
    json body = {{"operation", "upload"}, {"objects", objs}};
    json data = impl_->api(
        "POST",
        fmt::format("/api/v1/repos/{}/{}/{}/info/lfs/objects/batch", repo_type_plural(type),
                    io::url_escape(repo.owner), io::url_escape(repo.name)),
        "LFS batch for " + describe(type, repo), body.dump(), true);
    const json list =
        data.is_object() && data.contains("objects") ? data["objects"] : json::array();
    for (const json& o : list) {
      const std::string oid = o.value("oid", std::string());
      std::string href;
      if (o.contains("actions") && o["actions"].is_object() && o["actions"].contains("upload")) {
        href = o["actions"]["upload"].value("href", std::string());
      }
      for (std::size_t i = start; i < objects.size() && i < start + 64; ++i) {
        if (objects[i].first == oid) out[i] = href;
      }
    }
  }
  return out;
}

void HubClient::put_blob(const std::string& href, const std::string& local_path, std::uint64_t size,
                         const std::function<void(std::uint64_t)>& progress) {
  const std::string url = href.rfind("http", 0) == 0 ? href : impl_->options().endpoint + href;
  const Response r = impl_->transport.put_file(url, local_path, size, progress);
  // Blob stores may answer a PUT with an empty body; a JSON one may still carry an error Code.
  if (!r.body.empty()) Impl::envelope(r, "PUT", url);
}

std::string HubClient::commit(RepoType type, const RepoId& repo, const std::string& revision,
                              const std::string& body_json) {
  // A commit carries its whole content, so retrying a failed one cannot apply it twice with
  // different results; the hub stores blobs by content.
  json data = impl_->api(
      "POST",
      fmt::format("/api/v1/repos/{}/{}/{}/commit/{}", repo_type_plural(type),
                  io::url_escape(repo.owner), io::url_escape(repo.name), io::url_escape(revision)),
      "commit to " + describe(type, repo), body_json, true);
  if (data.is_object()) {
    for (const char* key : {"oid", "Oid", "CommitId", "Revision"}) {
      if (data.contains(key) && data[key].is_string()) return data[key].get<std::string>();
    }
  }
  return {};
}

void HubClient::create_tag(RepoType type, const RepoId& repo, const std::string& tag,
                           const std::string& ref) {
  json body = {{"TagName", tag}, {"Ref", ref}};
  impl_->api("POST", repo_path(type, repo) + "/repo/tag",
             "tag " + tag + " of " + describe(type, repo), body.dump(), false);
}

}  // namespace ms::hub

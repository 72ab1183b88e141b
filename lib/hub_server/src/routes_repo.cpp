// Routes for accounts and repositories: login, create, info, revisions, tags, commit history.
#include <algorithm>
#include <ctime>
#include <functional>

#include "ms/core/error.h"
#include "ms/hub/repo_id.h"
#include "service.h"

namespace ms::hub_server {
namespace {

using nlohmann::json;

// Owner and repo names as ModelScope accepts them.
bool valid_name(const std::string& name) {
  // is_safe_repo_path() also refuses ".git", which as a repo folder would be git's own.
  if (name.size() > 128 || !hub::is_safe_repo_path(name)) return false;
  return name.find_first_not_of(
             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
         std::string::npos;
}

// A string field that may be absent or null.
std::string text_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_string()) throw HttpError{400, std::string("'") + key + "' must be a string"};
  return it->get<std::string>();
}

int parse_visibility(const json& value) {
  int v = kPublic;
  if (value.is_number_integer()) {
    v = value.get<int>();
  } else if (value.is_string()) {
    const std::string s = value.get<std::string>();
    if (s == "private") return kPrivate;
    if (s == "internal") return kInternal;
    if (s == "public") return kPublic;
    try {
      v = std::stoi(s);
    } catch (const std::exception&) {
      throw HttpError{
          400, "Visibility must be 1 (private), 3 (internal) or 5 (public), got '" + s + "'"};
    }
  } else if (!value.is_null()) {
    throw HttpError{400, "Visibility must be 1 (private), 3 (internal) or 5 (public)"};
  }
  if (v != kPrivate && v != kInternal && v != kPublic) {
    throw HttpError{400, "Visibility must be 1 (private), 3 (internal) or 5 (public), got " +
                             std::to_string(v)};
  }
  return v;
}

json repo_json(Service& service, const RepoRecord& repo) {
  std::int64_t updated = repo.created_at;
  if (auto head = service.store.resolve(repo.id, hub::kDefaultRevision)) updated = head->created_at;
  json data = {{"Id", repo.id},
               {"Name", repo.name},
               {"Path", repo.owner},
               {"Owner", repo.owner},
               {"ChineseName", repo.chinese_name},
               {"Visibility", repo.visibility},
               {"License", repo.license},
               {"Description", repo.description},
               {"CreatedTime", repo.created_at},
               {"CreatedAt", repo.created_at},
               {"LastUpdatedTime", updated},
               {"Downloads", 0},
               {"Stars", 0},
               {"IsPublished", 1},
               {"DefaultBranch", hub::kDefaultRevision}};
  if (repo.type == hub::RepoType::kModel) {
    data["Tasks"] = json::array();
    data["ModelType"] = json::array();
    data["Frameworks"] = json::array();
  } else {
    // 4 = "general" dataset: files served as they are stored.
    data["Type"] = 4;
  }
  return data;
}

void create_repo(Service& service, const httplib::Request& req, httplib::Response& res,
                 hub::RepoType type, RepoRecord repo) {
  const Caller caller = identify(service, req);
  if (!caller.user) {
    throw HttpError{401, caller.presented_token ? "the access token is invalid"
                                                : "authentication required to create a repo"};
  }
  if (!valid_name(repo.owner) || !valid_name(repo.name)) {
    throw HttpError{400,
                    fmt::format("invalid repo id '{}/{}': use letters, digits, '_', '.' and '-'",
                                repo.owner, repo.name)};
  }
  if (*caller.user != repo.owner) {
    throw HttpError{403,
                    fmt::format("user {} may not create repos under {}", *caller.user, repo.owner)};
  }
  // Two repos whose ids name one cache folder: a client that downloads both serves one's files
  // as the other's.
  if (const std::string why = hub::cache_folder_ambiguity({repo.owner, repo.name}); !why.empty()) {
    throw HttpError{400, fmt::format("repo id '{}/{}' could share its cache folder with another "
                                     "repo's ({}): ModelScope's caches name folders OWNER--NAME "
                                     "and write each '.' of a name as '___'",
                                     repo.owner, repo.name, why)};
  }
  repo.type = type;
  const std::string exists =
      fmt::format("{} {}/{} already exists", hub::repo_type_name(type), repo.owner, repo.name);
  if (service.store.find_repo(type, repo.owner, repo.name)) throw HttpError{409, exists};
  std::optional<RepoRecord> created;
  try {
    created = service.store.create_repo(repo, *caller.user);
  } catch (const Error&) {
    // A concurrent create of the same repo won the race: the same answer as when it came first.
    if (service.store.find_repo(type, repo.owner, repo.name)) throw HttpError{409, exists};
    throw;
  }
  send_ok(req, res, repo_json(service, *created));
}

json commit_json(const CommitRecord& c, const std::string& email) {
  const std::string title = c.message.substr(0, c.message.find('\n'));
  return {{"Id", c.id},
          {"ShortId", c.id.substr(0, 8)},
          {"Title", title},
          {"Message", c.message},
          {"AuthorName", c.author},
          {"AuthorEmail", email},
          {"AuthoredDate", c.created_at},
          {"CommitterName", c.author},
          {"CommitterEmail", email},
          {"CommittedDate", c.created_at},
          {"CreatedAt", c.created_at},
          {"ParentIds", c.parent.empty() ? json::array() : json::array({c.parent})}};
}

std::size_t positive_param(const httplib::Request& req, const char* key, std::size_t fallback,
                           std::size_t max) {
  const std::string text = param(req, key);
  if (text.empty()) return fallback;
  try {
    const long long v = std::stoll(text);
    if (v >= 1) return std::min(static_cast<std::size_t>(v), max);
  } catch (const std::exception&) {
  }
  throw HttpError{400, fmt::format("{} must be a positive integer, got '{}'", key, text)};
}

// Applies a settings update (HubApi.set_repo_visibility sends the model's full settings plus
// the new Visibility; datasets send only Visibility). Fields absent from the body stay as they are.
void update_settings(Service& service, const httplib::Request& req, httplib::Response& res,
                     RepoRecord repo) {
  const json body = json_body(req);
  if (body.contains("Visibility")) repo.visibility = parse_visibility(body["Visibility"]);
  auto keep_or_set = [&](const char* key, std::string& field) {
    auto it = body.find(key);
    if (it != body.end() && it->is_string()) field = it->get<std::string>();
  };
  keep_or_set("License", repo.license);
  keep_or_set("ChineseName", repo.chinese_name);
  keep_or_set("Description", repo.description);
  service.store.update_repo_settings(repo);
  send_ok(req, res, repo_json(service, repo));
}

// One model or dataset as the OpenAPI answers it (GET /openapi/v1/{models|datasets}[/O/N]),
// snake_case as OpenAPI is: "id" is "owner/name", "private" mirrors the visibility code.
json openapi_repo_json(Service& service, const RepoRecord& repo) {
  std::int64_t updated = repo.created_at;
  if (auto head = service.store.resolve(repo.id, hub::kDefaultRevision)) updated = head->created_at;
  return {{"id", repo.owner + "/" + repo.name},
          {"hub_id", repo.id},
          {"name", repo.name},
          {"owner", repo.owner},
          {"author", repo.owner},
          {"display_name", repo.chinese_name},
          {"chinese_name", repo.chinese_name},
          {"description", repo.description},
          {"license", repo.license},
          {"visibility", repo.visibility},
          {"private", repo.visibility == kPrivate},
          {"downloads", 0},
          {"likes", 0},
          {"tasks", json::array()},
          {"tags", json::array()},
          {"created_at", repo.created_at},
          {"last_modified", updated}};
}

// Writes the OpenAPI envelope {"success", "data", "message"}.
void send_openapi(httplib::Response& res, int status, json data, const std::string& message) {
  res.status = status;
  res.set_content(response_text(json{
                      {"success", status == 200}, {"data", std::move(data)}, {"message", message}}),
                  "application/json");
}

// Runs an OpenAPI handler: its errors answer in the OpenAPI envelope, not the ModelScope one
// (the OpenAPI client reads "message").
void openapi_guarded(httplib::Response& res, const std::function<void()>& body) {
  try {
    body();
  } catch (const HttpError& e) {
    send_openapi(res, e.status, nullptr, e.message);
  } catch (const std::exception& e) {
    send_openapi(res, 500, nullptr, std::string("internal error: ") + e.what());
  }
}

void handle_login(Service& service, const httplib::Request& req, httplib::Response& res) {
  const json body = json_body(req);
  const std::string token = text_field(body, "AccessToken");
  auto user = token.empty() ? std::nullopt : service.store.user_for_token(token);
  if (!user) throw HttpError{401, "login failed: the access token is invalid"};
  res.set_header("Set-Cookie", "m_session_id=" + token + "; Path=/; HttpOnly; Max-Age=2592000");
  send_ok(
      req, res,
      {{"AccessToken", token}, {"Username", *user}, {"Email", service.store.user_email(*user)}});
}

void handle_create_model(Service& service, const httplib::Request& req, httplib::Response& res) {
  const json body = json_body(req);
  RepoRecord repo;
  repo.owner = text_field(body, "Path");
  repo.name = text_field(body, "Name");
  repo.chinese_name = text_field(body, "ChineseName");
  repo.license = text_field(body, "License");
  repo.description = text_field(body, "Description");
  repo.visibility = parse_visibility(body.contains("Visibility") ? body["Visibility"] : json());
  create_repo(service, req, res, hub::RepoType::kModel, repo);
}

// Datasets are created with a multipart form (or query parameters), as modelscope sends it.
void handle_create_dataset(Service& service, const httplib::Request& req, httplib::Response& res) {
  auto field = [&](const char* key) {
    if (req.has_file(key)) return req.get_file_value(key).content;
    return param(req, key);
  };
  RepoRecord repo;
  repo.owner = field("Owner");
  repo.name = field("Name");
  repo.chinese_name = field("ChineseName");
  repo.license = field("License");
  repo.description = field("Description");
  const std::string visibility = field("Visibility");
  repo.visibility = parse_visibility(visibility.empty() ? json() : json(visibility));
  create_repo(service, req, res, hub::RepoType::kDataset, repo);
}

// List models of an owner (HubApi.list_models): PUT with {Path, PageNumber, PageSize}.
void handle_list_models(Service& service, const httplib::Request& req, httplib::Response& res) {
  const Caller caller = identify(service, req);
  const json body = json_body(req);
  const std::string owner = text_field(body, "Path");
  std::int64_t page = body.value("PageNumber", std::int64_t{1});
  std::int64_t size = body.value("PageSize", std::int64_t{10});
  if (page < 1 || size < 1) throw HttpError{400, "PageNumber and PageSize must be positive"};
  page = std::min<std::int64_t>(page, 1 << 20);
  size = std::min<std::int64_t>(size, 1000);
  json models = json::array();
  std::size_t total = 0;
  for (const RepoRecord& repo : service.store.list_repos(hub::RepoType::kModel, owner)) {
    if (!can_see(repo, caller)) continue;
    const std::size_t index = total++;
    if (index >= static_cast<std::size_t>((page - 1) * size) &&
        models.size() < static_cast<std::size_t>(size)) {
      models.push_back(repo_json(service, repo));
    }
  }
  send_ok(req, res, {{"Models", models}, {"TotalCount", total}});
}

void handle_repo_info(Service& service, const httplib::Request& req, httplib::Response& res) {
  const Caller caller = identify(service, req);
  RepoRecord repo =
      repo_for_read(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]);
  if (req.has_param("Revision")) resolve_revision(service, repo, param(req, "Revision"));
  send_ok(req, res, repo_json(service, repo));
}

void handle_delete_repo(Service& service, const httplib::Request& req, httplib::Response& res) {
  const Caller caller = identify(service, req);
  RepoRecord repo =
      repo_for_write(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]);
  service.store.delete_repo(repo.id);
  send_ok(req, res, nullptr);
}

void handle_update_repo(Service& service, const httplib::Request& req, httplib::Response& res) {
  const Caller caller = identify(service, req);
  update_settings(
      service, req, res,
      repo_for_write(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]));
}

// Datasets are also addressed by their numeric hub id (set_repo_visibility does so).
void handle_update_dataset_by_id(Service& service, const httplib::Request& req,
                                 httplib::Response& res) {
  const Caller caller = identify(service, req);
  const RepoRecord found = dataset_for_read_by_id(service, caller, req.matches[1]);
  update_settings(service, req, res,
                  repo_for_write(service, caller, found.type, found.owner, found.name));
}

// The caller's profile (HubApi.whoami, and HubApi.login's check of the token): 401 without a
// valid token.
void handle_openapi_me(Service& service, const httplib::Request& req, httplib::Response& res) {
  openapi_guarded(res, [&] {
    const Caller caller = identify(service, req);
    if (!caller.user) {
      throw HttpError{401, caller.presented_token
                               ? "the access token is invalid"
                               : "authentication required: send an access token "
                                 "(Authorization: Bearer or cookie m_session_id)"};
    }
    // Users have no numeric id here: the name is their id.
    send_openapi(res, 200,
                 {{"id", *caller.user},
                  {"username", *caller.user},
                  {"name", *caller.user},
                  {"email", service.store.user_email(*caller.user)},
                  {"avatar_url", ""}},
                 "success");
  });
}

// OpenAPI model and dataset listing (HubApi.list_repos, list_models, list_datasets): filter by
// owner (older clients send it as author) and a search substring, paged by
// page_number/page_size. Sort keys and filter.* parameters are accepted and ignored (repos here
// carry no tasks or download counts); the order is oldest first.
void handle_openapi_list(Service& service, const httplib::Request& req, httplib::Response& res) {
  openapi_guarded(res, [&] {
    const Caller caller = identify(service, req);
    const std::string plural = req.matches[1];
    const std::size_t page = positive_param(req, "page_number", 1, 1u << 20);
    const std::size_t size = positive_param(req, "page_size", 10, 1000);
    const std::string search = param(req, "search");
    const std::string owner = param(req, "owner", param(req, "author"));
    json items = json::array();
    std::size_t total = 0;
    for (const RepoRecord& repo : service.store.list_repos(parse_type(plural), owner)) {
      if (!can_see(repo, caller)) continue;
      if (!search.empty() && repo.name.find(search) == std::string::npos &&
          repo.owner.find(search) == std::string::npos &&
          repo.chinese_name.find(search) == std::string::npos) {
        continue;
      }
      if (total++ >= (page - 1) * size && items.size() < size) {
        items.push_back(openapi_repo_json(service, repo));
      }
    }
    send_openapi(
        res, 200,
        {{plural, items}, {"total_count", total}, {"page_number", page}, {"page_size", size}},
        "success");
  });
}

// One model or dataset (HubApi.get_repo tries this first): 404 when missing or invisible.
void handle_openapi_repo(Service& service, const httplib::Request& req, httplib::Response& res) {
  openapi_guarded(res, [&] {
    const Caller caller = identify(service, req);
    const RepoRecord repo =
        repo_for_read(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]);
    send_openapi(res, 200, openapi_repo_json(service, repo), "success");
  });
}

void handle_revisions(Service& service, const httplib::Request& req, httplib::Response& res) {
  const Caller caller = identify(service, req);
  RepoRecord repo =
      repo_for_read(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]);
  std::int64_t end_time = 0;
  const std::string end_text = param(req, "EndTime");
  if (!end_text.empty()) {
    try {
      end_time = std::stoll(end_text);
    } catch (const std::exception&) {
      throw HttpError{400, "EndTime must be a unix timestamp, got '" + end_text + "'"};
    }
  }
  json branches = json::array(), tags = json::array();
  for (const RefRecord& ref : service.store.refs(repo.id)) {
    auto commit = service.store.find_commit(ref.commit_id);
    const std::int64_t created = ref.is_tag ? ref.created_at : (commit ? commit->created_at : 0);
    if (ref.is_tag && end_time > 0 && created > end_time) continue;
    json item = {{"Revision", ref.name},
                 {"CreatedAt", created},
                 {"CommitId", ref.commit_id},
                 {"Message", commit ? commit->message : ""}};
    (ref.is_tag ? tags : branches).push_back(item);
  }
  send_ok(req, res, {{"RevisionMap", {{"Branches", branches}, {"Tags", tags}}}});
}

void handle_create_tag(Service& service, const httplib::Request& req, httplib::Response& res) {
  const Caller caller = identify(service, req);
  RepoRecord repo =
      repo_for_write(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]);
  const json body = json_body(req);
  const json tag = body.value("TagName", json());
  const json ref = body.value("Ref", json(hub::kDefaultRevision));
  if (!tag.is_string() || !ref.is_string()) {
    throw HttpError{400, "TagName and Ref must be strings"};
  }
  try {
    RefRecord created =
        service.store.create_tag(repo.id, tag.get<std::string>(), ref.get<std::string>());
    send_ok(req, res, {{"TagName", created.name}, {"CommitId", created.commit_id}});
  } catch (const Error& e) {
    // An unknown Ref is a bad request here, not a missing repo.
    if (e.code() == ErrorCode::kNotFound) throw HttpError{400, e.what()};
    throw;
  }
}

void handle_commits(Service& service, const httplib::Request& req, httplib::Response& res) {
  const Caller caller = identify(service, req);
  RepoRecord repo =
      repo_for_read(service, caller, parse_type(req.matches[1]), req.matches[2], req.matches[3]);
  const CommitRecord head =
      resolve_revision(service, repo, param(req, "Ref", param(req, "Revision")));
  const std::size_t page = positive_param(req, "PageNumber", 1, 1u << 20);
  const std::size_t size = positive_param(req, "PageSize", 50, 1000);
  std::size_t total = 0;
  json commits = json::array();
  for (const CommitRecord& c : service.store.history(head.id, (page - 1) * size, size, &total)) {
    commits.push_back(commit_json(c, service.store.user_email(c.author)));
  }
  send_envelope(req, res, 200, {{"Commit", commits}, {"TotalCount", total}}, "success",
                {{"TotalCount", total}});
}

// Services of modelscope.cn this hub does not have: 501 naming the feature, rather than a 404
// that reads as "the repo does not exist" (the datahub calls show the Message).
RouteHandler unsupported(const std::string& feature) {
  return [feature](Service&, const httplib::Request& req, httplib::Response& res) {
    send_envelope(req, res, 501, nullptr, feature + " is not supported by ms hub serve");
  };
}

// Download counters: accepted and ignored.
void handle_ignored(Service&, const httplib::Request& req, httplib::Response& res) {
  send_ok(req, res, nullptr);
}

// The intra-cloud region probe: there is no intra-cloud acceleration here.
void handle_acceleration_info(Service&, const httplib::Request& req, httplib::Response& res) {
  send_envelope(req, res, 404, nullptr, "no intra-cloud acceleration here");
}

}  // namespace

void add_repo_routes(httplib::Server& server, Service& service) {
  const std::string repo_re = R"(/api/v1/(models|datasets)/([^/]+)/([^/]+))";
  const std::string oss_re = R"(/api/v1/datasets/[^/]+/[^/]+/oss(/.*)?)";
  const RouteHandler oss = unsupported("OSS dataset storage");
  const RouteHandler deployer = unsupported("Model deployment (deployer)");
  add_routes(
      server, service,
      {
          {Method::kPost, "/api/v1/login", handle_login},
          {Method::kPost, "/api/v1/models", handle_create_model},
          {Method::kPost, "/api/v1/datasets", handle_create_dataset},
          {Method::kPut, R"(/api/v1/models/?)", handle_list_models},
          {Method::kGet, repo_re, handle_repo_info},
          {Method::kDelete, repo_re, handle_delete_repo},
          {Method::kPut, repo_re, handle_update_repo},
          {Method::kPut, R"(/api/v1/datasets/(\d+))", handle_update_dataset_by_id},
          {Method::kGet, "/openapi/v1/users/me", handle_openapi_me},
          {Method::kGet, "/openapi/v1/(models|datasets)", handle_openapi_list},
          {Method::kGet, "/openapi/v1/(models|datasets)/([^/]+)/([^/]+)", handle_openapi_repo},
          {Method::kGet, repo_re + "/revisions", handle_revisions},
          {Method::kPost, repo_re + "/repo/tag", handle_create_tag},
          {Method::kGet, repo_re + "/commits", handle_commits},
          {Method::kGet, R"(/api/v1/datasets/[^/]+/[^/]+/ststoken)",
           unsupported("OSS storage credentials (ststoken, used by legacy MsDataset OSS "
                       "datasets)")},
          {Method::kGet, oss_re, oss},
          {Method::kDelete, oss_re, oss},
          {Method::kPost, R"(/api/v1/models/aigc(/repo/tag)?)", unsupported("AIGC model creation")},
          {Method::kGet, R"(/api/v1/deployer/.*)", deployer},
          {Method::kPost, R"(/api/v1/deployer/.*)", deployer},
          {Method::kDelete, R"(/api/v1/deployer/.*)", deployer},
          {Method::kPost, repo_re + "/download/increase", handle_ignored},
          {Method::kPost, repo_re + "/download/uv/([a-z]+)", handle_ignored},
          {Method::kGet, "/api/v1/repos/internalAccelerationInfo", handle_acceleration_info},
      });
}

}  // namespace ms::hub_server

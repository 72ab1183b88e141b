// HubClient: the ModelScope HTTP API (/api/v1) over libcurl, behind a pimpl.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ms/core/export.h"
#include "ms/hub/cookie.h"
#include "ms/hub/repo_id.h"

namespace ms::hub {

/// Where and how to talk to a hub.
struct HubOptions {
  std::string endpoint;              ///< URL without trailing '/', e.g. http://127.0.0.1:8080
  std::optional<std::string> token;  ///< sent as the m_session_id cookie
  long connect_timeout_s = 10;
  long stall_timeout_s = 30;  ///< a transfer below 1 byte/s for this long is retried
  long api_timeout_s = 90;    ///< whole-request limit for API (non-transfer) calls
  int max_attempts = 6;       ///< tries per request on 5xx, resets and timeouts
  int backoff_ms = 250;       ///< first retry delay; doubles per try, capped at 8 s
};

/// Resolves the endpoint (`endpoint`, else $MODELSCOPE_ENDPOINT / $MODELSCOPE_DOMAIN, else
/// https://www.modelscope.cn) and the token (`token`, else $MODELSCOPE_API_TOKEN, else the stored
/// credentials). $MS_HUB_STALL_TIMEOUT and $MS_HUB_RETRIES override the transfer defaults.
MS_API HubOptions resolve_hub_options(const std::optional<std::string>& endpoint,
                                      const std::optional<std::string>& token);

/// One entry of a repo's recursive file listing (blobs only).
struct FileEntry {
  std::string path;      ///< repo-relative, checked with check_repo_path()
  std::string revision;  ///< the file's last commit id: the cache key
  std::string sha256;    ///< lower-case hex, may be empty when the hub does not say
  std::uint64_t size = 0;
  bool is_lfs = false;
};

/// A branch or tag.
struct RevisionInfo {
  std::string name;
  std::int64_t created_at = 0;
  bool is_tag = false;
};

/// Result of POST /api/v1/login.
struct LoginResult {
  std::string git_token;
  std::string username;
  std::string email;
  std::string session_cookie;    ///< the m_session_id the hub set, or empty
  std::optional<Cookie> cookie;  ///< that cookie with its attributes (Set-Cookie), if any
};

/// Called with each chunk of a download; returns false to abort the transfer.
using DataSink = std::function<bool(const char* data, std::size_t size)>;

/// The hub's HTTP API. Thread-safe: each request borrows a pooled curl handle, so connections
/// are kept alive between requests. Retries 5xx, resets and stalls with exponential backoff.
/// Errors: 404 -> kNotFound naming the repo, 401/403 -> kNetwork with a login hint,
/// other failures -> kNetwork naming the URL.
class MS_API HubClient {
 public:
  explicit HubClient(HubOptions options);
  ~HubClient();
  HubClient(const HubClient&) = delete;
  HubClient& operator=(const HubClient&) = delete;

  const HubOptions& options() const;

  /// Number of HTTP requests sent so far (tries included).
  std::uint64_t request_count() const;

  /// Whether the repo exists and is visible with the current token (GET /api/v1/{type}s/{id}).
  /// Returns the Data object as JSON text.
  /// Whether a 404 is an error to report (kError: with a token, the hub is asked whether it
  /// accepts the token, which a hub's 404 for a private repo cannot tell) or an answer the caller
  /// acts on (kExpected: does the repo or branch exist yet?).
  enum class Missing { kError, kExpected };

  std::string repo_info(RepoType type, const RepoId& repo, Missing missing = Missing::kError);

  /// Branches and tags (GET /api/v1/models/{id}/revisions).
  std::vector<RevisionInfo> revisions(RepoType type, const RepoId& repo);

  /// Recursive blob listing at `revision` (models: one call; datasets: pages of 100), every
  /// file the hub lists (git's .gitattributes and .gitignore included).
  std::vector<FileEntry> list_files(RepoType type, const RepoId& repo, const std::string& revision,
                                    Missing missing = Missing::kError);

  /// URL of a file's content at `revision`.
  std::string file_url(RepoType type, const RepoId& repo, const std::string& revision,
                       const std::string& path) const;

  /// GETs bytes [offset, end) of `url` (end 0: to the end) into `sink`, resuming with Range
  /// after resets and stalls. `written` is advanced by the bytes delivered, so a caller can
  /// resume even after the retries are exhausted. A hub that ignores Range and answers with the
  /// whole file still works: the bytes outside the range are dropped. `file_size` (0: unknown)
  /// is the listed size; such a whole-file answer of another length is refused. With
  /// `sha256_checkpoints`, the response's X-Ms-Sha256-Checkpoints header (or "") is stored there
  /// before its first byte reaches `sink`.
  void download_range(const std::string& url, std::uint64_t offset, std::uint64_t end,
                      const DataSink& sink, std::uint64_t& written, std::uint64_t file_size = 0,
                      std::string* sha256_checkpoints = nullptr);

  /// POST /api/v1/login with an SDK token.
  LoginResult login(const std::string& access_token);

  /// Creates a repo; `exist_ok` makes "already exists" a success.
  void create_repo(RepoType type, const RepoId& repo, bool is_private, bool exist_ok);

  /// LFS batch check: for each {sha256, size}, whether the hub still needs the blob and where to
  /// PUT it (empty href: the hub already has it).
  std::vector<std::string> lfs_upload_hrefs(
      RepoType type, const RepoId& repo,
      const std::vector<std::pair<std::string, std::uint64_t>>& objects);

  /// PUTs a local file to an href from lfs_upload_hrefs(); calls `progress` with byte counts.
  void put_blob(const std::string& href, const std::string& local_path, std::uint64_t size,
                const std::function<void(std::uint64_t)>& progress);

  /// POST /api/v1/repos/{type}s/{id}/commit/{revision} with a JSON body {commit_message, actions};
  /// returns the new commit id (may be empty).
  std::string commit(RepoType type, const RepoId& repo, const std::string& revision,
                     const std::string& body_json);

  /// POST /api/v1/models/{id}/repo/tag {TagName, Ref}.
  void create_tag(RepoType type, const RepoId& repo, const std::string& tag,
                  const std::string& ref);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The token stored under credentials_dirs(), if any: the unexpired m_session_id cookie in the
/// pickled jar `cookies` (written by `ms login` or Python's `modelscope login`), else the
/// ms_session_id file of earlier `ms login` versions, in active_credentials_dir() (the folder
/// touched last, so that a logout in one folder is not undone by a login left in another).
/// A corrupt jar is warned about.
MS_API std::optional<std::string> stored_token();

/// Why the hub commands refuse `token` as given, or "" when they send it: a tab, newline or ';'
/// would break the cookie it travels in. (`ms env` reports a token by the same rule.)
MS_API std::string token_problem(std::string_view token);

/// Runs the login and stores the credentials in every folder a modelscope version reads them from
/// (credentials_dirs()), in its formats: git_token, user
/// (name:email), session (32 hex, when absent) and cookies (a pickled RequestsCookieJar holding
/// m_session_id, which Python's ModelScopeConfig.get_cookies() loads). Files are mode 0600,
/// written atomically. Returns the result, with the stored cookie.
MS_API LoginResult login_and_store(HubClient& client, const std::string& access_token);

}  // namespace ms::hub

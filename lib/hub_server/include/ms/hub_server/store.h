// Storage of the self-hosted hub: content-addressed blobs, immutable commits and SQLite metadata.
//
// On-disk layout under the server root (`ms hub serve --root DIR`):
//
//   DIR/meta.sqlite3          SQLite database (WAL journal): users, tokens, repos, commits, refs.
//   DIR/blobs/ab/<sha256>     file contents, named by the SHA-256 of their bytes (ab = first two
//                             hex digits). Written to DIR/tmp/ first, fsync'ed, then renamed, so a
//                             crash never leaves a partial blob under its final name. Blobs are
//                             served as stored: the server does not re-hash them per request.
//   DIR/trees/ab/<sha256>.json  one full tree snapshot per distinct tree: a JSON array of
//                             [path, sha256, size, is_lfs, last_commit_id, last_commit_time],
//                             sorted by path. Commits point at a tree, so every old revision and
//                             tag stays downloadable after later commits.
//   DIR/tmp/                  uploads in progress (removed when they fail or finish).
//
// Tables: users(name, email, created_at), tokens(token, user, created_at),
// repos(id, type, owner, name, visibility, license, chinese_name, description, created_at),
// commits(id, repo_id, parent, tree, message, author, created_at),
// refs(repo_id, name, kind 'branch'|'tag', commit_id, created_at),
// repo_blobs(repo_id, sha256): the blobs uploaded through or committed into each repo (filled
// from the commits' trees when an older store is opened).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ms/core/error.h"
#include "ms/core/export.h"
#include "ms/hub/repo_id.h"
#include "ms/hub/sha256_checkpoints.h"

namespace ms::hub_server {

/// ModelScope visibility codes.
enum Visibility : int { kPrivate = 1, kInternal = 3, kPublic = 5 };

/// One model or dataset repository.
/// The store's own files are damaged (a tree file that does not parse): kIntegrity, as the
/// command's exit code says, but the hub's failure, not the request's: answered 500.
class MS_API StoreDamaged : public Error {
 public:
  using Error::Error;
};

struct RepoRecord {
  std::int64_t id = 0;  ///< numeric hub id (datasets are addressed by it in the tree API)
  hub::RepoType type = hub::RepoType::kModel;
  std::string owner;
  std::string name;
  int visibility = kPublic;
  std::string license;
  std::string chinese_name;
  std::string description;
  std::int64_t created_at = 0;  ///< unix seconds
};

/// One file of a tree snapshot.
struct TreeEntry {
  std::string path;
  std::string sha256;
  std::uint64_t size = 0;
  bool lfs = false;
  std::string commit_id;  ///< the commit that last changed this file
  std::int64_t committed_at = 0;
};

/// An immutable commit: a full tree snapshot plus its parent.
struct CommitRecord {
  std::string id;      ///< 40 hex digits
  std::string parent;  ///< empty for the first commit
  std::string tree;    ///< sha256 of the tree snapshot
  std::string message;
  std::string author;
  std::int64_t created_at = 0;
};

/// A branch or tag.
struct RefRecord {
  std::string name;
  bool is_tag = false;
  std::string commit_id;
  std::int64_t created_at = 0;
};

/// One change of a commit.
struct CommitAction {
  enum class Kind { kCreate, kDelete };
  Kind kind = Kind::kCreate;
  std::string path;
  bool lfs = false;  ///< kCreate: the content is the stored blob `sha256` (else inline `content`)
  std::string content;  ///< kCreate, inline: the file bytes
  std::string sha256;   ///< kCreate, lfs: the blob
  std::uint64_t size = 0;
};

/// Streams one upload into the blob store. The blob appears under its final name only when
/// finish() verified its SHA-256 and size; otherwise the temporary file is removed.
class MS_API BlobWriter {
 public:
  BlobWriter(BlobWriter&&) noexcept;
  BlobWriter& operator=(BlobWriter&&) noexcept;
  ~BlobWriter();

  /// Appends bytes; throws ms::Error(kIo) on write errors and (kIntegrity) past the expected size.
  void write(const char* data, std::size_t size);
  /// Verifies size and SHA-256 (ms::Error(kIntegrity) naming both digests on mismatch), fsyncs and
  /// renames the blob into place.
  void finish();

 private:
  friend class Store;
  struct State;
  explicit BlobWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// The hub's storage. Thread-safe: one SQLite connection guarded by a mutex, blob files written
/// outside the lock. Safe against other processes on the same root through SQLite's locking.
class MS_API Store {
 public:
  /// Opens (creating if needed) the store under `root`.
  explicit Store(const std::filesystem::path& root);
  /// Whether `root` already holds a store.
  static bool exists(const std::filesystem::path& root);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::filesystem::path& root() const;

  /// Mints a new access token for `user`, creating the user when it does not exist.
  std::string create_token(const std::string& user);
  /// ms::Error(kUsage) unless `user` is a user name (letters, digits, '_', '.', '-'): checked
  /// before a store is made for it.
  static void check_user_name(const std::string& user);
  /// The user a token belongs to, or nullopt for an unknown token.
  std::optional<std::string> user_for_token(const std::string& token);
  /// Email recorded for a user (may be empty).
  std::string user_email(const std::string& user);

  /// Creates a repo with a first commit holding a default `.gitattributes` on branch `master`.
  /// Throws ms::Error(kUsage) if it exists.
  RepoRecord create_repo(RepoRecord repo, const std::string& author);
  std::optional<RepoRecord> find_repo(hub::RepoType type, const std::string& owner,
                                      const std::string& name);
  std::optional<RepoRecord> find_repo_by_id(std::int64_t id);
  /// Repos of one type under `owner` (every owner when empty), oldest first.
  std::vector<RepoRecord> list_repos(hub::RepoType type, const std::string& owner);
  /// Stores the editable settings of `repo` (visibility, license, Chinese name, description),
  /// found by its id.
  void update_repo_settings(const RepoRecord& repo);
  /// Deletes the repo's metadata (blobs stay: they may be shared).
  void delete_repo(std::int64_t repo_id);

  /// Branches and tags, tags newest first.
  std::vector<RefRecord> refs(std::int64_t repo_id);
  /// A branch, a tag or a full commit id; nullopt when none matches.
  std::optional<CommitRecord> resolve(std::int64_t repo_id, const std::string& revision);
  /// Creates tag `tag` at revision `ref`. Throws kUsage for main/master, existing tags or branch
  /// names, kNotFound for an unknown ref.
  RefRecord create_tag(std::int64_t repo_id, const std::string& tag, const std::string& ref);
  /// Commits reachable from `commit_id`, newest first, `offset`/`limit` paged; `total` receives
  /// the full count.
  std::vector<CommitRecord> history(const std::string& commit_id, std::size_t offset,
                                    std::size_t limit, std::size_t* total);
  std::optional<CommitRecord> find_commit(const std::string& commit_id);

  /// The tree snapshot of a commit, sorted by path.
  std::shared_ptr<const std::vector<TreeEntry>> tree(const CommitRecord& commit);

  /// Applies `actions` on top of `branch` (created from `master` when missing) as one new commit
  /// and advances the branch. Paths are checked (kUsage); an lfs action whose blob is missing or
  /// whose size differs is kNotFound / kIntegrity. Atomic: concurrent commits serialise.
  CommitRecord commit(std::int64_t repo_id, const std::string& branch,
                      const std::vector<CommitAction>& actions, const std::string& message,
                      const std::string& author);

  bool has_blob(const std::string& sha256);
  /// Records that repo `repo_id` holds blob `sha256`: its bytes were uploaded through the repo
  /// (commits record their own blobs).
  void add_repo_blob(std::int64_t repo_id, const std::string& sha256);
  /// Whether `user` (nullopt: anonymous) can read some repo holding the blob. Only such blobs
  /// count as present in LFS batch answers and may be committed by reference, so that a sha256
  /// alone never copies another user's private file into a repo.
  bool blob_readable_by(const std::string& sha256, const std::optional<std::string>& user);
  /// Size of a stored blob, or nullopt.
  std::optional<std::uint64_t> blob_size(const std::string& sha256);
  std::filesystem::path blob_path(const std::string& sha256) const;
  /// The blob's SHA-256 checkpoints (ms/hub/sha256_checkpoints.h) as recorded when it was
  /// uploaded; nullopt for small blobs and for those stored before checkpoints were recorded.
  std::optional<hub::Sha256Checkpoints> blob_checkpoints(const std::string& sha256,
                                                         std::uint64_t size) const;
  /// Keeps `checkpoints` for blob `sha256` (taken from its bytes; replaces any kept before).
  void save_blob_checkpoints(const std::string& sha256, const hub::Sha256Checkpoints& checkpoints);
  /// Where the checkpoints of the blob stored at `blob` are kept: a file beside it.
  static std::filesystem::path checkpoints_path(const std::filesystem::path& blob);
  /// Starts streaming a blob that must hash to `sha256` and be `size` bytes long.
  BlobWriter begin_blob(const std::string& sha256, std::uint64_t size);
  /// Stores `data` as a blob; returns its sha256.
  std::string put_blob(std::string_view data);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Whether `text` is 64 lower-case hex digits.
MS_API bool is_sha256_hex(std::string_view text);

}  // namespace ms::hub_server

// Store: SQLite metadata plus content-addressed blob and tree files (layout in store.h).
#include "ms/hub_server/store.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>

#include "ms/core/encoding.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/process.h"
#include "ms/core/text.h"
#include "ms/core/utf8.h"
#include "ms/hub/sha256.h"
#include "ms/hub/sha256_checkpoints.h"
#include "sqlite_db.h"

namespace fs = std::filesystem;

namespace ms::hub_server {
namespace {

// New repos start with the LFS rules ModelScope puts into fresh repositories.
constexpr const char* kDefaultGitattributes =
    "*.7z filter=lfs diff=lfs merge=lfs -text\n"
    "*.arrow filter=lfs diff=lfs merge=lfs -text\n"
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.ckpt filter=lfs diff=lfs merge=lfs -text\n"
    "*.gz filter=lfs diff=lfs merge=lfs -text\n"
    "*.h5 filter=lfs diff=lfs merge=lfs -text\n"
    "*.npy filter=lfs diff=lfs merge=lfs -text\n"
    "*.onnx filter=lfs diff=lfs merge=lfs -text\n"
    "*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    "*.pb filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n"
    "*.pth filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.tar filter=lfs diff=lfs merge=lfs -text\n"
    "*.zip filter=lfs diff=lfs merge=lfs -text\n";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, email TEXT NOT NULL DEFAULT '',
                                 created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens(token_sha256 TEXT PRIMARY KEY,
                                  user TEXT NOT NULL REFERENCES users(name),
                                  created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS repos(id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL,
                                 owner TEXT NOT NULL, name TEXT NOT NULL,
                                 visibility INTEGER NOT NULL, license TEXT NOT NULL DEFAULT '',
                                 chinese_name TEXT NOT NULL DEFAULT '',
                                 description TEXT NOT NULL DEFAULT '',
                                 created_at INTEGER NOT NULL, UNIQUE(type, owner, name));
CREATE TABLE IF NOT EXISTS commits(id TEXT PRIMARY KEY, repo_id INTEGER NOT NULL,
                                   parent TEXT NOT NULL, tree TEXT NOT NULL,
                                   message TEXT NOT NULL, author TEXT NOT NULL,
                                   created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS refs(repo_id INTEGER NOT NULL, name TEXT NOT NULL,
                                kind TEXT NOT NULL, commit_id TEXT NOT NULL,
                                created_at INTEGER NOT NULL, PRIMARY KEY(repo_id, name));
CREATE TABLE IF NOT EXISTS repo_blobs(repo_id INTEGER NOT NULL, sha256 TEXT NOT NULL,
                                      PRIMARY KEY(repo_id, sha256)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repo_blobs_by_sha ON repo_blobs(sha256);
)sql";

std::int64_t now_seconds() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    fail(ErrorCode::kInternal, "hub store: the OpenSSL random generator failed");
  }
  return hex_encode(raw);
}

// An upload's blob is written as tmp/<sha256>.<host>.<pid>.<random>.part until it is whole,
// locked (flock) by its writer all along: at start-up, a part of this host whose lock can be
// taken is a dead server's (a SIGKILL mid-upload), one that another server sharing the root is
// writing now is locked. The lock, not the PID, says so: a PID means nothing in another PID
// namespace (a container on the same host), where flock still holds. The host name keeps only
// characters safe in a file name.
std::string part_owner_host() {
  std::string host = host_name();
  for (char& c : host) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.'))
      c = '_';
  }
  return host;
}

std::string part_name(const std::string& sha256) {
  return fmt::format("{}.{}.{}.{}.part", sha256, part_owner_host(), ::getpid(), random_hex(8));
}

// Whether tmp/ entry `name` is a part a server of this host wrote, in the form that its writer
// locks. Parts of other hosts (whose locks a network file system may not share), and of the old
// form (<sha256>.<random>.part, unlocked), cannot be told: they are left to the age rule.
bool is_this_hosts_part(const std::string& name, const std::string& this_host) {
  constexpr std::string_view kSuffix = ".part";
  if (name.size() < 64 + kSuffix.size() ||
      name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
    return false;
  // <sha256>. <host> . <pid> . <random>
  const std::string middle = name.substr(65, name.size() - 65 - kSuffix.size());
  if (name[64] != '.') return false;
  const std::size_t random_at = middle.rfind('.');
  if (random_at == std::string::npos || random_at == 0) return false;
  const std::size_t pid_at = middle.rfind('.', random_at - 1);
  if (pid_at == std::string::npos) return false;
  const std::string host = middle.substr(0, pid_at);
  const std::string pid = middle.substr(pid_at + 1, random_at - pid_at - 1);
  return host == this_host && !pid.empty() && pid.size() <= 10 &&
         pid.find_first_not_of("0123456789") == std::string::npos;
}

// Whether the part at `path` is unlocked: its writer is gone.
bool is_abandoned_part(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return false;
  const bool unlocked = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
  ::close(fd);
  return unlocked;
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw Error(ErrorCode::kIo,
                fmt::format("hub store: cannot create folder {}: {}", dir.string(),
                            folder_creation_failure(dir, ec)),
                "pass --root a folder this user can create and write");
}

RepoRecord read_repo(const Statement& s) {
  RepoRecord r;
  r.id = s.int64(0);
  r.type = s.text(1) == "dataset" ? hub::RepoType::kDataset : hub::RepoType::kModel;
  r.owner = s.text(2);
  r.name = s.text(3);
  r.visibility = static_cast<int>(s.int64(4));
  r.license = s.text(5);
  r.chinese_name = s.text(6);
  r.description = s.text(7);
  r.created_at = s.int64(8);
  return r;
}

constexpr const char* kRepoColumns =
    "SELECT id, type, owner, name, visibility, license, chinese_name, description, created_at "
    "FROM repos ";

CommitRecord read_commit(const Statement& s) {
  return CommitRecord{s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.int64(5)};
}

constexpr const char* kCommitColumns =
    "SELECT id, parent, tree, message, author, created_at FROM commits ";

std::string tree_to_json(const std::vector<TreeEntry>& entries) {
  nlohmann::json out = nlohmann::json::array();
  for (const TreeEntry& e : entries) {
    out.push_back({e.path, e.sha256, e.size, e.lfs, e.commit_id, e.committed_at});
  }
  return out.dump();
}

std::vector<TreeEntry> tree_from_json(const std::string& text, const fs::path& file) {
  std::vector<TreeEntry> entries;
  try {
    for (const auto& item : nlohmann::json::parse(text)) {
      entries.push_back(TreeEntry{item.at(0).get<std::string>(), item.at(1).get<std::string>(),
                                  item.at(2).get<std::uint64_t>(), item.at(3).get<bool>(),
                                  item.at(4).get<std::string>(), item.at(5).get<std::int64_t>()});
    }
  } catch (const nlohmann::json::exception& e) {
    throw StoreDamaged(ErrorCode::kIntegrity, fmt::format("hub store: tree file {} is corrupt: {}",
                                                          file.string(), e.what()));
  }
  return entries;
}

// `digits` lower-case hex digits: a sha256 (64) or a commit id (40).
bool is_lower_hex(std::string_view text, std::size_t digits) {
  return text.size() == digits && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

bool is_sha256_hex(std::string_view text) { return is_lower_hex(text, 64); }

// ---------------------------------------------------------------------------------------------
// BlobWriter

struct BlobWriter::State {
  fs::path temp;
  fs::path final_path;
  std::string expected_sha;
  std::uint64_t expected_size = 0;
  std::uint64_t written = 0;
  int fd = -1;
  std::unique_ptr<hub::CheckpointingSha256> hasher;  // sized by the declared size
  bool done = false;
  // Network reads arrive in small pieces; writing them in 1 MiB blocks saves syscalls.
  std::vector<char> buffer;

  std::uint64_t file_offset = 0;  // bytes in the temp file (the rest are in `buffer`)
  std::uint64_t writeback_started = 0, writeback_done = 0;

  void write_all(const char* data, std::size_t size) {
    write_all_at(fd, data, size, file_offset, temp);  // in 32 KiB pieces: see ms/core/file.h
    file_offset += size;
    write_behind();
  }

  // The blob is fsynced before it counts as stored. Starting the writeback of each 32 MiB as it
  // is written, and waiting for the window before, leaves the final fsync at most two windows
  // to write however big the blob is: a multi-GB blob's fsync could otherwise take longer than
  // the client waits for an answer (its 30 s stall timeout), and it bounds the dirty memory the
  // server holds for each upload.
  void write_behind() {
#ifdef __linux__
    constexpr std::uint64_t kWindow = 32u << 20;
    if (file_offset - writeback_started < kWindow) return;
    ::sync_file_range(fd, static_cast<off64_t>(writeback_started),
                      static_cast<off64_t>(file_offset - writeback_started), SYNC_FILE_RANGE_WRITE);
    writeback_started = file_offset;
    if (writeback_started - writeback_done >= 2 * kWindow) {
      const std::uint64_t to = writeback_started - kWindow;
      ::sync_file_range(
          fd, static_cast<off64_t>(writeback_done), static_cast<off64_t>(to - writeback_done),
          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      writeback_done = to;
    }
#endif
  }

  void flush() {
    write_all(buffer.data(), buffer.size());
    buffer.clear();
  }

  ~State() {
    if (fd >= 0) ::close(fd);
    if (!done) {
      std::error_code ec;
      fs::remove(temp, ec);
    }
  }
};

BlobWriter::BlobWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
BlobWriter::BlobWriter(BlobWriter&&) noexcept = default;
BlobWriter& BlobWriter::operator=(BlobWriter&&) noexcept = default;
BlobWriter::~BlobWriter() = default;

void BlobWriter::write(const char* data, std::size_t size) {
  State& s = *state_;
  MS_ASSERT(!s.done && s.fd >= 0);
  if (s.written + size > s.expected_size) {
    fail(ErrorCode::kIntegrity, "blob {}: more than the declared {} bytes were sent",
         s.expected_sha, s.expected_size);
  }
  s.hasher->update(data, size);
  constexpr std::size_t kBlock = 1 << 20;
  if (s.buffer.capacity() < kBlock) s.buffer.reserve(kBlock);
  if (s.buffer.size() + size > kBlock) s.flush();
  if (size >= kBlock) {
    s.write_all(data, size);
  } else {
    s.buffer.insert(s.buffer.end(), data, data + size);
  }
  s.written += size;
}

void BlobWriter::finish() {
  State& s = *state_;
  MS_ASSERT(!s.done && s.fd >= 0);
  if (s.written != s.expected_size) {
    fail(ErrorCode::kIntegrity, "blob {}: got {} bytes, the declared size is {}", s.expected_sha,
         s.written, s.expected_size);
  }
  s.flush();
  const std::string actual = s.hasher->hex_digest();
  if (actual != s.expected_sha) {
    fail(ErrorCode::kIntegrity, "blob sha256 mismatch: declared {}, received bytes hash to {}",
         s.expected_sha, actual);
  }
  if (::fsync(s.fd) != 0) {
    fail(ErrorCode::kIo, "hub store: cannot fsync {}: {}", s.temp.string(), std::strerror(errno));
  }
  ::close(s.fd);
  s.fd = -1;
  // Before the blob itself, so that a stored blob has the checkpoints it was sent with. They are
  // optional: if they cannot be written (a full disk, say), the blob still counts, and its first
  // request queues them again (checkpoint_backfill.h).
  const hub::Sha256Checkpoints& checkpoints = s.hasher->checkpoints();
  if (!checkpoints.states.empty()) {
    try {
      write_file_atomic(Store::checkpoints_path(s.final_path), checkpoints.to_text());
    } catch (const Error& e) {
      log::warn("hub store: cannot keep the sha256 checkpoints of blob {}: {}", s.expected_sha,
                e.what());
    }
  }
  make_dirs(s.final_path.parent_path());
  std::error_code ec;
  fs::rename(s.temp, s.final_path, ec);
  if (ec) {
    fail(ErrorCode::kIo, "hub store: cannot rename {} to {}: {}", s.temp.string(),
         s.final_path.string(), ec.message());
  }
  fsync_dir(s.final_path.parent_path());
  s.done = true;
}

// ---------------------------------------------------------------------------------------------
// Store

struct Store::Impl {
  fs::path root;
  std::unique_ptr<Database> db;
  std::mutex mu;  // guards db
  std::mutex tree_mu;
  std::map<std::string, std::shared_ptr<const std::vector<TreeEntry>>> tree_cache;

  fs::path tree_path(const std::string& sha) const {
    return root / "trees" / sha.substr(0, 2) / (sha + ".json");
  }

  std::string write_tree(const std::vector<TreeEntry>& entries) {
    const std::string text = tree_to_json(entries);
    const std::string sha = hub::sha256_hex(text);
    const fs::path path = tree_path(sha);
    std::error_code ec;
    if (!fs::exists(path, ec)) write_file_atomic(path, text);
    return sha;
  }

  std::optional<CommitRecord> ref_commit(std::int64_t repo_id, const std::string& name,
                                         std::string* kind) {
    Statement s(db->handle(), "SELECT kind, commit_id FROM refs WHERE repo_id=? AND name=?");
    s.bind(1, repo_id).bind(2, name);
    if (!s.step()) return std::nullopt;
    if (kind) *kind = s.text(0);
    return commit_by_id(s.text(1));
  }

  std::optional<CommitRecord> commit_by_id(const std::string& id) {
    Statement s(db->handle(), std::string(kCommitColumns) + "WHERE id=?");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_commit(s);
  }

  CommitRecord insert_commit(std::int64_t repo_id, const std::string& parent,
                             const std::string& tree, const std::string& message,
                             const std::string& author, std::int64_t created_at,
                             const std::string& id) {
    Statement s(db->handle(),
                "INSERT INTO commits(id, repo_id, parent, tree, message, author, created_at) "
                "VALUES(?,?,?,?,?,?,?)");
    s.bind(1, id).bind(2, repo_id).bind(3, parent).bind(4, tree).bind(5, message).bind(6, author);
    s.bind(7, created_at).run();
    return CommitRecord{id, parent, tree, message, author, created_at};
  }

  void add_repo_blob(std::int64_t repo_id, const std::string& sha256) {
    Statement(db->handle(), "INSERT OR IGNORE INTO repo_blobs(repo_id, sha256) VALUES(?,?)")
        .bind(1, repo_id)
        .bind(2, sha256)
        .run();
  }

  // Stores made before repo_blobs existed: every blob a commit of a repo names is the repo's.
  // Marked done by user_version 1 in the same transaction, so that a backfill cut short (a crash,
  // an unreadable tree) runs again at the next start instead of being skipped for good.
  void backfill_repo_blobs() {
    std::vector<std::pair<std::int64_t, std::string>> trees;
    {
      Statement s(db->handle(), "SELECT DISTINCT repo_id, tree FROM commits");
      while (s.step()) trees.emplace_back(s.int64(0), s.text(1));
    }
    Transaction txn(*db);
    for (const auto& [repo_id, tree] : trees) {
      const fs::path path = tree_path(tree);
      std::error_code ec;
      if (!fs::is_regular_file(path, ec)) continue;
      for (const TreeEntry& e : tree_from_json(read_file(path), path))
        add_repo_blob(repo_id, e.sha256);
    }
    db->exec("PRAGMA user_version = 1");
    txn.commit();
  }

  // A new branch or tag must not make a revision ambiguous: a 40-hex name would hide the commit
  // of that id (revisions resolve refs first), and "a" beside "a/b" cannot both be git refs
  // (a file and a folder of one name: `git clone` refuses the pair, and caches that lay
  // revisions out as folders mix them up). Called under the lock, inside the transaction.
  void check_new_ref(std::int64_t repo_id, const std::string& name, const char* kind) {
    MS_CHECK(!hub::is_commit_id_shaped(name), ErrorCode::kUsage,
             "invalid {} name '{}': 40 hex digits name a commit, and the {} would hide it", kind,
             name, kind);
    Statement s(db->handle(), "SELECT name FROM refs WHERE repo_id=?");
    s.bind(1, repo_id);
    while (s.step()) {
      const std::string other = s.text(0);
      MS_CHECK(!hub::ref_names_nest(name, other), ErrorCode::kUsage,
               "{} '{}' cannot sit beside the ref '{}': git refs cannot be both a name and a "
               "folder of names",
               kind, name, other);
    }
  }

  void set_ref(std::int64_t repo_id, const std::string& name, const char* kind,
               const std::string& commit_id) {
    Statement s(db->handle(),
                "INSERT INTO refs(repo_id, name, kind, commit_id, created_at) VALUES(?,?,?,?,?) "
                "ON CONFLICT(repo_id, name) DO UPDATE SET commit_id=excluded.commit_id");
    s.bind(1, repo_id).bind(2, name).bind(3, std::string(kind)).bind(4, commit_id);
    s.bind(5, now_seconds()).run();
  }
};

namespace {
constexpr const char* kDatabaseFile = "meta.sqlite3";
}  // namespace

bool Store::exists(const fs::path& root) {
  std::error_code ec;
  return fs::is_regular_file(root / kDatabaseFile, ec);
}

Store::Store(const fs::path& root) : impl_(std::make_unique<Impl>()) {
  impl_->root = root;
  std::error_code exists_ec;
  if (fs::exists(root, exists_ec) && !fs::is_directory(root, exists_ec)) {
    throw Error(ErrorCode::kIo, fmt::format("hub root {} is not a folder", root.string()),
                "pass --root a folder (it is created when missing), not a file");
  }
  for (const char* dir : {"blobs", "trees", "tmp"}) {
    make_dirs(root / dir);
    // Found now rather than as a 500 on every upload (a read-only mount: EROFS).
    if (::access((root / dir).c_str(), W_OK) != 0) {
      throw Error(ErrorCode::kIo,
                  fmt::format("hub root folder {} is not writable: {}", (root / dir).string(),
                              std::strerror(errno)),
                  "pass --root a writable folder (not on a read-only mount)");
    }
  }
  impl_->db = std::make_unique<Database>(root / kDatabaseFile);
  impl_->db->exec(kSchema);
  std::int64_t version = 0;
  {
    Statement s(impl_->db->handle(), "PRAGMA user_version");
    if (s.step()) version = s.int64(0);
  }
  if (version < 1) impl_->backfill_repo_blobs();
  // Leftovers of uploads interrupted by a crash: at once where the part is this host's and no
  // writer holds its lock. Another server may share the root, so any other part (another host's,
  // or an unlocked old-form one) may be in flight: it goes only after a day untouched.
  std::error_code ec;
  const std::string this_host = part_owner_host();
  for (const auto& entry : fs::directory_iterator(root / "tmp", ec)) {
    std::error_code entry_ec;
    if (is_this_hosts_part(entry.path().filename().string(), this_host)) {
      if (is_abandoned_part(entry.path())) fs::remove(entry.path(), entry_ec);
      continue;
    }
    const auto age = fs::file_time_type::clock::now() - fs::last_write_time(entry.path(), entry_ec);
    if (!entry_ec && age > std::chrono::hours(24)) fs::remove(entry.path(), entry_ec);
  }
}

Store::~Store() = default;

const fs::path& Store::root() const { return impl_->root; }

void Store::check_user_name(const std::string& user) {
  MS_CHECK(hub::is_safe_repo_path(user) && user.find('/') == std::string::npos &&
               user.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789_.-") == std::string::npos,
           ErrorCode::kUsage, "invalid user name '{}': use letters, digits, '_', '.' and '-'",
           user);
}

std::string Store::create_token(const std::string& user) {
  check_user_name(user);
  const std::string token = "ms-" + random_hex(20);
  std::lock_guard<std::mutex> lock(impl_->mu);
  Transaction txn(*impl_->db);
  Statement(impl_->db->handle(),
            "INSERT OR IGNORE INTO users(name, email, created_at) VALUES(?,?,?)")
      .bind(1, user)
      .bind(2, user + "@localhost")
      .bind(3, now_seconds())
      .run();
  Statement(impl_->db->handle(), "INSERT INTO tokens(token_sha256, user, created_at) VALUES(?,?,?)")
      .bind(1, hub::sha256_hex(token))
      .bind(2, user)
      .bind(3, now_seconds())
      .run();
  txn.commit();
  return token;
}

std::optional<std::string> Store::user_for_token(const std::string& token) {
  if (token.empty()) return std::nullopt;
  std::lock_guard<std::mutex> lock(impl_->mu);
  Statement s(impl_->db->handle(), "SELECT user FROM tokens WHERE token_sha256=?");
  s.bind(1, hub::sha256_hex(token));
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

std::string Store::user_email(const std::string& user) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Statement s(impl_->db->handle(), "SELECT email FROM users WHERE name=?");
  s.bind(1, user);
  return s.step() ? s.text(0) : std::string();
}

RepoRecord Store::create_repo(RepoRecord repo, const std::string& author) {
  const std::string attributes_sha = put_blob(kDefaultGitattributes);
  std::lock_guard<std::mutex> lock(impl_->mu);
  Transaction txn(*impl_->db);
  repo.created_at = now_seconds();
  Statement s(impl_->db->handle(),
              "INSERT INTO repos(type, owner, name, visibility, license, chinese_name, "
              "description, created_at) VALUES(?,?,?,?,?,?,?,?)");
  s.bind(1, std::string(hub::repo_type_name(repo.type))).bind(2, repo.owner).bind(3, repo.name);
  s.bind(4, static_cast<std::int64_t>(repo.visibility)).bind(5, repo.license);
  s.bind(6, repo.chinese_name).bind(7, repo.description).bind(8, repo.created_at);
  try {
    s.run();
  } catch (Error& e) {
    if (e.code() == ErrorCode::kUsage) {
      fail(ErrorCode::kUsage, "{} {}/{} already exists", hub::repo_type_name(repo.type), repo.owner,
           repo.name);
    }
    throw;
  }
  repo.id = sqlite3_last_insert_rowid(impl_->db->handle());
  const std::string id = random_hex(20);
  const std::vector<TreeEntry> tree{TreeEntry{".gitattributes", attributes_sha,
                                              std::strlen(kDefaultGitattributes), false, id,
                                              repo.created_at}};
  const std::string tree_sha = impl_->write_tree(tree);
  impl_->insert_commit(repo.id, "", tree_sha, "Initial commit", author, repo.created_at, id);
  impl_->set_ref(repo.id, hub::kDefaultRevision, "branch", id);
  impl_->add_repo_blob(repo.id, attributes_sha);
  txn.commit();
  return repo;
}

std::optional<RepoRecord> Store::find_repo(hub::RepoType type, const std::string& owner,
                                           const std::string& name) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Statement s(impl_->db->handle(),
              std::string(kRepoColumns) + "WHERE type=? AND owner=? AND name=?");
  s.bind(1, std::string(hub::repo_type_name(type))).bind(2, owner).bind(3, name);
  if (!s.step()) return std::nullopt;
  return read_repo(s);
}

std::optional<RepoRecord> Store::find_repo_by_id(std::int64_t id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Statement s(impl_->db->handle(), std::string(kRepoColumns) + "WHERE id=?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_repo(s);
}

std::vector<RepoRecord> Store::list_repos(hub::RepoType type, const std::string& owner) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Statement s(impl_->db->handle(),
              std::string(kRepoColumns) + "WHERE type=? AND (?='' OR owner=?) ORDER BY id");
  s.bind(1, std::string(hub::repo_type_name(type))).bind(2, owner).bind(3, owner);
  std::vector<RepoRecord> out;
  while (s.step()) out.push_back(read_repo(s));
  return out;
}

void Store::update_repo_settings(const RepoRecord& repo) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Statement s(impl_->db->handle(),
              "UPDATE repos SET visibility=?, license=?, chinese_name=?, description=? WHERE id=?");
  s.bind(1, static_cast<std::int64_t>(repo.visibility)).bind(2, repo.license);
  s.bind(3, repo.chinese_name).bind(4, repo.description).bind(5, repo.id).run();
}

void Store::delete_repo(std::int64_t repo_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Transaction txn(*impl_->db);
  for (const char* sql :
       {"DELETE FROM refs WHERE repo_id=?", "DELETE FROM commits WHERE repo_id=?",
        "DELETE FROM repo_blobs WHERE repo_id=?", "DELETE FROM repos WHERE id=?"}) {
    Statement(impl_->db->handle(), sql).bind(1, repo_id).run();
  }
  txn.commit();
}

std::vector<RefRecord> Store::refs(std::int64_t repo_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Statement s(impl_->db->handle(),
              "SELECT name, kind, commit_id, created_at FROM refs WHERE repo_id=? "
              "ORDER BY kind, created_at DESC, rowid DESC");
  s.bind(1, repo_id);
  std::vector<RefRecord> out;
  while (s.step()) out.push_back(RefRecord{s.text(0), s.text(1) == "tag", s.text(2), s.int64(3)});
  return out;
}

std::optional<CommitRecord> Store::resolve(std::int64_t repo_id, const std::string& revision) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (auto c = impl_->ref_commit(repo_id, revision, nullptr)) return c;
  if (revision.size() == 40) {
    Statement s(impl_->db->handle(), std::string(kCommitColumns) + "WHERE id=? AND repo_id=?");
    s.bind(1, revision).bind(2, repo_id);
    if (s.step()) return read_commit(s);
  }
  return std::nullopt;
}

RefRecord Store::create_tag(std::int64_t repo_id, const std::string& tag, const std::string& ref) {
  MS_CHECK(tag != "main" && tag != hub::kDefaultRevision, ErrorCode::kUsage,
           "'{}' cannot be a tag name: it is reserved for the default branch", tag);
  MS_CHECK(hub::is_valid_tag_name(tag), ErrorCode::kUsage,
           "invalid tag name '{}': tags follow git's ref rules (no spaces, '~', '^', ':', '?', "
           "'*', '[', '..' or '@{{')",
           tag);
  auto target = resolve(repo_id, ref.empty() ? std::string(hub::kDefaultRevision) : ref);
  MS_CHECK(target.has_value(), ErrorCode::kNotFound, "revision '{}' does not exist", ref);
  std::lock_guard<std::mutex> lock(impl_->mu);
  Transaction txn(*impl_->db);
  std::string kind;
  if (impl_->ref_commit(repo_id, tag, &kind)) {
    fail(ErrorCode::kUsage, "{} '{}' already exists", kind == "tag" ? "tag" : "branch", tag);
  }
  impl_->check_new_ref(repo_id, tag, "tag");
  impl_->set_ref(repo_id, tag, "tag", target->id);
  txn.commit();
  return RefRecord{tag, true, target->id, now_seconds()};
}

std::optional<CommitRecord> Store::find_commit(const std::string& commit_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->commit_by_id(commit_id);
}

std::vector<CommitRecord> Store::history(const std::string& commit_id, std::size_t offset,
                                         std::size_t limit, std::size_t* total) {
  std::vector<CommitRecord> out;
  std::size_t count = 0;
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::string next = commit_id;
  while (!next.empty()) {
    auto c = impl_->commit_by_id(next);
    if (!c) break;
    if (count >= offset && out.size() < limit) out.push_back(*c);
    ++count;
    next = c->parent;
  }
  if (total) *total = count;
  return out;
}

std::shared_ptr<const std::vector<TreeEntry>> Store::tree(const CommitRecord& commit) {
  {
    std::lock_guard<std::mutex> lock(impl_->tree_mu);
    auto it = impl_->tree_cache.find(commit.tree);
    if (it != impl_->tree_cache.end()) return it->second;
  }
  const fs::path path = impl_->tree_path(commit.tree);
  auto entries =
      std::make_shared<const std::vector<TreeEntry>>(tree_from_json(read_file(path), path));
  std::lock_guard<std::mutex> lock(impl_->tree_mu);
  if (impl_->tree_cache.size() >= 256) impl_->tree_cache.clear();
  impl_->tree_cache.emplace(commit.tree, entries);
  return entries;
}

CommitRecord Store::commit(std::int64_t repo_id, const std::string& branch,
                           const std::vector<CommitAction>& actions, const std::string& message,
                           const std::string& author) {
  MS_CHECK(hub::is_valid_ref_name(branch), ErrorCode::kUsage,
           "invalid branch name '{}': branches follow git's ref rules (no spaces, '~', '^', ':', "
           "'?', '*', '[', '..' or '@{{')",
           branch);
  // Blobs first, outside the metadata lock: inline contents are stored, LFS blobs must exist.
  struct Resolved {
    const CommitAction* action;
    std::string sha256;
    std::uint64_t size;
  };
  std::vector<Resolved> resolved;
  for (const CommitAction& a : actions) {
    hub::check_repo_path(a.path);
    if (a.kind == CommitAction::Kind::kDelete) {
      resolved.push_back({&a, "", 0});
    } else if (a.lfs) {
      MS_CHECK(is_sha256_hex(a.sha256), ErrorCode::kUsage,
               "file '{}': sha256 '{}' is not 64 lower-case hex digits", a.path, a.sha256);
      // A blob of a repo the author cannot read counts as missing (and says so in the same
      // words): knowing a sha256 must not copy another user's private file into one's own repo.
      auto size = blob_size(a.sha256);
      MS_CHECK(size.has_value() && blob_readable_by(a.sha256, author), ErrorCode::kNotFound,
               "file '{}': LFS blob {} has not been uploaded", a.path, a.sha256);
      MS_CHECK(*size == a.size, ErrorCode::kIntegrity,
               "file '{}': declared size {} but blob {} has {} bytes", a.path, a.size, a.sha256,
               *size);
      resolved.push_back({&a, a.sha256, a.size});
    } else {
      resolved.push_back({&a, put_blob(a.content), a.content.size()});
    }
  }

  std::lock_guard<std::mutex> lock(impl_->mu);
  Transaction txn(*impl_->db);
  std::string kind;
  std::optional<CommitRecord> head = impl_->ref_commit(repo_id, branch, &kind);
  MS_CHECK(!head || kind == "branch", ErrorCode::kUsage, "'{}' is a tag; commits go to branches",
           branch);
  if (!head) {
    impl_->check_new_ref(repo_id, branch, "branch");
    head = impl_->ref_commit(repo_id, hub::kDefaultRevision, nullptr);
  }

  std::map<std::string, TreeEntry> files;
  if (head) {
    const fs::path path = impl_->tree_path(head->tree);
    for (TreeEntry& e : tree_from_json(read_file(path), path)) {
      std::string key = e.path;
      files.emplace(std::move(key), std::move(e));
    }
  }
  const std::int64_t now = now_seconds();
  const std::string id = random_hex(20);
  for (const Resolved& r : resolved) {
    const CommitAction& a = *r.action;
    if (a.kind == CommitAction::Kind::kDelete) {
      std::size_t erased = files.erase(a.path);
      const std::string prefix = a.path + "/";
      for (auto it = files.lower_bound(prefix);
           it != files.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
        it = files.erase(it);
        ++erased;
      }
      MS_CHECK(erased > 0, ErrorCode::kNotFound, "cannot delete '{}': no such file or folder",
               a.path);
      continue;
    }
    auto it = files.find(a.path);
    if (it != files.end() && it->second.sha256 == r.sha256 && it->second.lfs == a.lfs) continue;
    files[a.path] = TreeEntry{a.path, r.sha256, r.size, a.lfs, id, now};
  }
  // A path cannot be both a file and a folder. The error names the side this commit brings:
  // a new file where the repo has a folder, or a new path under a file the repo has.
  for (const auto& [path, entry] : files) {
    for (std::size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      const auto file = files.find(path.substr(0, slash));
      if (file == files.end()) continue;
      if (file->second.commit_id == id && entry.commit_id != id) {
        throw Error(ErrorCode::kUsage,
                    fmt::format("'{}' is a folder in the repo (it holds '{}'), so a file cannot "
                                "be created under that name",
                                file->first, path),
                    "upload the file into the folder (a path under it), or delete the folder "
                    "first");
      }
      fail(ErrorCode::kUsage, "'{}' is a file, so '{}' cannot be created under it", file->first,
           path);
    }
  }
  // Two names that differ only by Unicode normalisation ("e\u0301" and "\u00e9") are one file on
  // macOS, where a download would keep whichever came last. Only paths this commit adds are
  // checked, so a repo that already holds such a pair can still take other commits.
  // (Paths came in as JSON, so they are UTF-8; the check only keeps to_nfd() from throwing.)
  auto nfd_key = [](const std::string& p) { return is_valid_utf8(p) ? to_nfd(p) : p; };
  std::map<std::string, std::vector<const std::string*>> by_nfd;
  for (const auto& [path, entry] : files) by_nfd[nfd_key(path)].push_back(&path);
  for (const Resolved& r : resolved) {
    const std::string& path = r.action->path;
    if (r.action->kind == CommitAction::Kind::kDelete || files.count(path) == 0) continue;
    for (const std::string* other : by_nfd[nfd_key(path)]) {
      if (*other == path) continue;
      throw Error(ErrorCode::kUsage,
                  fmt::format("'{}' differs from '{}' only by Unicode normalisation; they would "
                              "be one file on macOS",
                              hub::printable_path(path), hub::printable_path(*other)),
                  "rename one of them, or delete the old one in the same commit");
    }
  }
  for (const Resolved& r : resolved) {
    if (r.action->kind != CommitAction::Kind::kDelete) impl_->add_repo_blob(repo_id, r.sha256);
  }
  std::vector<TreeEntry> tree;
  tree.reserve(files.size());
  for (auto& [path, entry] : files) tree.push_back(std::move(entry));
  const std::string tree_sha = impl_->write_tree(tree);
  CommitRecord record =
      impl_->insert_commit(repo_id, head ? head->id : "", tree_sha,
                           message.empty() ? "Upload files" : message, author, now, id);
  impl_->set_ref(repo_id, branch, "branch", id);
  txn.commit();
  return record;
}

fs::path Store::blob_path(const std::string& sha256) const {
  MS_ASSERT(is_sha256_hex(sha256));
  return impl_->root / "blobs" / sha256.substr(0, 2) / sha256;
}

bool Store::has_blob(const std::string& sha256) { return blob_size(sha256).has_value(); }

void Store::add_repo_blob(std::int64_t repo_id, const std::string& sha256) {
  MS_ASSERT(is_sha256_hex(sha256));
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->add_repo_blob(repo_id, sha256);
}

bool Store::blob_readable_by(const std::string& sha256, const std::optional<std::string>& user) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Statement s(impl_->db->handle(),
              "SELECT 1 FROM repo_blobs b JOIN repos r ON r.id = b.repo_id WHERE b.sha256 = ? "
              "AND (r.visibility = ? OR (? AND (r.visibility = ? OR r.owner = ?))) LIMIT 1");
  s.bind(1, sha256).bind(2, static_cast<std::int64_t>(kPublic));
  s.bind(3, static_cast<std::int64_t>(user.has_value() ? 1 : 0));
  s.bind(4, static_cast<std::int64_t>(kInternal)).bind(5, user.value_or(""));
  return s.step();
}

fs::path Store::checkpoints_path(const fs::path& blob) {
  return fs::path(blob.string() + ".sha256-checkpoints");
}

void Store::save_blob_checkpoints(const std::string& sha256,
                                  const hub::Sha256Checkpoints& checkpoints) {
  MS_CHECK(is_sha256_hex(sha256), ErrorCode::kUsage, "blob id '{}' is not 64 lower-case hex digits",
           sha256);
  write_file_atomic(checkpoints_path(blob_path(sha256)), checkpoints.to_text());
}

std::optional<hub::Sha256Checkpoints> Store::blob_checkpoints(const std::string& sha256,
                                                              std::uint64_t size) const {
  if (!is_sha256_hex(sha256)) return std::nullopt;
  const fs::path path = checkpoints_path(blob_path(sha256));
  std::error_code ec;
  // 1024 states (what a client accepts) take 66 KiB; anything bigger is not ours.
  const auto bytes = fs::file_size(path, ec);
  if (ec || bytes > (96u << 10)) return std::nullopt;  // none recorded
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error&) {
    return std::nullopt;
  }
  return hub::Sha256Checkpoints::parse(text, size);
}

std::optional<std::uint64_t> Store::blob_size(const std::string& sha256) {
  if (!is_sha256_hex(sha256)) return std::nullopt;
  std::error_code ec;
  const auto size = fs::file_size(blob_path(sha256), ec);
  if (ec) return std::nullopt;
  return static_cast<std::uint64_t>(size);
}

BlobWriter Store::begin_blob(const std::string& sha256, std::uint64_t size) {
  MS_CHECK(is_sha256_hex(sha256), ErrorCode::kUsage, "blob id '{}' is not 64 lower-case hex digits",
           sha256);
  auto state = std::make_unique<BlobWriter::State>();
  state->expected_sha = sha256;
  state->expected_size = size;
  state->hasher = std::make_unique<hub::CheckpointingSha256>(size);
  state->final_path = blob_path(sha256);
  // Locked as soon as it exists (see part_name); a starting server's sweep that took the lock
  // first has removed it (no link left): made again under another name.
  for (int attempt = 0; attempt < 8; ++attempt) {
    state->temp = impl_->root / "tmp" / part_name(sha256);
    state->fd = ::open(state->temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (state->fd < 0) {
      fail(ErrorCode::kIo, "hub store: cannot create {}: {}", state->temp.string(),
           std::strerror(errno));
    }
    int rc;
    do rc = ::flock(state->fd, LOCK_EX);
    while (rc != 0 && errno == EINTR);
    struct stat st {};
    if (rc != 0 || ::fstat(state->fd, &st) != 0 || st.st_nlink > 0)
      return BlobWriter(std::move(state));
    ::close(state->fd);
  }
  fail(ErrorCode::kIo, "hub store: every part made in {} was removed at once by another server",
       (impl_->root / "tmp").string());
}

std::string Store::put_blob(std::string_view data) {
  const std::string sha = hub::sha256_hex(data);
  if (has_blob(sha)) return sha;
  BlobWriter writer = begin_blob(sha, data.size());
  writer.write(data.data(), data.size());
  writer.finish();
  return sha;
}

}  // namespace ms::hub_server

#include "ms/hub/upload.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "ms/config/json_file.h"
#include "ms/core/encoding.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/progress.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/core/utf8.h"
#include "ms/hub/cache.h"
#include "ms/hub/download.h"
#include "ms/hub/sha256.h"
#include "test_stops.h"

namespace ms::hub {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// MS_TEST_UPLOAD_STOP=STAGE (test builds): the upload stops itself at STAGE: `hashed` (the
// hashes are in the upload state), `blob-half` (half of the first blob sent), `blobs` (every blob
// sent, nothing committed), `commit` (the first commit applied, the state not yet saved).
void test_stop_at(const char* stage) { detail::stop_here_for_tests("MS_TEST_UPLOAD_STOP", stage); }

constexpr std::uint64_t kLfsThreshold = 1ull << 20;
constexpr std::uint64_t kInlineBatchLimit = 400ull << 20;

bool inside(const fs::path& root, const fs::path& p) {
  auto r = root.begin();
  auto q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (q == p.end() || *r != *q) return false;
  }
  return true;
}

struct LocalFile {
  fs::path local;
  std::string repo_path;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  // Unlike mtime, ctime cannot be set back: tar, cp -p and reproducible builds give a rewritten
  // file its old size and mtime, but every write moves ctime (git's index relies on the same).
  std::int64_t ctime_ns = 0;
  std::uint64_t inode = 0;
  std::string sha256;
  bool lfs = false;
  bool committed = false;  // by an earlier run, unchanged since
};

std::int64_t nanoseconds(const struct timespec& t) {
  return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// Upload state of one (folder, repo, revision): what was hashed and committed.
class UploadState {
 public:
  UploadState(const UploadOptions& o) {
    const std::string key = sha256_hex(fs::absolute(o.local_path).lexically_normal().string() +
                                       "\n" + repo_type_name(o.type) + "\n" + o.repo.str() + "\n" +
                                       o.revision + "\n" + o.path_in_repo);
    path_ = cache_dir() / ".upload" / (key.substr(0, 32) + ".json");
    std::error_code ec;
    if (fs::is_regular_file(path_, ec)) {
      JsonParseError error;
      try {
        if (!try_parse_json(read_file(path_), data_, error)) {
          log::warn("{}: unreadable upload state (line {}: {}); starting over", path_.string(),
                    error.line, error.reason);
        }
      } catch (const Error& e) {  // as for save(): the state is never worth failing for
        log::warn("{}; starting over", e.what());
      }
    }
    if (!data_.is_object()) data_ = json::object();
  }
  // Fills sha256/committed from the state when size and mtime still match.
  bool lookup(LocalFile& f) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = data_.find(f.repo_path);
    if (it == data_.end() || !it->is_object()) return false;
    if (it->value("size", std::uint64_t(0)) != f.size ||
        it->value("mtime_ns", std::int64_t(0)) != f.mtime_ns ||
        it->value("ctime_ns", std::int64_t(0)) != f.ctime_ns ||
        it->value("inode", std::uint64_t(0)) != f.inode)
      return false;
    f.sha256 = it->value("sha256", std::string());
    f.committed = it->value("committed", false);
    return f.sha256.size() == 64;
  }
  void record(const LocalFile& f, bool committed) {
    std::lock_guard<std::mutex> lock(mutex_);
    data_[f.repo_path] = {{"size", f.size},   {"mtime_ns", f.mtime_ns}, {"ctime_ns", f.ctime_ns},
                          {"inode", f.inode}, {"sha256", f.sha256},     {"committed", committed}};
  }
  // The state only spares a rerun work: an upload never needs the cache, and failing here (a
  // read-only cache, a full disk) came after --create had made the repo, leaving it empty. So
  // the upload goes on with one warning; later saves are still tried (a disk that was full for
  // a moment may take the hashes).
  void save() {
    std::lock_guard<std::mutex> lock(mutex_);
    try {
      write_file_atomic(path_, data_.dump(-1, ' ', false, json::error_handler_t::replace));
    } catch (const Error& e) {
      if (!warned_) {
        log::warn(
            "cannot save the upload's resume state ({}); uploading anyway, and a rerun hashes "
            "the files again",
            e.what());
      }
      warned_ = true;
    }
  }

 private:
  fs::path path_;
  json data_;
  std::mutex mutex_;
  bool warned_ = false;
};

template <typename Fn>
void parallel_for(std::size_t n, int workers, Fn fn) {
  std::atomic<std::size_t> next{0};
  std::mutex error_mutex;
  std::optional<Error> first;
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, std::min<int>(workers, static_cast<int>(n))); ++t) {
    threads.emplace_back([&] {
      for (std::size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
        try {
          fn(i);
        } catch (const Error& e) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!first) first = e;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first) throw *first;
}

std::size_t batch_size(std::size_t n) {
  if (n <= 10) return std::max<std::size_t>(1, n);
  if (n <= 100) return std::max<std::size_t>(10, n / 10);
  if (n <= 10000) return 256;
  return 512;
}

}  // namespace

bool is_lfs_file(const std::string& path, std::uint64_t size) {
  if (size > kLfsThreshold) return true;
  static const char* suffixes[] = {".bin", ".safetensors", ".pt",  ".pth", ".onnx",    ".pb",
                                   ".h5",  ".ckpt",        ".npy", ".npz", ".parquet", ".arrow",
                                   ".zip", ".tar",         ".gz",  ".pkl", ".msgpack", ".tflite",
                                   ".ot",  ".model",       ".7z",  ".bz2", ".xz",      ".gguf"};
  for (const char* s : suffixes) {
    const std::size_t n = std::strlen(s);
    if (path.size() >= n && path.compare(path.size() - n, n, s) == 0) return true;
  }
  return false;
}

std::vector<std::pair<fs::path, std::string>> collect_upload_files(const UploadOptions& options) {
  std::error_code ec;
  const fs::path local = options.local_path;
  if (!fs::exists(local, ec)) {
    check_reachable(local);
    throw Error(ErrorCode::kNotFound,
                fmt::format("{}: no such file or folder to upload", local.string()),
                fmt::format("check LOCAL_PATH (relative paths start at {})",
                            fs::current_path(ec).string()));
  }
  // PATH_IN_REPO names a folder when it ends in '/'; '.', './' and '/' name the root, as the
  // current folder does (`ms upload R . .`).
  std::string prefix = options.path_in_repo;
  const bool into_folder = !prefix.empty() && prefix.back() == '/';
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  while (prefix.rfind("./", 0) == 0) prefix.erase(0, 2);
  if (prefix == ".") prefix.clear();
  // The hub takes file names in JSON, which carries UTF-8 only (a name in a legacy code page
  // failed deep in the commit as an internal error, after --create had made the repo).
  const auto check_upload_path = [](const std::string& path, const char* what) {
    check_repo_path(path);
    MS_CHECK(is_valid_utf8(path), ErrorCode::kUsage, "{} '{}' is not UTF-8", what,
             printable_path(path));
  };
  if (!prefix.empty()) check_upload_path(prefix, "PATH_IN_REPO");
  std::vector<std::pair<fs::path, std::string>> out;
  if (!fs::is_directory(local, ec)) {
    // Reading a FIFO, a device or a socket would block or never end.
    if (!fs::is_regular_file(local, ec)) {
      throw Error(
          ErrorCode::kUsage,
          fmt::format("{}: not a regular file or folder, so it cannot be uploaded", local.string()),
          "upload a regular file, or a folder of them");
    }
    std::string name = local.filename().string();
    if (!prefix.empty()) name = into_folder ? prefix + "/" + name : prefix;
    try {
      check_upload_path(name, "file name");
    } catch (Error& e) {
      e.set_hint("rename it, or give its name in the repo as PATH_IN_REPO");
      throw;
    }
    out.emplace_back(local, name);
    return out;
  }
  const fs::path root = fs::canonical(local, ec);
  if (ec) fail(ErrorCode::kIo, "{}: cannot resolve: {}", local.string(), ec.message());
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) fail(ErrorCode::kIo, "{}: cannot list: {}", root.string(), ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) fail(ErrorCode::kIo, "{}: cannot list: {}", root.string(), ec.message());
    const fs::path p = it->path();
    const std::string name = p.filename().string();
    const bool is_dir = it->is_directory(ec);
    // As ModelScope's DEFAULT_IGNORE_PATTERNS: .git and .cache anywhere, folders or files (a git
    // worktree's or submodule's .git is a file naming the real one).
    if (name == ".git" || name == ".cache" || (is_dir && name == "._____temp")) {
      if (is_dir) it.disable_recursion_pending();
      continue;
    }
    // ms's own temp files and folders (a write or an export killed part way) hold partial
    // bytes: never published, but said, since they mean a job did not finish.
    // A user's own file of such a name is uploaded when --include names it.
    if (is_temp_write_name(name) &&
        (is_dir || options.include.empty() ||
         !selected_by_patterns(p.lexically_relative(root).generic_string(), options.include,
                               options.exclude))) {
      log::warn(
          "{}: skipped, named as an unfinished write of ms (a killed export or save): remove "
          "it, or pass --include with its name to upload it",
          p.string());
      if (is_dir) it.disable_recursion_pending();
      continue;
    }
    const bool is_link = it->is_symlink(ec);
    if (is_dir && !is_link) continue;
    if (name == ".ms_upload_cache" || name == ".ms_upload_progress") continue;
    // The bookkeeping a download leaves at the top of a --local-dir (the file list, revision and
    // model id of ModelScope's cache) describes that download, not the repo being uploaded.
    if (it.depth() == 0 && is_cache_index_name(name)) continue;
    const std::string rel = p.lexically_relative(root).generic_string();
    // Patterns first: an excluded file or link is never resolved, read or checked, which is what
    // the hints below offer.
    if (!selected_by_patterns(rel, options.include, options.exclude)) continue;
    if (is_link) {
      const fs::path target = fs::weakly_canonical(p, ec);
      if (ec) {
        throw Error(ErrorCode::kUsage,
                    fmt::format("{}: cannot resolve the symlink: {}", p.string(), ec.message()),
                    "fix or remove the link, or exclude it with --exclude");
      }
      if (!inside(root, target)) {
        throw Error(ErrorCode::kUsage,
                    fmt::format("{}: symlink leads outside the folder being uploaded ({})",
                                p.string(), target.string()),
                    "replace the link with a copy of the file, or exclude it with --exclude");
      }
      // Links to folders inside the tree are skipped: their files are uploaded from the real
      // path.
      if (fs::is_directory(target, ec)) continue;
    }
    // FIFOs, sockets, devices and dangling links are not files to upload: said, not silent.
    if (!fs::is_regular_file(p, ec)) {
      log::warn("{}: skipped, not a regular file (a broken link, a pipe, a socket or a device)",
                p.string());
      continue;
    }
    try {
      check_upload_path(rel, "file name");
    } catch (Error& e) {
      e.set_hint("rename it, or exclude it with --exclude");
      throw;
    }
    std::string repo_path = prefix.empty() ? rel : prefix + "/" + rel;
    check_repo_path(repo_path);
    out.emplace_back(p, repo_path);
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  return out;
}

namespace {

// --create --private on a repo that exists already and is not private: its visibility stays,
// and the files asked to be private would be public (Python's create_repo(exist_ok) is silent).
void refuse_to_publish(HubClient& client, const UploadOptions& options) {
  json info;
  try {
    info = json::parse(client.repo_info(options.type, options.repo, HubClient::Missing::kExpected));
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound) return;  // it will be made, private
    throw;
  }
  const json visibility = info.is_object() ? info.value("Visibility", json()) : json();
  std::optional<long long> level;
  if (visibility.is_number_integer()) level = visibility.get<long long>();
  if (visibility.is_string()) level = parse_whole_number(visibility.get<std::string>(), 0, 999);
  if (!level) {
    log::warn("{}: the hub does not say whether it is private (Visibility {}); uploading as asked",
              options.repo.str(), visibility.dump());
    return;
  }
  if (*level == 1) return;  // private
  throw Error(ErrorCode::kUsage,
              fmt::format("--private: {} exists already and is not private (Visibility {}), so "
                          "the files would not be private; nothing was uploaded",
                          options.repo.str(), visibility.dump()),
              "make the repo private on the hub first, or upload without --private");
}

}  // namespace

UploadResult upload(const UploadOptions& options, const HubOptions& hub) {
  MS_CHECK(is_valid_utf8(options.commit_message), ErrorCode::kUsage,
           "--commit-message is not UTF-8 text");
  MS_CHECK(is_valid_utf8(options.revision) && (!options.tag || is_valid_utf8(*options.tag)),
           ErrorCode::kUsage, "branch and tag names are UTF-8 text (--revision, --tag)");
  // The tag is made after the files are committed: a name the hub would refuse must stop the
  // upload before it commits anything (exit 2 says nothing changed).
  if (options.tag && !options.tag->empty()) {
    const std::string& tag = *options.tag;
    MS_CHECK(tag != "main" && tag != kDefaultRevision, ErrorCode::kUsage,
             "--tag {}: the name is reserved for the default branch; nothing was uploaded", tag);
    MS_CHECK(is_valid_tag_name(tag), ErrorCode::kUsage,
             "--tag '{}' is not a valid tag name: at most 128 bytes, following git's ref rules "
             "(no spaces, '~', '^', ':', '?', '*', '[', '\\', '..' or '@{{', no part starting "
             "with '.' or ending in '.lock'); nothing was uploaded",
             tag);
    MS_CHECK(!is_commit_id_shaped(tag), ErrorCode::kUsage,
             "--tag {}: 40 hex digits name a commit, and the tag would hide it; nothing was "
             "uploaded",
             tag);
    // The branch the upload commits to (made by it, maybe) is a ref beside the tag too.
    MS_CHECK(tag != options.revision && !ref_names_nest(tag, options.revision), ErrorCode::kUsage,
             "--tag {}: the upload commits to the branch '{}', and a tag cannot share its name "
             "(or be a name and a folder beside it); nothing was uploaded",
             tag, options.revision);
  }
  const auto listed = collect_upload_files(options);
  if (listed.empty()) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: no files to upload (after --include/--exclude)",
                            options.local_path.string()),
                "the folder holds no regular files, or --include/--exclude leave none of them");
  }
  // Checked before anything is hashed or listed: otherwise a run whose files are all on the hub
  // already would finish with exit 0 without ever having been allowed to write, and a run with
  // new files would hash them all before the hub's 401. Same code as that 401 (network).
  if (!hub.token || hub.token->empty()) {
    throw Error(ErrorCode::kNetwork,
                fmt::format("cannot upload to {}: not logged in (uploads need an access token)",
                            options.repo.str()),
                "pass --token, set MODELSCOPE_API_TOKEN or run 'ms login --token T'");
  }
  HubClient client(hub);
  if (options.create) {
    if (options.is_private) refuse_to_publish(client, options);
    client.create_repo(options.type, options.repo, options.is_private, true);
  } else {
    try {
      client.repo_info(options.type, options.repo);
    } catch (Error& e) {
      if (e.code() == ErrorCode::kNotFound)
        e.set_hint("pass --create to create it (and --private to hide it)");
      throw;
    }
  }

  // A tag whose name a branch or tag has already, or one beside it as "a" is beside "a/b" (git
  // refs cannot be both a name and a folder), would fail after the files are committed.
  if (options.tag) {
    const std::string& tag = *options.tag;
    for (const RevisionInfo& r : client.revisions(options.type, options.repo)) {
      const char* kind = r.is_tag ? "tag" : "branch";
      if (r.name == tag) {
        throw Error(
            ErrorCode::kUsage,
            fmt::format("--tag {}: {} has {} already; nothing was uploaded", tag,
                        options.repo.str(), r.is_tag ? "that tag" : "a branch of that name"),
            "choose another tag name");
      }
      if (ref_names_nest(r.name, tag)) {
        throw Error(ErrorCode::kUsage,
                    fmt::format("--tag {}: {} has the {} '{}', and git refs cannot be both a name "
                                "and a folder; nothing was uploaded",
                                tag, options.repo.str(), kind, r.name),
                    "choose another tag name");
      }
    }
  }

  UploadState state(options);
  std::vector<LocalFile> files(listed.size());
  for (std::size_t i = 0; i < listed.size(); ++i) {
    LocalFile& f = files[i];
    f.local = listed[i].first;
    f.repo_path = listed[i].second;
    struct stat st {};
    if (::stat(f.local.c_str(), &st) != 0)
      fail(ErrorCode::kIo, "{}: cannot stat", f.local.string());
    f.size = static_cast<std::uint64_t>(st.st_size);
    f.mtime_ns = nanoseconds(st.st_mtim);
    f.ctime_ns = nanoseconds(st.st_ctim);
    f.inode = static_cast<std::uint64_t>(st.st_ino);
    f.lfs = is_lfs_file(f.repo_path, f.size);
  }
  {
    std::vector<std::size_t> need_hash;
    for (std::size_t i = 0; i < files.size(); ++i) {
      if (!state.lookup(files[i])) need_hash.push_back(i);
    }
    parallel_for(need_hash.size(), options.max_workers, [&](std::size_t k) {
      LocalFile& f = files[need_hash[k]];
      f.sha256 = sha256_file(f.local);
      f.committed = false;
      state.record(f, false);
    });
    if (!need_hash.empty()) state.save();
  }
  test_stop_at("hashed");

  // Which files need a commit is decided by the revision as the hub lists it now, not by the
  // state alone: the state only says what an earlier run sent, and since then the file may have
  // been deleted or changed on the hub, or this run may target another hub with a repo of the
  // same name. The state may also be gone (another machine, a cleared cache, a run that died
  // between the hub applying its commit and saving the state). One listing settles all of them.
  {
    std::unordered_map<std::string, std::string> remote;  // path -> sha256
    try {
      // A 404 is a branch this upload creates: an answer, not an error.
      for (const FileEntry& e : client.list_files(options.type, options.repo, options.revision,
                                                  HubClient::Missing::kExpected))
        remote.emplace(e.path, e.sha256);
    } catch (const Error& e) {
      // A branch this upload creates has no files yet (and must be created even if its files
      // match master's).
      if (e.code() != ErrorCode::kNotFound) throw;
    }
    bool changed = false;
    for (LocalFile& f : files) {
      auto it = remote.find(f.repo_path);
      // A listing without a sha256 for the file says it is there but not what it holds: the
      // local state's answer stands rather than re-sending the file on every run.
      if (it != remote.end() && it->second.empty()) continue;
      const bool on_hub = it != remote.end() && it->second == f.sha256;
      if (on_hub == f.committed) continue;
      f.committed = on_hub;
      state.record(f, on_hub);
      changed = true;
    }
    if (changed) state.save();
  }

  UploadResult result;
  result.files = files.size();
  std::vector<LocalFile*> pending;
  for (LocalFile& f : files) {
    if (f.committed) {
      ++result.files_skipped;
    } else {
      pending.push_back(&f);
    }
  }

  // Blobs the hub lacks, each sent once even when several files share it.
  std::vector<std::pair<std::string, std::uint64_t>> objects;
  std::vector<LocalFile*> owners;
  std::set<std::string> seen;
  for (LocalFile* f : pending) {
    if (f->lfs && seen.insert(f->sha256).second) {
      objects.emplace_back(f->sha256, f->size);
      owners.push_back(f);
    }
  }
  if (!objects.empty()) {
    const std::vector<std::string> hrefs =
        client.lfs_upload_hrefs(options.type, options.repo, objects);
    std::vector<std::size_t> to_put;
    std::uint64_t put_bytes = 0;
    for (std::size_t i = 0; i < hrefs.size(); ++i) {
      if (hrefs[i].empty()) {
        ++result.blobs_present;
      } else {
        to_put.push_back(i);
        put_bytes += objects[i].second;
      }
    }
    Progress progress(fmt::format("upload {} ({} blobs)", options.repo.str(), to_put.size()),
                      put_bytes, Progress::Unit::kBytes);
    std::atomic<std::uint64_t> sent{0};
    parallel_for(to_put.size(), options.max_workers, [&](std::size_t k) {
      const std::size_t i = to_put[k];
      const std::uint64_t size = objects[i].second;
      std::uint64_t read = 0;  // bytes of this blob sent so far (a retry's delta wraps to 0)
      client.put_blob(hrefs[i], owners[i]->local.string(), size, [&](std::uint64_t n) {
        progress.advance(n);
        const std::uint64_t before = read;
        read += n;
        if (k == 0 && 2 * before < size && 2 * read >= size) test_stop_at("blob-half");
      });
      sent.fetch_add(size);
    });
    progress.finish();
    result.blobs_uploaded = to_put.size();
    result.bytes_uploaded += sent.load();
  }
  test_stop_at("blobs");

  const std::string message = options.commit_message.empty()
                                  ? fmt::format("Upload {} file(s) with ms", pending.size())
                                  : options.commit_message;
  const std::size_t per_batch = batch_size(pending.size());
  std::size_t start = 0;
  while (start < pending.size()) {
    json actions = json::array();
    std::uint64_t inline_bytes = 0;
    std::size_t end = start;
    for (; end < pending.size() && end - start < per_batch; ++end) {
      LocalFile& f = *pending[end];
      if (f.lfs) {
        actions.push_back({{"action", "create"},
                           {"path", f.repo_path},
                           {"type", "lfs"},
                           {"size", f.size},
                           {"sha256", f.sha256},
                           {"content", ""},
                           {"encoding", ""}});
      } else {
        if (end > start && inline_bytes + f.size > kInlineBatchLimit) break;
        const std::string content = read_file(f.local);
        if (sha256_hex(content) != f.sha256) {
          fail(ErrorCode::kIo, "{}: changed while uploading; run the upload again",
               f.local.string());
        }
        inline_bytes += content.size();
        actions.push_back({{"action", "create"},
                           {"path", f.repo_path},
                           {"type", "normal"},
                           {"size", f.size},
                           {"sha256", ""},
                           {"content", base64_encode(content)},
                           {"encoding", "base64"}});
      }
    }
    json body = {{"commit_message", message}, {"actions", actions}};
    result.commits.push_back(
        client.commit(options.type, options.repo, options.revision, body.dump()));
    if (start == 0) test_stop_at("commit");
    result.bytes_uploaded += inline_bytes;
    for (std::size_t i = start; i < end; ++i) state.record(*pending[i], true);
    state.save();
    result.files_committed += end - start;
    start = end;
  }
  if (options.tag) client.create_tag(options.type, options.repo, *options.tag, options.revision);
  result.requests = client.request_count();
  return result;
}

}  // namespace ms::hub

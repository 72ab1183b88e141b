#include "ms/hub/cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"

namespace ms::hub {
namespace fs = std::filesystem;

namespace {

bool has_entries(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && !fs::is_empty(dir, ec);
}

// The revision folders under `snapshots` that hold something, sorted.
std::vector<std::string> revisions_in(const fs::path& snapshots) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(snapshots, ec), end; !ec && it != end; it.increment(ec)) {
    if (has_entries(it->path())) out.push_back(it->path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// What a cache root holds: folders of the snapshot layout (`<owner>--<name>/snapshots`) and
// folders of the indexed one (`<owner>/<name>/.msc` or `.mdl`). Tells which layout the user's
// Python writes when a repo is cached for the first time.
struct RootContents {
  bool snapshots = false;
  bool indexed = false;
};

RootContents root_contents(const fs::path& snapshot_root, const fs::path& indexed_root) {
  RootContents found;
  std::error_code ec;
  for (fs::directory_iterator it(snapshot_root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code sub_ec;
    if (fs::is_directory(it->path() / "snapshots", sub_ec)) {
      found.snapshots = true;
      break;
    }
  }
  for (fs::directory_iterator owner(indexed_root, ec), end; !ec && owner != end;
       owner.increment(ec)) {
    std::error_code sub_ec;
    if (!owner->is_directory(sub_ec)) continue;
    for (fs::directory_iterator repo(owner->path(), sub_ec), none; !sub_ec && repo != none;
         repo.increment(sub_ec)) {
      std::error_code file_ec;
      if (fs::is_regular_file(repo->path() / ".msc", file_ec) ||
          fs::is_regular_file(repo->path() / ".mdl", file_ec)) {
        found.indexed = true;
        return found;
      }
    }
  }
  return found;
}

// $MS_CACHE_LAYOUT: nullopt for auto (unset, empty or "auto").
std::optional<CacheKind> forced_cache_kind() {
  const auto value = env_var("MS_CACHE_LAYOUT");
  if (!value || *value == "auto") return std::nullopt;
  if (*value == "indexed" || *value == "legacy") return CacheKind::kIndexed;
  if (*value == "snapshots") return CacheKind::kSnapshots;
  throw Error(ErrorCode::kUsage, fmt::format("MS_CACHE_LAYOUT: '{}' is not a cache layout", *value),
              "use 'auto' (the default), 'indexed' (modelscope 1.37 and older) or 'snapshots' "
              "(modelscope 1.38 and newer)");
}

}  // namespace

CacheLayout cache_layout(RepoType type, const RepoId& repo,
                         const std::optional<fs::path>& given_cache_dir,
                         const std::optional<fs::path>& given_local_dir,
                         const std::string& revision) {
  // A RepoId built by hand, not by parse_repo_id(), gets its checks here: an owner ".." would
  // place the repo outside the cache.
  (void)parse_repo_id(repo.str());
  // An empty folder is no folder (as the CLI's --cache-dir ''): the current one was used.
  const auto unless_empty = [](const std::optional<fs::path>& dir) {
    return dir && !dir->empty() ? dir : std::nullopt;
  };
  const std::optional<fs::path> cache_dir = unless_empty(given_cache_dir);
  const std::optional<fs::path> local_dir = unless_empty(given_local_dir);
  CacheLayout layout;
  const fs::path system_cache = cache_dir ? *cache_dir : ms::cache_dir();
  layout.lock_file = system_cache / ".lock" / (repo.owner + "___" + repo.name);
  layout.python_lock_dir = (cache_dir ? *cache_dir : snapshot_cache_root()) / ".lock";
  if (local_dir) {
    layout.repo_dir = *local_dir;
    layout.temp_dir = *local_dir / "._____temp";
    return layout;
  }
  const fs::path root = cache_dir ? *cache_dir : ms::cache_dir() / repo_type_plural(type);
  layout.repo_dir = root / repo.owner / repo.cache_name();
  layout.temp_dir = root / "._____temp" / repo.owner / repo.name;
  if (repo.cache_name() != repo.name) layout.dotted_link = root / repo.owner / repo.name;
  // Owners named like the new layout's roots would make `<hub>/<owner>` a current folder (all of
  // `models/`'s owners for owner "models"): no legacy place for them.
  const bool owner_is_a_root = repo.owner == "models" || repo.owner == "datasets";
  if (type == RepoType::kModel && !cache_dir && !owner_is_a_root) {
    // Older modelscope kept models in `<cache>/hub/<owner>/<name___>` when MODELSCOPE_CACHE was
    // set, and in `~/.cache/modelscope/hub/<owner>/<name___>` by default. Python 1.36 adds the
    // `hub` only when the cache path does not already end in it (a plain suffix test).
    const fs::path base = ms::cache_dir();
    std::string text = base.string();
    while (text.size() > 1 && text.back() == '/') text.pop_back();
    const bool ends_in_hub = text.size() >= 3 && text.compare(text.size() - 3, 3, "hub") == 0;
    const fs::path legacy_root = ends_in_hub ? fs::path(text) : fs::path(text) / "hub";
    layout.legacy_dir = legacy_root / repo.owner / repo.cache_name();
  }

  // modelscope 1.38 and newer: `<root>/<type>s/<owner>--<name>/snapshots/<revision>`, the root
  // being $MODELSCOPE_CACHE (or ~/.cache/modelscope: no `hub`), or a cache_dir given.
  const fs::path snapshot_root =
      (cache_dir ? *cache_dir : snapshot_cache_root()) / repo_type_plural(type);
  const fs::path snapshot_repo = snapshot_root / (repo.owner + "--" + repo.name);
  CacheKind kind = CacheKind::kIndexed;
  if (auto forced = forced_cache_kind()) {
    kind = *forced;
  } else if (has_entries(layout.repo_dir) ||
             (!layout.legacy_dir.empty() && has_entries(layout.legacy_dir))) {
    kind = CacheKind::kIndexed;  // 1.38+ reuses an indexed folder too, before its own
  } else if (!revisions_in(snapshot_repo / "snapshots").empty()) {
    kind = CacheKind::kSnapshots;
  } else {
    const RootContents contents = root_contents(snapshot_root, cache_dir ? *cache_dir : root);
    if (contents.snapshots && !contents.indexed) kind = CacheKind::kSnapshots;
  }
  if (kind == CacheKind::kIndexed) return layout;

  const std::string rev = revision.empty() ? kDefaultRevision : revision;
  if (!is_safe_repo_path(rev)) {
    throw Error(ErrorCode::kUsage,
                fmt::format("revision '{}' cannot name a snapshot folder", printable_path(rev)),
                "give a branch, tag or commit id without '..', control characters or '.git'");
  }
  layout.kind = CacheKind::kSnapshots;
  layout.snapshots_dir = snapshot_repo / "snapshots";
  layout.repo_dir = layout.snapshots_dir / rev;
  layout.temp_dir = snapshot_repo / "._____temp" / rev;
  layout.dotted_link.clear();
  layout.legacy_dir.clear();
  return layout;
}

std::vector<std::string> cached_revisions(const CacheLayout& layout) {
  if (layout.kind != CacheKind::kSnapshots) return {};
  return revisions_in(layout.snapshots_dir);
}

void check_cache_folder_holds(const CacheLayout& layout, const RepoId& repo) {
  if (layout.kind != CacheKind::kIndexed) return;
  const fs::path mdl = layout.repo_dir / ".mdl";
  std::error_code ec;
  if (!fs::is_regular_file(mdl, ec)) return;
  std::string recorded;
  try {
    recorded = unpickle_str_dict(read_file(mdl))["id"];
  } catch (const Error&) {
    return;  // unreadable: write_model_meta() rewrites it
  }
  // ms records the id as given ("a/x.y"), Python's modelscope as the folder names it
  // ("a/x___y"), which either id could have written.
  const std::string id = ascii_lower(recorded);
  if (recorded.empty() || id == ascii_lower(repo.str()) ||
      id == ascii_lower(repo.owner + "/" + repo.cache_name()))
    return;
  throw Error(ErrorCode::kIntegrity,
              fmt::format("{}: the cache folder {} holds the repo {} (its .mdl), whose id names "
                          "the same folder",
                          repo.str(), layout.repo_dir.string(), recorded),
              "download it into a folder of its own with --local-dir DIR, or use another cache "
              "(MODELSCOPE_CACHE or --cache-dir)");
}

bool is_cache_index_name(std::string_view name) {
  return name == ".msc" || name == ".mdl" || name == ".mv" || name == ".msc.corrupted";
}

void remove_abandoned_index_writes(const fs::path& repo_dir) {
  for (const char* name : {".msc", ".mdl", ".mv"}) remove_abandoned_writes(repo_dir / name);
}

bool is_bookkeeping_path(const CacheLayout& layout, const std::string& path) {
  if (layout.kind == CacheKind::kSnapshots) return false;  // no index; the temp area is outside
  if (is_cache_index_name(path)) return true;
  const fs::path temp = layout.temp_dir.lexically_relative(layout.repo_dir);
  if (temp.empty() || *temp.begin() == "..") return false;  // the temp area is elsewhere
  const std::string prefix = temp.generic_string();
  return path == prefix || path.rfind(prefix + "/", 0) == 0;
}

bool adopt_legacy_folder(const CacheLayout& layout) {
  if (layout.legacy_dir.empty()) return false;
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(layout.legacy_dir, ec))) return false;
  if (fs::exists(fs::symlink_status(layout.repo_dir, ec))) return false;
  // Only a folder a modelscope client wrote (it has the index or the model id file) is moved.
  if (!fs::is_regular_file(layout.legacy_dir / ".msc", ec) &&
      !fs::is_regular_file(layout.legacy_dir / ".mdl", ec))
    return false;
  fs::create_directories(layout.repo_dir.parent_path(), ec);
  fs::rename(layout.legacy_dir, layout.repo_dir, ec);
  if (ec) {
    // Python skips a failed move too; the model is then fetched again into the new place.
    log::warn("{}: cannot move the legacy cache folder to {}: {}", layout.legacy_dir.string(),
              layout.repo_dir.string(), ec.message());
    return false;
  }
  log::info("moved the legacy cache folder {} to {}", layout.legacy_dir.string(),
            layout.repo_dir.string());
  return true;
}

RepoCache::RepoCache(fs::path repo_dir, bool indexed)
    : dir_(std::move(repo_dir)), indexed_(indexed) {
  reload();
}

namespace {

// The index as it is on disk; a corrupt one is moved aside (as Python does) and reads as empty.
std::vector<CacheIndexEntry> read_index(const fs::path& dir) {
  const fs::path msc = dir / ".msc";
  std::error_code ec;
  if (!fs::is_regular_file(msc, ec)) return {};
  try {
    return unpickle_cache_index(read_file(msc));
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kIntegrity) throw;
    log::warn("{}: {}; moved aside to .msc.corrupted, files will be fetched again", msc.string(),
              e.what());
    fs::rename(msc, dir / ".msc.corrupted", ec);
    return {};
  }
}

// The index's modification time, or nullopt when there is none.
std::optional<fs::file_time_type> index_time(const fs::path& dir) {
  std::error_code ec;
  const fs::file_time_type t = fs::last_write_time(dir / ".msc", ec);
  if (ec) return std::nullopt;
  return t;
}

}  // namespace

void RepoCache::reload() {
  index_time_ = indexed_ ? index_time(dir_) : std::nullopt;
  entries_ = indexed_ ? read_index(dir_) : std::vector<CacheIndexEntry>{};
  changed_.clear();
  reindex();
}

void RepoCache::reindex() {
  by_path_.clear();
  for (std::size_t i = 0; i < entries_.size(); ++i) by_path_.emplace(entries_[i].path, i);
}

bool RepoCache::written_after(const std::string& path,
                              const std::optional<fs::file_time_type>& index_time) const {
  std::error_code ec;
  const fs::file_time_type written = fs::last_write_time(dir_ / path, ec);
  return !ec && (!index_time || written > *index_time);
}

bool RepoCache::has(const std::string& path, const std::string& revision,
                    std::uint64_t size) const {
  const auto [begin, end] = by_path_.equal_range(path);
  for (auto it = begin; it != end; ++it) {
    const CacheIndexEntry& e = entries_[it->second];
    const bool match = revision.rfind(e.revision, 0) == 0 || e.revision.rfind(revision, 0) == 0;
    if (!match) continue;
    std::error_code ec;
    return fs::is_regular_file(dir_ / path, ec) && fs::file_size(dir_ / path, ec) == size && !ec &&
           !written_after(path, index_time_);
  }
  return false;
}

bool RepoCache::from_hub(const std::string& path) const {
  // A snapshot folder mirrors one revision of the hub: all of it came from there.
  return !indexed_ || by_path_.count(path) != 0;
}

void RepoCache::make_room(const std::string& path) {
  auto in_the_way = [&](const fs::path& p, const std::string& why) {
    throw Error(ErrorCode::kIo,
                fmt::format("{}: {}, so '{}' cannot be stored", p.string(), why, path),
                "move it away (it did not come from the hub) and run the download again");
  };
  auto forget = [&](const std::string& prefix, bool whole_folder) {
    std::vector<CacheIndexEntry> kept;
    for (CacheIndexEntry& e : entries_) {
      const bool under = whole_folder ? e.path.rfind(prefix + "/", 0) == 0 : e.path == prefix;
      if (under) {
        changed_.insert(e.path);
      } else {
        kept.push_back(std::move(e));
      }
    }
    entries_ = std::move(kept);
    reindex();
  };
  std::error_code ec;
  // A file where a folder of `path` must go: the hub turned file "x" into folder "x/".
  std::string ancestor;
  for (const std::string& segment : split(path, '/')) {
    // (A link to a folder is a folder here: users link big subfolders to other disks.)
    if (!ancestor.empty() && !fs::is_directory(dir_ / ancestor, ec)) {
      const fs::path p = dir_ / ancestor;
      if (fs::exists(fs::symlink_status(p, ec))) {
        if (!from_hub(ancestor)) in_the_way(p, "a file not from the hub is in the way");
        fs::remove(p, ec);
        forget(ancestor, false);
      }
    }
    ancestor += (ancestor.empty() ? "" : "/") + segment;
  }
  // A folder where the file goes: the hub turned folder "x/" into file "x". Replaced only when
  // every file in it is one the index records.
  const fs::path target = dir_ / path;
  if (fs::is_directory(fs::symlink_status(target, ec))) {
    std::error_code walk_ec;
    for (fs::recursive_directory_iterator it(target, walk_ec), end; it != end;
         it.increment(walk_ec)) {
      if (walk_ec) fail(ErrorCode::kIo, "{}: cannot list: {}", target.string(), walk_ec.message());
      std::error_code kind_ec;
      if (it->is_directory(kind_ec)) continue;
      const std::string rel = it->path().lexically_relative(dir_).generic_string();
      if (!from_hub(rel))
        in_the_way(target, fmt::format("the folder holds '{}', which is not from the hub", rel));
    }
    fs::remove_all(target, ec);
    if (ec)
      fail(ErrorCode::kIo, "{}: cannot remove the old folder: {}", target.string(), ec.message());
    forget(path, true);
  }
}

void RepoCache::put(const std::string& path, const std::string& revision, const fs::path& temp_file,
                    bool save_index) {
  check_repo_path(path);
  make_room(path);
  const fs::path target = dir_ / path;
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec)
    fail(ErrorCode::kIo, "{}: cannot create folder: {}", target.parent_path().string(),
         folder_creation_failure(target.parent_path(), ec));
  fs::rename(temp_file, target, ec);
  if (ec) fail(ErrorCode::kIo, "{}: cannot move into the cache: {}", target.string(), ec.message());
  record(path, revision, save_index);
}

void RepoCache::record(const std::string& path, const std::string& revision, bool save_index) {
  // The index names files below the folder only, whoever calls (put() checked it already).
  check_repo_path(path);
  changed_.insert(path);
  // As Python's put_file: one entry per path, the newest revision.
  const std::size_t count = by_path_.count(path);
  if (count == 1) {
    entries_[by_path_.find(path)->second].revision = revision;
  } else {
    if (count > 1) {
      std::vector<CacheIndexEntry> kept;
      for (CacheIndexEntry& e : entries_) {
        if (e.path != path) kept.push_back(std::move(e));
      }
      entries_ = std::move(kept);
    }
    entries_.push_back({path, revision});
    if (count > 1) {
      reindex();
    } else {
      by_path_.emplace(path, entries_.size() - 1);
    }
  }
  if (save_index) save();
}

void RepoCache::save() {
  if (!indexed_) return;
  // What another process wrote since the load wins for every path this object did not change;
  // this object's puts and removals win for the paths it did.
  // An entry whose file was written after the index on disk (by a modelscope 1.38+ that leaves
  // the index alone) no longer vouches for it: saving would make the file look older than the
  // index, so it is dropped, and the file is checked against the listing next time.
  std::vector<CacheIndexEntry> merged;
  const std::optional<fs::file_time_type> on_disk = index_time(dir_);
  for (CacheIndexEntry& e : read_index(dir_)) {
    if (changed_.count(e.path) == 0 && !written_after(e.path, on_disk)) {
      merged.push_back(std::move(e));
    }
  }
  for (const CacheIndexEntry& e : entries_) {
    if (changed_.count(e.path) != 0) merged.push_back(e);
  }
  entries_ = std::move(merged);
  reindex();
  write_file_atomic(dir_ / ".msc", pickle_cache_index(entries_));
  // A file this object vouched for whose mtime lies ahead of the clock (copied with its times
  // from a machine whose clock ran ahead) would stay newer than the index and be checked again
  // on every run: the index takes the newest such time.
  std::optional<fs::file_time_type> newest;
  for (const std::string& path : changed_) {
    std::error_code ec;
    const fs::file_time_type t = fs::last_write_time(dir_ / path, ec);
    if (!ec && (!newest || t > *newest)) newest = t;
  }
  index_time_ = index_time(dir_);
  // At most a day ahead: a file dated years ahead (a tar with bad times) would otherwise keep
  // every rewrite of the folder (modelscope 1.38+'s) from being noticed for that long.
  const auto limit = fs::file_time_type::clock::now() + std::chrono::hours(24);
  if (newest && *newest > limit) newest = limit;
  if (newest && index_time_ && *newest > *index_time_) {
    std::error_code ec;
    fs::last_write_time(dir_ / ".msc", *newest, ec);
    index_time_ = index_time(dir_);
  }
}

void RepoCache::write_model_meta(const std::string& repo_id) const {
  if (!indexed_) return;
  const fs::path mdl = dir_ / ".mdl";
  std::error_code ec;
  if (fs::is_regular_file(mdl, ec)) {
    try {
      auto meta = unpickle_str_dict(read_file(mdl));
      if (meta["id"] == repo_id) return;
    } catch (const Error&) {
    }
  }
  write_file_atomic(mdl, pickle_str_dict({{"id", repo_id}}));
}

void RepoCache::write_version(const std::string& text) const {
  if (!indexed_) return;
  const fs::path mv = dir_ / ".mv";
  std::error_code ec;
  if (fs::is_regular_file(mv, ec)) {
    try {
      if (read_file(mv) == text) return;
    } catch (const Error&) {
    }
  }
  write_file_atomic(mv, text);
}

}  // namespace ms::hub

// The local model/dataset cache, laid out and indexed exactly as Python's modelscope does.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ms/core/export.h"
#include "ms/hub/pickle.h"
#include "ms/hub/repo_id.h"

namespace ms::hub {

/// How a cache folder is kept. modelscope 1.37 and older keep one folder per repo with a `.msc`
/// index; 1.38 and newer (modelscope-hub) keep one plain folder per revision, without an index,
/// and take a file as cached when its size and sha256 match the hub's listing. 1.38 and newer
/// read an indexed folder too, when one exists for the repo; 1.37 reads only its own.
enum class CacheKind {
  kIndexed,    ///< `<root>/<owner>/<name___>/` with .msc/.mdl/.mv (modelscope 1.37 and older)
  kSnapshots,  ///< `<root>/<owner>--<name>/snapshots/<revision>/` (modelscope 1.38 and newer)
};

/// Where one repo lives on disk.
struct CacheLayout {
  CacheKind kind = CacheKind::kIndexed;
  std::filesystem::path repo_dir;   ///< files (plus .msc/.mdl/.mv when indexed)
  std::filesystem::path temp_dir;   ///< partial downloads (kept across runs: that is the resume)
  std::filesystem::path lock_file;  ///< per-repo flock file
  /// Where modelscope 1.38+ (modelscope_hub) keeps its per-file download locks
  /// (`<cache root>/.lock`, the root being $MODELSCOPE_CACHE or the cache_dir given).
  std::filesystem::path python_lock_dir;
  std::filesystem::path dotted_link;  ///< symlink with the unmasked name, when the name has '.'
  /// Where modelscope before the models/ split kept this model (`<hub>/<owner>/<name___>`);
  /// empty for datasets, --cache-dir, --local-dir and snapshots, which never moved.
  std::filesystem::path legacy_dir;
  /// kSnapshots: `<root>/<owner>--<name>/snapshots`, holding one folder per revision.
  std::filesystem::path snapshots_dir;
};

/// The layout for one repo at `revision` ("" = master). With `local_dir`: that folder, indexed.
/// Otherwise the indexed folder `$MODELSCOPE_CACHE/{models|datasets}/<owner>/<name___>` (or
/// `<cache_dir>/<owner>/<name___>`), or the snapshot folder
/// `$MODELSCOPE_CACHE/{models|datasets}/<owner>--<name>/snapshots/<revision>` (without
/// MODELSCOPE_CACHE under ~/.cache/modelscope; with a cache_dir, `<cache_dir>/{models|datasets}`),
/// chosen by $MS_CACHE_LAYOUT (`indexed`, `snapshots`, default `auto`): auto keeps a repo in the
/// layout it is cached in already (indexed first, as modelscope 1.38+ decides), and caches a new
/// repo as snapshots only when the cache holds snapshot folders and no indexed ones (the user's
/// Python writes that layout), else indexed (which every version reads).
/// Temp: `<root>/._____temp/<owner>/<name>` (`<local_dir>/._____temp`; snapshots:
/// `<root>/<owner>--<name>/._____temp/<revision>`). An empty cache_dir or local_dir counts as
/// none; `repo` gets parse_repo_id()'s checks (ms::Error(kUsage)).
MS_API CacheLayout cache_layout(RepoType type, const RepoId& repo,
                                const std::optional<std::filesystem::path>& cache_dir,
                                const std::optional<std::filesystem::path>& local_dir,
                                const std::string& revision = "");

/// The revision folders of a snapshot layout that hold something (`snapshots_dir`'s children),
/// sorted; empty for an indexed layout.
MS_API std::vector<std::string> cached_revisions(const CacheLayout& layout);

/// Whether `name` is one of the files ModelScope's indexed cache keeps beside a repo's files
/// (`.msc` the file index, `.mdl` the model id, `.mv` the revision, `.msc.corrupted`).
MS_API bool is_cache_index_name(std::string_view name);

/// Removes what killed writers of an indexed folder's `.msc`, `.mdl` and `.mv` left beside them
/// (`..msc.tmp.XXXXXX`; see remove_abandoned_writes: a live writer's stays).
MS_API void remove_abandoned_index_writes(const std::filesystem::path& repo_dir);

/// Whether a repo file at `path` would land on the layout's own bookkeeping: the `.msc`, `.mdl`
/// and `.mv` files beside the repo's files, or (with a --local-dir) the temp area inside it.
/// Such a file cannot be stored without corrupting the index, or being taken for a partial.
MS_API bool is_bookkeeping_path(const CacheLayout& layout, const std::string& path);

/// Refuses (ms::Error kIntegrity) an indexed cache folder whose `.mdl` names another repo than
/// `repo` (compared without case): ids such as "a/x.y" and "a/x___y" name one folder (see
/// cache_folder_ambiguity), so its files are another repo's. Only ms's `.mdl` tells them apart:
/// it records the id as given, where Python's modelscope records the folder's form ("a/x___y"),
/// which passes for either id. A folder without a readable `.mdl` (a snapshot folder, a
/// --local-dir) passes.
MS_API void check_cache_folder_holds(const CacheLayout& layout, const RepoId& repo);

/// Moves the model's folder from its legacy place into `repo_dir` when only the legacy one
/// exists, as Python's move_legacy_cache_to_standard_dir does on every call (offline included),
/// so both clients keep finding a model cached by an older modelscope. Returns whether it moved.
MS_API bool adopt_legacy_folder(const CacheLayout& layout);

/// The `.msc` index of one repo folder, as ModelFileSystemCache keeps it. For a snapshot folder
/// (`indexed` false) there is no index: put() only moves files in, and every file in the folder
/// counts as the hub's.
class MS_API RepoCache {
 public:
  /// Loads `.msc` from `repo_dir` (a corrupt one is renamed `.msc.corrupted` and reset).
  explicit RepoCache(std::filesystem::path repo_dir, bool indexed = true);

  const std::filesystem::path& dir() const { return dir_; }
  const std::vector<CacheIndexEntry>& entries() const { return entries_; }

  /// An entry for `path` whose revision is a prefix of `revision` or vice versa, with the file
  /// present on disk at `size` bytes (Python's ModelFileSystemCache.exists, plus the size) and not
  /// changed since `.msc` was written: modelscope 1.38+ writes into an indexed folder without
  /// updating its index (another revision's bytes under the same names), so a file newer than the
  /// index is for the caller to check against the listing's sha256.
  bool has(const std::string& path, const std::string& revision, std::uint64_t size) const;

  /// Moves `temp_file` to `<dir>/<path>` and records {path, revision}; rewrites `.msc` atomically
  /// unless `save_index` is false (then call save() later: a file moved in but not yet indexed
  /// is only fetched again, never trusted).
  void put(const std::string& path, const std::string& revision,
           const std::filesystem::path& temp_file, bool save_index = true);

  /// Records {path, revision} for a file already in the folder (one another client put there
  /// without indexing it, checked against the hub's listing), saving as put() does.
  void record(const std::string& path, const std::string& revision, bool save_index = true);

  /// Rewrites `.msc` atomically (temp file, fsync, rename): this object's changes since it was
  /// loaded, applied to the index as it is on disk now. Python's model_file_download writes
  /// `.msc` without taking the repo lock, so entries it added meanwhile are kept, not dropped.
  void save();

  /// Re-reads `.msc` from disk (another process may have added entries).
  void reload();

  /// Writes `.mdl` ({'id': 'owner/name'}) when missing or different.
  void write_model_meta(const std::string& repo_id) const;
  /// Writes `.mv`: `Revision:<rev>,CreatedAt:<unix>` (models) or the bare revision (datasets).
  void write_version(const std::string& text) const;

 private:
  void reindex();
  /// Whether the file at `path` (relative) came from the hub, so that it may be replaced.
  bool from_hub(const std::string& path) const;
  /// Clears the way for `path` when the hub changed a folder into a file or the reverse: old
  /// files and folders the index records are removed (with their entries); anything else is
  /// left alone and reported (kIo).
  void make_room(const std::string& path);

  /// Whether the file at `path` exists and was written after the index (at `index_time`; none:
  /// always), by a client that leaves the index alone.
  bool written_after(const std::string& path,
                     const std::optional<std::filesystem::file_time_type>& index_time) const;

  std::filesystem::path dir_;
  bool indexed_ = true;
  std::optional<std::filesystem::file_time_type> index_time_;  // .msc's mtime when loaded
  std::vector<CacheIndexEntry> entries_;
  std::unordered_multimap<std::string, std::size_t> by_path_;  // path -> index in entries_
  std::unordered_set<std::string> changed_;  // paths put or dropped since the last (re)load
};

}  // namespace ms::hub

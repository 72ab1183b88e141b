// The local model/dataset cache, laid out and indexed exactly as Python's modelscope does.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ms/core/export.h"
#include "ms/hub/pickle.h"
#include "ms/hub/repo_id.h"

namespace ms::hub {

/// Where one repo lives on disk.
struct CacheLayout {
  std::filesystem::path repo_dir;     ///< files plus .msc/.mdl/.mv
  std::filesystem::path temp_dir;     ///< partial downloads (kept across runs: that is the resume)
  std::filesystem::path lock_file;    ///< per-repo flock file
  std::filesystem::path dotted_link;  ///< symlink with the unmasked name, when the name has '.'
  /// Where modelscope before the models/ split kept this model (`<hub>/<owner>/<name___>`);
  /// empty for datasets, --cache-dir and --local-dir, which never moved.
  std::filesystem::path legacy_dir;
};

/// `$MODELSCOPE_CACHE/{models|datasets}/<owner>/<name___>`, or `<cache_dir>/<owner>/<name___>`,
/// or `local_dir` itself. Temp: `<root>/._____temp/<owner>/<name>` (`<local_dir>/._____temp`).
MS_API CacheLayout cache_layout(RepoType type, const RepoId& repo,
                                const std::optional<std::filesystem::path>& cache_dir,
                                const std::optional<std::filesystem::path>& local_dir);

/// Whether a repo file at `path` would land on the layout's own bookkeeping: the `.msc`, `.mdl`
/// and `.mv` files beside the repo's files, or (with a --local-dir) the temp area inside it.
/// Such a file cannot be stored without corrupting the index, or being taken for a partial.
MS_API bool is_bookkeeping_path(const CacheLayout& layout, const std::string& path);

/// Moves the model's folder from its legacy place into `repo_dir` when only the legacy one
/// exists, as Python's move_legacy_cache_to_standard_dir does on every call (offline included),
/// so both clients keep finding a model cached by an older modelscope. Returns whether it moved.
MS_API bool adopt_legacy_folder(const CacheLayout& layout);

/// The `.msc` index of one repo folder, as ModelFileSystemCache keeps it.
class MS_API RepoCache {
 public:
  /// Loads `.msc` from `repo_dir` (a corrupt one is renamed `.msc.corrupted` and reset).
  explicit RepoCache(std::filesystem::path repo_dir);

  const std::filesystem::path& dir() const { return dir_; }
  const std::vector<CacheIndexEntry>& entries() const { return entries_; }

  /// An entry for `path` whose revision is a prefix of `revision` or vice versa, with the file
  /// present on disk (Python's ModelFileSystemCache.exists).
  bool has(const std::string& path, const std::string& revision) const;

  /// Moves `temp_file` to `<dir>/<path>` and records {path, revision}; rewrites `.msc` atomically
  /// unless `save_index` is false (then call save() later: a file moved in but not yet indexed
  /// is only fetched again, never trusted).
  void put(const std::string& path, const std::string& revision,
           const std::filesystem::path& temp_file, bool save_index = true);

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
  /// Clears the way for `path` when the hub changed a folder into a file or the reverse: old
  /// files and folders the index records are removed (with their entries); anything else is
  /// left alone and reported (kIo).
  void make_room(const std::string& path);

  std::filesystem::path dir_;
  std::vector<CacheIndexEntry> entries_;
  std::unordered_multimap<std::string, std::size_t> by_path_;  // path -> index in entries_
  std::unordered_set<std::string> changed_;  // paths put or dropped since the last (re)load
};

}  // namespace ms::hub

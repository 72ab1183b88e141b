// Snapshot and file download into the modelscope-compatible cache: parallel, ranged, verified,
// resumable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ms/core/export.h"
#include "ms/hub/client.h"
#include "ms/hub/repo_id.h"

namespace ms::hub {

/// What `ms download` was asked for.
struct DownloadOptions {
  RepoType type = RepoType::kModel;
  RepoId repo;
  std::string revision;              ///< empty: master
  std::vector<std::string> files;    ///< exact paths or globs; each must match something
  std::vector<std::string> include;  ///< fnmatch globs on the repo path ('dir/' means 'dir/*')
  std::vector<std::string> exclude;
  std::optional<std::filesystem::path> cache_dir;
  std::optional<std::filesystem::path> local_dir;
  int max_workers = 8;
  /// Zero network calls: serve from the cache or fail (kNotFound). $MODELSCOPE_OFFLINE=1 (read
  /// by snapshot_download()) sets it for every caller.
  bool offline = false;
  bool dry_run = false;  ///< list what would be fetched; write nothing
  /// Files at least this big are fetched in ranged parts, in parallel.
  std::uint64_t part_threshold = 64ull << 20;
  std::uint64_t min_part_size = 16ull << 20;
  /// Most ranged parts per file; 0: auto (max_workers, or half the cores when the hub is on
  /// this machine, since its threads compete with ours). When 0, $MS_DOWNLOAD_PARTS (read by
  /// snapshot_download()) sets it for every caller.
  int max_parts = 0;
};

/// One selected file.
struct DownloadedFile {
  std::string path;
  std::uint64_t size = 0;
  bool cached = false;   ///< was already in the cache (not fetched)
  std::string revision;  ///< the file's last commit id (the listing's; with a listing only)
  std::string sha256;    ///< the listing's digest of the file (empty when the hub gave none)
};

struct DownloadResult {
  std::filesystem::path local_path;  ///< the repo folder (or the local dir)
  std::string revision;
  std::vector<DownloadedFile> files;
  std::uint64_t bytes_to_fetch = 0;  ///< bytes not in the cache (fetched, or to fetch in a dry run)
  std::uint64_t bytes_cached = 0;
  std::uint64_t requests = 0;  ///< HTTP requests sent
};

/// The revision an indexed cache folder was last filled at (its `.mv`), or "" when it records none.
MS_API std::string cached_revision(const std::filesystem::path& repo_dir);

/// Python's fnmatch.fnmatch on a repo path (case-sensitive, '*' crosses '/').
MS_API bool path_matches(const std::string& path, const std::string& pattern);

/// Whether a repo path passes include/exclude as Python's filter_files_by_patterns decides.
MS_API bool selected_by_patterns(const std::string& path, const std::vector<std::string>& include,
                                 const std::vector<std::string>& exclude);

/// An exclusive flock held for the object's life (the kernel drops it when the holder dies, so a
/// killed run never leaves a lock behind); waits, with a warning, while another holds it. A
/// download holds its repo's lock file and its destination folder's; so does whoever must read
/// that folder while no download changes it.
class MS_API ExclusiveLock {
 public:
  enum class Target {
    kLockFile,  ///< a lock file, created if missing (Python's <cache>/.lock/<owner>___<name>)
    kFolder,    ///< the folder itself (created if missing): no extra file in a --local-dir
  };

  ExclusiveLock(const std::filesystem::path& path, Target target);
  ~ExclusiveLock();
  ExclusiveLock(const ExclusiveLock&) = delete;
  ExclusiveLock& operator=(const ExclusiveLock&) = delete;

 private:
  int fd_ = -1;
};

/// Downloads a snapshot (or the listed files) into the cache. Holds a per-repo flock while it
/// writes, so concurrent runs serialise and a killed run never leaves a lock that blocks.
/// All files are tried; the first failure is rethrown afterwards (integrity failures win).
MS_API DownloadResult snapshot_download(const DownloadOptions& options, const HubOptions& hub);

}  // namespace ms::hub

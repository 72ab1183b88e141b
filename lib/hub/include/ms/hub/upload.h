// Upload of a file or folder to a hub: hash, LFS batch check, PUT missing blobs, commit in batches.
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

/// What `ms upload` was asked for.
struct UploadOptions {
  RepoType type = RepoType::kModel;
  RepoId repo;
  std::filesystem::path local_path;  ///< a file or a folder
  std::string path_in_repo;          ///< folder (or file name, for a file) inside the repo
  std::string revision = kDefaultRevision;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::string commit_message;
  bool create = false;      ///< create the repo when it does not exist
  bool is_private = false;  ///< visibility of a created repo
  std::optional<std::string> tag;
  int max_workers = 4;
};

struct UploadResult {
  std::size_t files = 0;             ///< files selected
  std::size_t files_committed = 0;   ///< files sent in commits this run
  std::size_t files_skipped = 0;     ///< already committed by an earlier run (unchanged)
  std::size_t blobs_uploaded = 0;    ///< LFS blobs PUT this run
  std::size_t blobs_present = 0;     ///< LFS blobs the hub already had
  std::uint64_t bytes_uploaded = 0;  ///< blob bytes PUT plus inline bytes committed
  std::vector<std::string> commits;
  std::uint64_t requests = 0;
};

/// Whether a file goes through LFS: over 1 MiB or an LFS suffix (.bin, .safetensors, ...).
MS_API bool is_lfs_file(const std::string& path, std::uint64_t size);

/// The files of `options.local_path` with their repo paths, after include/exclude. Skips .git,
/// .cache and ms's own state; rejects (kUsage) symlinks that lead outside the folder and repo
/// paths that fail check_repo_path().
MS_API std::vector<std::pair<std::filesystem::path, std::string>> collect_upload_files(
    const UploadOptions& options);

/// Uploads. Resumable: per-file state (size, mtime, ctime, inode, sha256, committed) is kept in
/// $MODELSCOPE_CACHE/.upload/, and files the revision already holds with the same sha256 are not
/// committed again, so a re-run after an interruption sends nothing twice.
MS_API UploadResult upload(const UploadOptions& options, const HubOptions& hub);

}  // namespace ms::hub

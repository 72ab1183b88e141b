// Repository identifiers: OWNER/NAME of a model or dataset, and repo-relative file paths.
#pragma once

#include <string>
#include <string_view>

#include "ms/core/export.h"

namespace ms::hub {

enum class RepoType { kModel, kDataset };

/// The branch a repo's files are read from and committed to when no revision is given; the
/// hub server creates it with each repo. ModelScope's default branch is "master".
inline constexpr const char kDefaultRevision[] = "master";

/// "model" / "dataset".
MS_API const char* repo_type_name(RepoType type);
/// "models" / "datasets": the path segment the hub API and the cache use.
MS_API const char* repo_type_plural(RepoType type);

/// OWNER/NAME. Names may contain dots (cached as '___', as Python's modelscope does).
struct MS_API RepoId {
  std::string owner;
  std::string name;

  std::string str() const { return owner + "/" + name; }
  /// NAME with '.' replaced by "___": the folder name in the cache.
  std::string cache_name() const;
};

/// Parses "owner/name". A bare name gets the owner "damo" (ModelScope's default). Owner and name
/// are [A-Za-z0-9_.-]+, not "." or ".."; anything else is ms::Error(kUsage) naming the input.
MS_API RepoId parse_repo_id(std::string_view text);

/// Checks a repo-relative file path as sent to or received from a hub. Rejects empty paths,
/// absolute paths, backslashes, NUL and control characters, empty, "." and ".." segments,
/// with ms::Error(kUsage) naming the path. Returns the path unchanged when it is safe.
MS_API const std::string& check_repo_path(const std::string& path);

/// Whether check_repo_path() would accept `path`.
MS_API bool is_safe_repo_path(std::string_view path);

}  // namespace ms::hub

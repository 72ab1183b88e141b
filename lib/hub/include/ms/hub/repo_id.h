// Repository identifiers: OWNER/NAME of a model or dataset, and repo-relative file paths.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

/// Why other repo ids could map to the cache folders of `repo`, or "" when none can: ModelScope's
/// caches name a repo's folder `OWNER/NAME___` (each '.' as "___") or `OWNER--NAME`, so that
/// "a/x.y" and "a/x___y", or "a/b--c" and "a--b/c", share one folder and one repo's download
/// would serve the other's files. None can when the owner holds no "--" and does not end in '-',
/// and the name holds no "___", "_." or "._". The hub refuses to create such repos.
MS_API std::string cache_folder_ambiguity(const RepoId& repo);

/// Whether `name` may name a branch or tag: git's check-ref-format rules (a hub's repos are
/// also git repositories, where a space ends a name in the ref advertisement and '~', '^', ':',
/// '..' or '@{' make a name git reads as an expression), UTF-8, at most 255 bytes.
MS_API bool is_valid_ref_name(std::string_view name);

/// Whether one ref name is a folder of the other ("a" and "a/b"): git cannot hold both, since a
/// ref is a file and would also have to be a folder.
MS_API bool ref_names_nest(std::string_view a, std::string_view b);

/// Whether `name` may name a new tag: a valid ref name of at most 128 bytes that is not "main"
/// or "master" (the default branch's names).
MS_API bool is_valid_tag_name(std::string_view name);

/// Whether `text` is shaped as a commit id (40 lower-case hex digits): a branch or tag of such a
/// name would hide the commit, since revisions resolve refs first.
MS_API bool is_commit_id_shaped(std::string_view text);

/// Parses "owner/name". A bare name gets the owner "damo" (ModelScope's default). Owner and name
/// are [A-Za-z0-9_.-]+, not "." or ".."; anything else is ms::Error(kUsage) naming the input.
MS_API RepoId parse_repo_id(std::string_view text);

/// Why a repo-relative file path (as sent to or received from a hub) is unsafe to write, or ""
/// when it is safe. Unsafe: empty, absolute, backslashes, C0/C1 control characters,
/// bidirectional controls (U+202E etc.), empty, "." and ".." segments, and any segment naming
/// git's own folder (".git" in any case, also as HFS+ or Windows spell it; ".gitattributes" is
/// fine).
MS_API std::string repo_path_problem(std::string_view path);

/// Checks a repo-relative file path with repo_path_problem(); an unsafe one is
/// ms::Error(kUsage) naming the path and the reason.
MS_API void check_repo_path(std::string_view path);

/// Whether check_repo_path() would accept `path`.
MS_API bool is_safe_repo_path(std::string_view path);

/// `path` with control and bidirectional characters and invalid bytes escaped (\xNN, \uNNNN),
/// for error messages.
MS_API std::string printable_path(std::string_view path);

/// Two different paths of `paths` that are the same name after Unicode normalisation (NFC vs
/// NFD), which macOS file systems merge into one file; nullopt when there are none.
MS_API std::optional<std::pair<std::string, std::string>> find_normalization_clash(
    const std::vector<std::string>& paths);

}  // namespace ms::hub

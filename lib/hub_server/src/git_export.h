// Read-only git view of hub commits, for git's "dumb" HTTP protocol (private to lib/hub_server).
//
// Python's `HubApi.create_repo` (and `modelscope create`) git-clones a new model to push a default
// configuration.json; the clone must succeed or the call fails. Each branch or tag is exported as
// one parentless git commit of its tree (history is not exported), with LFS files as git-lfs
// pointer blobs (their content comes from the git-lfs batch API of routes_git.cpp) and inline
// files as their bytes. Objects are built on demand and cached by commit.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "ms/hub_server/store.h"

namespace ms::hub_server {

/// One git object: its type and uncompressed body, or for an inline file the stored blob that
/// holds the body.
struct GitObject {
  std::string type;         ///< "commit", "tree" or "blob"
  std::string body;         ///< commit, tree and LFS-pointer bodies
  std::string blob_sha256;  ///< non-empty: the body is this stored blob
};

/// The git objects of one hub commit.
struct GitSnapshot {
  std::string commit_sha1;                                     ///< 40 hex digits
  std::unordered_map<std::string, GitObject> objects;          ///< by 40-hex sha1
  std::unordered_map<std::string, std::uint64_t> lfs_objects;  ///< LFS files: sha256 -> size
};

/// Builds and caches git snapshots of commits. Thread-safe.
class GitExporter {
 public:
  explicit GitExporter(Store& store) : store_(store) {}

  /// The git objects of `commit`, authored by `author_email`'s user.
  std::shared_ptr<const GitSnapshot> snapshot(const CommitRecord& commit,
                                              const std::string& author_email);
  /// The zlib-compressed loose-object file of `object` ("<type> <size>\0<body>").
  std::string loose_object(const GitObject& object);

 private:
  std::string inline_blob_sha1(const TreeEntry& entry);

  Store& store_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const GitSnapshot>> snapshots_;  // by hub commit id
  std::unordered_map<std::string, std::string> blob_sha1_;               // sha256 -> git sha1
};

}  // namespace ms::hub_server

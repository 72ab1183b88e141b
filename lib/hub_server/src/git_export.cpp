// GitExporter: hub tree snapshots as git commit/tree/blob objects (see git_export.h).
#include "git_export.h"

#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <vector>

#include "ms/core/encoding.h"
#include "ms/core/error.h"
#include "ms/core/file.h"

namespace ms::hub_server {
namespace {

// Raw 20-byte SHA-1 of a git object: sha1("<type> <size>\0" + body).
std::string object_sha1_raw(const std::string& type, const std::string& body) {
  const std::string header = type + " " + std::to_string(body.size()) + std::string(1, '\0');
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, header.data(), header.size()) == 1 &&
                  EVP_DigestUpdate(ctx, body.data(), body.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx, digest, &length) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) fail(ErrorCode::kInternal, "hub serve: OpenSSL SHA-1 failed");
  return std::string(reinterpret_cast<const char*>(digest), length);
}

// A folder of the exported tree: subfolders and the files directly in it.
struct Folder {
  std::map<std::string, Folder> folders;
  std::map<std::string, const TreeEntry*> files;
};

}  // namespace

std::string GitExporter::inline_blob_sha1(const TreeEntry& entry) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blob_sha1_.find(entry.sha256);
    if (it != blob_sha1_.end()) return it->second;
  }
  const std::string sha1 = object_sha1_raw("blob", read_file(store_.blob_path(entry.sha256)));
  std::lock_guard<std::mutex> lock(mu_);
  if (blob_sha1_.size() >= (1u << 20)) blob_sha1_.clear();  // bounds memory on huge hubs
  blob_sha1_.emplace(entry.sha256, sha1);
  return sha1;
}

std::shared_ptr<const GitSnapshot> GitExporter::snapshot(const CommitRecord& commit,
                                                         const std::string& author_email) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = snapshots_.find(commit.id);
    if (it != snapshots_.end()) return it->second;
  }
  auto out = std::make_shared<GitSnapshot>();
  auto add = [&](GitObject object, const std::string& raw_sha1) {
    out->objects.emplace(hex_encode(raw_sha1), std::move(object));
    return raw_sha1;
  };

  // Held for the whole build: Folder keeps pointers into it, and the store's tree cache may drop
  // its own reference at any time.
  const auto tree = store_.tree(commit);
  Folder root;
  for (const TreeEntry& entry : *tree) {
    Folder* folder = &root;
    std::size_t start = 0;
    for (std::size_t slash = entry.path.find('/'); slash != std::string::npos;
         slash = entry.path.find('/', start)) {
      folder = &folder->folders[entry.path.substr(start, slash - start)];
      start = slash + 1;
    }
    folder->files[entry.path.substr(start)] = &entry;
  }

  // Returns the raw sha1 of the folder's tree object, adding it and everything below.
  auto write_folder = [&](auto&& self, const Folder& folder) -> std::string {
    struct Item {
      std::string sort_key;  // git orders folders as if their name ended with '/'
      std::string line;      // "<mode> <name>\0<20-byte sha1>"
    };
    std::vector<Item> items;
    for (const auto& [name, sub] : folder.folders) {
      items.push_back({name + "/", "40000 " + name + std::string(1, '\0') + self(self, sub)});
    }
    for (const auto& [name, entry] : folder.files) {
      std::string sha1;
      if (entry->lfs) {
        GitObject pointer{"blob",
                          "version https://git-lfs.github.com/spec/v1\noid sha256:" +
                              entry->sha256 + "\nsize " + std::to_string(entry->size) + "\n",
                          ""};
        sha1 = object_sha1_raw("blob", pointer.body);
        add(std::move(pointer), sha1);
        out->lfs_objects.emplace(entry->sha256, entry->size);
      } else {
        sha1 = inline_blob_sha1(*entry);
        add(GitObject{"blob", "", entry->sha256}, sha1);
      }
      items.push_back({name, "100644 " + name + std::string(1, '\0') + sha1});
    }
    std::sort(items.begin(), items.end(),
              [](const Item& a, const Item& b) { return a.sort_key < b.sort_key; });
    std::string body;
    for (const Item& item : items) body += item.line;
    const std::string sha1 = object_sha1_raw("tree", body);
    return add(GitObject{"tree", std::move(body), ""}, sha1);
  };
  const std::string tree_sha1 = write_folder(write_folder, root);

  const std::string who =
      commit.author + " <" + author_email + "> " + std::to_string(commit.created_at) + " +0000";
  std::string message = commit.message.empty() ? std::string("Commit") : commit.message;
  if (message.back() != '\n') message += '\n';
  const std::string body =
      "tree " + hex_encode(tree_sha1) + "\nauthor " + who + "\ncommitter " + who + "\n\n" + message;
  out->commit_sha1 =
      hex_encode(add(GitObject{"commit", body, ""}, object_sha1_raw("commit", body)));

  std::lock_guard<std::mutex> lock(mu_);
  if (snapshots_.size() >= 64) snapshots_.clear();
  snapshots_.emplace(commit.id, out);
  return out;
}

std::string GitExporter::loose_object(const GitObject& object) {
  const std::string body =
      object.blob_sha256.empty() ? object.body : read_file(store_.blob_path(object.blob_sha256));
  const std::string raw =
      object.type + " " + std::to_string(body.size()) + std::string(1, '\0') + body;
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string out(size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()),
                Z_BEST_SPEED) != Z_OK) {
    fail(ErrorCode::kInternal, "hub serve: zlib could not compress a git object");
  }
  out.resize(size);
  return out;
}

}  // namespace ms::hub_server

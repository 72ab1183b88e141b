// Unit tests of the hub server's Store (blobs, commits, refs, tokens) and fault-spec parsing.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include "catch.h"
#include "error_capture.h"
#include "ms/core/error.h"
#include "ms/hub/sha256.h"
#include "ms/hub_server/server.h"
#include "ms/hub_server/store.h"

namespace fs = std::filesystem;
using namespace ms::hub_server;
using ms::ErrorCode;

namespace {

struct TempRoot {
  fs::path path;
  TempRoot() {
    path = fs::temp_directory_path() /
           ("ms-store-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(path);
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

RepoRecord make_repo(Store& store, const std::string& name = "m") {
  RepoRecord repo;
  repo.owner = "alice";
  repo.name = name;
  return store.create_repo(repo, "alice");
}

CommitAction inline_file(const std::string& path, const std::string& content) {
  CommitAction a;
  a.path = path;
  a.content = content;
  return a;
}

std::size_t files_in(const fs::path& dir) {
  std::size_t n = 0;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->is_regular_file()) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("store: a new repo has master with a default .gitattributes", "[hub_server]") {
  TempRoot root;
  Store store(root.path);
  RepoRecord repo = make_repo(store);
  CHECK(repo.id > 0);
  auto head = store.resolve(repo.id, "master");
  REQUIRE(head);
  auto tree = store.tree(*head);
  REQUIRE(tree->size() == 1);
  CHECK((*tree)[0].path == ".gitattributes");
  CHECK(store.blob_size((*tree)[0].sha256) == (*tree)[0].size);
  CHECK(code_of([&] { make_repo(store); }) == ErrorCode::kUsage);
  CHECK(store.find_repo(ms::hub::RepoType::kModel, "alice", "m")->id == repo.id);
  CHECK_FALSE(store.find_repo(ms::hub::RepoType::kDataset, "alice", "m"));
}

TEST_CASE("store: repo settings update and listing across owners", "[hub_server]") {
  TempRoot root;
  Store store(root.path);
  RepoRecord repo = make_repo(store);
  RepoRecord other;
  other.owner = "bob";
  other.name = "n";
  store.create_repo(other, "bob");
  repo.visibility = kPrivate;
  repo.description = "about";
  repo.license = "MIT";
  store.update_repo_settings(repo);
  const RepoRecord stored = *store.find_repo(ms::hub::RepoType::kModel, "alice", "m");
  CHECK(stored.visibility == kPrivate);
  CHECK(stored.description == "about");
  CHECK(stored.license == "MIT");
  CHECK(store.list_repos(ms::hub::RepoType::kModel, "alice").size() == 1);
  CHECK(store.list_repos(ms::hub::RepoType::kModel, "").size() == 2);
  CHECK(store.list_repos(ms::hub::RepoType::kDataset, "").empty());
}

TEST_CASE("store: commits are immutable snapshots; branches advance, tags stay", "[hub_server]") {
  TempRoot root;
  Store store(root.path);
  RepoRecord repo = make_repo(store);
  CommitRecord c1 =
      store.commit(repo.id, "master", {inline_file("a/x.txt", "one")}, "first", "alice");
  store.create_tag(repo.id, "v1", "master");
  CommitRecord c2 =
      store.commit(repo.id, "master", {inline_file("a/x.txt", "two"), inline_file("b.txt", "b")},
                   "second", "alice");
  CHECK(c2.parent == c1.id);
  CHECK(store.resolve(repo.id, "master")->id == c2.id);
  CHECK(store.resolve(repo.id, "v1")->id == c1.id);
  CHECK(store.resolve(repo.id, c1.id)->id == c1.id);
  CHECK_FALSE(store.resolve(repo.id, "nope"));

  auto old_tree = store.tree(*store.resolve(repo.id, "v1"));
  auto new_tree = store.tree(c2);
  REQUIRE(old_tree->size() == 2);
  REQUIRE(new_tree->size() == 3);
  CHECK((*old_tree)[1].sha256 == ms::hub::sha256_hex("one"));
  CHECK((*new_tree)[1].sha256 == ms::hub::sha256_hex("two"));
  // An unchanged file keeps the commit that last changed it.
  CHECK((*new_tree)[0].commit_id == (*old_tree)[0].commit_id);
  CHECK((*new_tree)[1].commit_id == c2.id);

  std::size_t total = 0;
  auto page = store.history(c2.id, 1, 1, &total);
  CHECK(total == 3);
  REQUIRE(page.size() == 1);
  CHECK(page[0].id == c1.id);

  CHECK(code_of([&] { store.create_tag(repo.id, "master", "master"); }) == ErrorCode::kUsage);
  CHECK(code_of([&] { store.create_tag(repo.id, "main", "master"); }) == ErrorCode::kUsage);
  CHECK(code_of([&] { store.create_tag(repo.id, "v1", "master"); }) == ErrorCode::kUsage);
  CHECK(code_of([&] { store.create_tag(repo.id, "v2", "nope"); }) == ErrorCode::kNotFound);
  CHECK(code_of([&] { store.commit(repo.id, "v1", {inline_file("c", "c")}, "", "alice"); }) ==
        ErrorCode::kUsage);
  // A new branch starts from master.
  CommitRecord dev = store.commit(repo.id, "dev", {inline_file("d.txt", "d")}, "", "alice");
  CHECK(dev.parent == c2.id);
  CHECK(store.resolve(repo.id, "master")->id == c2.id);
}

TEST_CASE("store: delete actions, path checks and file/folder conflicts", "[hub_server]") {
  TempRoot root;
  Store store(root.path);
  RepoRecord repo = make_repo(store);
  store.commit(repo.id, "master",
               {inline_file("d/a", "1"), inline_file("d/b", "2"), inline_file("e", "3")}, "",
               "alice");
  CommitAction del;
  del.kind = CommitAction::Kind::kDelete;
  del.path = "d";
  CommitRecord c = store.commit(repo.id, "master", {del}, "", "alice");
  auto tree = store.tree(c);
  REQUIRE(tree->size() == 2);
  CHECK((*tree)[1].path == "e");
  CHECK(code_of([&] { store.commit(repo.id, "master", {del}, "", "alice"); }) ==
        ErrorCode::kNotFound);
  for (const std::string& bad :
       std::vector<std::string>{"../x", "/abs", "a\\b", std::string("a\0b", 3), "a//b", ""}) {
    INFO(bad);
    CHECK(code_of([&] { store.commit(repo.id, "master", {inline_file(bad, "x")}, "", "alice"); }) ==
          ErrorCode::kUsage);
  }
  CHECK(code_of([&] { store.commit(repo.id, "master", {inline_file("e/x", "x")}, "", "alice"); }) ==
        ErrorCode::kUsage);
  CHECK(store.resolve(repo.id, "master")->id == c.id);
}

TEST_CASE("store: blobs are verified while streaming and appear only when complete",
          "[hub_server]") {
  TempRoot root;
  Store store(root.path);
  const std::string data(100000, 'z');
  const std::string sha = ms::hub::sha256_hex(data);

  {
    BlobWriter w = store.begin_blob(sha, data.size());
    w.write(data.data(), 5000);
    // Abandoned upload: nothing under the final name, no temp left behind.
  }
  CHECK_FALSE(store.has_blob(sha));
  CHECK(files_in(root.path / "tmp") == 0);

  {
    BlobWriter w = store.begin_blob(ms::hub::sha256_hex("other"), data.size());
    w.write(data.data(), data.size());
    CHECK(code_of([&] { w.finish(); }) == ErrorCode::kIntegrity);
  }
  CHECK_FALSE(store.has_blob(ms::hub::sha256_hex("other")));
  {
    BlobWriter w = store.begin_blob(sha, 10);
    CHECK(code_of([&] { w.write(data.data(), 11); }) == ErrorCode::kIntegrity);
  }
  {
    BlobWriter w = store.begin_blob(sha, data.size() + 1);
    w.write(data.data(), data.size());
    CHECK(code_of([&] { w.finish(); }) == ErrorCode::kIntegrity);
  }
  CHECK(files_in(root.path / "tmp") == 0);
  CHECK(code_of([&] { store.begin_blob("not-a-sha", 1); }) == ErrorCode::kUsage);

  BlobWriter w = store.begin_blob(sha, data.size());
  w.write(data.data(), 60000);
  w.write(data.data() + 60000, data.size() - 60000);
  w.finish();
  CHECK(store.blob_size(sha) == data.size());
  CHECK(ms::hub::sha256_file(store.blob_path(sha)) == sha);

  // LFS commits need the blob, uploaded through the repo, with the right size.
  RepoRecord repo = make_repo(store);
  CommitAction lfs;
  lfs.path = "w.bin";
  lfs.lfs = true;
  lfs.sha256 = sha;
  lfs.size = data.size();
  CHECK(code_of([&] { store.commit(repo.id, "master", {lfs}, "", "alice"); }) ==
        ErrorCode::kNotFound);
  store.add_repo_blob(repo.id, sha);
  lfs.path = "w.bin";
  lfs.lfs = true;
  lfs.sha256 = sha;
  lfs.size = data.size() - 1;
  CHECK(code_of([&] { store.commit(repo.id, "master", {lfs}, "", "alice"); }) ==
        ErrorCode::kIntegrity);
  lfs.sha256 = ms::hub::sha256_hex("missing");
  CHECK(code_of([&] { store.commit(repo.id, "master", {lfs}, "", "alice"); }) ==
        ErrorCode::kNotFound);
  lfs.sha256 = sha;
  lfs.size = data.size();
  CommitRecord c = store.commit(repo.id, "master", {lfs}, "", "alice");
  CHECK(store.tree(c)->back().lfs);
}

TEST_CASE("store: a blob counts as present only for users who can read a repo holding it",
          "[hub_server]") {
  TempRoot root;
  Store store(root.path);
  RepoRecord secret;
  secret.owner = "alice";
  secret.name = "secret";
  secret.visibility = kPrivate;
  secret = store.create_repo(secret, "alice");
  CommitAction weights = inline_file("w.bin", "private weights");
  store.commit(secret.id, "master", {weights}, "", "alice");
  const std::string sha = ms::hub::sha256_hex("private weights");
  CHECK(store.blob_readable_by(sha, std::string("alice")));
  CHECK_FALSE(store.blob_readable_by(sha, std::string("bob")));
  CHECK_FALSE(store.blob_readable_by(sha, std::nullopt));

  // Bob knows the sha256 and size, but cannot commit the blob by reference into his repo ...
  RepoRecord mine;
  mine.owner = "bob";
  mine.name = "mine";
  mine = store.create_repo(mine, "bob");
  CommitAction steal;
  steal.path = "stolen.bin";
  steal.lfs = true;
  steal.sha256 = sha;
  steal.size = std::string("private weights").size();
  CHECK(code_of([&] { store.commit(mine.id, "master", {steal}, "", "bob"); }) ==
        ErrorCode::kNotFound);
  // ... until he has uploaded the bytes himself, through his repo.
  store.add_repo_blob(mine.id, sha);
  CHECK(store.blob_readable_by(sha, std::string("bob")));
  store.commit(mine.id, "master", {steal}, "", "bob");

  // Public repos share their blobs with everyone, internal ones with signed-in users.
  RepoRecord open_repo = make_repo(store, "open");
  store.commit(open_repo.id, "master", {inline_file("p.txt", "public")}, "", "alice");
  CHECK(store.blob_readable_by(ms::hub::sha256_hex("public"), std::nullopt));
  RepoRecord internal;
  internal.owner = "alice";
  internal.name = "internal";
  internal.visibility = kInternal;
  internal = store.create_repo(internal, "alice");
  store.commit(internal.id, "master", {inline_file("i.txt", "internal")}, "", "alice");
  CHECK(store.blob_readable_by(ms::hub::sha256_hex("internal"), std::string("carol")));
  CHECK_FALSE(store.blob_readable_by(ms::hub::sha256_hex("internal"), std::nullopt));
  // A deleted repo holds nothing.
  store.delete_repo(internal.id);
  CHECK_FALSE(store.blob_readable_by(ms::hub::sha256_hex("internal"), std::string("alice")));
}

TEST_CASE("store: tokens, users and reopening keep everything", "[hub_server]") {
  TempRoot root;
  std::string token;
  std::int64_t repo_id = 0;
  {
    Store store(root.path);
    token = store.create_token("alice");
    CHECK(token.rfind("ms-", 0) == 0);
    CHECK(store.user_for_token(token) == std::optional<std::string>("alice"));
    CHECK_FALSE(store.user_for_token("ms-wrong"));
    CHECK_FALSE(store.user_for_token(""));
    CHECK(store.create_token("alice") != token);
    CHECK(code_of([&] { store.create_token("../x"); }) == ErrorCode::kUsage);
    CHECK(code_of([&] { store.create_token("a b"); }) == ErrorCode::kUsage);
    repo_id = make_repo(store).id;
    store.commit(repo_id, "master", {inline_file("f", "data")}, "", "alice");
  }
  Store again(root.path);
  CHECK(again.user_for_token(token) == std::optional<std::string>("alice"));
  auto head = again.resolve(repo_id, "master");
  REQUIRE(head);
  CHECK(again.tree(*head)->size() == 2);
  // The token itself is not stored, only its hash.
  std::ifstream db(root.path / "meta.sqlite3", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(db)), std::istreambuf_iterator<char>());
  CHECK(bytes.find(token) == std::string::npos);
}

TEST_CASE("fault specs parse and reject bad items", "[hub_server]") {
  FaultSpec f = parse_fault_spec("status500=3,reset=5,stall=7,stall_seconds=0.5");
  CHECK(f.status500 == 3);
  CHECK(f.reset == 5);
  CHECK(f.stall == 7);
  CHECK(f.stall_seconds == 0.5);
  CHECK_FALSE(parse_fault_spec("").any());
  for (const char* bad : {"bogus=1", "reset", "reset=x", "reset=-1", "reset=1.5", "stall=2=3"}) {
    INFO(bad);
    CHECK(code_of([&] { parse_fault_spec(bad); }) == ErrorCode::kUsage);
  }
}

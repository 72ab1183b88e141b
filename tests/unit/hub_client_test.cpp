// Unit tests of the hub client pieces that need no server: pickles (the core reader and writer
// and the hub's), cache index, patterns, upload file walk.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include "catch.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/pickle.h"
#include "ms/core/settings.h"
#include "ms/hub/cache.h"
#include "ms/hub/client.h"
#include "ms/hub/cookie.h"
#include "ms/hub/download.h"
#include "ms/hub/pickle.h"
#include "ms/hub/upload.h"
#include "temp_dir.h"

using namespace ms::hub;
namespace fs = std::filesystem;

namespace {

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

// Bytes written by CPython 3.11's pickle.dumps for the entries of python_entries().
const char* kPythonProtocol4 =
    "8004958b010000000000005d94287d94288c0450617468948c0b636f6e6669672e6a736f6e948c085265766973696f"
    "6e948c0661626331323394757d942868028c0ce5908de5ad972f782e62696e9468046805757d94286802582c010000"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161619468048c036465669475652e";
const char* kPythonProtocol2 =
    "80025d7100287d7101285804000000506174687102580b000000636f6e6669672e6a736f6e71035808000000526576"
    "6973696f6e710458060000006162633132337105757d7106286802580c000000e5908de5ad972f782e62696e710768"
    "046805757d7108286802582c0100006161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
    "616161616161616161616161616161616161616161616161616161616161616161710968045803000000646566710a"
    "75652e";

std::vector<CacheIndexEntry> python_entries() {
  return {{"config.json", "abc123"}, {"名字/x.bin", "abc123"}, {std::string(300, 'a'), "def"}};
}

void touch(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

}  // namespace

TEST_CASE("the .msc pickle matches CPython's protocol-4 bytes", "[hub][pickle]") {
  CHECK(pickle_cache_index(python_entries()) == from_hex(kPythonProtocol4));
  CHECK(pickle_str_dict({{"id", "owner/name"}}) ==
        from_hex("80049516000000000000007d948c026964948c0a6f776e65722f6e616d6594732e"));
  CHECK(pickle_cache_index({}) == from_hex("80045d942e"));
}

TEST_CASE("pickles from CPython read back, protocols 2 to 5", "[hub][pickle]") {
  for (const char* hex : {kPythonProtocol4, kPythonProtocol2}) {
    auto entries = unpickle_cache_index(from_hex(hex));
    REQUIRE(entries.size() == 3);
    CHECK(entries[1].path == "名字/x.bin");
    CHECK(entries[1].revision == "abc123");
    CHECK(entries[2].path == std::string(300, 'a'));
    CHECK(entries[2].revision == "def");
  }
  // Protocol 5 with extra keys of other types: the str entries are kept.
  auto extra =
      unpickle_cache_index(from_hex("80059536000000000000005d947d94288c0450617468948c0178948c085265"
                                    "766973696f6e948c0172948c054578747261944b058c01"
                                    "4294888c014e944e75612e"));
  REQUIRE(extra.size() == 1);
  CHECK(extra[0].path == "x");
  CHECK(unpickle_str_dict(
            from_hex("80049516000000000000007d948c026964948c0a6f776e65722f6e616d6594732e"))
            .at("id") == "owner/name");
}

TEST_CASE("large indexes round-trip (batches of 1000)", "[hub][pickle]") {
  std::vector<CacheIndexEntry> many;
  for (int i = 0; i < 2500; ++i)
    many.push_back({"dir/file" + std::to_string(i), i % 2 ? "rev-a" : "rev-b"});
  auto back = unpickle_cache_index(pickle_cache_index(many));
  REQUIRE(back.size() == many.size());
  CHECK(back[2499].path == "dir/file2499");
  CHECK(back[2499].revision == "rev-a");
}

TEST_CASE("corrupt pickles are integrity errors, never crashes", "[hub][pickle]") {
  const std::string good = pickle_cache_index(python_entries());
  for (std::size_t cut = 0; cut < good.size(); cut += 7) {
    INFO(cut);
    CHECK_THROWS_AS(unpickle_cache_index(good.substr(0, cut)), ms::Error);
  }
  for (const std::string bad :
       {std::string("garbage"), std::string("\x80\x04N."), std::string("\x80\x04\x8c\x01x."),
        std::string("\x80\x04h\x09."), std::string("\x80\x04]a.")}) {
    try {
      unpickle_cache_index(bad);
      FAIL("accepted " << bad);
    } catch (const ms::Error& e) {
      CHECK(e.code() == ms::ErrorCode::kIntegrity);
    }
  }
}

TEST_CASE("the pickle reader hands persistent ids and callables to its hooks", "[core][pickle]") {
  using ms::pickle::Value;
  // CPython's protocol 2 for [S(), OrderedDict(a=1), Thing(), 1.5], S pickled by persistent_id as
  // ('storage', 'k0') and Thing reducing to print('hi', 3).
  const std::string data = from_hex(
      "80025d710028580700000073746f72616765710158020000006b3071028671035163636f6c6c656374696f6e7"
      "30a4f726465726564446963740a71042952710558010000006171064b0173635f5f6275696c74696e5f5f0a70"
      "72696e740a71075802000000686971084b0386710952710a473ff8000000000000652e");
  // Without a persistent_load hook a persistent id is an integrity error naming the source.
  try {
    ms::pickle::unpickle(data, 0, "x.pkl");
    FAIL("a persistent id was accepted without a hook");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kIntegrity);
    CHECK(std::string(e.what()).find("x.pkl: unexpected persistent id") == 0);
  }
  ms::pickle::Hooks hooks;
  std::string pid;
  hooks.persistent_load = [&](const Value& id) {
    for (const auto& item : id.items) pid += item->text + ";";
    auto v = std::make_shared<Value>(Value::Kind::kExternal);
    v->external = 42;
    return v;
  };
  std::string reduced;
  hooks.reduce = [&](const Value& callable, const Value& args) -> ms::pickle::ValuePtr {
    reduced += callable.text + "/" + std::to_string(args.items.size()) + ";";
    return nullptr;  // the defaults
  };
  const ms::pickle::Unpickled out = ms::pickle::unpickle(data, 0, "x.pkl", hooks);
  CHECK(out.end == data.size());
  CHECK(pid == "storage;k0;");
  CHECK(reduced == "collections.OrderedDict/0;__builtin__.print/2;");
  REQUIRE(out.value->kind == Value::Kind::kList);
  const auto& items = out.value->items;
  REQUIRE(items.size() == 4);
  CHECK(std::any_cast<int>(items[0]->external) == 42);
  REQUIRE(items[1]->kind == Value::Kind::kDict);  // OrderedDict() by default
  REQUIRE(items[1]->pairs.size() == 1);
  CHECK(items[1]->pairs[0].first->text == "a");
  CHECK(items[1]->pairs[0].second->i == 1);
  CHECK(items[2]->kind == Value::Kind::kObject);
  CHECK(items[2]->text == "__builtin__.print");
  CHECK(items[3]->f == 1.5);
}

TEST_CASE("the pickle writer reads back through the reader", "[core][pickle]") {
  ms::pickle::Writer w;
  w.dict({{"k", "v"}, {"n", std::string(300, 'x')}, {"again", "v"}});
  const std::string data = w.finish();
  const auto root = ms::pickle::unpickle(data).value;
  REQUIRE(root->kind == ms::pickle::Value::Kind::kDict);
  REQUIRE(root->pairs.size() == 3);
  CHECK(root->pairs[1].second->text == std::string(300, 'x'));
  // The repeated "v" is a memo reference to the same value.
  CHECK(root->pairs[0].second == root->pairs[2].second);
  for (std::size_t cut = 0; cut < data.size(); ++cut) {
    CHECK_THROWS_AS(ms::pickle::unpickle(data.substr(0, cut)), ms::Error);
  }
}

TEST_CASE("cache layout follows modelscope", "[hub][cache]") {
  RepoId id = parse_repo_id("owner/my.model");
  auto l = cache_layout(RepoType::kModel, id, fs::path("/c"), std::nullopt);
  CHECK(l.repo_dir == fs::path("/c/owner/my___model"));
  CHECK(l.temp_dir == fs::path("/c/._____temp/owner/my.model"));
  CHECK(l.lock_file == fs::path("/c/.lock/owner___my.model"));
  CHECK(l.dotted_link == fs::path("/c/owner/my.model"));
  setenv("MODELSCOPE_CACHE", "/mc", 1);
  CHECK(cache_layout(RepoType::kDataset, id, std::nullopt, std::nullopt).repo_dir ==
        fs::path("/mc/datasets/owner/my___model"));
  CHECK(cache_layout(RepoType::kModel, id, std::nullopt, std::nullopt).repo_dir ==
        fs::path("/mc/models/owner/my___model"));
  auto local = cache_layout(RepoType::kModel, id, std::nullopt, fs::path("/d"));
  CHECK(local.repo_dir == fs::path("/d"));
  CHECK(local.temp_dir == fs::path("/d/._____temp"));
  // Empty folders are none (they put the repo in the current folder).
  CHECK(cache_layout(RepoType::kModel, id, fs::path(), fs::path()).repo_dir ==
        fs::path("/mc/models/owner/my___model"));
  unsetenv("MODELSCOPE_CACHE");
  // A RepoId made by hand is checked as parse_repo_id() checks one.
  CHECK_THROWS_AS(
      cache_layout(RepoType::kModel, RepoId{"..", "../../etc"}, fs::path("/c"), std::nullopt),
      ms::Error);
}

TEST_CASE("cache layout: snapshots of modelscope 1.38+ are read where they are", "[hub][cache]") {
  TempDir dir;
  setenv("MODELSCOPE_CACHE", dir.path.c_str(), 1);
  unsetenv("MS_CACHE_LAYOUT");
  const RepoId id = parse_repo_id("owner/m.1");
  const RepoId other = parse_repo_id("owner/fresh");
  // An empty cache: the indexed layout, which every modelscope version reads.
  CHECK(cache_layout(RepoType::kModel, id, std::nullopt, std::nullopt).kind == CacheKind::kIndexed);
  // A repo Python 1.38+ cached: its snapshot folder, per revision.
  touch(dir.path / "models/owner--m.1/snapshots/master/config.json", "{}");
  auto snap = cache_layout(RepoType::kModel, id, std::nullopt, std::nullopt);
  CHECK(snap.kind == CacheKind::kSnapshots);
  CHECK(snap.repo_dir == dir.path / "models/owner--m.1/snapshots/master");
  CHECK(snap.snapshots_dir == dir.path / "models/owner--m.1/snapshots");
  CHECK(snap.temp_dir == dir.path / "models/owner--m.1/._____temp/master");
  CHECK(snap.legacy_dir.empty());
  CHECK(snap.dotted_link.empty());
  CHECK_FALSE(is_bookkeeping_path(snap, ".msc"));
  CHECK(cache_layout(RepoType::kModel, id, std::nullopt, std::nullopt, "v1.0").repo_dir ==
        dir.path / "models/owner--m.1/snapshots/v1.0");
  CHECK_THROWS_AS(cache_layout(RepoType::kModel, id, std::nullopt, std::nullopt, "../x"),
                  ms::Error);
  // A new repo in a cache that holds only snapshot folders: the user's Python writes those.
  CHECK(cache_layout(RepoType::kModel, other, std::nullopt, std::nullopt).kind ==
        CacheKind::kSnapshots);
  // Datasets have their own root.
  CHECK(cache_layout(RepoType::kDataset, other, std::nullopt, std::nullopt).kind ==
        CacheKind::kIndexed);
  // Once the cache holds an indexed folder too, a new repo gets the layout all versions read...
  touch(dir.path / "models/owner/old/.msc", "");
  CHECK(cache_layout(RepoType::kModel, other, std::nullopt, std::nullopt).kind ==
        CacheKind::kIndexed);
  // ... and an indexed folder of the repo itself wins over its snapshots, as in modelscope 1.40.
  touch(dir.path / "models/owner/m___1/config.json", "{}");
  CHECK(cache_layout(RepoType::kModel, id, std::nullopt, std::nullopt).kind == CacheKind::kIndexed);
  // MS_CACHE_LAYOUT decides when set.
  setenv("MS_CACHE_LAYOUT", "snapshots", 1);
  CHECK(cache_layout(RepoType::kModel, id, std::nullopt, std::nullopt).kind ==
        CacheKind::kSnapshots);
  auto given = cache_layout(RepoType::kModel, id, fs::path("/c"), std::nullopt);
  CHECK(given.repo_dir == fs::path("/c/models/owner--m.1/snapshots/master"));
  setenv("MS_CACHE_LAYOUT", "indexed", 1);
  CHECK(cache_layout(RepoType::kModel, other, std::nullopt, std::nullopt).kind ==
        CacheKind::kIndexed);
  setenv("MS_CACHE_LAYOUT", "hf", 1);
  try {
    cache_layout(RepoType::kModel, id, std::nullopt, std::nullopt);
    FAIL("a bad MS_CACHE_LAYOUT was accepted");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kUsage);
    CHECK(std::string(e.what()).find("MS_CACHE_LAYOUT") != std::string::npos);
  }
  unsetenv("MS_CACHE_LAYOUT");
  // --local-dir is always indexed.
  CHECK(cache_layout(RepoType::kModel, id, std::nullopt, fs::path("/d")).kind ==
        CacheKind::kIndexed);
  unsetenv("MODELSCOPE_CACHE");
}

TEST_CASE("RepoCache without an index only moves files in", "[hub][cache]") {
  TempDir dir;
  RepoCache snapshot(dir.path / "snap", false);
  touch(dir.path / "t1", "one");
  fs::create_directories(dir.path / "snap");
  snapshot.put("a/b.txt", "master", dir.path / "t1");
  CHECK(fs::is_regular_file(dir.path / "snap/a/b.txt"));
  CHECK_FALSE(fs::exists(dir.path / "snap/.msc"));
  snapshot.write_model_meta("o/n");
  snapshot.write_version("master");
  CHECK_FALSE(fs::exists(dir.path / "snap/.mdl"));
  CHECK_FALSE(fs::exists(dir.path / "snap/.mv"));
  // The hub turned folder "a" into a file: the old folder is the hub's, so it is replaced.
  touch(dir.path / "t2", "two");
  snapshot.put("a", "master", dir.path / "t2");
  CHECK(fs::is_regular_file(dir.path / "snap/a"));
}

TEST_CASE("credentials folders of each modelscope version", "[hub][cookie]") {
  TempDir dir;
  const std::string home = getenv("HOME") ? getenv("HOME") : "";
  setenv("HOME", dir.path.c_str(), 1);
  unsetenv("MODELSCOPE_CREDENTIALS_PATH");
  unsetenv("MODELSCOPE_HOME");
  unsetenv("MODELSCOPE_API_TOKEN");
  CHECK(ms::credentials_dirs() == std::vector<fs::path>{dir.path / ".modelscope/credentials"});
  setenv("MODELSCOPE_HOME", (dir.path / "cfg").c_str(), 1);
  CHECK(ms::credentials_dirs() ==
        std::vector<fs::path>{dir.path / ".modelscope/credentials", dir.path / "cfg/credentials"});
  // Set: the folder itself (1.37 and older) and the credentials/ folder in it (1.38 and newer).
  setenv("MODELSCOPE_CREDENTIALS_PATH", (dir.path / "creds").c_str(), 1);
  CHECK(ms::credentials_dirs() ==
        std::vector<fs::path>{dir.path / "creds", dir.path / "creds/credentials"});
  CHECK(ms::credentials_dir() == dir.path / "creds");
  // A file: 1.38 and newer read the folder beside it; 1.37 and older cannot use it.
  touch(dir.path / "afile", "x");
  setenv("MODELSCOPE_CREDENTIALS_PATH", (dir.path / "afile").c_str(), 1);
  CHECK(ms::credentials_dirs() == std::vector<fs::path>{dir.path / "credentials"});

  // The folder touched last holds the login, whichever client wrote it...
  setenv("MODELSCOPE_CREDENTIALS_PATH", (dir.path / "creds").c_str(), 1);
  auto jar = [](const std::string& token) {
    Cookie c;
    c.name = "m_session_id";
    c.value = token;
    c.domain = "h.x";
    c.expires = 4102444800;
    return pickle_cookie_jar({c});
  };
  touch(dir.path / "creds/cookies", jar("old"));
  touch(dir.path / "creds/credentials/cookies", jar("new"));
  const auto now = fs::file_time_type::clock::now();
  fs::last_write_time(dir.path / "creds", now - std::chrono::hours(1));
  fs::last_write_time(dir.path / "creds/credentials", now);
  CHECK(ms::active_credentials_dir() == dir.path / "creds/credentials");
  CHECK(stored_token() == "new");
  fs::last_write_time(dir.path / "creds", now + std::chrono::hours(1));
  CHECK(stored_token() == "old");
  // ... and a logout there (Python 1.40's deletes its own folder's files) is no login, although
  // another folder still has one.
  fs::remove(dir.path / "creds/cookies");
  fs::last_write_time(dir.path / "creds", now + std::chrono::hours(2));
  CHECK_FALSE(stored_token());
  unsetenv("MODELSCOPE_CREDENTIALS_PATH");
  unsetenv("MODELSCOPE_HOME");
  setenv("HOME", home.c_str(), 1);
}

TEST_CASE("RepoCache: put, revision prefixes, reload, corrupt index", "[hub][cache]") {
  TempDir dir;
  {
    RepoCache cache(dir.path);
    touch(dir.path / "tmpfile", "hello");
    cache.put("sub/a.txt", "0123456789abcdef", dir.path / "tmpfile");
    CHECK(cache.has("sub/a.txt", "0123456789abcdef", 5));
    CHECK(cache.has("sub/a.txt", "01234567", 5));                // short id
    CHECK_FALSE(cache.has("sub/a.txt", "0123456789abcdef", 6));  // not the listed size
    CHECK_FALSE(cache.has("sub/a.txt", "ffff", 5));
    CHECK_FALSE(cache.has("sub/b.txt", "0123456789abcdef", 5));
    touch(dir.path / "tmpfile", "v2");
    cache.put("sub/a.txt", "ffff", dir.path / "tmpfile");
    CHECK(cache.entries().size() == 1);
    CHECK(ms::read_file(dir.path / "sub/a.txt") == "v2");
    // The index names files below the folder only, by either way in.
    CHECK_THROWS_AS(cache.record("/etc/passwd", "ffff"), ms::Error);
    CHECK_THROWS_AS(cache.record("../escape.txt", "ffff"), ms::Error);
    CHECK(cache.entries().size() == 1);
  }
  RepoCache again(dir.path);
  REQUIRE(again.entries().size() == 1);
  CHECK(again.has("sub/a.txt", "ffff", 2));
  // Rewritten after the index (as modelscope 1.38+ writes another revision into an indexed
  // folder without indexing it): no longer vouched for, though name and size fit.
  const auto index_written = fs::last_write_time(dir.path / ".msc");
  touch(dir.path / "sub/a.txt", "v1");
  fs::last_write_time(dir.path / "sub/a.txt", index_written + std::chrono::seconds(1));
  CHECK_FALSE(again.has("sub/a.txt", "ffff", 2));
  {
    // ... and an index saved later drops the entry rather than vouch for the file anew.
    RepoCache other(dir.path);
    touch(dir.path / "tmpfile", "b");
    other.put("sub/b.txt", "ffff", dir.path / "tmpfile");
    CHECK(other.has("sub/b.txt", "ffff", 1));
    CHECK_FALSE(other.has("sub/a.txt", "ffff", 2));
    CHECK(unpickle_cache_index(ms::read_file(dir.path / ".msc")).size() == 1);
    // A file recorded with an mtime ahead of the clock: the index takes that time, so the file
    // is not checked again on every run.
    touch(dir.path / "sub/c.txt", "c");
    fs::last_write_time(dir.path / "sub/c.txt",
                        fs::file_time_type::clock::now() + std::chrono::hours(1));
    other.record("sub/c.txt", "ffff");
    CHECK(other.has("sub/c.txt", "ffff", 1));
    CHECK(RepoCache(dir.path).has("sub/c.txt", "ffff", 1));
  }
  fs::remove(dir.path / "sub/a.txt");
  CHECK_FALSE(again.has("sub/a.txt", "ffff", 2));  // indexed but gone from disk
  touch(dir.path / ".msc", "not a pickle");
  RepoCache corrupt(dir.path);
  CHECK(corrupt.entries().empty());
  CHECK(fs::exists(dir.path / ".msc.corrupted"));
  again.write_version("Revision:master,CreatedAt:5");
  CHECK(ms::read_file(dir.path / ".mv") == "Revision:master,CreatedAt:5");
  again.write_model_meta("a/b");
  CHECK(unpickle_str_dict(ms::read_file(dir.path / ".mdl")).at("id") == "a/b");
}

TEST_CASE("RepoCache: duplicate index entries collapse to one on put", "[hub][cache]") {
  TempDir dir;
  touch(dir.path / "a", "x");
  ms::write_file_atomic(dir.path / ".msc",
                        pickle_cache_index({{"a", "r1"}, {"b", "r1"}, {"a", "r2"}}));
  RepoCache cache(dir.path);
  CHECK(cache.has("a", "r1", 1));
  CHECK(cache.has("a", "r2", 1));
  touch(dir.path / "tmp", "y");
  cache.put("a", "r3", dir.path / "tmp", false);
  CHECK(cache.entries().size() == 2);
  CHECK_FALSE(cache.has("a", "r1", 1));
  CHECK_FALSE(cache.has("a", "r3", 1));  // moved in, not yet indexed: not trusted
  cache.save();
  CHECK(cache.has("a", "r3", 1));
  CHECK(unpickle_cache_index(ms::read_file(dir.path / ".msc")).size() == 2);
}

TEST_CASE("RepoCache: save keeps what another process indexed meanwhile", "[hub][cache]") {
  TempDir dir;
  ms::write_file_atomic(dir.path / ".msc", pickle_cache_index({{"old", "r1"}, {"mine", "r1"}}));
  RepoCache cache(dir.path);
  // Another client (Python's model_file_download takes no lock) rewrites the index: it adds
  // "theirs", updates "old" and drops nothing.
  ms::write_file_atomic(dir.path / ".msc",
                        pickle_cache_index({{"old", "r2"}, {"mine", "r1"}, {"theirs", "r2"}}));
  touch(dir.path / "tmp", "x");
  cache.put("mine", "r3", dir.path / "tmp");  // saves
  std::map<std::string, std::string> saved;
  for (const auto& e : unpickle_cache_index(ms::read_file(dir.path / ".msc")))
    saved[e.path] = e.revision;
  CHECK(saved ==
        std::map<std::string, std::string>{{"old", "r2"}, {"mine", "r3"}, {"theirs", "r2"}});
  CHECK(cache.entries().size() == 3);  // the merged index is this object's view from now on
}

TEST_CASE("include/exclude behave like Python's fnmatch filter", "[hub][patterns]") {
  CHECK(path_matches("a/b/c.json", "*.json"));  // '*' crosses '/'
  CHECK(path_matches("data/x.bin", "data/"));   // trailing '/' means the folder
  CHECK_FALSE(path_matches("data2/x.bin", "data/"));
  CHECK(path_matches("w.safetensors", "w.safe*"));
  CHECK(path_matches("a1.txt", "a[0-9].txt"));
  CHECK_FALSE(path_matches("A.txt", "a.txt"));
  CHECK(selected_by_patterns("x.bin", {}, {}));
  CHECK_FALSE(selected_by_patterns("x.bin", {"*.json"}, {}));
  CHECK_FALSE(selected_by_patterns("x.json", {"*.json"}, {"x*"}));  // exclude wins
  CHECK(selected_by_patterns("y.json", {"*.json"}, {"x*"}));
}

TEST_CASE("LFS rule: over 1 MiB or an LFS suffix", "[hub][upload]") {
  CHECK(is_lfs_file("w.safetensors", 10));
  CHECK(is_lfs_file("a.txt", (1u << 20) + 1));
  CHECK_FALSE(is_lfs_file("a.txt", 1u << 20));
  CHECK_FALSE(is_lfs_file("config.json", 100));
}

TEST_CASE("upload walk: sorted repo paths, skips .git, rejects links leading outside",
          "[hub][upload]") {
  TempDir dir;
  const fs::path root = dir.path / "model";
  touch(root / "b.txt", "b");
  touch(root / "sub/a.bin", "a");
  touch(root / ".git/HEAD", "x");
  touch(root / "empty", "");
  UploadOptions o;
  o.local_path = root;
  auto files = collect_upload_files(o);
  REQUIRE(files.size() == 3);
  CHECK(files[0].second == "b.txt");
  CHECK(files[1].second == "empty");
  CHECK(files[2].second == "sub/a.bin");
  o.path_in_repo = "pre/";
  CHECK(collect_upload_files(o)[0].second == "pre/b.txt");
  o.path_in_repo = "../x";
  CHECK_THROWS_AS(collect_upload_files(o), ms::Error);
  o.path_in_repo = "";
  o.exclude = {"*.bin"};
  CHECK(collect_upload_files(o).size() == 2);
  o.exclude.clear();
  touch(dir.path / "secret", "s");
  fs::create_symlink(dir.path / "secret", root / "leak");
  try {
    collect_upload_files(o);
    FAIL("a link leading outside was accepted");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kUsage);
    CHECK(std::string(e.what()).find("leak") != std::string::npos);
  }
  fs::remove(root / "leak");
  fs::create_symlink(root / "b.txt", root / "inside-link");
  CHECK(collect_upload_files(o).size() == 4);
  o.local_path = dir.path / "missing";
  CHECK_THROWS_AS(collect_upload_files(o), ms::Error);
}

// requests.cookies.RequestsCookieJar pickled by CPython 3.11 (requests 2.x), as Python's
// `modelscope login` stores it: m_session_id valid until 2100, and one that expired in 1970.
const char* kCookieJar =
    "8004952e030000000000008c1072657175657374732e636f6f6b696573948c115265717565737473436f6f6b69654a"
    "61"
    "729493942981947d94288c075f706f6c696379948c0e687474702e636f6f6b69656a6172948c1344656661756c7443"
    "6f"
    "6f6b6965506f6c6963799493942981947d94288c086e6574736361706594888c077266633239363594898c13726663"
    "32"
    "3130395f61735f6e65747363617065944e8c0c686964655f636f6f6b69653294898c0d7374726963745f646f6d6169"
    "6e"
    "94898c1b7374726963745f726663323936355f756e76657269666961626c6594888c167374726963745f6e735f756e"
    "76"
    "657269666961626c6594898c107374726963745f6e735f646f6d61696e944b008c1c7374726963745f6e735f736574"
    "5f"
    "696e697469616c5f646f6c6c617294898c127374726963745f6e735f7365745f7061746894898c107365637572655f"
    "70"
    "726f746f636f6c73948c056874747073948c037773739486948c105f626c6f636b65645f646f6d61696e7394298c10"
    "5f"
    "616c6c6f7765645f646f6d61696e73944e75628c085f636f6f6b696573947d94288c05782e6f7267947d948c012f94"
    "7d"
    "948c056f746865729468068c06436f6f6b69659493942981947d94288c0776657273696f6e944b008c046e616d6594"
    "68"
    "218c0576616c7565948c037a7a7a948c04706f7274944e8c0e706f72745f73706563696669656494898c06646f6d61"
    "69"
    "6e94681d8c10646f6d61696e5f73706563696669656494888c12646f6d61696e5f696e697469616c5f646f7494898c"
    "04"
    "7061746894681f8c0e706174685f73706563696669656494888c0673656375726594898c0765787069726573944e8c"
    "07"
    "6469736361726494888c07636f6d6d656e74944e8c0b636f6d6d656e745f75726c944e8c077266633231303994898c"
    "05"
    "5f72657374947d948c08487474704f6e6c79944e73756273738c093132372e302e302e31947d94681f7d948c0c6d5f"
    "73"
    "657373696f6e5f69649468232981947d942868264b006827683d68288c0b6d732d544f4b454e31323394682a4e682b"
    "89"
    "682c683a682d88682e89682f681f68308868318968328a05005786f40068338868344e68354e68368968377d946839"
    "4e"
    "73756273737575622e";
const char* kExpiredCookieJar =
    "800495be020000000000008c1072657175657374732e636f6f6b696573948c115265717565737473436f6f6b69654a"
    "61"
    "729493942981947d94288c075f706f6c696379948c0e687474702e636f6f6b69656a6172948c1344656661756c7443"
    "6f"
    "6f6b6965506f6c6963799493942981947d94288c086e6574736361706594888c077266633239363594898c13726663"
    "32"
    "3130395f61735f6e65747363617065944e8c0c686964655f636f6f6b69653294898c0d7374726963745f646f6d6169"
    "6e"
    "94898c1b7374726963745f726663323936355f756e76657269666961626c6594888c167374726963745f6e735f756e"
    "76"
    "657269666961626c6594898c107374726963745f6e735f646f6d61696e944b008c1c7374726963745f6e735f736574"
    "5f"
    "696e697469616c5f646f6c6c617294898c127374726963745f6e735f7365745f7061746894898c107365637572655f"
    "70"
    "726f746f636f6c73948c056874747073948c037773739486948c105f626c6f636b65645f646f6d61696e7394298c10"
    "5f"
    "616c6c6f7765645f646f6d61696e73944e75628c085f636f6f6b696573947d948c093132372e302e302e31947d948c"
    "01"
    "2f947d948c0c6d5f73657373696f6e5f69649468068c06436f6f6b69659493942981947d94288c0776657273696f6e"
    "94"
    "4b008c046e616d659468218c0576616c7565948c036f6c64948c04706f7274944e8c0e706f72745f73706563696669"
    "65"
    "6494898c06646f6d61696e94681d8c10646f6d61696e5f73706563696669656494888c12646f6d61696e5f696e6974"
    "69"
    "616c5f646f7494898c047061746894681f8c0e706174685f73706563696669656494888c0673656375726594898c07"
    "65"
    "787069726573944de8038c076469736361726494888c07636f6d6d656e74944e8c0b636f6d6d656e745f75726c944e"
    "8c"
    "077266633231303994898c055f72657374947d948c08487474704f6e6c79944e73756273737375622e";

TEST_CASE("the m_session_id cookie is found in Python's pickled cookie jar", "[hub][pickle]") {
  CHECK(find_pickled_cookie(from_hex(kCookieJar), "m_session_id", 1700000000) == "ms-TOKEN123");
  CHECK(find_pickled_cookie(from_hex(kCookieJar), "other", 1700000000) == "zzz");
  CHECK_FALSE(find_pickled_cookie(from_hex(kCookieJar), "missing", 1700000000));
  CHECK_FALSE(find_pickled_cookie(from_hex(kExpiredCookieJar), "m_session_id", 1700000000));
  const std::string jar = from_hex(kCookieJar);
  for (std::size_t cut = 0; cut < jar.size(); cut += 13) {
    INFO(cut);
    CHECK_THROWS_AS(find_pickled_cookie(jar.substr(0, cut), "m_session_id", 0), ms::Error);
  }
}

TEST_CASE("the cookie jar ms pickles reads back through find_pickled_cookie", "[hub][pickle]") {
  Cookie login;
  login.name = "m_session_id";
  login.value = "ms-TOKEN";
  login.domain = "127.0.0.1";
  login.http_only = true;
  login.expires = 1800000000;
  Cookie other = login;
  other.name = "other";
  other.value = "zzz";
  other.domain = ".example.com";
  other.expires.reset();  // a session cookie never expires for the reader
  const std::string jar = pickle_cookie_jar({login, other});
  // Protocol 4, and only the opcodes pickle.load needs with the standard library and requests.
  CHECK(jar.substr(0, 2) == std::string("\x80\x04", 2));
  CHECK(jar.find("requests.cookies") != std::string::npos);
  CHECK(jar.find("RequestsCookieJar") != std::string::npos);
  CHECK(jar.back() == '.');
  CHECK(find_pickled_cookie(jar, "m_session_id", 1700000000) == "ms-TOKEN");
  CHECK_FALSE(find_pickled_cookie(jar, "m_session_id", 1800000000));  // expired at `expires`
  CHECK(find_pickled_cookie(jar, "other", 2000000000) == "zzz");
  CHECK_FALSE(find_pickled_cookie(jar, "missing", 0));

  // Expiries past 2038 take LONG1; negative and small ones the short integer forms.
  for (std::int64_t expires : {std::int64_t{4102444800}, std::int64_t{1} << 40, std::int64_t{70000},
                               std::int64_t{300}, std::int64_t{5}}) {
    INFO(expires);
    login.expires = expires;
    const std::string one = pickle_cookie_jar({login});
    CHECK(find_pickled_cookie(one, "m_session_id", expires - 1) == "ms-TOKEN");
    CHECK_FALSE(find_pickled_cookie(one, "m_session_id", expires));
  }
  // An empty jar is still a jar (Python reads it as "not logged in").
  CHECK_FALSE(find_pickled_cookie(pickle_cookie_jar({}), "m_session_id", 0));
  // Damaged copies are errors, never crashes.
  for (std::size_t cut = 0; cut < jar.size(); cut += 7) {
    INFO(cut);
    CHECK_THROWS_AS(find_pickled_cookie(jar.substr(0, cut), "m_session_id", 0), ms::Error);
  }
}

TEST_CASE("Set-Cookie headers become cookies as Python's requests keeps them", "[hub][cookie]") {
  CHECK(cookie_request_host("http://127.0.0.1:8080/api") == "127.0.0.1");
  CHECK(cookie_request_host("https://WWW.ModelScope.cn") == "www.modelscope.cn");
  CHECK(cookie_request_host("http://localhost:9000") == "localhost.local");
  CHECK(cookie_request_host("http://u:p@hub.example:1/x?y") == "hub.example");
  CHECK(cookie_request_host("http://[::1]:8080/") == "[::1].local");

  // What `ms hub serve` sends.
  auto c = parse_set_cookie("m_session_id=ms-abc; Path=/; HttpOnly; Max-Age=2592000",
                            "http://127.0.0.1:5000", 1000);
  REQUIRE(c);
  CHECK(c->name == "m_session_id");
  CHECK(c->value == "ms-abc");
  CHECK(c->domain == "127.0.0.1");
  CHECK_FALSE(c->domain_specified);
  CHECK(c->path == "/");
  CHECK(c->http_only);
  CHECK_FALSE(c->secure);
  CHECK(c->expires == 1000 + 2592000);

  // A domain cookie with a date; Max-Age wins over Expires in either order.
  c = parse_set_cookie(
      "m_session_id=v; Domain=ModelScope.cn; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Secure",
      "https://www.modelscope.cn", 0);
  REQUIRE(c);
  CHECK(c->domain == ".modelscope.cn");
  CHECK(c->domain_specified);
  CHECK_FALSE(c->domain_initial_dot);
  CHECK(c->secure);
  CHECK(c->expires == 2139722880);
  c = parse_set_cookie("a=b; Max-Age=10; expires=Wed, 21-Oct-2037 07:28:00 GMT", "http://h.x", 5);
  REQUIRE(c);
  CHECK(c->expires == 15);
  c = parse_set_cookie("a=b; Expires=Wednesday, 21-Oct-37 07:28:00 GMT", "http://h.x", 5);
  REQUIRE(c);
  CHECK(c->expires == 2139722880);

  // Bad attributes are ignored, not fatal: a foreign Domain, a relative Path, junk dates.
  c = parse_set_cookie("a=; Domain=.other.org; Path=rel; Max-Age=soon; Expires=never", "http://h.x",
                       0);
  REQUIRE(c);
  CHECK(c->value.empty());
  CHECK(c->domain == "h.x");
  CHECK(c->path == "/");
  CHECK_FALSE(c->expires);
  CHECK_FALSE(parse_set_cookie("", "http://h.x", 0));
  CHECK_FALSE(parse_set_cookie("novalue; Path=/", "http://h.x", 0));
  CHECK_FALSE(parse_set_cookie("=x", "http://h.x", 0));
}

TEST_CASE("hostile Set-Cookie attributes: huge Max-Age saturates, empty Domain is ignored",
          "[hub][cookie]") {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  // now + Max-Age used to overflow (UB) into the past, making the login look expired at once.
  for (const char* age : {"9223372036854775807", "99999999999999999999999"}) {
    INFO(age);
    auto c = parse_set_cookie(std::string("a=b; Max-Age=") + age, "http://h.x", 1700000000);
    REQUIRE(c);
    CHECK(c->expires == kMax);
    CHECK(find_pickled_cookie(pickle_cookie_jar({*c}), "a", 1700000000) == "b");
  }
  auto c = parse_set_cookie("a=b; Max-Age=-5", "http://h.x", 100);
  REQUIRE(c);
  CHECK(c->expires == 95);
  // Domain="" used to call front() on an empty string.
  c = parse_set_cookie("a=b; Domain=\"\"", "http://h.x", 0);
  REQUIRE(c);
  CHECK(c->domain == "h.x");
  CHECK_FALSE(c->domain_specified);
  // Bytes >= 0x80 are Latin-1, as Python's http.client reads headers: the pickle stays UTF-8.
  c = parse_set_cookie("a=caf\xe9\xff", "http://h.x", 0);
  REQUIRE(c);
  CHECK(c->value == "caf\xc3\xa9\xc3\xbf");
  CHECK(find_pickled_cookie(pickle_cookie_jar({*c}), "a", 0) == "caf\xc3\xa9\xc3\xbf");
}

TEST_CASE("hostile cookie pickles: shared, self-referencing and deeply nested containers",
          "[hub][pickle]") {
  // 200 lists, each holding the previous one twice through the memo: 2^200 paths for a naive
  // search, a few hundred bytes of file.
  std::string shared = "\x80\x04(]\x94";
  for (int k = 1; k < 200; ++k) {
    shared += "]\x94(h";
    shared += static_cast<char>(k - 1);
    shared += 'h';
    shared += static_cast<char>(k - 1);
    shared += 'e';
  }
  shared += "t.";
  CHECK_FALSE(find_pickled_cookie(shared, "m_session_id", 0));
  // A list appended to itself: a reference cycle, refused (the shared_ptr cycle would never be
  // freed; LeakSanitizer found it) rather than searched.
  CHECK_THROWS_WITH(find_pickled_cookie(std::string("\x80\x04]\x94h\x00"
                                                    "a.",
                                                    8),
                                        "x", 0),
                    Catch::Contains("reference cycle"));
  // BUILD of a dict with itself as state links nothing (only objects take a dict state).
  CHECK_FALSE(find_pickled_cookie(std::string("\x80\x04}\x94h\x00"
                                              "b.",
                                              8),
                                  "x", 0));
  // Lists nested a million deep (2 MB): freeing them recursively overflowed the stack.
  const std::size_t depth = 1000000;
  const std::string deep = "\x80\x04" + std::string(depth, ']') + std::string(depth - 1, 'a') + ".";
  CHECK_FALSE(find_pickled_cookie(deep, "m_session_id", 0));
  CHECK_THROWS_AS(unpickle_cache_index(deep), ms::Error);
}

TEST_CASE("a corrupt stored login is warned about, and the legacy file still works",
          "[hub][cookie]") {
  TempDir dir;
  setenv("MODELSCOPE_CREDENTIALS_PATH", dir.path.c_str(), 1);
  CHECK_FALSE(stored_token());
  touch(dir.path / "cookies", "\x80\x04garbage");
  CHECK_FALSE(stored_token());
  touch(dir.path / "ms_session_id", "ms-legacy\n");
  CHECK(stored_token() == "ms-legacy");
  Cookie login;
  login.name = "m_session_id";
  login.value = "ms-jar";
  login.domain = "h.x";
  login.expires = 4102444800;
  touch(dir.path / "cookies", pickle_cookie_jar({login}));
  CHECK(stored_token() == "ms-jar");  // the jar wins over the legacy file
  login.expires = 1000;
  touch(dir.path / "cookies", pickle_cookie_jar({login}));
  CHECK_FALSE(stored_token());  // an expired login is no login, as in Python
  unsetenv("MODELSCOPE_CREDENTIALS_PATH");
}

TEST_CASE("download settings from the environment apply to every snapshot_download",
          "[hub][settings]") {
  unsetenv("MS_DOWNLOAD_PARTS");
  CHECK(ms::download_parts() == 0);
  setenv("MS_DOWNLOAD_PARTS", "0", 1);  // out of range (1-1024): said, not taken for 1
  CHECK_THROWS_AS(ms::download_parts(), ms::Error);
  setenv("MS_DOWNLOAD_PARTS", "6", 1);
  CHECK(ms::download_parts() == 6);
  unsetenv("MS_DOWNLOAD_PARTS");

  // A caller that never asks for offline still stays off the network with MODELSCOPE_OFFLINE=1:
  // nothing listens on port 1, so a network call would be a kNetwork error, not kNotFound.
  TempDir dir;
  DownloadOptions options;
  options.repo = parse_repo_id("alice/not-cached");
  options.cache_dir = dir.path;
  HubOptions hub;
  hub.endpoint = "http://127.0.0.1:1";
  hub.max_attempts = 1;
  setenv("MODELSCOPE_OFFLINE", "1", 1);
  try {
    snapshot_download(options, hub);
    FAIL("an uncached repo was served offline");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kNotFound);
  }
  unsetenv("MODELSCOPE_OFFLINE");
  try {
    snapshot_download(options, hub);
    FAIL("a download from a closed port succeeded");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kNetwork);
  }
}

TEST_CASE("tuning variables are whole numbers in range, or an error naming them", "[hub][env]") {
  setenv("MS_HUB_RETRIES", "3", 1);
  setenv("MS_HUB_STALL_TIMEOUT", "45", 1);
  ms::hub::HubOptions o = ms::hub::resolve_hub_options(std::string("http://127.0.0.1:1"), "t");
  CHECK(o.max_attempts == 3);
  CHECK(o.stall_timeout_s == 45);
  // atoi() took "abc" for 0 (then 1 try), "1m" for 1 second.
  for (const char* bad : {"abc", "1m", "0", "-2", "1e3", " 3", "99999999999999999999"}) {
    setenv("MS_HUB_STALL_TIMEOUT", bad, 1);
    try {
      ms::hub::resolve_hub_options(std::string("http://127.0.0.1:1"), "t");
      FAIL("accepted " << bad);
    } catch (const ms::Error& e) {
      CHECK(e.code() == ms::ErrorCode::kUsage);
      CHECK(std::string(e.what()).find("MS_HUB_STALL_TIMEOUT") != std::string::npos);
    }
  }
  unsetenv("MS_HUB_STALL_TIMEOUT");
  unsetenv("MS_HUB_RETRIES");
  // MS_HASH_THREAD is 1 or 0: "yes" silently turned threaded hashing off.
  for (const char* bad : {"yes", "true", "2"}) {
    setenv("MS_HASH_THREAD", bad, 1);
    CHECK_THROWS_AS(ms::hub::resolve_hub_options(std::string("http://127.0.0.1:1"), "t"),
                    ms::Error);
  }
  setenv("MS_HASH_THREAD", "0", 1);
  CHECK_NOTHROW(ms::hub::resolve_hub_options(std::string("http://127.0.0.1:1"), "t"));
  unsetenv("MS_HASH_THREAD");
  setenv("MS_DOWNLOAD_PARTS", "x", 1);
  CHECK_THROWS_AS(ms::download_parts(), ms::Error);
  unsetenv("MS_DOWNLOAD_PARTS");
  CHECK(ms::download_parts() == 0);
}

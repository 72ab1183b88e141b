// Unit tests of the hub module's repo ids, path safety checks and SHA-256.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "catch.h"
#include "ms/core/error.h"
#include "ms/core/utf8.h"
#include "ms/hub/repo_id.h"
#include "ms/hub/sha256.h"
#include "ms/hub/sha256_checkpoints.h"

using namespace ms::hub;

TEST_CASE("repo ids parse OWNER/NAME and mask dots for the cache", "[hub]") {
  RepoId id = parse_repo_id("AI-ModelScope/all-MiniLM-L6-v2.1");
  CHECK(id.owner == "AI-ModelScope");
  CHECK(id.name == "all-MiniLM-L6-v2.1");
  CHECK(id.cache_name() == "all-MiniLM-L6-v2___1");
  CHECK(parse_repo_id("bert").owner == "damo");
  for (const char* bad : {"", "a/b/c", "../x", "a/..", "a b/c", "/x", "x/", "a/b\\c"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_repo_id(bad), ms::Error);
  }
}

TEST_CASE("repo ids that pass the cache-folder check never share a cache folder", "[hub]") {
  // Every id over a small alphabet, owner and name up to 4 characters: among those the check
  // lets through, each indexed folder (OWNER/NAME___) and each snapshot folder (OWNER--NAME) is
  // one id's.
  const std::string alphabet = "a-_.";
  std::vector<std::string> parts{""};
  for (std::size_t length = 1; length <= 4; ++length) {
    const std::size_t before = parts.size();
    for (std::size_t i = 0; i < before; ++i)
      if (parts[i].size() + 1 == length)
        for (char c : alphabet) parts.push_back(parts[i] + c);
  }
  std::map<std::string, std::string> indexed, snapshots;  // folder -> the id that has it
  std::size_t passed = 0, refused = 0;
  std::vector<std::string> clashes;
  for (const std::string& owner : parts) {
    for (const std::string& name : parts) {
      RepoId id;
      try {
        id = parse_repo_id(owner + "/" + name);
      } catch (const ms::Error&) {
        continue;
      }
      if (!cache_folder_ambiguity(id).empty()) {
        ++refused;
        continue;
      }
      ++passed;
      const auto [a, fresh_indexed] = indexed.emplace(id.owner + "/" + id.cache_name(), id.str());
      if (!fresh_indexed) clashes.push_back(id.str() + " and " + a->second);
      const auto [b, fresh_snapshot] = snapshots.emplace(id.owner + "--" + id.name, id.str());
      if (!fresh_snapshot) clashes.push_back(id.str() + " and " + b->second);
    }
  }
  CHECK(clashes == std::vector<std::string>{});
  CHECK(passed > 1000);
  CHECK(refused > 1000);
  // The pairs that met in one folder.
  for (const char* ambiguous : {"a/x___y", "a/x_.y", "a/x._y", "a--b/c", "a-/b"})
    CHECK_FALSE(cache_folder_ambiguity(parse_repo_id(ambiguous)).empty());
  for (const char* fine : {"a/x.y", "a/b--c", "AI-ModelScope/all-MiniLM-L6-v2.1", "a/x__y"})
    CHECK(cache_folder_ambiguity(parse_repo_id(fine)).empty());
}

TEST_CASE("repo paths reject traversal, absolute paths, backslashes and NUL", "[hub]") {
  for (const char* good :
       {"a.txt", "dir/sub/file.bin", ".gitattributes", "名字/文件.txt", "a..b"}) {
    INFO(good);
    CHECK(is_safe_repo_path(good));
  }
  for (const std::string bad :
       {std::string(""), std::string("/etc/passwd"), std::string("../x"), std::string("a/../../x"),
        std::string("a\\b"), std::string("a//b"), std::string("./a"), std::string("a/."),
        std::string("a\0b", 3), std::string("a\nb"), "d/" + std::string(256, 'x')}) {
    INFO(bad);
    CHECK_FALSE(is_safe_repo_path(bad));
    CHECK_THROWS_AS(check_repo_path(bad), ms::Error);
  }
  // git's own folder in every spelling a file system maps to it, and characters that hide or
  // reorder a name; other .git* names are ordinary files.
  CHECK(is_safe_repo_path(std::string(255, 'x') + "/" + std::string(255, 'y')));
  for (const char* good : {".gitignore", ".github/x", "my.git/a", "git", ".gitx/config"}) {
    INFO(good);
    CHECK(is_safe_repo_path(good));
  }
  for (const char* bad : {".git", ".git/config", "a/.GIT/hooks/x", ".Git", ".git./x", ".git /x",
                          "GIT~1/config", ".g\u200cit/config", "\ufeff.git/x", "a\u202eb",
                          "a\u2066b", "a\u200fb", "a\u061cb", "c1\u0085"}) {
    INFO(bad);
    CHECK_FALSE(is_safe_repo_path(bad));
    CHECK_FALSE(repo_path_problem(bad).empty());
  }
  CHECK(repo_path_problem("x/.GIT/config").find("'.GIT' names git's own folder") !=
        std::string::npos);
  CHECK(printable_path("a\u202eb\x01") == "a\\u202eb\\x01");
}

TEST_CASE("paths that differ only by Unicode normalisation are found", "[hub]") {
  CHECK(ms::to_nfd("caf\u00e9") == "cafe\u0301");
  CHECK(ms::to_nfd("\uac00") == "\u1100\u1161");  // Hangul by formula
  // Canonical ordering: dot below (class 220) before dot above (230), whatever the input order.
  CHECK(ms::to_nfd("q\u0307\u0323") == "q\u0323\u0307");
  CHECK(ms::to_nfd("\u1e0b\u0323") == "d\u0323\u0307");
  auto clash = find_normalization_clash({"a.txt", "caf\u00e9/x", "b", "cafe\u0301/x"});
  REQUIRE(clash);
  CHECK(clash->first == "caf\u00e9/x");
  CHECK(clash->second == "cafe\u0301/x");
  CHECK_FALSE(find_normalization_clash({"caf\u00e9", "cafe", "caf\u00e8", "caf\u00e9"}));
}

TEST_CASE("sha256 matches known digests", "[hub]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.update("a");
  h.update("bc");
  CHECK(h.hex_digest() == sha256_hex("abc"));
}

TEST_CASE("a moved-from or finished hasher is a usage error, not a crash", "[hub]") {
  Sha256 h;
  h.update("abc");
  Sha256 moved(std::move(h));
  CHECK_THROWS_AS(h.update("x"), ms::Error);  // NOLINT(bugprone-use-after-move): the point
  CHECK_THROWS_AS(h.hex_digest(), ms::Error);
  CHECK(moved.hex_digest() == sha256_hex("abc"));
  CHECK_THROWS_AS(moved.update("more"), ms::Error);
  CHECK_THROWS_AS(moved.hex_digest(), ms::Error);
}

TEST_CASE("a SHA-256 chain resumes from its state at a block boundary", "[hub]") {
  std::string data(3 * 64 * 1000 + 17, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + 7);
  const std::string whole = sha256_hex(data);
  for (std::size_t cut :
       {std::size_t{0}, std::size_t{64}, std::size_t{64 * 1000}, std::size_t{192000}}) {
    INFO(cut);
    Sha256 first;
    first.update(data.data(), cut);
    CHECK(first.bytes_hashed() == cut);
    Sha256 rest(first.chaining_state(), cut);
    rest.update(data.data() + cut, data.size() - cut);
    CHECK(rest.bytes_hashed() == data.size());
    CHECK(rest.hex_digest() == whole);
  }
  Sha256 odd;
  odd.update(data.data(), 100);
  CHECK_THROWS_AS(odd.chaining_state(), ms::Error);  // mid-block: there is no chaining state
  CHECK_THROWS_AS(Sha256(Sha256State{}, 100), ms::Error);
}

TEST_CASE("checkpoints are taken at every interval of a stream and prove its digest", "[hub]") {
  CHECK(sha256_checkpoint_interval(0) == 0);
  CHECK(sha256_checkpoint_interval((128u << 20) - 1) == 0);  // under two intervals: none
  CHECK(sha256_checkpoint_interval(128u << 20) == (64u << 20));
  CHECK(sha256_checkpoint_interval(std::uint64_t{2} << 30) == (128u << 20));  // 15 states
  CHECK(sha256_checkpoint_interval(std::uint64_t{100} << 30) == (std::uint64_t{8} << 30));
  // 128 MiB + 5 bytes in pieces that straddle the interval boundaries.
  const std::uint64_t size = (std::uint64_t{128} << 20) + 5;
  std::string piece(1000003, '\0');
  for (std::size_t i = 0; i < piece.size(); ++i) piece[i] = static_cast<char>(i * 7919 + 3);
  CheckpointingSha256 recorder(size);
  Sha256 plain;
  std::uint64_t fed = 0;
  while (fed < size) {
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), size - fed));
    recorder.update(piece.data(), n);
    plain.update(piece.data(), n);
    fed += n;
  }
  const std::string digest = plain.hex_digest();
  CHECK(recorder.hex_digest() == digest);
  const Sha256Checkpoints& taken = recorder.checkpoints();
  REQUIRE(taken.interval == (64u << 20));
  REQUIRE(taken.states.size() == 2);
  // The text form round-trips, and the last interval, hashed from the last state, ends in the
  // file's digest.
  const auto parsed = Sha256Checkpoints::parse(taken.to_text(), size);
  REQUIRE(parsed.has_value());
  CHECK(parsed->states == taken.states);
  Sha256 tail(parsed->states[1], 128u << 20);
  std::uint64_t at = (std::uint64_t{128} << 20) % piece.size();
  tail.update(piece.data() + at, 5);
  CHECK(tail.hex_digest() == digest);
}

TEST_CASE("malformed or ill-fitting checkpoints are refused", "[hub]") {
  const std::string state(64, 'a');
  const std::uint64_t size = (std::uint64_t{3} << 20) + 1;  // 1 MiB intervals: 3 states
  const std::string good = "1048576 " + state + " " + state + " " + state;
  CHECK(Sha256Checkpoints::parse(good, size).has_value());
  CHECK(Sha256Checkpoints::parse("  1048576   " + state + "  " + state + " " + state + " ", size));
  for (const std::string& bad : {
           std::string(), std::string("1048576"), "1048576 " + state,      // too few
           good + " " + state,                                             // too many
           "1048577 " + state + " " + state + " " + state,                 // not 1 MiB-aligned
           "0 " + state, "-1048576 " + state + " " + state + " " + state,  // no interval
           "99999999999999999999 " + state,                                // overflow
           "1048576 " + state + " " + state + " " + std::string(64, 'A'),  // upper case
           "1048576 " + state + " " + state + " " + std::string(63, 'a'),  // short state
           "1048576 " + state + " " + state + " " + std::string(63, 'a') + "g",  // not hex
       }) {
    INFO(bad);
    CHECK_FALSE(Sha256Checkpoints::parse(bad, size).has_value());
  }
  CHECK_FALSE(Sha256Checkpoints::parse(good, 0).has_value());
  CHECK_FALSE(Sha256Checkpoints::parse(good, 3u << 20).has_value());  // 2 states fit that size
}

TEST_CASE("a chain of checkpointed links proves the digest, and names the link that breaks",
          "[hub]") {
  const std::uint64_t size = (std::uint64_t{3} << 20) + 5;  // 1 MiB intervals: 4 links
  std::string data(static_cast<std::size_t>(size), '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 2654435761u >> 13);
  Sha256 plain;
  Sha256Checkpoints checkpoints;
  checkpoints.interval = 1u << 20;
  for (std::uint64_t at = 0; at < size; at += checkpoints.interval) {
    if (at > 0) checkpoints.states.push_back(plain.chaining_state());
    plain.update(data.data() + at,
                 static_cast<std::size_t>(std::min(checkpoints.interval, size - at)));
  }
  const std::string digest = plain.hex_digest();
  auto run_chain = [&](const Sha256Checkpoints* cps) {
    std::vector<Sha256Link> links = sha256_links(cps, size);
    std::uint64_t covered = 0;
    for (Sha256Link& link : links) {
      CHECK(link.from == covered);
      link.hasher.update(data.data() + link.from, static_cast<std::size_t>(link.to - link.from));
      covered = link.to;
    }
    CHECK(covered == size);
    return finish_sha256_chain(links);
  };
  const Sha256ChainResult good = run_chain(&checkpoints);
  CHECK(good.held);
  CHECK(good.digest == digest);
  const Sha256ChainResult one = run_chain(nullptr);  // no checkpoints: one link
  CHECK(one.held);
  CHECK(one.digest == digest);
  Sha256Checkpoints wrong = checkpoints;
  wrong.states[1][3] ^= 1u;
  const Sha256ChainResult broken = run_chain(&wrong);
  CHECK_FALSE(broken.held);
  CHECK(broken.digest.empty());
  CHECK(broken.bad_from == (1u << 20));  // the link that should have ended in states[1]
  CHECK(broken.bad_to == (2u << 20));
  // An incomplete link never holds.
  std::vector<Sha256Link> partial = sha256_links(&checkpoints, size);
  CHECK_FALSE(finish_sha256_chain(partial).held);
  // An interval near 2^64 cannot wrap the last link's end.
  const auto huge =
      Sha256Checkpoints::parse("9223372036854775808 " + std::string(64, 'a'), ~std::uint64_t{0});
  REQUIRE(huge.has_value());
  const std::vector<Sha256Link> far = sha256_links(&*huge, ~std::uint64_t{0});
  REQUIRE(far.size() == 2);
  CHECK(far[1].to == ~std::uint64_t{0});
}

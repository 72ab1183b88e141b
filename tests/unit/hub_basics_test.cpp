// Unit tests of the hub module's repo ids, path safety checks and SHA-256.
#include "catch.h"
#include "ms/core/error.h"
#include "ms/hub/repo_id.h"
#include "ms/hub/sha256.h"

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

TEST_CASE("repo paths reject traversal, absolute paths, backslashes and NUL", "[hub]") {
  for (const char* good :
       {"a.txt", "dir/sub/file.bin", ".gitattributes", "名字/文件.txt", "a..b"}) {
    INFO(good);
    CHECK(is_safe_repo_path(good));
  }
  for (const std::string bad :
       {std::string(""), std::string("/etc/passwd"), std::string("../x"), std::string("a/../../x"),
        std::string("a\\b"), std::string("a//b"), std::string("./a"), std::string("a/."),
        std::string("a\0b", 3), std::string("a\nb")}) {
    INFO(bad);
    CHECK_FALSE(is_safe_repo_path(bad));
    CHECK_THROWS_AS(check_repo_path(bad), ms::Error);
  }
}

TEST_CASE("sha256 matches known digests", "[hub]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.update("a");
  h.update("bc");
  CHECK(h.hex_digest() == sha256_hex("abc"));
}

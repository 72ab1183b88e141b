// Unit tests of the io module's local paths and URL handling (HTTP is covered end to end).
#include <unistd.h>

#include <filesystem>

#include "catch.h"
#include "ms/core/file.h"
#include "ms/io/resource.h"

namespace fs = std::filesystem;

TEST_CASE("read_resource reads plain paths and file:// URLs", "[io]") {
  const fs::path dir = fs::temp_directory_path() / ("ms-io-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "a b.txt";
  ms::write_file_atomic(file, "hello");
  CHECK(ms::io::read_resource(file.string()) == "hello");
  CHECK(ms::io::read_resource("file://" + (dir / "a%20b.txt").string()) == "hello");
  CHECK(ms::io::read_resource("file://localhost" + (dir / "a%20b.txt").string()) == "hello");
  ms::io::ReadOptions small;
  small.max_bytes = 3;
  CHECK_THROWS_AS(ms::io::read_resource(file.string(), small), ms::Error);
  fs::remove_all(dir);
}

TEST_CASE("URL schemes are recognised and unknown ones rejected", "[io]") {
  CHECK(ms::io::is_url("http://127.0.0.1:1/x"));
  CHECK(ms::io::is_url("file:///tmp/x"));
  CHECK_FALSE(ms::io::is_url("/tmp/x"));
  CHECK_FALSE(ms::io::is_url("relative/path.json"));
  CHECK(ms::io::scheme_of("HTTPS://example.com") == "https");
  try {
    ms::io::read_resource("ftp://example.com/x");
    FAIL("no throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kUsage);
    CHECK(std::string(e.what()).find("unsupported URL scheme 'ftp'") != std::string::npos);
  }
  CHECK_THROWS_AS(ms::io::local_path_of("file://otherhost/x"), ms::Error);
  CHECK_THROWS_AS(ms::io::local_path_of("file:///bad%zzescape"), ms::Error);
}

TEST_CASE("missing files are not-found errors naming the path", "[io]") {
  try {
    ms::io::read_resource("/nonexistent/ms/file.json");
    FAIL("no throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kNotFound);
    CHECK(std::string(e.what()).find("/nonexistent/ms/file.json") != std::string::npos);
  }
}

TEST_CASE("connection failures are network errors naming the URL", "[io]") {
  ms::io::ReadOptions quick;
  quick.connect_timeout_s = 2;
  try {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    ms::io::read_resource("http://127.0.0.1:1/config.json", quick);
    FAIL("no throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kNetwork);
    CHECK(std::string(e.what()).find("http://127.0.0.1:1/config.json") != std::string::npos);
  }
}

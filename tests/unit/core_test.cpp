// Unit tests of the core module: errors and exit codes, device specs, text helpers, atomic files.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "catch.h"
#include "ms/core/device.h"
#include "ms/core/encoding.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/core/utf8.h"
#include "temp_dir.h"

using ms::DeviceSpec;
using ms::ErrorCode;

TEST_CASE("error codes map to the documented exit codes", "[core][error]") {
  CHECK(ms::exit_code(ErrorCode::kUsage) == 2);
  CHECK(ms::exit_code(ErrorCode::kConfig) == 3);
  CHECK(ms::exit_code(ErrorCode::kNotFound) == 4);
  CHECK(ms::exit_code(ErrorCode::kNetwork) == 5);
  CHECK(ms::exit_code(ErrorCode::kMissingComponent) == 6);
  CHECK(ms::exit_code(ErrorCode::kIntegrity) == 7);
  CHECK(ms::exit_code(ErrorCode::kInternal) == 70);
  CHECK(ms::exit_code(ErrorCode::kIo) == 74);
}

TEST_CASE("MS_CHECK throws an Error with the formatted message", "[core][error]") {
  auto check = [](int value) {
    MS_CHECK(value > 0, ErrorCode::kUsage, "value must be positive, got {}", value);
  };
  CHECK_NOTHROW(check(1));
  try {
    check(-3);
    FAIL("MS_CHECK did not throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kUsage);
    CHECK(std::string(e.what()) == "value must be positive, got -3");
  }
}

TEST_CASE("MS_ASSERT reports an internal error with its location", "[core][error]") {
  try {
    MS_ASSERT(1 + 1 == 3);
    FAIL("MS_ASSERT did not throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kInternal);
    CHECK(std::string(e.what()).find("1 + 1 == 3") != std::string::npos);
    CHECK(std::string(e.what()).find("core_test.cpp") != std::string::npos);
  }
}

TEST_CASE("with_context builds the context chain, innermost first", "[core][error]") {
  try {
    ms::with_context("loading the model", [] {
      ms::with_context("reading configs/a.json", [] { ms::fail(ErrorCode::kConfig, "bad key"); });
    });
    FAIL("no throw");
  } catch (const ms::Error& e) {
    REQUIRE(e.context().size() == 2);
    CHECK(e.context()[0] == "reading configs/a.json");
    CHECK(e.context()[1] == "loading the model");
    CHECK(e.code() == ErrorCode::kConfig);
  }
  // Foreign exceptions become internal errors carrying the frame.
  try {
    ms::with_context("parsing", [] { throw std::runtime_error("boom"); });
    FAIL("no throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kInternal);
    CHECK(e.context().at(0) == "parsing");
  }
}

TEST_CASE("running out of memory is an I/O error, not a bug", "[core][error]") {
  // LibTorch's CPU allocator throws a c10::Error (a std::runtime_error), not std::bad_alloc:
  // `ms train` under `ulimit -v` exited 70 with a backtrace in its JSON message.
  const std::runtime_error cpu(
      "[enforce fail at alloc_cpu.cpp:75] data. DefaultCPUAllocator: can't allocate memory: you "
      "tried to allocate 805306368 bytes. Error code 12 (Cannot allocate memory)\nframe #0: ...");
  const std::runtime_error cuda("CUDA out of memory. Tried to allocate 20.00 MiB\nframe #0");
  for (const std::exception* e :
       {static_cast<const std::exception*>(&cpu), static_cast<const std::exception*>(&cuda)}) {
    const ms::Error mapped = ms::error_from_exception(*e);
    CHECK(mapped.code() == ErrorCode::kIo);
    CHECK(std::string(mapped.what()).rfind("out of memory: ", 0) == 0);
    CHECK(std::string(mapped.what()).find("frame #0") == std::string::npos);  // first line only
  }
  CHECK(ms::error_from_exception(std::bad_alloc()).code() == ErrorCode::kIo);
  CHECK(ms::error_from_exception(std::bad_array_new_length()).code() == ErrorCode::kInternal);
  CHECK(ms::error_from_exception(
            std::system_error(std::make_error_code(std::errc::not_enough_memory)))
            .code() == ErrorCode::kIo);
  CHECK(ms::error_from_exception(
            std::filesystem::filesystem_error(
                "cannot create", std::make_error_code(std::errc::read_only_file_system)))
            .code() == ErrorCode::kIo);
  // User text that says "out of memory" is no allocator's failure.
  CHECK(ms::error_from_exception(std::runtime_error("label 'out of memory' unknown")).code() ==
        ErrorCode::kInternal);
  CHECK(ms::error_from_exception(std::runtime_error("boom")).code() == ErrorCode::kInternal);
  CHECK(ms::error_from_exception(ms::Error(ErrorCode::kConfig, "x")).code() == ErrorCode::kConfig);
  try {
    ms::with_context("training", [] { throw std::bad_alloc(); });
    FAIL("no throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kIo);
    CHECK(e.context().at(0) == "training");
  }
}

TEST_CASE("a file that is there but unreadable is not taken for an absent one", "[core][file]") {
  namespace fs = std::filesystem;
  TempDir dir;
  dir.write("file.json", "{}");
  fs::create_directory(dir.path / "folder.json");
  fs::create_symlink("nowhere.json", dir.path / "dangling.json");
  fs::create_symlink("loop.json", dir.path / "loop.json");
  REQUIRE(::mkfifo((dir.path / "fifo.json").c_str(), 0600) == 0);
  CHECK(ms::optional_regular_file(dir.path / "file.json"));
  CHECK_FALSE(ms::optional_regular_file(dir.path / "absent.json"));
  CHECK_FALSE(ms::optional_regular_file(dir.path / "file.json" / "below.json"));
  auto code_of = [](const fs::path& p) {
    try {
      ms::optional_regular_file(p);
    } catch (const ms::Error& e) {
      CHECK(std::string(e.what()).find(p.filename().string()) != std::string::npos);
      return e.code();
    }
    return ErrorCode::kInternal;  // not thrown
  };
  CHECK(code_of(dir.path / "folder.json") == ErrorCode::kConfig);
  CHECK(code_of(dir.path / "fifo.json") == ErrorCode::kConfig);
  CHECK(code_of(dir.path / "dangling.json") == ErrorCode::kNotFound);
  CHECK(code_of(dir.path / "loop.json") == ErrorCode::kIo);
  // read_file says the same of a loop (it said "no such file").
  try {
    ms::read_file(dir.path / "loop.json");
    FAIL("no throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kIo);
    CHECK(std::string(e.what()).find("symbolic links") != std::string::npos);
  }
}

TEST_CASE("device specs parse every accepted form", "[core][device]") {
  CHECK(ms::parse_device("cpu") == DeviceSpec{DeviceSpec::Kind::kCpu, -1});
  CHECK(ms::parse_device("CPU") == DeviceSpec{DeviceSpec::Kind::kCpu, -1});
  CHECK(ms::parse_device("auto") == DeviceSpec{DeviceSpec::Kind::kAuto, -1});
  CHECK(ms::parse_device("gpu") == DeviceSpec{DeviceSpec::Kind::kCuda, -1});
  CHECK(ms::parse_device("cuda") == DeviceSpec{DeviceSpec::Kind::kCuda, -1});
  CHECK(ms::parse_device("gpu:0") == DeviceSpec{DeviceSpec::Kind::kCuda, 0});
  CHECK(ms::parse_device("cuda:3") == DeviceSpec{DeviceSpec::Kind::kCuda, 3});
  CHECK(ms::parse_device("gpu:12").to_string() == "cuda:12");
  CHECK(ms::parse_device("gpu").to_string() == "cuda");
}

TEST_CASE("bad device specs name the accepted forms", "[core][device]") {
  for (const char* bad : {"", "tpu", "gpu:", "gpu:-1", "cuda:x", "gpu:1:2", "cuda0", "cpu:0",
                          "gpu: 1", "gpu:99999"}) {
    INFO("input: '" << bad << "'");
    try {
      ms::parse_device(bad);
      FAIL("accepted");
    } catch (const ms::Error& e) {
      CHECK(e.code() == ErrorCode::kUsage);
      CHECK(e.hint().find("cpu, gpu, gpu:N, cuda, cuda:N, auto") != std::string::npos);
    }
  }
}

TEST_CASE("close matches suggest likely names", "[core][text]") {
  const std::vector<std::string> names = {"text-classification", "token-classification",
                                          "fill-mask"};
  auto matches = ms::close_matches("text-clasification", names);
  REQUIRE_FALSE(matches.empty());
  CHECK(matches.front() == "text-classification");
  CHECK(ms::close_matches("zzzzzz", names).empty());
  CHECK(ms::edit_distance("kitten", "sitting") == 3);
  CHECK(ms::split("a..b", '.') == std::vector<std::string>{"a", "", "b"});
}

TEST_CASE("lines split at LF, drop a CR before it, and a trailing newline adds none",
          "[core][text]") {
  const auto lines = ms::split_lines("a\r\n\nb\n");
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "a");
  CHECK(lines[1].empty());
  CHECK(lines[2] == "b");
  CHECK(ms::split_lines("").empty());
  CHECK(ms::split_lines("x").size() == 1);
  // An error message's gist: its first line that is not blank.
  CHECK(ms::first_line("\n  \nWait timeout\nException raised from ...") == "Wait timeout");
  CHECK(ms::first_line("one line") == "one line");
  CHECK(ms::first_line("").empty());
  CHECK(ms::ends_with("emb.npy", ".npy"));
  CHECK_FALSE(ms::ends_with("npy", ".npy"));
  CHECK(ms::ascii_lower("Emb.NPY-É") == "emb.npy-É");
}

TEST_CASE("universal lines end at LF, CRLF or a lone CR, as Python's text mode reads them",
          "[core][text]") {
  const auto lines = ms::split_universal_lines("a\rb\r\nc\n\rd\r");
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "a");
  CHECK(lines[1] == "b");
  CHECK(lines[2] == "c");
  CHECK(lines[3].empty());
  CHECK(lines[4] == "d");
  CHECK(ms::split_universal_lines("").empty());
  CHECK(ms::split_universal_lines("x\r\n").size() == 1);
}

TEST_CASE("error code names read back to their codes", "[core][error]") {
  for (const ms::ErrorCode code : {ms::ErrorCode::kUsage, ms::ErrorCode::kNotFound,
                                   ms::ErrorCode::kIntegrity, ms::ErrorCode::kInternal}) {
    CHECK(ms::error_code_named(ms::error_code_name(code)) == code);
  }
  CHECK_FALSE(ms::error_code_named("nonsense").has_value());
}

TEST_CASE("JSON text gets U+0085, U+2028 and U+2029 escaped, other text as it was",
          "[core][text]") {
  std::string json =
      "{\"t\":\"a\xE2\x80\xA8"
      "b\xE2\x80\xA9"
      "c\xC2\x85"
      "d\xE2\x80\x94"
      "e\"}";
  ms::escape_unicode_line_breaks(json);
  // The em dash (E2 80 94) shares the line separators' first two bytes and stays.
  CHECK(json ==
        "{\"t\":\"a\\u2028b\\u2029c\\u0085d\xE2\x80\x94"
        "e\"}");
  std::string plain = "{\"t\":\"\xC3\xA9\"}";
  ms::escape_unicode_line_breaks(plain);
  CHECK(plain == "{\"t\":\"\xC3\xA9\"}");
}

TEST_CASE("log sink is replaceable and filters by level", "[core][log]") {
  std::vector<std::string> seen;
  auto previous =
      ms::log::set_sink([&](ms::log::Level, std::string_view m) { seen.emplace_back(m); });
  const auto old_level = ms::log::level();
  ms::log::set_level(ms::log::Level::kInfo);
  ms::log::debug("hidden {}", 1);
  ms::log::info("shown {}", 2);
  ms::log::set_level(old_level);
  ms::log::set_sink(previous);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == "shown 2");
  CHECK_THROWS_AS(ms::log::parse_level("loud"), ms::Error);
}

TEST_CASE("a log sink that logs, throws or replaces itself does not hang or end the caller",
          "[core][log]") {
  std::vector<std::string> seen;
  auto previous = ms::log::set_sink([&](ms::log::Level, std::string_view m) {
    seen.emplace_back(m);
    if (m == "reenter") ms::log::warn("from inside the sink");  // to stderr, not a deadlock
    if (m == "throw") throw std::runtime_error("sink failed");
    if (m == "replace") ms::log::set_sink(nullptr);  // kUsage, caught like any throw
  });
  ms::log::warn("reenter");
  ms::log::warn("throw");
  ms::log::warn("replace");
  ms::log::warn("still here");
  // wrap_sink builds the new sink from the one in place, in one step.
  const auto replaced = ms::log::wrap_sink([&](ms::log::Sink inner) -> ms::log::Sink {
    return [inner](ms::log::Level l, std::string_view m) {
      inner(l, std::string("w:") + std::string(m));
    };
  });
  ms::log::warn("x");
  CHECK(static_cast<bool>(replaced));
  ms::log::set_sink(previous);
  CHECK(seen == std::vector<std::string>{"reenter", "throw", "replace", "still here", "w:x"});
}

TEST_CASE("atomic writes replace files whole and leave no temp files", "[core][file]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ms-core-test-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const fs::path target = dir / "sub" / "a.txt";
  ms::write_file_atomic(target, "first");
  ms::write_file_atomic(target, "second version", 0600);
  CHECK(ms::read_file(target) == "second version");
  CHECK((fs::status(target).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));
  // The default 0666 never opens up a file the user made private, and honours the umask.
  ms::write_file_atomic(target, "third");
  CHECK((fs::status(target).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));
  const fs::path fresh = dir / "sub" / "fresh.txt";
  const mode_t saved_umask = ::umask(027);
  CHECK(ms::current_umask() == 027);
  ms::write_file_atomic(fresh, "x");
  ::umask(saved_umask);
  CHECK((fs::status(fresh).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
  fs::remove(fresh);
  // Under umask 0 (a cache shared by several users) a new file is writable by all, as open(2)
  // and Python make it.
  ::umask(0);
  ms::write_file_atomic(fresh, "x");
  ::umask(saved_umask);
  CHECK((fs::status(fresh).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
         fs::perms::group_write | fs::perms::others_read | fs::perms::others_write));
  fs::remove(fresh);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir / "sub")) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
  // The streaming form: pieces in order; a producer that fails part-way leaves the old file and
  // no temp file.
  ms::write_file_atomic(target, [](const ms::FileSink& sink) {
    sink("stream", 6);
    sink("ed", 2);
  });
  CHECK(ms::read_file(target) == "streamed");
  CHECK_THROWS_AS(ms::write_file_atomic(target,
                                        [](const ms::FileSink& sink) {
                                          sink("partial", 7);
                                          throw std::runtime_error("producer failed");
                                        }),
                  std::runtime_error);
  CHECK(ms::read_file(target) == "streamed");
  CHECK(std::distance(fs::directory_iterator(dir / "sub"), fs::directory_iterator()) == 1);
  // What a write killed part-way leaves is found and removed; other dot files are kept.
  for (const char* name : {".a.txt.tmp.Ab3xYz", ".big.pth.tmp.000000", ".keep.tmp.short", ".lock"})
    ms::write_file_atomic(dir / "sub" / name, "x");
  CHECK(ms::remove_unfinished_writes(dir / "sub") == 2);
  CHECK(fs::exists(dir / "sub" / ".keep.tmp.short"));
  CHECK(fs::exists(dir / "sub" / ".lock"));
  CHECK_FALSE(fs::exists(dir / "sub" / ".big.pth.tmp.000000"));
  CHECK(ms::remove_unfinished_writes(dir / "missing") == 0);
  // The names uploads skip: ms's temp files and export folders, not a user's look-alikes.
  for (const char* name : {".a.txt.tmp.Ab3xYz", "..msc.tmp.Q1w2E3", ".onnx.ms-export-cTqk5J"})
    CHECK(ms::is_temp_write_name(name));
  for (const char* name : {".keep.tmp.short", "a.txt.tmp.Ab3xYz", ".tmp.Ab3xYz",
                           ".ms-export-cTqk5J", "notes.tmp.txt", ".x.ms-export-toolong"})
    CHECK_FALSE(ms::is_temp_write_name(name));
  // remove_abandoned_writes: only a dead writer's temp files of that one path. A live write holds
  // its temp file's lock, so it survives a sweep made while it runs.
  const fs::path out = dir / "sub" / "emb.npy";
  for (const char* name : {".emb.npy.tmp.Dead01", ".emb.npy.tmp.short", ".other.npy.tmp.Dead02"})
    ms::write_file_atomic(dir / "sub" / name, "x");
  std::size_t swept_during_write = 99;
  ms::write_file_atomic(out, [&](const ms::FileSink& sink) {
    sink("rows", 4);
    swept_during_write = ms::remove_abandoned_writes(out);
  });
  CHECK(swept_during_write == 1);  // .emb.npy.tmp.Dead01, not the live one
  CHECK(ms::read_file(out) == "rows");
  CHECK_FALSE(fs::exists(dir / "sub" / ".emb.npy.tmp.Dead01"));
  CHECK(fs::exists(dir / "sub" / ".emb.npy.tmp.short"));
  CHECK(fs::exists(dir / "sub" / ".other.npy.tmp.Dead02"));
  CHECK(ms::remove_abandoned_writes(out) == 0);
  // A pipe (or a device) is never replaced by a renamed file.
  const fs::path fifo = dir / "sub" / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_AS(ms::write_file_atomic(fifo, "x"), ms::Error);
  CHECK(fs::is_fifo(fifo));
  try {
    ms::read_file(dir / "missing.txt");
    FAIL("no throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kNotFound);
    CHECK(std::string(e.what()).find("missing.txt") != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("append_whole appends all or nothing", "[core][file]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ms-append-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path log = dir / "run.log.json";
  ms::append_whole(log, "line 1\n");
  ms::append_whole(log, "line 2\n");
  CHECK(ms::read_file(log) == "line 1\nline 2\n");
  // A write that fails part-way (the file size limit here; a full disk alike) leaves the old end,
  // not half a line.
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  const auto saved_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 20;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  CHECK_THROWS_AS(ms::append_whole(log, std::string(100, 'x') + "\n"), ms::Error);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, saved_handler);
  CHECK(ms::read_file(log) == "line 1\nline 2\n");
  fs::remove_all(dir);
}

TEST_CASE("write_all_at writes every byte at its offset, in pieces, and names the file on error",
          "[core][file]") {
  namespace fs = std::filesystem;
  const fs::path path =
      fs::temp_directory_path() / ("ms-core-write-" + std::to_string(::getpid()) + ".bin");
  // Longer than several pieces and not a multiple of one, after a gap left at the start.
  std::string data(3 * ms::kWritePiece + 1234, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  ms::write_all_at(fd, data.data(), data.size(), 5, path);
  ::close(fd);
  const std::string back = ms::read_file(path);
  REQUIRE(back.size() == data.size() + 5);
  CHECK(back.substr(0, 5) == std::string(5, '\0'));
  CHECK(back.substr(5) == data);
  fs::remove(path);

  const int read_only = ::open("/dev/null", O_RDONLY);
  try {
    ms::write_all_at(read_only, data.data(), 10, 0, "some/target.bin");
    FAIL("no throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kIo);
    CHECK(std::string(e.what()).find("some/target.bin") != std::string::npos);
  }
  ::close(read_only);
}

TEST_CASE("hex and base64 encode; base64 decodes strictly", "[core][encoding]") {
  CHECK(ms::hex_encode(std::string("\x01\xab\xff", 3)) == "01abff");
  for (const std::string& raw :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    const std::string text = ms::base64_encode(raw);
    CHECK(text.size() % 4 == 0);
    REQUIRE(ms::base64_decode(text).has_value());
    CHECK(*ms::base64_decode(text) == raw);
  }
  CHECK(ms::base64_encode("ab") == "YWI=");
  CHECK(*ms::base64_decode("YW\nJj") == "abc");  // line breaks are skipped
  for (const char* bad : {"YQ==YQ==", "=YQ=", "Y===", "YWJ", "YW!j"}) {
    CHECK_FALSE(ms::base64_decode(bad).has_value());
  }
}

TEST_CASE("endpoints are normalised", "[core][settings]") {
  CHECK(ms::normalize_endpoint("www.modelscope.cn") == "https://www.modelscope.cn");
  CHECK(ms::normalize_endpoint("http://127.0.0.1:8080/") == "http://127.0.0.1:8080");
  CHECK(ms::normalize_endpoint("https://hub.example") == "https://hub.example");
  CHECK(ms::normalize_endpoint("ftp://x") == "ftp://x");  // kept, so check_endpoint names it
}

TEST_CASE("endpoints other than http(s) URLs with a host are usage errors", "[core][settings]") {
  CHECK_NOTHROW(ms::check_endpoint("https://localhost:1", "--endpoint"));
  for (const char* bad : {"ftp://x", "https://", "https://:80", "http:// x"}) {
    try {
      ms::check_endpoint(bad, "--endpoint");
      FAIL("no throw for " << bad);
    } catch (const ms::Error& e) {
      CHECK(e.code() == ErrorCode::kUsage);
      CHECK(std::string(e.what()).find("--endpoint") != std::string::npos);
    }
  }
}

TEST_CASE("terminal width counts columns, not bytes", "[core][utf8]") {
  CHECK(ms::terminal_width("label") == 5);
  CHECK(ms::terminal_width("\xE4\xB8\xAD\xE6\x96\x87") == 4);  // two CJK characters
  CHECK(ms::terminal_width("e\xCC\x81") == 1);                 // e + combining acute
  CHECK(ms::terminal_width("\xC3\xBCn") == 2);                 // precomposed u-umlaut
  CHECK(ms::terminal_width("\xF0\x9F\x98\x80") == 2);          // an emoji
  CHECK(ms::terminal_width("a\xFF"
                           "b") == 3);  // an invalid byte: one column
}

// The TensorBoard event writer: CRC32C against its published vectors, the exact bytes of events
// against what TensorBoard's own protobuf classes and RecordWriter make (tensorboard 2.21.0,
// protobuf 7.36.2), and the event file as the writer lays it out. tests/e2e/test_tensorboard.py
// reads files it writes with TensorBoard itself.
#include "ms/trainer/tensorboard.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <regex>
#include <string>
#include <vector>

#include "catch.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using ms::trainer::crc32c;
using ms::trainer::masked_crc32c;

namespace {

std::string bytes(std::initializer_list<unsigned> values) {
  std::string out;
  for (unsigned v : values) out.push_back(static_cast<char>(v));
  return out;
}

std::uint32_t float_bits(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// A fresh folder, removed with what the test left in it.

// The records of a TFRecord file, each checked against its two CRCs.
std::vector<std::string> read_records(const fs::path& file) {
  const std::string data = ms::read_file(file);
  std::vector<std::string> records;
  std::size_t at = 0;
  auto u32 = [&](std::size_t pos) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(data[pos + i]);
    return v;
  };
  while (at < data.size()) {
    REQUIRE(data.size() - at >= 12);
    std::uint64_t length = 0;
    for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(data[at + i]);
    REQUIRE(u32(at + 8) == masked_crc32c(data.substr(at, 8)));
    REQUIRE(data.size() - at - 12 >= length + 4);
    records.push_back(data.substr(at + 12, length));
    REQUIRE(u32(at + 12 + length) == masked_crc32c(records.back()));
    at += 12 + length + 4;
  }
  return records;
}

}  // namespace

TEST_CASE("crc32c matches the published CRC-32C vectors", "[trainer][tensorboard]") {
  CHECK(crc32c("") == 0u);
  CHECK(crc32c("123456789") == 0xE3069283u);
  // RFC 3720 (iSCSI) appendix B.4.
  CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AAu);
  CHECK(crc32c(std::string(32, '\xff')) == 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  CHECK(crc32c(ascending) == 0x46DD794Eu);
  // TFRecord's mask, as tensorboard's masked_crc32c computes it.
  CHECK(masked_crc32c("123456789") == 0xC78AB0E5u);
}

TEST_CASE("events are the bytes TensorBoard's protobuf classes make", "[trainer][tensorboard]") {
  using ms::trainer::file_version_event;
  using ms::trainer::scalar_event;
  using ms::trainer::tfrecord;
  // RecordWriter(f).write(Event(wall_time=1700000000.5, step=42, summary=Summary(value=[
  //   Summary.Value(tag="loss", simple_value=0.25)])).SerializeToString())
  CHECK(
      tfrecord(scalar_event("loss", 0.25f, 42, 1700000000.5)) ==
      bytes({0x1a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x9b, 0xd8, 0x2d, 0x09, 0x00,
             0x00, 0x20, 0x40, 0xfc, 0x54, 0xd9, 0x41, 0x10, 0x2a, 0x2a, 0x0d, 0x0a, 0x0b, 0x0a,
             0x04, 0x6c, 0x6f, 0x73, 0x73, 0x15, 0x00, 0x00, 0x80, 0x3e, 0x86, 0x93, 0xda, 0xf7}));
  // RecordWriter(f).write(Event(wall_time=1700000000.5, file_version="brain.Event:2")...)
  CHECK(tfrecord(file_version_event(1700000000.5)) ==
        bytes({0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa3, 0x7f, 0x4b, 0x22, 0x09, 0x00,
               0x00, 0x20, 0x40, 0xfc, 0x54, 0xd9, 0x41, 0x1a, 0x0d, 0x62, 0x72, 0x61, 0x69, 0x6e,
               0x2e, 0x45, 0x76, 0x65, 0x6e, 0x74, 0x3a, 0x32, 0x2b, 0x35, 0x31, 0x10}));
  // Event(wall_time=1700000000.5, step=42, session_log=SessionLog(status=START)), from
  // tensorboard 2.21's event_pb2.
  CHECK(ms::trainer::session_start_event(42, 1700000000.5) ==
        bytes({0x09, 0x00, 0x00, 0x20, 0x40, 0xfc, 0x54, 0xd9, 0x41, 0x10, 0x2a, 0x3a, 0x02, 0x08,
               0x01}));
  // Fields at their proto3 defaults are left out, but simple_value (a oneof member) stays.
  CHECK(scalar_event("", 0.0f, 0, 0.0) ==
        bytes({0x2a, 0x07, 0x0a, 0x05, 0x15, 0x00, 0x00, 0x00, 0x00}));
  // -0.0 is not the default (protobuf compares bits), a negative step takes ten bytes, NaN is
  // written as it is: Event(wall_time=-0.0, step=-1, ... Value(tag="a", simple_value=nan)).
  CHECK(scalar_event("a", std::numeric_limits<float>::quiet_NaN(), -1, -0.0) ==
        bytes({0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x10, 0xff,
               0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x2a, 0x0a,
               0x0a, 0x08, 0x0a, 0x01, 0x61, 0x15, 0x00, 0x00, 0xc0, 0x7f}));
}

TEST_CASE("values become float32 as protobuf's float field makes them", "[trainer][tensorboard]") {
  using ms::trainer::to_float32;
  constexpr float kMax = std::numeric_limits<float>::max();
  constexpr float kInf = std::numeric_limits<float>::infinity();
  CHECK(float_bits(to_float32(0.1)) == float_bits(0.1f));
  CHECK(float_bits(to_float32(-2.5e-40)) == float_bits(-2.5e-40f));  // a subnormal
  CHECK(to_float32(1e39) == kInf);
  CHECK(to_float32(-1e39) == -kInf);
  // Past the largest float but below the midpoint to 2^128: rounds down to it; from the midpoint
  // (a tie, to the even 2^128) on: infinity.
  CHECK(to_float32(double{kMax} + std::ldexp(1.0, 102)) == kMax);
  CHECK(to_float32(-(double{kMax} + std::ldexp(1.0, 102))) == -kMax);
  CHECK(to_float32(double{kMax} + std::ldexp(1.0, 103)) == kInf);
  CHECK(to_float32(std::numeric_limits<double>::infinity()) == kInf);
  CHECK(std::isnan(to_float32(std::numeric_limits<double>::quiet_NaN())));
}

TEST_CASE("TensorboardWriter writes an event file as TensorBoard's writer does",
          "[trainer][tensorboard]") {
  using ms::trainer::file_version_event;
  using ms::trainer::scalar_event;
  TempDir tmp;
  const fs::path log_dir = tmp.path / "runs" / "exp";  // made with its parents
  fs::path file;
  {
    ms::trainer::TensorboardWriter writer(log_dir);
    file = writer.file();
    CHECK(file.parent_path() == log_dir);
    std::smatch m;
    const std::string name = file.filename().string();
    const std::regex name_pattern(R"(events\.out\.tfevents\.(\d{10})\.(.+)\.(\d+)\.(\d+))");
    REQUIRE(std::regex_match(name, m, name_pattern));
    CHECK(m[3].str() == std::to_string(::getpid()));

    // The file_version event is on disk at once; its wall time names the file.
    auto records = read_records(file);
    REQUIRE(records.size() == 1);
    double wall_time;
    REQUIRE(records[0].size() == 24);
    std::memcpy(&wall_time, records[0].data() + 1, sizeof wall_time);  // after key 0x09
    CHECK(records[0] == file_version_event(wall_time));
    CHECK(m[1].str() == fmt::format("{:010d}", static_cast<std::int64_t>(wall_time)));

    // A second writer in the process takes the next number (its seconds may differ).
    ms::trainer::TensorboardWriter second(log_dir);
    std::smatch m2;
    const std::string second_name = second.file().filename().string();
    REQUIRE(std::regex_match(second_name, m2, name_pattern));
    CHECK(m2[2].str() == m[2].str());
    CHECK(m2[3].str() == m[3].str());
    CHECK(m2[4].str() == std::to_string(std::stoull(m[4].str()) + 1));

    // Scalars wait for flush(); then they are appended in order.
    writer.add_scalar("train/loss", 0.5, 1, 100.0);
    writer.add_scalar("train/loss", 0.1, 2, 101.0);
    CHECK(read_records(file).size() == 1);
    writer.flush();
    records = read_records(file);
    REQUIRE(records.size() == 3);
    CHECK(records[1] == scalar_event("train/loss", 0.5f, 1, 100.0));
    CHECK(records[2] == scalar_event("train/loss", 0.1f, 2, 101.0));
    writer.flush();  // nothing pending: nothing written
    CHECK(read_records(file).size() == 3);

    writer.add_scalar("lr", std::numeric_limits<double>::infinity(), 3, 102.0);
  }
  // The destructor flushed the last one.
  const auto records = read_records(file);
  REQUIRE(records.size() == 4);
  CHECK(records[3] == scalar_event("lr", std::numeric_limits<float>::infinity(), 3, 102.0));
}

TEST_CASE("TensorboardWriter reports a log folder it cannot make as an I/O error",
          "[trainer][tensorboard]") {
  TempDir tmp;
  const fs::path blocker = tmp.path / "not-a-folder";
  ms::write_file_atomic(blocker, "x");
  const fs::path log_dir = blocker / "runs";
  try {
    ms::trainer::TensorboardWriter writer(log_dir);
    FAIL("a log folder under a regular file was accepted");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kIo);
    CHECK(std::string(e.what()).find(log_dir.string()) != std::string::npos);
  }
}

#include "ms/trainer/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/process.h"

namespace ms::trainer {
namespace {

constexpr std::array<std::uint32_t, 256> make_crc32c_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
    table[i] = crc;
  }
  return table;
}
constexpr auto kCrc32cTable = make_crc32c_table();

// Protobuf's wire format, for the few fields an Event of a scalar has.
enum WireType : std::uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_key(std::string& out, std::uint32_t field, WireType type) {
  put_varint(out, (static_cast<std::uint64_t>(field) << 3) | type);
}

// Little-endian whatever the host's byte order.
void put_le(std::string& out, std::uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

std::uint64_t bits_of(double value) {
  std::uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

std::uint32_t bits_of(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

void put_bytes_field(std::string& out, std::uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Event.wall_time (1): a proto3 double without presence, so left out when its bits are all zero
// (protobuf compares the bits: -0.0 is written).
void put_wall_time(std::string& out, double wall_time) {
  if (bits_of(wall_time) == 0) return;
  put_key(out, 1, kFixed64);
  put_le(out, bits_of(wall_time), 8);
}

// The number of event files this process opened: the last part of their names, as TensorBoard's
// process-wide counter.
std::atomic<std::uint64_t> files_opened{0};

}  // namespace

std::uint32_t crc32c(std::string_view data) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (const char c : data)
    crc = (crc >> 8) ^ kCrc32cTable[(crc ^ static_cast<unsigned char>(c)) & 0xFF];
  return crc ^ 0xFFFFFFFFu;
}

std::uint32_t masked_crc32c(std::string_view data) {
  const std::uint32_t crc = crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

std::string tfrecord(std::string_view data) {
  std::string record;
  record.reserve(data.size() + 16);
  put_le(record, data.size(), 8);
  put_le(record, masked_crc32c(record), 4);
  record.append(data);
  put_le(record, masked_crc32c(data), 4);
  return record;
}

std::string file_version_event(double wall_time) {
  std::string event;
  put_wall_time(event, wall_time);
  put_bytes_field(event, 3, "brain.Event:2");
  return event;
}

std::string session_start_event(std::int64_t step, double wall_time) {
  std::string session_log;  // SessionLog.status (1) = START (1)
  put_key(session_log, 1, kVarint);
  put_varint(session_log, 1);
  std::string event;
  put_wall_time(event, wall_time);
  if (step != 0) {
    put_key(event, 2, kVarint);
    put_varint(event, static_cast<std::uint64_t>(step));
  }
  put_bytes_field(event, 7, session_log);  // Event.session_log
  return event;
}

std::string scalar_event(std::string_view tag, float value, std::int64_t step, double wall_time) {
  std::string summary_value;  // Summary.Value
  if (!tag.empty()) put_bytes_field(summary_value, 1, tag);
  put_key(summary_value, 2, kFixed32);  // simple_value
  put_le(summary_value, bits_of(value), 4);
  std::string summary;  // Summary: one repeated `value` (1)
  put_bytes_field(summary, 1, summary_value);

  std::string event;
  put_wall_time(event, wall_time);
  if (step != 0) {
    put_key(event, 2, kVarint);  // negative int64s take ten bytes, as protobuf writes them
    put_varint(event, static_cast<std::uint64_t>(step));
  }
  put_bytes_field(event, 5, summary);
  return event;
}

float to_float32(double value) {
  constexpr double kMax = std::numeric_limits<float>::max();
  // Converting a finite double beyond the float range is undefined in C++; IEEE rounding (what
  // protobuf's C conversion does) gives the largest float below the midpoint between it and 2^128
  // and infinity from there (the tie goes to the even 2^128).
  if (std::isfinite(value) && std::fabs(value) > kMax) {
    const double midpoint = kMax + std::ldexp(1.0, 103);
    const float magnitude = std::fabs(value) >= midpoint ? std::numeric_limits<float>::infinity()
                                                         : static_cast<float>(kMax);
    return std::copysign(magnitude, static_cast<float>(value > 0 ? 1 : -1));
  }
  return static_cast<float>(value);
}

double wall_time_now() {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration<double>(since_epoch).count();
}

TensorboardWriter::TensorboardWriter(std::filesystem::path log_dir) {
  make_directories(log_dir, "the TensorBoard log folder");
  const double now = wall_time_now();
  file_ =
      log_dir / fmt::format("events.out.tfevents.{:010d}.{}.{}.{}", static_cast<std::int64_t>(now),
                            host_name(), ::getpid(), files_opened.fetch_add(1));
  fd_ = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(ErrorCode::kIo, "{}: cannot create: {}", file_.string(), std::strerror(errno));
  pending_ = tfrecord(file_version_event(now));
  try {
    flush();
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

TensorboardWriter::~TensorboardWriter() {
  try {
    flush();
  } catch (const Error& e) {
    log::error("TensorBoard scalars lost: {}", e.what());
  }
  ::close(fd_);
}

void TensorboardWriter::add_scalar(std::string_view tag, double value, std::int64_t step) {
  add_scalar(tag, value, step, wall_time_now());
}

void TensorboardWriter::add_scalar(std::string_view tag, double value, std::int64_t step,
                                   double wall_time) {
  pending_ += tfrecord(scalar_event(tag, to_float32(value), step, wall_time));
}

void TensorboardWriter::add_session_start(std::int64_t step) {
  pending_ += tfrecord(session_start_event(step, wall_time_now()));
}

void TensorboardWriter::flush() {
  if (pending_.empty()) return;
  write_all_at(fd_, pending_.data(), pending_.size(), size_, file_);
  size_ += pending_.size();
  pending_.clear();
}

}  // namespace ms::trainer

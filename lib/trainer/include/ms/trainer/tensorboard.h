// TensorBoard event files of scalars, byte for byte as torch.utils.tensorboard.SummaryWriter's
// add_scalar writes them (TFRecord framing, Event protos), without protobuf or LibTorch.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace ms::trainer {

/// CRC-32C (Castagnoli polynomial, reflected 0x82F63B78) of `data`: crc32c("123456789") is
/// 0xE3069283.
std::uint32_t crc32c(std::string_view data);

/// The CRC TFRecord stores: crc32c rotated right by 15 bits plus 0xa282ead8 (mod 2^32).
std::uint32_t masked_crc32c(std::string_view data);

/// One TFRecord: the length (uint64, little-endian), the masked CRC of those 8 bytes, `data`, and
/// the masked CRC of `data`.
std::string tfrecord(std::string_view data);

/// The serialized Event that opens every event file: `wall_time` and file_version
/// "brain.Event:2".
std::string file_version_event(double wall_time);

/// The serialized Event of one scalar: wall_time, step and a Summary holding one Value (tag,
/// simple_value). Fields at their proto3 default (step 0, wall_time 0, empty tag) are left out as
/// protobuf leaves them out; simple_value, a oneof member, is always written. NaN and infinities
/// are written as they are.
std::string scalar_event(std::string_view tag, float value, std::int64_t step, double wall_time);

/// The serialized Event `Event(wall_time, step, session_log=SessionLog(status=START))`.
std::string session_start_event(std::int64_t step, double wall_time);

/// The float32 that protobuf stores for a double assigned to a float field (round to nearest,
/// beyond the float range to infinity), as Python's `Summary.Value(simple_value=x)` does.
float to_float32(double value);

/// Seconds since the Unix epoch, as Python's time.time().
double wall_time_now();

/// One event file in `log_dir`, named as TensorBoard's EventFileWriter names it:
/// events.out.tfevents.<10-digit seconds>.<host name>.<pid>.<n>, n counting the files this
/// process opened from 0. Scalars are buffered and appended by flush() and at destruction; a
/// failed write is ms::Error(kIo) naming the file.
class TensorboardWriter {
 public:
  /// Creates `log_dir` if needed and the event file with its file_version event, flushed.
  explicit TensorboardWriter(std::filesystem::path log_dir);
  /// Flushes what is pending (a failure is logged: a destructor cannot throw) and closes the file.
  ~TensorboardWriter();
  TensorboardWriter(const TensorboardWriter&) = delete;
  TensorboardWriter& operator=(const TensorboardWriter&) = delete;

  /// Adds one scalar (stored as float32, as add_scalar stores it) at `step`, stamped now.
  void add_scalar(std::string_view tag, double value, std::int64_t step);
  /// Adds one scalar with the given wall time (seconds since the Unix epoch).
  void add_scalar(std::string_view tag, double value, std::int64_t step, double wall_time);
  /// Adds SessionLog START at `step` (what torch's SummaryWriter(purge_step=step) writes):
  /// TensorBoard's readers then drop the events of earlier files at `step` and after, so a
  /// resumed run (or one started over in the same folder) does not show a killed run's steps
  /// beside its own.
  void add_session_start(std::int64_t step);
  /// Appends the pending records to the file.
  void flush();
  /// The event file's path.
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
  int fd_ = -1;
  std::uint64_t size_ = 0;  // bytes written so far: where the next flush appends
  std::string pending_;     // records not yet written
};

}  // namespace ms::trainer

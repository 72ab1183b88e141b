#include "store_v2_client.h"

#if TORCH_VERSION_MAJOR < 2
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ms/core/error.h"

namespace ms::trainer {
namespace {

// TCPStore's clients put "/" before every key; so does this one, so that its keys are the ones a
// Python worker of the same run would use.
std::string prefixed(const std::string& key) { return "/" + key; }

std::vector<std::string> prefixed(const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  out.reserve(keys.size());
  for (const auto& key : keys) out.push_back(prefixed(key));
  return out;
}

}  // namespace

StoreV2Client::StoreV2Client(const std::string& host, int port, std::chrono::milliseconds timeout)
    : c10d::Store(timeout),
      wire_(host, port, StoreWire::Clock::now() + timeout, StoreProtocol::kV2) {}

StoreWire& StoreV2Client::wire(std::optional<std::chrono::milliseconds> timeout) {
  std::chrono::milliseconds wait = timeout.value_or(timeout_);
  // c10d's kNoTimeout (zero) is no deadline: a year stands for it.
  if (wait == kNoTimeout) wait = std::chrono::hours(24 * 365);
  wire_.set_deadline(StoreWire::Clock::now() + wait);
  return wire_;
}

void StoreV2Client::set(const std::string& key, const std::vector<uint8_t>& value) {
  std::lock_guard<std::mutex> lock(mutex_);
  wire().set(prefixed(key), value);
}

std::vector<uint8_t> StoreV2Client::compareSet(const std::string& key,
                                               const std::vector<uint8_t>& expected,
                                               const std::vector<uint8_t>& desired) {
  std::lock_guard<std::mutex> lock(mutex_);
  return wire().compare_set(prefixed(key), expected, desired);
}

std::vector<uint8_t> StoreV2Client::get(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  wait_locked({key}, timeout_);
  return wire().get(prefixed(key));
}

int64_t StoreV2Client::add(const std::string& key, int64_t value) {
  std::lock_guard<std::mutex> lock(mutex_);
  return wire().add(prefixed(key), value);
}

bool StoreV2Client::deleteKey(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  return wire().delete_key(prefixed(key)) > 0;
}

bool StoreV2Client::check(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mutex_);
  return wire().check(prefixed(keys));
}

int64_t StoreV2Client::getNumKeys() {
  std::lock_guard<std::mutex> lock(mutex_);
  return wire().num_keys();
}

void StoreV2Client::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void StoreV2Client::wait(const std::vector<std::string>& keys,
                         const std::chrono::milliseconds& timeout) {
  std::lock_guard<std::mutex> lock(mutex_);
  wait_locked(keys, timeout);
}

void StoreV2Client::wait_locked(const std::vector<std::string>& keys,
                                std::chrono::milliseconds timeout) {
  if (wire(timeout).wait(prefixed(keys))) return;
  // As TCPStore's message, which callers show the first line of.
  throw Error(ErrorCode::kNetwork,
              fmt::format("Socket Timeout: waited {} ms for the keys {} of the store",
                          timeout.count(), fmt::join(keys, ", ")),
              "");
}

}  // namespace ms::trainer
#endif

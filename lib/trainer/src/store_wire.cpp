#include "store_wire.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "ms/core/error.h"

namespace ms::trainer {
namespace {

// The query codes of TCPStore's QueryType: LibTorch 1.x's (TCPStore.cpp), torch 2.x's
// (TCPStoreBackend.hpp, where VALIDATE comes first and the connection must open with it).
struct QueryCodes {
  std::uint8_t set, compare_set, get, add, check, wait, num_keys, delete_key, cancel_wait;
};
constexpr QueryCodes kV1Codes{0, 1, 2, 3, 4, 5, 6, 8, 0xff};
constexpr QueryCodes kV2Codes{1, 2, 3, 4, 5, 6, 7, 8, 12};
constexpr std::uint8_t kV2Validate = 0;
constexpr std::uint32_t kV2ValidationMagic = 0x3C85F7CE;
// torch 2.x's answers to a wait: the keys are set, or the wait was cancelled.
constexpr std::uint8_t kV2StopWaiting = 0, kV2WaitCanceled = 1;
// torch 2.x's answer to a check: every key is set.
constexpr std::uint8_t kV2Ready = 0;

const QueryCodes& codes(StoreProtocol protocol) {
  return protocol == StoreProtocol::kV2 ? kV2Codes : kV1Codes;
}

// A value longer than this is a stranger's bytes (PyTorch's own stores hold addresses, counters
// and small flags).
constexpr std::uint64_t kMaxPlausibleValue = std::uint64_t{1} << 30;

// A store holds a few keys per worker: a "count" past this is a stranger's bytes.
constexpr std::int64_t kMaxPlausibleKeys = std::int64_t{1} << 32;

int milliseconds_left(StoreWire::Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - StoreWire::Clock::now());
  return static_cast<int>(std::max<std::int64_t>(0, std::min<std::int64_t>(left.count(), 1 << 30)));
}

// Connects a socket to `a` within the deadline (a host that drops packets would otherwise hold a
// blocking connect for the kernel's two minutes). The open socket, or -1 with errno set.
int connect_before(const addrinfo& a, StoreWire::Clock::time_point deadline) {
  const int fd = ::socket(a.ai_family, a.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a.ai_protocol);
  if (fd < 0) return -1;
  int error = 0;
  if (::connect(fd, a.ai_addr, a.ai_addrlen) != 0) {
    error = errno;
    if (error == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      int ready;
      do ready = ::poll(&pfd, 1, milliseconds_left(deadline));
      while (ready < 0 && errno == EINTR);
      socklen_t len = sizeof error;
      if (ready <= 0) {
        error = ETIMEDOUT;
      } else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) {
        error = errno;
      }
    }
  }
  if (error != 0) {
    ::close(fd);
    errno = error;
    return -1;
  }
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

// A listener that took the connection but sent no answer before the deadline.
Error silent_store(const std::string& where) {
  return Error(ErrorCode::kNetwork,
               fmt::format("the rendezvous at {} accepted the connection but did not answer "
                           "as a store (a TCPStore) before the timeout",
                           where),
               "MASTER_PORT may be another service's port (give the port rank 0's store "
               "listens on), or rank 0 is stopped or too busy to answer; MS_DIST_TIMEOUT "
               "sets the wait in seconds");
}

Error unresolved(const std::string& host, int gai_error) {
  return Error(ErrorCode::kNetwork,
               fmt::format("MASTER_ADDR {}: {}", host, ::gai_strerror(gai_error)),
               "MASTER_ADDR must name rank 0's host: a name every worker resolves, or an IP "
               "address");
}

}  // namespace

namespace {

using Addresses = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

// host:port's addresses; none (and `*error` set) when the name server asks to try again, which
// the caller may; a name that does not resolve is ms::Error(kNetwork) at once.
Addresses resolve(const std::string& host, int port, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0 && rc != EAI_AGAIN) throw unresolved(host, rc);
  if (rc != 0) *error = ::gai_strerror(rc);
  return Addresses(rc == 0 ? found : nullptr, &::freeaddrinfo);
}

}  // namespace

void check_host_resolves(const std::string& host, int port) {
  std::string error;
  resolve(host, port, &error);
}

bool names_this_machine(const std::string& host) {
  std::string error;
  Addresses addresses(nullptr, &::freeaddrinfo);
  try {
    addresses = resolve(host, 0, &error);
  } catch (const Error&) {
    return true;  // unknown: only a name that resolves elsewhere is known not to be here
  }
  if (!addresses) return true;
  for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const bool bound = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0;  // port 0: any free one
    ::close(fd);
    if (bound) return true;
  }
  return false;
}

StoreWire::StoreWire(const std::string& host, int port, Clock::time_point deadline,
                     StoreProtocol protocol)
    : where_(fmt::format("{}:{}", host, port)), deadline_(deadline), protocol_(protocol) {
  std::string last_error = "no address";
  // The store comes up when rank 0 gets there: a refused connection (and a name server that
  // asks to try again) is retried until the deadline, as LibTorch's client does.
  while (true) {
    const Addresses addresses = resolve(host, port, &last_error);
    for (const addrinfo* a = addresses.get(); a != nullptr && fd_ < 0; a = a->ai_next) {
      fd_ = connect_before(*a, deadline_);
      if (fd_ < 0) last_error = std::strerror(errno);
    }
    if (fd_ >= 0) break;
    if (Clock::now() >= deadline_) {
      throw Error(ErrorCode::kNetwork,
                  fmt::format("no rendezvous store answered at {} ({})", where_, last_error),
                  "check MASTER_ADDR / MASTER_PORT and that rank 0 runs; MS_DIST_TIMEOUT sets "
                  "the wait in seconds");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (protocol_ == StoreProtocol::kV2) {
    // One message, so that a 1.x store reads it in one go (and drops it on the close).
    char validation[1 + sizeof kV2ValidationMagic];
    validation[0] = static_cast<char>(kV2Validate);
    std::memcpy(validation + 1, &kV2ValidationMagic, sizeof kV2ValidationMagic);
    send_all(validation, sizeof validation);
  }
}

StoreWire::~StoreWire() {
  if (fd_ >= 0) ::close(fd_);
}

void StoreWire::send_all(const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t sent = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) {
      throw StoreClosed(ErrorCode::kNetwork,
                        fmt::format("the rendezvous at {} closed the connection: {}", where_,
                                    sent < 0 ? std::strerror(errno) : "closed"),
                        "check MASTER_ADDR / MASTER_PORT: they must name rank 0's store");
    }
    p += sent;
    n -= static_cast<std::size_t>(sent);
  }
}

bool StoreWire::recv_within(void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    pollfd pfd{fd_, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, milliseconds_left(deadline_));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return false;
    const ssize_t got = ::recv(fd_, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      throw StoreClosed(
          ErrorCode::kNetwork,
          fmt::format("the rendezvous at {} closed the connection without answering as "
                      "a store: {}",
                      where_, got < 0 ? std::strerror(errno) : "closed"),
          "check MASTER_ADDR / MASTER_PORT: they must name rank 0's store");
    }
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

void StoreWire::recv_all(void* data, std::size_t n) {
  if (!recv_within(data, n)) no_answer();
}

void StoreWire::no_answer() const { throw silent_store(where_); }

void StoreWire::send_string(const std::string& text) {
  const std::uint64_t size = text.size();
  send_all(&size, sizeof size);
  send_all(text.data(), text.size());
}

void StoreWire::send_keys(const std::vector<std::string>& keys) {
  const std::uint64_t count = keys.size();
  send_all(&count, sizeof count);
  for (const auto& key : keys) send_string(key);
}

void StoreWire::send_bytes(const std::vector<std::uint8_t>& bytes) {
  const std::uint64_t size = bytes.size();
  send_all(&size, sizeof size);
  send_all(bytes.data(), bytes.size());
}

void StoreWire::send_query(std::uint8_t v1_code, std::uint8_t v2_code) {
  const std::uint8_t code = protocol_ == StoreProtocol::kV2 ? v2_code : v1_code;
  send_all(&code, 1);
}

std::vector<std::uint8_t> StoreWire::recv_bytes() {
  std::uint64_t size = 0;
  recv_all(&size, sizeof size);
  if (size > kMaxPlausibleValue) {
    throw Error(ErrorCode::kNetwork,
                fmt::format("the store at {} answered with a value of {} bytes", where_, size),
                "MASTER_PORT may be another service's port: give the port the store listens on");
  }
  std::vector<std::uint8_t> bytes(size);
  recv_all(bytes.data(), bytes.size());
  return bytes;
}

std::int64_t StoreWire::recv_count() {
  std::int64_t value = 0;
  recv_all(&value, sizeof value);
  return value;
}

std::optional<std::int64_t> StoreWire::try_num_keys() {
  const std::uint8_t code = codes(protocol_).num_keys;
  send_all(&code, 1);
  std::int64_t count = 0;
  if (!recv_within(&count, sizeof count)) return std::nullopt;
  if (count < 0 || count > kMaxPlausibleKeys) {
    throw Error(ErrorCode::kNetwork,
                fmt::format("the service at {} is not a rendezvous store (its answer is not a "
                            "TCPStore's)",
                            where_),
                "MASTER_PORT may be another service's port: give the port rank 0's store "
                "listens on");
  }
  return count;
}

std::int64_t StoreWire::num_keys() {
  if (const auto count = try_num_keys()) return *count;
  no_answer();
}

std::int64_t StoreWire::add(const std::string& key, std::int64_t delta) {
  const std::uint8_t code = codes(protocol_).add;
  send_all(&code, 1);
  send_string(key);
  send_all(&delta, sizeof delta);
  return recv_count();
}

void StoreWire::set(const std::string& key, const std::vector<std::uint8_t>& value) {
  send_query(kV1Codes.set, kV2Codes.set);
  send_string(key);
  send_bytes(value);
}

std::vector<std::uint8_t> StoreWire::get(const std::string& key) {
  send_query(kV1Codes.get, kV2Codes.get);
  send_string(key);
  return recv_bytes();
}

std::vector<std::uint8_t> StoreWire::compare_set(const std::string& key,
                                                 const std::vector<std::uint8_t>& expected,
                                                 const std::vector<std::uint8_t>& desired) {
  send_query(kV1Codes.compare_set, kV2Codes.compare_set);
  send_string(key);
  send_bytes(expected);
  send_bytes(desired);
  return recv_bytes();
}

bool StoreWire::check(const std::vector<std::string>& keys) {
  MS_CHECK(protocol_ == StoreProtocol::kV2, ErrorCode::kInternal, "StoreWire::check speaks 2.x");
  send_query(kV1Codes.check, kV2Codes.check);
  send_keys(keys);
  std::uint8_t answer = 0;
  recv_all(&answer, 1);
  return answer == kV2Ready;
}

bool StoreWire::wait(const std::vector<std::string>& keys) {
  MS_CHECK(protocol_ == StoreProtocol::kV2, ErrorCode::kInternal, "StoreWire::wait speaks 2.x");
  send_query(kV1Codes.wait, kV2Codes.wait);
  send_keys(keys);
  std::uint8_t answer = 0;
  if (recv_within(&answer, 1)) return answer == kV2StopWaiting;
  // Cancelled, the store answers WAIT_CANCELED, after the STOP_WAITING it may have sent just
  // before: read up to it, so that the next query's answer is the next thing on the wire.
  send_query(kV1Codes.cancel_wait, kV2Codes.cancel_wait);
  set_deadline(Clock::now() + std::chrono::seconds(10));
  bool set_meanwhile = false;
  do {
    recv_all(&answer, 1);
    set_meanwhile = set_meanwhile || answer == kV2StopWaiting;
  } while (answer != kV2WaitCanceled);
  return set_meanwhile;
}

std::int64_t StoreWire::delete_key(const std::string& key) {
  send_query(kV1Codes.delete_key, kV2Codes.delete_key);
  send_string(key);
  return recv_count();
}

StoreProtocol agent_store_protocol(const std::string& host, int port,
                                   std::chrono::steady_clock::time_point deadline) {
  // Each question gets a moment to be answered: a store answers at once (the agent's is up
  // before any worker starts), and a wrong guess costs one moment.
  constexpr auto kMoment = std::chrono::seconds(2);
  while (true) {
    std::optional<StoreClosed> hung_up;
    int hang_ups = 0;
    for (const StoreProtocol protocol : {StoreProtocol::kV1, StoreProtocol::kV2}) {
      const auto until = std::min(deadline, StoreWire::Clock::now() + kMoment);
      try {
        StoreWire wire(host, port, deadline, protocol);
        wire.set_deadline(until);
        if (wire.try_num_keys()) return protocol;
      } catch (const StoreClosed& e) {
        // The other protocol's store (torch 2.x's classic one hangs up on a first message that
        // is no validation), or no store at all: the next question tells.
        hung_up = e;
        ++hang_ups;
      }
      if (StoreWire::Clock::now() >= deadline) throw silent_store(fmt::format("{}:{}", host, port));
    }
    if (hang_ups == 2) throw *hung_up;  // both questions hung up on: no store listens there
  }
}

void check_store_answers(const std::string& host, int port,
                         std::chrono::steady_clock::time_point deadline) {
  StoreWire(host, port, deadline).num_keys();
}

}  // namespace ms::trainer

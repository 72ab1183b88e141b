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

// LibTorch 1.x's TCPStore query codes (torch/csrc/distributed/c10d/TCPStore.cpp, QueryType).
constexpr std::uint8_t kQueryAdd = 3, kQueryGetNumKeys = 6;

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

StoreWire::StoreWire(const std::string& host, int port, Clock::time_point deadline)
    : where_(fmt::format("{}:{}", host, port)), deadline_(deadline) {
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
      throw Error(ErrorCode::kNetwork,
                  fmt::format("the rendezvous at {} closed the connection: {}", where_,
                              sent < 0 ? std::strerror(errno) : "closed"),
                  "check MASTER_ADDR / MASTER_PORT: they must name rank 0's store");
    }
    p += sent;
    n -= static_cast<std::size_t>(sent);
  }
}

void StoreWire::recv_all(void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    pollfd pfd{fd_, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, milliseconds_left(deadline_));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      throw Error(ErrorCode::kNetwork,
                  fmt::format("the rendezvous at {} accepted the connection but did not answer "
                              "as a store (a TCPStore) before the timeout",
                              where_),
                  "MASTER_PORT may be another service's port (give the port rank 0's store "
                  "listens on), or rank 0 is stopped or too busy to answer; MS_DIST_TIMEOUT "
                  "sets the wait in seconds");
    }
    const ssize_t got = ::recv(fd_, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      throw Error(ErrorCode::kNetwork,
                  fmt::format("the rendezvous at {} closed the connection without answering as "
                              "a store: {}",
                              where_, got < 0 ? std::strerror(errno) : "closed"),
                  "check MASTER_ADDR / MASTER_PORT: they must name rank 0's store");
    }
    p += got;
    n -= static_cast<std::size_t>(got);
  }
}

std::int64_t StoreWire::num_keys() {
  send_all(&kQueryGetNumKeys, 1);
  std::int64_t count = 0;
  recv_all(&count, sizeof count);
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

std::int64_t StoreWire::add(const std::string& key, std::int64_t delta) {
  const std::uint64_t size = key.size();
  send_all(&kQueryAdd, 1);
  send_all(&size, sizeof size);
  send_all(key.data(), key.size());
  send_all(&delta, sizeof delta);
  std::int64_t value = 0;
  recv_all(&value, sizeof value);
  return value;
}

void check_store_answers(const std::string& host, int port,
                         std::chrono::steady_clock::time_point deadline) {
  StoreWire(host, port, deadline).num_keys();
}

}  // namespace ms::trainer

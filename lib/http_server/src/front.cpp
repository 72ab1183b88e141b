// See ms/http_server/front.h. Written against cpp-httplib 0.11 (Debian 12): Server::process_request
// is protected and Server::process_and_close_socket virtual, so the connection loop is replaced
// without patching httplib; TLS keeps httplib's own loop (its TLS stream is not public) and gets
// the elastic pool only.
#include "ms/http_server/front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "coding_end_check.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/http_server/chunked_body.h"

namespace ms::http_server {
namespace {

using Clock = std::chrono::steady_clock;

// Threads beyond the warm count end after this long without work.
constexpr auto kIdleRetire = std::chrono::seconds(10);

// When the job running on this thread was queued (for a connection: when it was accepted).
thread_local std::chrono::steady_clock::time_point t_job_queued_at{};

class ElasticTaskQueue : public httplib::TaskQueue {
 public:
  ElasticTaskQueue(std::size_t warm, std::size_t max)
      : warm_(std::max<std::size_t>(warm, 1)), max_(std::max(max, warm_)) {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < warm_; ++i) start_thread_locked();
  }

  ~ElasticTaskQueue() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.emplace_back(std::move(fn), std::chrono::steady_clock::now());
    // A connection is a job that may last minutes; one waiting behind busy threads is the
    // starvation this queue exists to prevent.
    if (idle_ < jobs_.size() && threads_ < max_) start_thread_locked();
    work_.notify_one();
  }

  void shutdown() override {
    std::unique_lock<std::mutex> lock(mu_);
    shutdown_ = true;
    work_.notify_all();
    done_.wait(lock, [&] { return threads_ == 0; });
  }

 private:
  void start_thread_locked() {
    try {
      std::thread([this] { run(); }).detach();
      ++threads_;
    } catch (const std::system_error& e) {
      // Out of threads (ulimit -u, memory): the job waits for a running thread instead.
      log::warn("cannot start another worker thread ({} running): {}", threads_, e.what());
    }
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      ++idle_;
      const bool woken =
          work_.wait_for(lock, kIdleRetire, [&] { return !jobs_.empty() || shutdown_; });
      --idle_;
      if (jobs_.empty()) {
        if (shutdown_ || (!woken && threads_ > warm_)) break;
        continue;
      }
      std::function<void()> job = std::move(jobs_.front().first);
      t_job_queued_at = jobs_.front().second;
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
    if (--threads_ == 0) done_.notify_all();
  }

  const std::size_t warm_;
  const std::size_t max_;
  std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable done_;
  std::deque<std::pair<std::function<void()>, std::chrono::steady_clock::time_point>> jobs_;
  std::size_t threads_ = 0;
  std::size_t idle_ = 0;
  bool shutdown_ = false;
};

// What the connection loop learns from httplib's callbacks about the request it is serving.
// The most a request's header lines may hold together (Go's net/http allows 1 MiB; the hub's and
// the service's clients send well under 8 KiB): past it, 431.
constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
// Empty lines skipped before a request line (RFC 9112 section 2.2 asks for at least one); more
// are a client sending something other than HTTP, refused as a bad request line.
constexpr std::size_t kMaxEmptyLines = 8;

struct ConnectionNote {
  socket_t sock = INVALID_SOCKET;  // the connection's socket
  bool headers_done = false;       // httplib parsed the request line and headers
  bool close = false;              // the response said "Connection: close"
  bool http10_close = false;       // ... as every HTTP/1.0 answer not asked to keep alive does
  bool request_read = false;       // a route read the whole request (note_request_read())
  bool body_timed_out = false;     // a body read failed at FrontLimits::body_timeout_s
  bool headers_timed_out = false;  // a read of the request line or headers failed at their deadline
  int header_timeout_s = 0;        // FrontLimits::header_timeout_s, for the 408's message
  bool headers_too_large = false;  // the header lines passed kMaxHeaderBytes
  bool request_line_too_long = false;  // the request line passed kMaxRequestLineBytes unended
  std::optional<ChunkedBodyError> chunked_error;  // the chunked body was refused
  std::uint64_t body_length = 0;                  // the body's Content-Length (0: none, or chunked)
  std::uint64_t body_read = 0;     // bytes of the body read so far (a chunked one's framing too)
  bool body_chunked = false;       // the body is chunked
  bool body_chunked_done = false;  // ... and its last chunk and trailers were read
  CodingEndCheck* coding_check = nullptr;       // the body's, when it has a coding httplib decodes
  std::uint64_t decoded_body_limit = 0;         // limit_decoded_body() (0: none)
  bool decoded_body_too_large = false;          // ... and the body decoded past it
  const std::atomic<bool>* stopping = nullptr;  // the server's begin_stop() flag
};
thread_local ConnectionNote* t_note = nullptr;

bool wait_socket(socket_t sock, short events, int timeout_ms) {
  pollfd p{sock, events, 0};
  for (;;) {
    const int n = ::poll(&p, 1, std::max(timeout_ms, 0));
    if (n > 0) return true;  // ready, or POLLHUP/POLLERR: the next recv/send says which
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

void address_of(socket_t sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  const int rc = peer ? ::getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len)
                      : ::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len);
  ip.clear();
  port = 0;
  if (rc != 0) return;
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    port = ntohs(a->sin6_port);
  }
  ip = text;
}

// A socket stream whose reads, while a request's headers arrive, share one deadline: a client
// sending a byte every few seconds never trips a per-read timeout, but does trip this.
class FrontStream : public httplib::Stream {
 public:
  // `body_timed_out` is set when a read fails at the body's deadline.
  // With `ssl` (a TLS connection whose handshake is done, on a non-blocking socket) the bytes
  // are TLS records' contents.
  FrontStream(socket_t sock, SSL* ssl, int read_timeout_ms, int write_timeout_ms,
              ConnectionNote& note)
      : sock_(sock),
        ssl_(ssl),
        read_timeout_ms_(read_timeout_ms),
        write_timeout_ms_(write_timeout_ms),
        note_(note) {}

  void start_header_phase(Clock::time_point deadline) {
    header_deadline_ = deadline;
    in_headers_ = true;
    in_body_ = false;
    body_refused_ = false;
    coding_check_.reset();
    coding_cut_ = false;
    wrote_ = false;
    request_line_read_ = false;
    request_line_started_ = false;
    request_line_bytes_ = 0;  // each request's own: summed over a keep-alive connection, its
                              // ~400th short request was refused with 414
    header_bytes_ = 0;
    header_lines_.clear();
    chunked_.reset();
    chunked_out_.clear();
    chunked_out_pos_ = 0;
  }
  // The request's header lines as they came (after the request line), for checks of what
  // httplib's parse leaves out.
  std::string_view header_lines() const { return header_lines_; }
  // The headers are in; the body's reads share `deadline` (none: only the per-read timeout).
  void start_body_phase(std::optional<Clock::time_point> deadline) {
    in_headers_ = false;
    in_body_ = deadline.has_value();
    if (deadline) body_deadline_ = *deadline;
  }
  // The body declared is over the limit: httplib's reads of it end at once (it would read and
  // drop all of it before answering 413), and the connection closes after the answer.
  void refuse_body() { body_refused_ = true; }
  // The body is chunked: httplib reads it through a ChunkedBody (see chunked_body.h), its data
  // limited to `max_bytes`.
  void read_chunked_body(std::uint64_t max_bytes) { chunked_.emplace(max_bytes); }
  // The body is coded as `check` follows (see coding_end_check.h): the read that ends the body
  // fails when the coded stream has not ended there.
  void check_coding_end(std::unique_ptr<CodingEndCheck> check) {
    coding_check_ = std::move(check);
    note_.coding_check = coding_check_.get();
  }
  // Whether any byte of an answer to this request was written.
  bool wrote() const { return wrote_; }

  // Whether a next request starts within `timeout_ms` (bytes already buffered count).
  bool wait_for_request(int timeout_ms) const {
    return buffered() || wait_socket(sock_, POLLIN, timeout_ms);
  }
  // Whether bytes of a request (or the client's EOF) are there now.
  bool request_pending() const { return buffered() || wait_socket(sock_, POLLIN, 0); }
  // Whether bytes read from the socket wait here (a pipelined request, read but not parsed).
  bool holds_bytes() const { return buffered(); }

  bool is_readable() const override {
    return chunked_out_pos_ < chunked_out_.size() || buffered() ||
           wait_socket(sock_, POLLIN, read_budget_ms());
  }
  bool is_writable() const override { return wait_socket(sock_, POLLOUT, write_timeout_ms_); }

  ssize_t read(char* ptr, size_t size) override {
    // httplib keeps every header line it reads, with no limit on their count: a million short
    // ones held over 100 MB per connection (and the heap kept it).
    if (in_headers_ && header_bytes_ > kMaxHeaderBytes) {
      note_.headers_too_large = true;
      return -1;
    }
    // httplib grows its line buffer until the request line's LF comes: 200 MiB without one took
    // 200 MiB of memory. Past the limit (which httplib answers with 414 once the line is whole),
    // the line is not read on.
    if (in_headers_ && !request_line_read_ && request_line_bytes_ > kMaxRequestLineBytes) {
      note_.request_line_too_long = true;
      return -1;
    }
    if (body_refused_ && !in_headers_) return 0;
    if (coding_cut_ && !in_headers_) return -1;
    if (in_headers_ && !request_line_started_) {
      request_line_started_ = true;
      if (const ssize_t status = skip_empty_lines(); status <= 0) return status;
    }
    const ssize_t n = chunked_ ? read_chunked(ptr, size) : read_bytes(ptr, size);
    if (n > 0) {
      if (in_headers_) {
        count_header_bytes(ptr, static_cast<std::size_t>(n));
      } else {
        note_.body_read += static_cast<std::uint64_t>(n);
        // A chunked body's data is fed as read_chunked() passes it (the rest is framing).
        if (coding_check_ && !chunked_) coding_check_->feed(ptr, static_cast<std::size_t>(n));
      }
    }
    if (chunked_ && chunked_->status() == ChunkedBody::Status::kDone)
      note_.body_chunked_done = true;
    // Bytes that decode past the route's limit are withheld from httplib, which would decode
    // them into memory (see limit_decoded_body()).
    if (coding_check_ && coding_check_->too_large()) {
      note_.decoded_body_too_large = true;
      coding_cut_ = true;
      return -1;
    }
    // The body's last bytes (a chunked body's last chunk) are withheld from httplib when its coded
    // stream has not ended with them: its decoder would take the stream as whole.
    if (coding_check_ && !in_headers_ && !coding_check_->ended() &&
        (chunked_ ? note_.body_chunked_done : n > 0 && note_.body_read >= note_.body_length)) {
      coding_cut_ = true;
      return -1;
    }
    return n;
  }

  // A read of a chunked body: the canonical framing chunked_ made (all of it, the last chunk's
  // included, before anything after the body), or chunk data as it came.
  ssize_t read_chunked(char* ptr, size_t size) {
    for (;;) {
      if (chunked_out_pos_ < chunked_out_.size()) {
        const std::size_t k = std::min(size, chunked_out_.size() - chunked_out_pos_);
        std::memcpy(ptr, chunked_out_.data() + chunked_out_pos_, k);
        chunked_out_pos_ += k;
        if (chunked_out_pos_ == chunked_out_.size()) {
          chunked_out_.clear();
          chunked_out_pos_ = 0;
        }
        return static_cast<ssize_t>(k);
      }
      switch (chunked_->status()) {
        case ChunkedBody::Status::kData: {
          // The chunk's bytes only: those after it are framing again.
          const std::size_t want =
              static_cast<std::size_t>(std::min<std::uint64_t>(size, chunked_->data_left()));
          const ssize_t n = read_bytes(ptr, want);
          if (n > 0) {
            chunked_->passed_data(static_cast<std::uint64_t>(n));
            if (coding_check_) coding_check_->feed(ptr, static_cast<std::size_t>(n));
          }
          return n;
        }
        case ChunkedBody::Status::kFraming:
          if (pos_ == end_) {
            if (!await_bytes()) return -1;
            if (const ssize_t n = fill_buffer(); n <= 0) return n;
          }
          pos_ += chunked_->parse_framing(buffer_ + pos_, end_ - pos_, chunked_out_);
          break;
        case ChunkedBody::Status::kDone:
          return read_bytes(ptr, size);  // past the body (httplib reads no further)
        case ChunkedBody::Status::kBad:
        case ChunkedBody::Status::kTooLarge:
          note_.chunked_error = ChunkedBodyError{
              chunked_->status() == ChunkedBody::Status::kTooLarge, chunked_->error()};
          return -1;
      }
    }
  }

  ssize_t write(const char* ptr, size_t size) override {
    wrote_ = true;
    if (ssl_ != nullptr) return tls_write(ptr, size);
    if (!wait_socket(sock_, POLLOUT, write_timeout_ms_)) return -1;
    ssize_t n;
    do {
      n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    address_of(sock_, true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    address_of(sock_, false, ip, port);
  }
  socket_t socket() const override { return sock_; }

  // Sends TLS's close_notify, if the socket takes it now (it is non-blocking) and no fatal
  // error came first.
  void close_tls() {
    if (ssl_ == nullptr || tls_failed_) return;
    ERR_clear_error();
    SSL_shutdown(ssl_);
  }

 private:
  // Counts the header lines' bytes, those after the request line (httplib answers a request
  // line over its limit with 414 once it has read the headers, which a cap here would cut).
  void count_header_bytes(const char* data, std::size_t size) {
    if (!request_line_read_) {
      const char* newline = static_cast<const char*>(std::memchr(data, '\n', size));
      if (newline == nullptr) {
        request_line_bytes_ += size;
        return;
      }
      request_line_read_ = true;
      const char* rest = newline + 1;
      size -= static_cast<std::size_t>(rest - data);
      data = rest;
    }
    header_bytes_ += size;
    if (header_bytes_ <= kMaxHeaderBytes) header_lines_.append(data, size);
  }

  // Drops up to kMaxEmptyLines empty lines (CRLF) before a request line, as RFC 9112 section 2.2
  // has a server do: a client that ends a body with a CRLF it does not count sends its next
  // request after one, and that request was refused with 400. 1 when the request line may be
  // read, 0 at the client's close, -1 on an error or when the headers' deadline passed.
  ssize_t skip_empty_lines() {
    for (std::size_t skipped = 0; skipped < kMaxEmptyLines; ++skipped) {
      if (pos_ == end_) {
        if (!await_bytes()) {
          // A client idle after a CRLF it sent at the end of its last request is an idle
          // keep-alive connection, not one too slow with its request line.
          if (skipped > 0) note_.headers_timed_out = false;
          return -1;
        }
        if (const ssize_t n = fill_buffer(); n <= 0) return n;
      }
      if (buffer_[pos_] != '\r') return 1;
      if (pos_ + 1 == end_) {
        // The CR's LF has not come yet: the CR waits at the buffer's start while it is read.
        buffer_[0] = '\r';
        pos_ = 0;
        end_ = 1;
        if (!await_bytes()) return -1;
        const ssize_t n = recv_some(buffer_ + 1, sizeof(buffer_) - 1);
        if (n < 0) return -1;
        if (n == 0) return 1;  // httplib reads the lone CR, and refuses it
        end_ += static_cast<std::size_t>(n);
      }
      if (buffer_[pos_ + 1] != '\n') return 1;
      pos_ += 2;
    }
    return 1;
  }

  int read_budget_ms() const {
    if (!in_headers_ && !in_body_) return read_timeout_ms_;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        (in_headers_ ? header_deadline_ : body_deadline_) - Clock::now());
    return static_cast<int>(std::min<long long>(left.count(), read_timeout_ms_));
  }

  ssize_t recv_some(char* ptr, std::size_t size) {
    if (ssl_ != nullptr) return tls_read(ptr, size);
    ssize_t n;
    do {
      n = ::recv(sock_, ptr, size, 0);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  // Waits, within the phase's budget, for bytes to read. Past the headers' deadline, bytes already
  // there are still read (a client whose connection waited for a thread may have sent its whole
  // request long ago); none there ends it. A body's deadline is strict.
  bool await_bytes() {
    const int budget = read_budget_ms();
    if ((budget <= 0 && !in_headers_) ||
        (!tls_buffered() && !wait_socket(sock_, POLLIN, std::max(budget, 0)))) {
      note_wait_ran_out(budget);
      return false;
    }
    return true;
  }

  // A wait of `budget_ms` for bytes to read ran out. When the phase's deadline, not the pause
  // allowed between two bytes, bounded it, the request was too slow: its answer is 408.
  void note_wait_ran_out(int budget_ms) {
    if (budget_ms >= read_timeout_ms_) return;
    if (in_headers_) note_.headers_timed_out = true;
    if (in_body_) note_.body_timed_out = true;
  }

  // Reads what the connection has into the (empty) buffer: the count, 0 at EOF, -1 on an error.
  ssize_t fill_buffer() {
    const ssize_t n = recv_some(buffer_, sizeof(buffer_));
    if (n <= 0) return n;
    pos_ = 0;
    end_ = static_cast<std::size_t>(n);
    return n;
  }

  // Up to `size` bytes as they came: from the buffer, else from the connection. Large reads (blob
  // bodies) go straight to the caller; small ones (httplib reads request lines a byte at a time)
  // come through the buffer.
  ssize_t read_bytes(char* ptr, std::size_t size) {
    if (pos_ == end_) {
      if (!await_bytes()) return -1;
      if (size >= sizeof(buffer_)) return recv_some(ptr, size);
      if (const ssize_t n = fill_buffer(); n <= 0) return n;
    }
    const std::size_t k = std::min(size, end_ - pos_);
    std::memcpy(ptr, buffer_ + pos_, k);
    pos_ += k;
    return static_cast<ssize_t>(k);
  }

  // Decrypted bytes (or a record's bytes) TLS holds already: the socket may have none left.
  bool tls_buffered() const { return ssl_ != nullptr && SSL_has_pending(ssl_) != 0; }
  bool buffered() const { return pos_ < end_ || tls_buffered(); }

  // Runs `call` (an SSL_read or SSL_write) until it moves bytes, waiting while TLS needs the
  // socket readable (within `read_ms()`) or writable (within the write timeout). Its positive
  // result; 0 at the client's close (close_notify, or EOF without one); -1 on an error or when
  // the wait runs out. `reading`: the call is a read, whose wait may end at the request's deadline.
  template <class Call, class ReadMs>
  ssize_t tls_call(Call call, ReadMs read_ms, bool reading) {
    for (;;) {
      // SSL_get_error() reads this thread's error queue, which other OpenSSL users on it (a
      // route's libcurl fetch) may have left filled: an ordinary WANT_READ would read as fatal.
      ERR_clear_error();
      const int n = call();
      if (n > 0) return n;
      const int error = SSL_get_error(ssl_, n);
      note_fatal(error);
      if (error == SSL_ERROR_WANT_READ) {
        const int ms = read_ms();
        if (ms > 0 && wait_socket(sock_, POLLIN, ms)) continue;
        if (reading) note_wait_ran_out(ms);
      }
      if (error == SSL_ERROR_WANT_WRITE && wait_socket(sock_, POLLOUT, write_timeout_ms_)) continue;
      if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && n == 0)) return 0;
      return -1;
    }
  }

  // One SSL_read within the read budget (a key update may make it write too).
  ssize_t tls_read(char* ptr, std::size_t size) {
    const int n = static_cast<int>(std::min<std::size_t>(size, 1 << 30));
    return tls_call([&] { return SSL_read(ssl_, ptr, n); }, [this] { return read_budget_ms(); },
                    true);
  }

  // One SSL_write within the write timeout (a renegotiation may make it read too).
  ssize_t tls_write(const char* ptr, std::size_t size) {
    const int n = static_cast<int>(std::min<std::size_t>(size, 1 << 30));
    const ssize_t written = tls_call([&] { return SSL_write(ssl_, ptr, n); },
                                     [this] { return write_timeout_ms_; }, false);
    return written > 0 ? written : -1;
  }

  void note_fatal(int error) {
    tls_failed_ = tls_failed_ || error == SSL_ERROR_SYSCALL || error == SSL_ERROR_SSL;
  }

  socket_t sock_;
  SSL* ssl_;
  bool tls_failed_ = false;  // SSL_shutdown() must not follow a fatal TLS error
  int read_timeout_ms_;
  int write_timeout_ms_;
  ConnectionNote& note_;
  std::optional<ChunkedBody> chunked_;  // the request's body is chunked
  std::string chunked_out_;             // framing for httplib, from chunked_
  std::size_t chunked_out_pos_ = 0;     // how much of it httplib has read
  bool in_headers_ = false;
  bool request_line_read_ = false;
  bool request_line_started_ = false;   // the empty lines before the request line were skipped
  std::size_t header_bytes_ = 0;        // of the header lines, read so far
  std::string header_lines_;            // the header lines read so far (at most kMaxHeaderBytes)
  std::size_t request_line_bytes_ = 0;  // of the request line, while its LF has not come
  bool in_body_ = false;
  bool body_refused_ = false;                     // refuse_body()
  std::unique_ptr<CodingEndCheck> coding_check_;  // check_coding_end()
  bool coding_cut_ = false;  // the body ended before its coded stream: its reads fail
  bool wrote_ = false;       // write() was called for this request
  Clock::time_point header_deadline_{};
  Clock::time_point body_deadline_{};
  char buffer_[16384];
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
};

// Statuses after which the rest of the connection's bytes cannot be trusted to start a request
// (a bad request line or headers, a body left unread or cut short).
bool is_protocol_error(int status) {
  return status == 400 || status == 408 || status == 411 || status == 413 || status == 414 ||
         status == 431;
}

// Closes a connection the server gives up on while its client may still be sending (a header
// too long, a body not read): the response goes out with a FIN, and what the client still sends
// is read and dropped until it closes, pauses for kLingerIdle or kLingerTotal has passed (as
// nginx's lingering close). A plain close() with unread bytes sends a reset, which can destroy
// the response before the client has read it: a client streaming an upload past the limit lost
// its 413 when the server stopped reading after 1 MiB.
constexpr auto kLingerIdle = std::chrono::seconds(5);
constexpr auto kLingerTotal = std::chrono::seconds(30);

void linger_close(socket_t sock) {
  ::shutdown(sock, SHUT_WR);
  const auto deadline = Clock::now() + kLingerTotal;
  char sink[65536];
  for (;;) {
    const auto left =
        std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()),
                 std::chrono::duration_cast<std::chrono::milliseconds>(kLingerIdle));
    if (left.count() <= 0 || !wait_socket(sock, POLLIN, static_cast<int>(left.count()))) break;
    if (::recv(sock, sink, sizeof(sink), 0) <= 0) break;
  }
}

// A request whose body cannot be delimited (see framing_error()); answered by the front itself.
struct BadFraming {
  const char* message;
};

// Methods whose requests httplib reads a body for (its detail::expect_content).
bool reads_body(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE" ||
         method == "PRI";
}

// Content codings are case-insensitive (RFC 9110 section 8.4.1), but httplib decodes only the
// lowercase names: "GZIP" was refused as an unknown coding. Repeated lines mean what one line
// holding their values does (RFC 9110 section 5.3), but httplib reads the first alone: "gzip"
// then "br" was decoded as gzip, and a body coded twice by two "gzip" lines decoded once. They
// become one lowercase line ("gzip, br"), which the servers refuse as the list it is, as when
// it came so.
void normalize_content_coding(httplib::Request& req) {
  const std::size_t lines = req.get_header_value_count("Content-Encoding");
  if (lines == 0) return;
  std::string codings;
  for (std::size_t i = 0; i < lines; ++i) {
    // Held by name: get_header_value returns a copy, and trim's view must not outlive it.
    const std::string line = req.get_header_value("Content-Encoding", i);
    const std::string_view value = trim(line);
    if (value.empty()) continue;
    if (!codings.empty()) codings += ", ";
    codings += ascii_lower(value);
  }
  req.headers.erase("Content-Encoding");
  if (!codings.empty()) req.set_header("Content-Encoding", codings);
}

// A request target in absolute form ("POST http://host:8000/call HTTP/1.1", what a client sends
// to a server it is configured to use as a proxy) names the same resource as its path, and a
// server must accept it (RFC 9112 section 3.2.2); httplib matched its routes on the whole URL,
// so every such request was 404. The path and target become the URL's path (and query: the
// parameters are parsed already), and Host its authority, which the server is to use instead.
void normalize_absolute_target(httplib::Request& req) {
  const std::size_t scheme_end = req.target.find("://");
  if (scheme_end == std::string::npos || req.target.find('/') < scheme_end) return;
  const std::string scheme = ascii_lower(std::string_view(req.target).substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") return;
  const std::size_t authority = scheme_end + 3;
  const std::size_t end =
      std::min(req.target.find('/', authority), req.target.find('?', authority));
  const std::string host = req.target.substr(authority, end - authority);
  std::string rest = end == std::string::npos ? std::string() : req.target.substr(end);
  if (rest.empty() || rest.front() == '?') rest.insert(0, "/");
  req.target = rest;
  const std::size_t path_scheme_end = req.path.find("://");
  if (path_scheme_end != std::string::npos) {
    const std::size_t slash = req.path.find('/', path_scheme_end + 3);
    req.path = slash == std::string::npos ? "/" : req.path.substr(slash);
  }
  if (!host.empty()) {
    req.headers.erase("Host");
    req.headers.emplace("Host", host);
  }
}

// The answer to a request whose line or headers did not arrive within the header timeout.
std::string header_timeout_message(int header_timeout_s) {
  return fmt::format("the request line and headers did not arrive within --header-timeout {} s",
                     header_timeout_s);
}

// An expectation's value is case-insensitive (RFC 9110 section 10.1.1), but httplib answers only
// "100-continue" as written so: "100-Continue" skipped the servers' checks of the token and size.
// An HTTP/1.0 client's expectation is ignored (RFC 9110 section 10.1.1: it may not understand a
// 100 response).
void normalize_expect(httplib::Request& req) {
  if (!req.has_header("Expect")) return;
  const auto header = req.headers.find("Expect");
  if (req.version == "HTTP/1.0") {
    req.headers.erase(header);
  } else if (ascii_lower(trim(header->second)) == "100-continue") {
    header->second = "100-continue";
  }
}

// Whether the body of the request being answered was left (partly) unread: its bytes would be
// read as the next request on the connection (a request smuggled inside a body the server
// refused unread), so the connection must close after the answer.
bool body_left_unread(const ConnectionNote& note) {
  return note.body_chunked ? !note.body_chunked_done : note.body_read < note.body_length;
}

// The values of the raw header lines named `name` (in any case, spaces allowed before the
// colon), as they came, whatever httplib made of them: it drops a field whose value is empty, and
// percent-decodes the others.
std::vector<std::string_view> raw_header_values(std::string_view lines, std::string_view name) {
  std::vector<std::string_view> values;
  for (std::size_t start = 0; start < lines.size();) {
    std::size_t end = lines.find('\n', start);
    if (end == std::string_view::npos) end = lines.size();
    const std::string_view line = lines.substr(start, end - start);
    if (line.size() > name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
      const std::string_view rest = trim(line.substr(name.size()));
      if (!rest.empty() && rest.front() == ':') values.push_back(rest.substr(1));
    }
    start = end + 1;
  }
  return values;
}

std::size_t raw_header_lines(std::string_view lines, std::string_view name) {
  return raw_header_values(lines, name).size();
}

// Whether a raw header line named `name` holds a '%': httplib percent-decodes values, so
// "Content-Length: %31%37" was 17 and "Transfer-Encoding: %63hunked" chunked, which a proxy in
// front reads otherwise (a request-smuggling shape). No valid value of these holds one.
bool raw_value_holds_percent(std::string_view lines, std::string_view name) {
  const std::vector<std::string_view> values = raw_header_values(lines, name);
  return std::any_of(values.begin(), values.end(),
                     [](std::string_view v) { return v.find('%') != std::string_view::npos; });
}

// Checks how a request's body is delimited (RFC 9112 section 6) before httplib reads it, and
// returns why it cannot be trusted, or null. httplib 0.11 reads "Content-Length: abc" as 0 (the
// body then parsed as the next request), "-5" as 2^64 - 5, takes the first of two different
// lengths, and reads a body with neither header (or with a transfer coding it does not know)
// until the client closes: `curl -X POST` without -d hung for the read timeout. A request with
// neither header has no body (RFC 9112 section 6.3), which the Content-Length: 0 added here says.
const char* framing_error(httplib::Request& req, std::string_view raw_header_block) {
  const std::size_t encodings = req.get_header_value_count("Transfer-Encoding");
  const std::size_t lengths = req.get_header_value_count("Content-Length");
  if (raw_value_holds_percent(raw_header_block, "Content-Length")) return "bad Content-Length";
  if (raw_value_holds_percent(raw_header_block, "Transfer-Encoding"))
    return "unsupported Transfer-Encoding (only chunked); send the body with a Content-Length";
  // "Content-Length: " with no value was read as no header, so as no body: the body then ran as
  // a next request.
  if (raw_header_lines(raw_header_block, "Content-Length") != lengths) return "bad Content-Length";
  if (raw_header_lines(raw_header_block, "Transfer-Encoding") != encodings)
    return "unsupported Transfer-Encoding (only chunked); send the body with a Content-Length";
  if (encodings > 0) {
    // Exactly what httplib takes for chunked (its is_chunked_transfer_encoding).
    if (encodings > 1 ||
        strcasecmp(req.get_header_value("Transfer-Encoding").c_str(), "chunked") != 0) {
      return "unsupported Transfer-Encoding (only chunked); send the body with a Content-Length";
    }
    // Either header could be the one a proxy in front used: a request-smuggling shape.
    if (lengths > 0) return "both Transfer-Encoding and Content-Length";
    // HTTP/1.0 has no transfer codings: such framing is faulty (RFC 9112 section 6.1).
    if (req.version == "HTTP/1.0") return "Transfer-Encoding in an HTTP/1.0 request";
    return nullptr;
  }
  std::string length;
  for (std::size_t i = 0; i < lengths; ++i) {
    // A list of identical values ("17, 17") is one length (RFC 9110 section 8.6).
    for (const std::string& part : split(req.get_header_value("Content-Length", i), ',')) {
      const std::string_view value = trim(part);
      if (!is_decimal(value) || (!length.empty() && value != length)) return "bad Content-Length";
      length = value;
    }
  }
  if (lengths == 0 && reads_body(req.method)) req.set_header("Content-Length", "0");
  return nullptr;
}

// The options of the request's Connection header (every line of it): whether one is "close" and
// whether one is "keep-alive", as RFC 9110 section 7.6.1 has them: case-insensitive tokens in a
// comma-separated list. httplib matched the whole value, case and all: "Connection: Close" (or
// "keep-alive, close") kept the connection open, and an HTTP/1.0 "keep-alive" closed it.
struct ConnectionOptions {
  bool close = false;
  bool keep_alive = false;
};
ConnectionOptions connection_options(const httplib::Request& req) {
  ConnectionOptions options;
  for (std::size_t i = 0; i < req.get_header_value_count("Connection"); ++i) {
    for (const std::string& part : split(req.get_header_value("Connection", i), ',')) {
      const std::string option = ascii_lower(trim(part));
      options.close = options.close || option == "close";
      options.keep_alive = options.keep_alive || option == "keep-alive";
    }
  }
  return options;
}

// Makes the request's Connection header one that httplib's exact matches read as RFC 9110 does:
// "close" when an option is close, "Keep-Alive" for an HTTP/1.0 request that asks for it; and
// `closed` (httplib's note that the connection ends after this request) agree.
void normalize_connection(httplib::Request& req, bool& closed) {
  const ConnectionOptions options = connection_options(req);
  const bool http10 = req.version == "HTTP/1.0";
  if (options.close || (http10 && options.keep_alive)) {
    req.headers.erase("Connection");
    req.set_header("Connection", options.close ? "close" : "Keep-Alive");
  }
  closed = options.close || (http10 && !options.keep_alive);
}

// Whether `c` may be part of a header field name (RFC 9110 section 5.1: a token).
bool is_token_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

// A NUL, or a CR or LF that does not end a line, in the header lines as they came, or in a value
// httplib made of them: RFC 9110 section 5.5 has a recipient refuse such a value (or replace
// the characters), and httplib reads a value up to its first NUL: "Content-Length: 0<NUL>88"
// was a body of 0 bytes (the 88 bytes after the headers then ran as a second request, a
// smuggled one), and "Transfer-Encoding: chunked<NUL>" was chunked.
const char* field_value_error(const httplib::Request& req, std::string_view raw_header_block) {
  constexpr const char* kError =
      "a header field holds a NUL, or a CR or LF that does not end its line";
  for (std::size_t i = 0; i < raw_header_block.size(); ++i) {
    const char c = raw_header_block[i];
    if (c == '\0') return kError;
    if (c == '\r' && (i + 1 == raw_header_block.size() || raw_header_block[i + 1] != '\n'))
      return kError;
    if (c == '\n' && (i == 0 || raw_header_block[i - 1] != '\r')) return kError;
  }
  // httplib percent-decodes every value: "%0A" in a cookie is no CR or LF on the wire, but in a
  // header that frames or routes the request, a decoded NUL ends the value httplib reads.
  for (const char* name : {"Content-Length", "Transfer-Encoding", "Connection", "Host", "Expect",
                           "Content-Encoding", "Authorization"}) {
    for (std::size_t i = 0; i < req.get_header_value_count(name); ++i) {
      if (req.get_header_value(name, i).find_first_of(std::string_view("\0\r\n", 3)) !=
          std::string::npos)
        return kError;
    }
  }
  return nullptr;
}

// Checks the header fields httplib parsed for what RFC 9112 has a server refuse with a 400 and
// httplib lets through: a name that is not a token (white space before the colon, section 5.1:
// "Host : x" came through as a field "Host " that proxies may read otherwise, a request-
// smuggling shape), and an HTTP/1.1 request without exactly one Host field (section 3.2).
const char* header_error(const httplib::Request& req, std::string_view raw_header_block) {
  for (const auto& field : req.headers) {
    const std::string& name = field.first;
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char))
      return "bad header field name (white space before the colon, or a character that is not "
             "allowed in a name)";
  }
  if (const char* error = field_value_error(req, raw_header_block)) return error;
  // Lines httplib drops without a word: a proxy in front may read them otherwise (one that
  // unfolds "Content-Length: 17" + "<TAB>99" reads "17 99"; RFC 9112 section 5.2 has a server
  // refuse a folded line).
  for (std::size_t start = 0; start < raw_header_block.size();) {
    std::size_t end = raw_header_block.find('\n', start);
    if (end == std::string_view::npos) end = raw_header_block.size();
    std::string_view line = raw_header_block.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    start = end + 1;
    if (line.empty()) continue;  // the end of the headers
    if (line.front() == ' ' || line.front() == '\t')
      return "a header line starts with white space (a folded line, which HTTP/1.1 no longer "
             "allows)";
    if (line.find(':') == std::string_view::npos) return "a header line without a colon";
  }
  // One credential: with two, a proxy that adds its own may check another than the server uses.
  if (raw_header_lines(raw_header_block, "Authorization") > 1)
    return "more than one Authorization header";
  // Counted in the lines as sent: httplib drops a field with an empty value, which RFC 9112
  // allows for Host ("Host:" alone, a request for no particular host).
  const std::size_t hosts = raw_header_lines(raw_header_block, "Host");
  if (hosts > 1) return "more than one Host header";
  if (hosts == 0 && req.version == "HTTP/1.1") return "an HTTP/1.1 request needs a Host header";
  return nullptr;
}

// A whole response written by the front itself (not through httplib), in the servers' JSON
// envelope; it closes the connection. `message` needs no JSON escaping.
std::string front_response(int status, const char* reason, const std::string& message,
                           const char* extra_headers = "") {
  const std::string body =
      fmt::format(R"({{"Code":{},"Data":null,"Message":"{}","Success":false}})", status, message);
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nConnection: close\r\n{}"
      "Content-Length: {}\r\n\r\n{}",
      status, reason, extra_headers, body.size(), body);
}

// A connection accepted once the server is stopping gets this long for its TLS handshake (its
// answer is a 503; a silent client must not hold the stop for the header timeout, and a burst
// of handshakes on a loaded machine takes more than a second).
constexpr int kLateHandshakeSeconds = 3;

int to_ms(time_t sec, time_t usec) {
  return static_cast<int>(std::min<long long>(sec * 1000LL + usec / 1000, 1LL << 30));
}

// Milliseconds from now until `t` (0 when it has passed).
int ms_until(Clock::time_point t) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 1LL << 30));
}

// A TLS server handshake on `sock` (made non-blocking for good: FrontStream waits with poll),
// done within `seconds`; the connection's SSL, or null when it failed or the client was too slow.
SSL* tls_handshake(SSL_CTX* ctx, socket_t sock, int seconds) {
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) | O_NONBLOCK);
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return nullptr;
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_set_fd(ssl, sock) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_accept(ssl);
    if (rc == 1) return ssl;
    const int error = SSL_get_error(ssl, rc);
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    const bool waiting = error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE;
    if (!waiting || left <= 0 ||
        !wait_socket(sock, error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                     static_cast<int>(left))) {
      SSL_free(ssl);
      return nullptr;
    }
  }
}

}  // namespace

SSL_CTX* load_tls_context(const std::string& cert_file, const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // An encrypted key is refused rather than prompted for on the terminal (a server has none).
  SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

std::unique_ptr<httplib::TaskQueue> make_elastic_task_queue(std::size_t warm, std::size_t max) {
  return std::make_unique<ElasticTaskQueue>(warm, max);
}

// An open connection, as drop_connections() needs to know it.
struct OpenConnection {
  bool busy = false;  // serving a request
  bool fresh = true;  // no request read from it yet
  bool late = false;  // accepted after begin_stop(): answered 503 and closed
};

struct Front::State {
  FrontLimits limits;
  SSL_CTX* tls = nullptr;  // owned; null: plain HTTP
  std::mutex mu;
  std::condition_variable closed;  // a connection accepted before begin_stop() ended
  std::unordered_map<std::string, std::size_t> per_client;  // address -> open connections
  std::unordered_map<socket_t, OpenConnection> open;
  std::atomic<bool> stopping{false};  // begin_stop() was called
  std::size_t early_open = 0;         // open connections accepted before begin_stop()
};

Front::Front(FrontLimits limits, SSL_CTX* tls) : state_(std::make_unique<State>()) {
  state_->limits = limits;
  state_->tls = tls;
}

Front::~Front() {
  if (state_->tls != nullptr) SSL_CTX_free(state_->tls);
}

void Front::drop_connections(Drop which) {
  std::lock_guard<std::mutex> lock(state_->mu);
  // A connection in the middle of a request finishes it, and one whose next request has already
  // arrived gets it answered (a 503 from a draining server, say): their loops stop after that.
  // One just accepted is left a moment for its first request (closed unanswered, its client
  // could not tell whether the request ran) unless `which` says otherwise.
  for (const auto& [sock, connection] : state_->open) {
    // One accepted in the stop is answering its 503 and closes by itself.
    if (connection.late && which != Drop::kAll) continue;
    const bool serving = connection.busy || wait_socket(sock, POLLIN, 0);
    const bool drop =
        which == Drop::kAll || (!serving && (which == Drop::kNotServing || !connection.fresh));
    if (drop) ::shutdown(sock, SHUT_RDWR);
  }
}

bool Front::late_connection(socket_t sock) {
  std::lock_guard<std::mutex> lock(state_->mu);
  const auto it = state_->open.find(sock);
  return it != state_->open.end() && it->second.late;
}

void Front::end_stop() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->stopping = false;
}

void Front::begin_stop() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
  }
  drop_connections(Drop::kIdle);
}

bool Front::wait_for_early_connections(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(state_->mu);
  return state_->closed.wait_until(lock, deadline, [this] { return state_->early_open == 0; });
}

void Front::widen_backlog() {
  // On Linux, listen() on a listening socket changes its backlog.
  if (svr_sock_ != INVALID_SOCKET) ::listen(svr_sock_, SOMAXCONN);
}

void Front::forget(socket_t sock, const std::string& ip) {
  State& st = *state_;
  std::lock_guard<std::mutex> lock(st.mu);
  const auto it = st.open.find(sock);
  if (it != st.open.end()) {
    if (!it->second.late && --st.early_open == 0) st.closed.notify_all();
    st.open.erase(it);
  }
  if (--st.per_client[ip] == 0) st.per_client.erase(ip);
}

bool Front::process_and_close_socket(socket_t sock) {
  State& st = *state_;
  // The first request's headers are due a header timeout after the connection was accepted, not
  // after a thread took it up: when every thread is held (thousands of slow clients), the
  // connections waiting behind them that have not sent their headers by then are closed as soon
  // as a thread reaches them, instead of each holding it for a full timeout again.
  const Clock::time_point accepted =
      t_job_queued_at == Clock::time_point{} ? Clock::now() : t_job_queued_at;
  Clock::time_point first_headers_due = accepted + std::chrono::seconds(st.limits.header_timeout_s);
  std::string ip;
  int port = 0;
  address_of(sock, true, ip, port);
  bool admitted = false;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    std::size_t& n = st.per_client[ip];
    if (n < st.limits.max_client_connections) {
      ++n;
      OpenConnection& connection = st.open[sock];
      connection = OpenConnection{};
      connection.late = st.stopping;
      if (!connection.late) ++st.early_open;
      admitted = true;
    } else if (n == 0) {
      st.per_client.erase(ip);
    }
  }
  bool ret = false;
  SSL* ssl = nullptr;
  if (!admitted) {
    // One address holding this many connections is a client gone wrong or an attack; each
    // further one is answered at once instead of holding a thread (over TLS, closed: an answer
    // would need a handshake first).
    static const std::string kBusy = front_response(
        503, "Service Unavailable", "too many connections from this address", "Retry-After: 1\r\n");
    if (st.tls == nullptr &&
        ::send(sock, kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT) > 0) {
      linger_close(sock);
    }
  } else if (st.tls != nullptr &&
             (ssl = tls_handshake(st.tls, sock,
                                  late_connection(sock)
                                      ? kLateHandshakeSeconds
                                      : std::max(kLateHandshakeSeconds,
                                                 (ms_until(first_headers_due) + 999) / 1000))) ==
                 nullptr) {
    // No handshake within the header deadline (a client that connects and stays silent, or
    // trickles its hello), or a failed one: nothing to answer.
    forget(sock, ip);
  } else {
    // A TLS client can send its request only once the handshake is done: one that waited for a
    // thread gets a few seconds more from there (not a whole header timeout).
    if (ssl != nullptr) {
      first_headers_due =
          std::max(first_headers_due, Clock::now() + std::chrono::seconds(kLateHandshakeSeconds));
    }
    ConnectionNote note;
    FrontStream strm(sock, ssl, to_ms(read_timeout_sec_, read_timeout_usec_),
                     to_ms(write_timeout_sec_, write_timeout_usec_), note);
    t_note = &note;
    auto set_busy = [&](bool busy) {
      std::lock_guard<std::mutex> lock(st.mu);
      OpenConnection& connection = st.open[sock];
      connection.busy = busy;
      connection.fresh = false;
    };
    const bool late = late_connection(sock);
    for (std::size_t count = keep_alive_max_count_; count > 0 && !late; --count) {
      // Once the server stops, a request already sent is still answered (and is the last);
      // otherwise the client could not tell whether it ran. A connection accepted just before
      // has a moment for its first request's bytes to arrive.
      const bool stopping = st.stopping || svr_sock_ == INVALID_SOCKET;
      const bool first = count == keep_alive_max_count_;
      if (stopping ? !(first ? strm.wait_for_request(static_cast<int>(kFirstRequestGrace.count()))
                             : strm.request_pending())
                   : !strm.wait_for_request(first ? std::min(to_ms(keep_alive_timeout_sec_, 0),
                                                             ms_until(first_headers_due))
                                                  : to_ms(keep_alive_timeout_sec_, 0))) {
        break;
      }
      // Busy from its first byte: a request read into the stream's buffer but not yet parsed must
      // not look idle to a stop (it was closed unanswered under load). A client trickling its
      // headers is then bounded by the header deadline, not cut at the stop.
      set_busy(true);
      strm.start_header_phase(first ? first_headers_due
                                    : Clock::now() +
                                          std::chrono::seconds(st.limits.header_timeout_s));
      note = ConnectionNote{};
      note.sock = sock;
      note.stopping = &st.stopping;
      note.header_timeout_s = st.limits.header_timeout_s;
      bool closed = false;
      try {
        ret = process_request(strm, count == 1 || stopping, closed, [&](httplib::Request& req) {
          note.headers_done = true;
          std::optional<Clock::time_point> body_deadline;
          if (st.limits.body_timeout_s > 0) {
            body_deadline = Clock::now() + std::chrono::seconds(st.limits.body_timeout_s);
          }
          strm.start_body_phase(body_deadline);
          set_busy(true);
          if (const char* error = header_error(req, strm.header_lines())) throw BadFraming{error};
          if (const char* error = framing_error(req, strm.header_lines())) throw BadFraming{error};
          // framing_error() let through "chunked" alone.
          if (req.has_header("Transfer-Encoding")) {
            strm.read_chunked_body(payload_max_length_);
            note.body_chunked = true;
          } else {
            note.body_length = declared_body_length(req);
            // Refused (413) without waiting for the body: a client that sent its headers and
            // waited heard its 413 only when the body's read timeout (60 s) ran out.
            if (note.body_length > payload_max_length_) strm.refuse_body();
          }
          normalize_connection(req, closed);
          normalize_content_coding(req);
          normalize_absolute_target(req);
          if (note.body_chunked || note.body_length > 0) {
            strm.check_coding_end(CodingEndCheck::for_coding(
                req.get_header_value("Content-Encoding"), payload_max_length_));
          }
          normalize_expect(req);
        });
      } catch (const BadFraming& bad) {
        // Where this request ends is unknown, so nothing after it can be read as a request.
        const std::string answer = front_response(400, "Bad Request", bad.message);
        set_busy(false);
        if (strm.write(answer.data(), answer.size()) > 0) linger_close(sock);
        break;
      }
      set_busy(strm.holds_bytes());
      if (!ret && note.request_line_too_long && !strm.wrote()) {
        // httplib answers nothing when the request line does not come whole.
        const std::string answer =
            front_response(414, "URI Too Long", request_line_too_long_message());
        if (strm.write(answer.data(), answer.size()) > 0) linger_close(sock);
        break;
      }
      if (!ret && note.headers_timed_out && !strm.wrote()) {
        // httplib answers nothing when the request line does not come whole (it answers headers
        // that do not with the error handler's 408): a client too slow with it hears why.
        const std::string answer =
            front_response(408, "Request Timeout", header_timeout_message(note.header_timeout_s));
        if (strm.write(answer.data(), answer.size()) > 0) linger_close(sock);
        break;
      }
      // Without headers the request was malformed (or cut off): what follows on the connection
      // is not a request either, so it ends here rather than after the keep-alive wait.
      if (!ret || closed || note.close || !note.headers_done || stopping) {
        // A lingering close keeps unread bytes from turning the close into a reset; an HTTP/1.0
        // request read whole leaves none, and its client may hold the socket open (a thread
        // held 5 s per request).
        const bool orderly = note.http10_close && !body_left_unread(note);
        if (ret && ((note.close && !orderly) || !note.headers_done)) linger_close(sock);
        break;
      }
    }
    if (late) {
      // Accepted once the server was stopping: no new work starts, and the client is told so
      // (a close without an answer would leave it unsure whether its request ran).
      static const std::string kStopping = front_response(
          503, "Service Unavailable", "the server is shutting down", "Retry-After: 1\r\n");
      if (strm.write(kStopping.data(), kStopping.size()) > 0) linger_close(sock);
    }
    t_note = nullptr;
    strm.close_tls();
    forget(sock, ip);
  }
  if (ssl != nullptr) SSL_free(ssl);
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ret;
}

void front_tidy_headers(const httplib::Request& req, httplib::Response& res) {
  // A server that is stopping answers this request and no other on its connection: said, so
  // that a client does not send its next request into a connection about to close (it was lost).
  // So does an answer that left the request's body unread (a 401 to an upload): the connection
  // closes after it rather than read the body as a next request. And one to an HTTP/1.0 request
  // that did not ask to be kept alive, after which httplib closes (by its own test, which is
  // case-sensitive): it said "Keep-Alive: timeout=5, max=10000" there.
  const bool http10_close =
      req.version == "HTTP/1.0" && req.get_header_value("Connection") != "Keep-Alive";
  const bool last =
      http10_close || (t_note != nullptr && ((t_note->stopping != nullptr && *t_note->stopping) ||
                                             body_left_unread(*t_note)));
  if (http10_close && t_note != nullptr) t_note->http10_close = true;
  if (last && res.get_header_value("Connection") != "close") {
    res.headers.erase("Connection");
    res.set_header("Connection", "close");
    res.headers.erase("Keep-Alive");
  }
  // An HTTP/1.0 client keeps the connection only on an answer saying "Connection: keep-alive"
  // (RFC 9112 appendix C.2.2); a Keep-Alive header alone means nothing to it.
  if (!last && req.version == "HTTP/1.0" && !res.has_header("Connection"))
    res.set_header("Connection", "keep-alive");
  if (res.get_header_value_count("Connection") <= 1 &&
      !(res.has_header("Keep-Alive") && res.get_header_value("Connection") == "close"))
    return;
  bool close = false;
  for (std::size_t i = 0; i < res.get_header_value_count("Connection"); ++i)
    close = close || res.get_header_value("Connection", i) == "close";
  const std::string kept = close ? "close" : res.get_header_value("Connection");
  res.headers.erase("Connection");
  res.set_header("Connection", kept);
  if (close) res.headers.erase("Keep-Alive");
}

std::string unsupported_content_coding(const httplib::Request& req) {
  const std::string coding = req.get_header_value("Content-Encoding");
  if (coding.empty() || coding == "gzip" || coding == "deflate" || coding == "br" ||
      coding == "identity")
    return "";
  return fmt::format(
      "Content-Encoding {} is not supported: send the body uncompressed, or as gzip, deflate or br",
      coding);
}

std::optional<std::string> bearer_token(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  if (auth.size() <= 7 || strncasecmp(auth.c_str(), "bearer ", 7) != 0) return std::nullopt;
  const std::size_t start = auth.find_first_not_of(' ', 7);
  if (start == std::string::npos) return std::nullopt;
  return auth.substr(start, auth.find_last_not_of(' ') + 1 - start);
}

std::string exception_text(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "unknown exception";
}

bool client_hung_up() {
  if (t_note == nullptr || t_note->sock == INVALID_SOCKET) return false;
  pollfd p{t_note->sock, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

bool request_body_timed_out() { return t_note != nullptr && t_note->body_timed_out; }

void limit_decoded_body(std::uint64_t max_bytes) {
  if (t_note == nullptr || t_note->coding_check == nullptr) return;
  t_note->coding_check->refuse_past(max_bytes);
  t_note->decoded_body_limit = max_bytes;
}

std::optional<std::uint64_t> decoded_body_too_large() {
  if (t_note == nullptr || !t_note->decoded_body_too_large) return std::nullopt;
  return t_note->decoded_body_limit;
}

std::uint64_t declared_body_length(const httplib::Request& req) {
  if (!req.has_header("Content-Length")) return 0;
  try {
    // framing_error() has checked it is decimal (or a list of equal decimals).
    return std::stoull(req.get_header_value("Content-Length"));
  } catch (const std::exception&) {
    return std::numeric_limits<std::uint64_t>::max();  // past 64 bits: never read whole
  }
}

std::optional<ChunkedBodyError> chunked_body_error() {
  if (t_note == nullptr) return std::nullopt;
  return t_note->chunked_error;
}

void note_request_read() {
  if (t_note != nullptr) t_note->request_read = true;
}

bool front_closes_after(const httplib::Response& res) {
  const bool stream_in_doubt =
      is_protocol_error(res.status) && (t_note == nullptr || !t_note->request_read);
  return stream_in_doubt || res.get_header_value("Connection") == "close" ||
         (t_note != nullptr && !t_note->headers_done);
}

void front_mark_close(const httplib::Request& req, httplib::Response& res) {
  if (front_closes_after(res) && !res.has_header("Connection") &&
      req.get_header_value("Connection") != "close") {
    res.set_header("Connection", "close");
  }
}

bool front_headers_too_large(httplib::Response& res) {
  if (t_note == nullptr || !t_note->headers_too_large) return false;
  res.status = 431;
  return true;
}

std::string request_line_too_long_message() {
  return fmt::format(
      "the request line (method, target and version) is over {} bytes; send long values in the "
      "request body",
      kMaxRequestLineBytes - 2);  // the limit counts the line's CRLF
}

std::optional<std::string> front_headers_timed_out(httplib::Response& res) {
  if (t_note == nullptr || !t_note->headers_timed_out || t_note->headers_done) return std::nullopt;
  res.status = 408;
  return header_timeout_message(t_note->header_timeout_s);
}

void front_note_response(const httplib::Response& res) {
  if (t_note != nullptr && front_closes_after(res)) t_note->close = true;
}

}  // namespace ms::http_server

// The HTTP front of `ms hub serve` and `ms serve`, on top of cpp-httplib: a worker pool that grows
// past --threads instead of queueing connections, and a connection loop (plain HTTP, or TLS
// through OpenSSL, with the same rules) with a deadline for the TLS handshake and request headers
// (and optionally bodies), a cap of connections per client address, checked request framing
// (Content-Length, Transfer-Encoding), compressed bodies checked to their coding's end, and
// connections closed after protocol errors. Without these, 33 clients trickling header bytes held
// all 32 workers of the hub and every other request waited (and over TLS, before it was this
// front's, one client held 4096 threads).
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>

namespace ms::http_server {

/// How long, once a server begins to stop, a connection it accepted just before may take to send
/// its first request (its bytes are usually on their way; a silent client is not waited for).
inline constexpr std::chrono::milliseconds kFirstRequestGrace{1000};

/// Limits of the front; see ListenerOptions (ms/http_server/listener.h).
struct FrontLimits {
  std::size_t warm_threads = 32;
  std::size_t max_threads = 4096;
  int header_timeout_s = 30;
  int body_timeout_s = 0;  ///< 0: a body is bounded only by the read timeout between bytes
  std::size_t max_client_connections = 256;
};

/// A TaskQueue that keeps `warm` threads and starts more on demand (up to `max`) when every thread
/// is busy, so a connection never waits behind slow ones; threads beyond `warm` end after being
/// idle a while.
std::unique_ptr<httplib::TaskQueue> make_elastic_task_queue(std::size_t warm, std::size_t max);

/// An OpenSSL server context for a PEM certificate (chain) and its unencrypted PEM key, TLS 1.2
/// and newer; null when they do not load or do not match.
SSL_CTX* load_tls_context(const std::string& cert_file, const std::string& key_file);

/// httplib::Server with the connection loop described at the top of this file; with `tls` (which
/// it owns), every connection is TLS.
class Front : public httplib::Server {
 public:
  explicit Front(FrontLimits limits, SSL_CTX* tls = nullptr);
  ~Front() override;

  /// Which connections drop_connections() ends.
  enum class Drop {
    kIdle,        ///< waiting for a next request that has not come (not one just accepted)
    kNotServing,  ///< also connections just accepted whose first request has not come
    kAll,         ///< every one, requests being served too
  };
  /// Shuts down (SHUT_RDWR) connections so that their threads end now rather than when their
  /// clients time out; a connection serving a request, or holding one not yet read, is left to
  /// answer it unless `which` is kAll. Called by Listener::stop().
  void drop_connections(Drop which);

  /// Starts a graceful stop while the listening socket still accepts: requests being served (a
  /// download streaming a file included) go on, a connection's next request is not read (one
  /// already sent, or the first of a connection just accepted, is answered), idle connections
  /// end, and a connection accepted from now on gets a 503 "shutting down". httplib's own stop()
  /// would end streamed responses midway, so it comes after wait_for_early_connections().
  /// A connection just accepted has kFirstRequestGrace for its first request.
  void begin_stop();
  /// Waits until the connections accepted before begin_stop() have ended (true), or `deadline`.
  bool wait_for_early_connections(std::chrono::steady_clock::time_point deadline);
  /// Takes requests again (a listener started anew after a stop).
  void end_stop();

  /// Listens again with the system's largest backlog: httplib's is 5, and a burst of connections
  /// beyond it has clients retrying their SYN after 1 s, 3 s, ... Call after binding.
  void widen_backlog();

 private:
  bool process_and_close_socket(socket_t sock) override;
  // Removes a connection that ended from the books.
  void forget(socket_t sock, const std::string& ip);
  // Whether the connection was accepted once the server was stopping.
  bool late_connection(socket_t sock);

  struct State;
  std::unique_ptr<State> state_;
};

/// For httplib's logger and error handler, which see no connection: whether the response being
/// written will close its connection (so it says "Connection: close"), and the note that it will.
bool front_closes_after(const httplib::Response& res);
/// For an error handler: says "Connection: close" on a response that will close its connection,
/// once (httplib adds its own when the request said "Connection: close").
void front_mark_close(const httplib::Request& req, httplib::Response& res);
/// For a post-routing handler (after httplib added its own headers): one "Connection" header, and
/// no "Keep-Alive" beside "Connection: close" (an error handler's close and httplib's made two);
/// "Connection: close" on every answer after which the connection closes (the server is
/// stopping, the request's body was left unread, an HTTP/1.0 request not kept alive).
void front_tidy_headers(const httplib::Request& req, httplib::Response& res);
/// For an error handler, before it writes the body: whether the request headers ran past the
/// front's 64 KiB (httplib's 400 for them then becomes 431).
bool front_headers_too_large(httplib::Response& res);
/// The most bytes a request line (method, target, version and its CRLF) may hold: httplib's
/// limit, past which it answers 414.
inline constexpr std::size_t kMaxRequestLineBytes = CPPHTTPLIB_REQUEST_URI_MAX_LENGTH;
/// The message of a 414 answer, naming kMaxRequestLineBytes.
std::string request_line_too_long_message();
/// For an error handler, before it writes the body: when the request's line and headers did not
/// arrive within the header timeout, makes httplib's 400 for them a 408 and returns its message
/// (naming --header-timeout); nullopt otherwise.
std::optional<std::string> front_headers_timed_out(httplib::Response& res);
/// Why the request's Content-Encoding (repeated lines joined into one list by the front) cannot
/// be decoded, for a 415; "" when it is none, identity, or one coding httplib decodes (gzip,
/// deflate, br). httplib passes any other value through undecoded, and reads a list holding "br"
/// as brotli alone.
std::string unsupported_content_coding(const httplib::Request& req);
/// The token of an "Authorization: Bearer TOKEN" header (the scheme in any case, RFC 9110
/// section 11.1; spaces around the token dropped); nullopt without one.
std::optional<std::string> bearer_token(const httplib::Request& req);

/// The message of an exception a route let escape (httplib's exception handler gets it as an
/// exception_ptr), for the 500 answer and the log.
std::string exception_text(std::exception_ptr error);

/// For a route waiting on work: whether the client of the request being served on this thread
/// has closed its connection (or half-closed it, as a client that gave up does; a client that
/// sends its request and then shuts down its sending side counts as gone too).
bool client_hung_up();

/// Whether the body of the request being served stopped arriving because its deadline
/// (FrontLimits::body_timeout_s) passed, for the route's answer (408) to a failed body read.
bool request_body_timed_out();

/// For a pre-routing handler of a route that reads its body whole: the body, decoded from its
/// Content-Encoding, may not pass `max_bytes`; past it the body's read fails (httplib then calls
/// the error handler with 400), and decoded_body_too_large() says so, for a 413. httplib decodes
/// such a body into memory with no limit of its own, and the limits checked before it is read are
/// on its coded length: 1 MiB of gzip decodes to 1 GiB, of brotli to far more.
void limit_decoded_body(std::uint64_t max_bytes);
/// The limit limit_decoded_body() set, when the body of the request being served passed it.
std::optional<std::uint64_t> decoded_body_too_large();

/// The request's Content-Length as the front accepted it (a list of equal values read as one);
/// 0 without one, the largest value for one past 64 bits.
std::uint64_t declared_body_length(const httplib::Request& req);

/// Why the chunked body of the request being served was refused while it was read: its framing
/// was wrong (400), or its chunks announced more than the server's body limit (413).
struct ChunkedBodyError {
  bool too_large = false;
  std::string message;
};
std::optional<ChunkedBodyError> chunked_body_error();

/// Called by a route that has read its whole request: its own 400 or 413 (a bad field in a
/// well-formed request) then leaves the connection open, unlike httplib's protocol errors.
void note_request_read();
void front_note_response(const httplib::Response& res);

}  // namespace ms::http_server

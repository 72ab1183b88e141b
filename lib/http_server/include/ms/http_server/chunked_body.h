// A strict reader of HTTP/1.1's chunked transfer coding (RFC 9112 section 7.1), for the front to
// put between a connection and cpp-httplib 0.11, whose own decoder (which the front cannot
// replace) ends a body early at a chunk whose data is not followed by CRLF (the rest of the body
// then ran as a next request), reads "-5" as a chunk of 2^64 - 5 bytes (the client's connection
// then held for the read timeout), refuses trailer fields, and counts no chunk against the
// body limit. The front feeds it the connection's bytes; it checks their framing and hands
// httplib a canonical form of the same body: the data as it came, each chunk as
// "SIZE\r\n...\r\n", no extensions and no trailers, then "0\r\n\r\n".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ms/core/export.h"

namespace ms::http_server {

class MS_API ChunkedBody {
 public:
  /// `max_bytes`: the most the chunks' data may hold together (the server's body limit).
  explicit ChunkedBody(std::uint64_t max_bytes) : max_bytes_(max_bytes) {}

  enum class Status {
    kFraming,   ///< wants framing bytes: call parse_framing()
    kData,      ///< data_left() bytes of chunk data come next, passed through as they are
    kDone,      ///< the body ended (trailers and the final CRLF read)
    kBad,       ///< the framing is wrong: error() says how
    kTooLarge,  ///< the chunks announce more data than max_bytes
  };
  Status status() const { return status_; }

  /// Reads framing bytes from the start of `data` until chunk data begins, the body ends or an
  /// error; returns how many it took (never a byte past the body's end: those belong to the next
  /// request) and appends to `out` what httplib is to read in their place.
  std::size_t parse_framing(const char* data, std::size_t size, std::string& out);

  /// Bytes of the current chunk's data not yet passed through (in kData).
  std::uint64_t data_left() const { return data_left_; }
  /// `n` bytes of chunk data were passed through.
  void passed_data(std::uint64_t n);

  /// Why the body was refused (kBad, kTooLarge), for the 400 or 413 answer.
  const std::string& error() const { return error_; }

 private:
  enum class Step {
    kSizeDigits,   // chunk-size: 1*HEXDIG
    kSizeRest,     // chunk-ext, up to CR
    kSizeLf,       // LF after the size line's CR
    kDataCr,       // CR after a chunk's data
    kDataLf,       // LF after that CR
    kTrailerLine,  // a trailer field line, or the empty line that ends the body
    kTrailerLf,    // LF after a trailer line's CR
  };
  std::size_t fail(Status status, std::string message, std::size_t consumed);

  const std::uint64_t max_bytes_;
  Status status_ = Status::kFraming;
  Step step_ = Step::kSizeDigits;
  std::uint64_t size_ = 0;         // of the chunk whose size line is being read
  std::size_t digits_ = 0;         // its hex digits so far
  std::size_t line_bytes_ = 0;     // bytes of the framing line being read
  std::size_t trailer_bytes_ = 0;  // of all trailer lines
  bool in_extension_ = false;      // the size line's chunk-ext (after ";") is being read
  bool line_has_colon_ = false;    // the trailer line being read has its field name's colon
  std::uint64_t data_total_ = 0;   // chunk data announced so far
  std::uint64_t data_left_ = 0;
  std::string error_;
};

}  // namespace ms::http_server

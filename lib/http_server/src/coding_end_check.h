// Whether a request body sent with a Content-Encoding that cpp-httplib decodes (gzip, deflate,
// br) holds the whole coded stream. httplib 0.11's decoders (built into Debian's shared library,
// which the front cannot patch) stop at the last byte they are given without asking whether the
// stream ended: a gzip body cut short of its trailer (CRC-32 and length), or a zlib stream
// without its Adler-32, was decoded and answered 200. The front runs the body's bytes through a
// CodingEndCheck as they pass to httplib, and fails the read of the body's last bytes when the
// stream has not ended there, so that a body cut short is refused (400) as a corrupt one is.
// The price is a second decoding of compressed bodies, its output dropped.
#pragma once

#include <brotli/decode.h>
#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ms::http_server {

class CodingEndCheck {
 public:
  /// The check for a Content-Encoding value as httplib reads it (the same names it decodes, by
  /// the same tests), or null for a value it passes through undecoded.
  /// `max_decoded`: the body limit. Past it the check stops decoding and gives way (ended() is
  /// true): the server's own size check refuses the body (413), and a bomb (a few KiB that
  /// decode to gigabytes) costs this check no more than the limit.
  static std::unique_ptr<CodingEndCheck> for_coding(const std::string& content_encoding,
                                                    std::uint64_t max_decoded);
  ~CodingEndCheck();
  CodingEndCheck(const CodingEndCheck&) = delete;
  CodingEndCheck& operator=(const CodingEndCheck&) = delete;

  /// The body's next bytes, as they came.
  void feed(const char* data, std::size_t size);
  /// Whether the bytes fed so far are one whole stream: its end reached (for gzip, its trailer
  /// checked), no error in it, and nothing after it.
  bool ended() const {
    return state_ == State::kEnded || (state_ == State::kOverLimit && !refuse_past_limit_);
  }
  /// Makes `max_decoded` (if lower) the limit, and passing it a refusal rather than giving way:
  /// too_large() is then true. For a route that reads its body whole, which httplib decodes into
  /// memory with no limit of its own.
  void refuse_past(std::uint64_t max_decoded);
  /// Whether the body decoded past the limit refuse_past() set.
  bool too_large() const { return refuse_past_limit_ && state_ == State::kOverLimit; }

 private:
  enum class Kind { kZlib, kBrotli };
  enum class State { kRunning, kEnded, kBad, kOverLimit };
  CodingEndCheck(Kind kind, std::uint64_t max_decoded);
  /// Counts `n` decoded bytes; false (and kOverLimit) once past the limit.
  bool count_decoded(std::size_t n);
  void feed_zlib(const char* data, std::size_t size);
  void feed_brotli(const char* data, std::size_t size);

  Kind kind_;
  std::uint64_t max_decoded_;
  std::uint64_t decoded_ = 0;
  bool refuse_past_limit_ = false;
  State state_ = State::kRunning;
  z_stream zlib_{};
  BrotliDecoderState* brotli_ = nullptr;
  std::array<unsigned char, 16384> scratch_{};  // decoded bytes, dropped
};

}  // namespace ms::http_server

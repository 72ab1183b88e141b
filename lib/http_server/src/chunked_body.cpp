// See ms/http_server/chunked_body.h.
#include "ms/http_server/chunked_body.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <utility>

namespace ms::http_server {
namespace {

// A chunk's size line, extensions included (nginx and Go allow 4 KiB and less).
constexpr std::size_t kMaxSizeLineBytes = 4096;
// What a chunk whose data is not followed by CRLF is taken for.
constexpr const char* kDataOverrun =
    "a chunk's data is longer than its size (no CRLF where its size ends)";
// All trailer lines together, as the front allows the header lines (front.cpp).
constexpr std::size_t kMaxTrailerBytes = 64 * 1024;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Control characters are not allowed in a field or an extension (RFC 9110 section 5.5); a
// horizontal tab is.
bool is_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

}  // namespace

std::size_t ChunkedBody::fail(Status status, std::string message, std::size_t consumed) {
  status_ = status;
  error_ = std::move(message);
  return consumed;
}

void ChunkedBody::passed_data(std::uint64_t n) {
  data_left_ -= std::min(n, data_left_);
  if (status_ == Status::kData && data_left_ == 0) {
    status_ = Status::kFraming;
    step_ = Step::kDataCr;
  }
}

std::size_t ChunkedBody::parse_framing(const char* data, std::size_t size, std::string& out) {
  std::size_t i = 0;
  while (i < size && status_ == Status::kFraming) {
    const char c = data[i++];
    const bool in_size_line = step_ == Step::kSizeDigits || step_ == Step::kSizeRest;
    if (in_size_line && ++line_bytes_ > kMaxSizeLineBytes) {
      return fail(Status::kBad,
                  fmt::format("a chunk size line is over {} bytes", kMaxSizeLineBytes), i);
    }
    switch (step_) {
      case Step::kSizeDigits: {
        const int digit = hex_value(c);
        if (digit >= 0) {
          ++digits_;
          // Leading zeros are allowed; a value past the body limit (or 64 bits) is refused as
          // soon as it is.
          const bool overflows = size_ > (std::numeric_limits<std::uint64_t>::max() >> 4);
          size_ = size_ * 16 + static_cast<std::uint64_t>(digit);
          if (overflows || size_ > max_bytes_ - data_total_) {
            return fail(Status::kTooLarge,
                        fmt::format("the chunks announce over {} bytes of body", max_bytes_), i);
          }
        } else if (digits_ == 0) {
          return fail(Status::kBad, "a chunk size is not a hexadecimal number", i);
        } else {
          step_ = Step::kSizeRest;
          --i;  // read again as the rest of the line
          --line_bytes_;
        }
        break;
      }
      case Step::kSizeRest:
        if (c == '\r') {
          step_ = Step::kSizeLf;
        } else if (c == '\n') {
          return fail(Status::kBad, "a chunk size line does not end in CRLF", i);
        } else if (!in_extension_ && (c == ' ' || c == '\t')) {
          // Whitespace before a chunk extension's ";" (RFC 9112's BWS).
        } else if (!in_extension_ && c == ';') {
          in_extension_ = true;
        } else if (!in_extension_ || is_control(c)) {
          return fail(Status::kBad, "a chunk size line holds more than a size and extensions", i);
        }
        break;
      case Step::kSizeLf:
        if (c != '\n') return fail(Status::kBad, "a chunk size line does not end in CRLF", i);
        if (size_ == 0) {
          step_ = Step::kTrailerLine;
          line_bytes_ = 0;
          line_has_colon_ = false;
        } else {
          out += fmt::format("{:x}\r\n", size_);
          data_total_ += size_;
          data_left_ = size_;
          status_ = Status::kData;
        }
        break;
      case Step::kDataCr:
        if (c != '\r') return fail(Status::kBad, kDataOverrun, i);
        step_ = Step::kDataLf;
        break;
      case Step::kDataLf:
        if (c != '\n') return fail(Status::kBad, kDataOverrun, i);
        out += "\r\n";
        step_ = Step::kSizeDigits;
        size_ = 0;
        digits_ = 0;
        line_bytes_ = 0;
        in_extension_ = false;
        break;
      case Step::kTrailerLine:
        if (c == '\r') {
          if (line_bytes_ > 0 && !line_has_colon_) {
            return fail(Status::kBad, "a trailer line after the last chunk is not a field", i);
          }
          step_ = Step::kTrailerLf;
        } else if (c == '\n') {
          return fail(Status::kBad, "a trailer line does not end in CRLF", i);
        } else if (is_control(c)) {
          return fail(Status::kBad, "a trailer line after the last chunk holds a control byte", i);
        } else {
          ++line_bytes_;
          line_has_colon_ = line_has_colon_ || c == ':';
          if (++trailer_bytes_ > kMaxTrailerBytes) {
            return fail(Status::kBad,
                        fmt::format("the trailer fields are over {} KiB", kMaxTrailerBytes / 1024),
                        i);
          }
        }
        break;
      case Step::kTrailerLf:
        if (c != '\n') return fail(Status::kBad, "a trailer line does not end in CRLF", i);
        if (line_bytes_ == 0) {
          // Trailer fields are dropped: nothing in the servers reads them.
          out += "0\r\n\r\n";
          status_ = Status::kDone;
        } else {
          step_ = Step::kTrailerLine;
          line_bytes_ = 0;
          line_has_colon_ = false;
        }
        break;
    }
  }
  return i;
}

}  // namespace ms::http_server

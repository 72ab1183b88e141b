// The front's reader of chunked request bodies (ms/http_server/chunked_body.h): what it hands
// httplib for a well-formed body, fed whole or a byte at a time, and what it refuses.
#include "ms/http_server/chunked_body.h"

#include <cstdint>
#include <limits>
#include <string>

#include "catch.h"

using ms::http_server::ChunkedBody;
using Status = ChunkedBody::Status;

namespace {

// What a reader does with the connection's bytes, `step` at a time: framing bytes through
// parse_framing(), chunk data passed through as it is.
struct Read {
  Status status = Status::kFraming;
  std::string for_httplib;   // what httplib reads
  std::size_t consumed = 0;  // bytes of `wire` taken
  std::string error;
};

Read read(const std::string& wire, std::size_t step = std::string::npos,
          std::uint64_t max_bytes = 1 << 20) {
  ChunkedBody body(max_bytes);
  Read r;
  while (r.consumed < wire.size()) {
    if (body.status() == Status::kData) {
      const std::size_t n = static_cast<std::size_t>(
          std::min<std::uint64_t>({body.data_left(), step, wire.size() - r.consumed}));
      r.for_httplib += wire.substr(r.consumed, n);
      r.consumed += n;
      body.passed_data(n);
    } else if (body.status() == Status::kFraming) {
      const std::size_t n = std::min(step, wire.size() - r.consumed);
      r.consumed += body.parse_framing(wire.data() + r.consumed, n, r.for_httplib);
    } else {
      break;
    }
  }
  r.status = body.status();
  r.error = body.error();
  return r;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("a chunked body is handed on in canonical form, its end found exactly") {
  const std::string next = "GET /health HTTP/1.1\r\n\r\n";
  for (const std::size_t step : {std::string::npos, std::size_t{1}, std::size_t{3}}) {
    CAPTURE(step);
    Read r = read("5\r\nhello\r\n0\r\n\r\n" + next, step);
    CHECK(r.status == Status::kDone);
    CHECK(r.for_httplib == "5\r\nhello\r\n0\r\n\r\n");
    CHECK(r.consumed == 15);  // the next request's bytes are left on the connection
    // Extensions (with whitespace before ";"), upper-case digits and leading zeros, trailers.
    r = read(
        "00A ;name=\"v;1\"\r\n0123456789\r\n1;x\r\n!\r\n0;last\r\nDigest: sha-256=:x:\r\n"
        "X-Note: \tok\r\n\r\n" +
            next,
        step);
    CHECK(r.status == Status::kDone);
    CHECK(r.for_httplib == "a\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n");
    CHECK(r.error.empty());
  }
  CHECK(read("0\r\n\r\n").for_httplib == "0\r\n\r\n");
}

TEST_CASE("a chunked body with wrong framing is refused where the fault is") {
  struct Case {
    const char* wire;
    const char* error;
  };
  for (const Case& c : {
           Case{"-5\r\nhello\r\n0\r\n\r\n", "not a hexadecimal number"},
           Case{"\r\nhello\r\n0\r\n\r\n", "not a hexadecimal number"},
           Case{"0x5\r\nhello\r\n0\r\n\r\n", "more than a size"},
           Case{"5 5\r\nhello\r\n0\r\n\r\n", "more than a size"},
           Case{"5\nhello\r\n0\r\n\r\n", "does not end in CRLF"},
           Case{"5;ext\nhello\r\n0\r\n\r\n", "does not end in CRLF"},
           Case{"5\r hello\r\n0\r\n\r\n", "does not end in CRLF"},
           Case{"5;a\x01\r\nhello\r\n0\r\n\r\n", "more than a size"},
           // Data longer than its size: httplib ended the body there and ran the rest as a
           // next request.
           Case{"5\r\nhelloEXTRA\r\n0\r\n\r\n", "longer than its size"},
           Case{"5\r\nhello\n0\r\n\r\n", "longer than its size"},
           Case{"5\r\nhello\r\r\n0\r\n\r\n", "longer than its size"},
           Case{"0\r\nno colon here\r\n\r\n", "not a field"},
           Case{"0\r\nX: a\x7f\r\n\r\n", "control byte"},
           Case{"0\r\n\n", "does not end in CRLF"},
       }) {
    CAPTURE(c.wire);
    for (const std::size_t step : {std::string::npos, std::size_t{1}}) {
      const Read r = read(c.wire, step);
      CHECK(r.status == Status::kBad);
      CHECK(contains(r.error, c.error));
    }
  }
  // Lines are bounded: a size line of leading zeros or long extensions, and the trailers.
  Read r = read(std::string(5000, '0') + "5\r\nhello\r\n0\r\n\r\n");
  CHECK(r.status == Status::kBad);
  CHECK(contains(r.error, "size line is over 4096 bytes"));
  CHECK(r.consumed == 4097);
  r = read("5;" + std::string(5000, 'x') + "\r\n");
  CHECK(r.status == Status::kBad);
  CHECK(read(std::string(4094, '0') + "5\r\nhello\r\n0\r\n\r\n").status == Status::kDone);
  std::string trailers = "0\r\n";
  for (int i = 0; i < 3000; ++i) trailers += "X-Pad: 0123456789abcdef\r\n";
  r = read(trailers + "\r\n");
  CHECK(r.status == Status::kBad);
  CHECK(contains(r.error, "trailer fields are over 64 KiB"));
}

TEST_CASE("chunks announcing more than the body limit are refused before their data") {
  Read r = read("b\r\n", std::string::npos, 10);
  CHECK(r.status == Status::kTooLarge);
  CHECK(contains(r.error, "over 10 bytes"));
  CHECK(read("a\r\n0123456789\r\n0\r\n\r\n", std::string::npos, 10).status == Status::kDone);
  // Together: the second chunk's size passes the limit.
  r = read("6\r\nabcdef\r\n5\r\n", std::string::npos, 10);
  CHECK(r.status == Status::kTooLarge);
  CHECK(r.for_httplib == "6\r\nabcdef\r\n");
  // A size past 64 bits with no limit to speak of does not wrap around.
  r = read("1" + std::string(16, '0') + "\r\n", 1, std::numeric_limits<std::uint64_t>::max());
  CHECK(r.status == Status::kTooLarge);
  CHECK(read(std::string(16, 'f') + "\r\n", 1, std::numeric_limits<std::uint64_t>::max()).status ==
        Status::kData);
}

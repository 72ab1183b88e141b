// See coding_end_check.h.
#include "coding_end_check.h"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace ms::http_server {

std::unique_ptr<CodingEndCheck> CodingEndCheck::for_coding(const std::string& content_encoding,
                                                           std::uint64_t max_decoded) {
  // httplib's prepare_content_receiver(): these two names exactly, else any value holding "br".
  if (content_encoding == "gzip" || content_encoding == "deflate") {
    return std::unique_ptr<CodingEndCheck>(new CodingEndCheck(Kind::kZlib, max_decoded));
  }
  if (content_encoding.find("br") != std::string::npos) {
    return std::unique_ptr<CodingEndCheck>(new CodingEndCheck(Kind::kBrotli, max_decoded));
  }
  return nullptr;
}

CodingEndCheck::CodingEndCheck(Kind kind, std::uint64_t max_decoded)
    : kind_(kind), max_decoded_(max_decoded) {
  bool ready = false;
  if (kind_ == Kind::kZlib) {
    // As httplib's gzip_decompressor: a gzip or a zlib header, told by the first bytes.
    ready = inflateInit2(&zlib_, 32 + 15) == Z_OK;
  } else {
    brotli_ = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
    ready = brotli_ != nullptr;
  }
  if (!ready) state_ = State::kBad;
}

CodingEndCheck::~CodingEndCheck() {
  if (kind_ == Kind::kZlib) {
    inflateEnd(&zlib_);
  } else if (brotli_ != nullptr) {
    BrotliDecoderDestroyInstance(brotli_);
  }
}

bool CodingEndCheck::count_decoded(std::size_t n) {
  decoded_ += n;
  if (decoded_ <= max_decoded_) return true;
  state_ = State::kOverLimit;
  return false;
}

void CodingEndCheck::refuse_past(std::uint64_t max_decoded) {
  max_decoded_ = std::min(max_decoded_, max_decoded);
  refuse_past_limit_ = true;
  if (decoded_ > max_decoded_) state_ = State::kOverLimit;
}

void CodingEndCheck::feed(const char* data, std::size_t size) {
  if (size == 0 || state_ == State::kOverLimit) return;
  if (state_ != State::kRunning) {
    // Bytes after the end of the stream: httplib's decoder refuses them too.
    state_ = State::kBad;
    return;
  }
  if (kind_ == Kind::kZlib) {
    feed_zlib(data, size);
  } else {
    feed_brotli(data, size);
  }
}

void CodingEndCheck::feed_zlib(const char* data, std::size_t size) {
  while (size > 0) {
    const auto piece =
        static_cast<uInt>(std::min<std::size_t>(size, std::numeric_limits<uInt>::max()));
    zlib_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    zlib_.avail_in = piece;
    while (zlib_.avail_in > 0) {
      zlib_.next_out = scratch_.data();
      zlib_.avail_out = static_cast<uInt>(scratch_.size());
      const int rc = inflate(&zlib_, Z_NO_FLUSH);
      if (!count_decoded(scratch_.size() - zlib_.avail_out)) return;
      if (rc == Z_STREAM_END) {
        // Z_STREAM_END comes only once the trailer (gzip's CRC-32 and length, zlib's Adler-32)
        // has been read and matched.
        state_ = zlib_.avail_in == 0 && size == piece ? State::kEnded : State::kBad;
        return;
      }
      // With input and room for output, inflate() always moves on; Z_BUF_ERROR would mean it
      // cannot, and is taken as an error rather than looped on.
      if (rc != Z_OK) {
        state_ = State::kBad;
        return;
      }
    }
    data += piece;
    size -= piece;
  }
}

void CodingEndCheck::feed_brotli(const char* data, std::size_t size) {
  std::size_t avail_in = size;
  const auto* next_in = reinterpret_cast<const std::uint8_t*>(data);
  for (;;) {
    std::size_t avail_out = scratch_.size();
    std::uint8_t* next_out = scratch_.data();
    const BrotliDecoderResult result =
        BrotliDecoderDecompressStream(brotli_, &avail_in, &next_in, &avail_out, &next_out, nullptr);
    if (!count_decoded(scratch_.size() - avail_out)) return;
    switch (result) {
      case BROTLI_DECODER_RESULT_SUCCESS:
        state_ = avail_in == 0 ? State::kEnded : State::kBad;
        return;
      case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
        break;  // the scratch buffer is full: decode on into it
      case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
        return;  // every byte taken, the stream not yet ended
      default:
        state_ = State::kBad;
        return;
    }
  }
}

}  // namespace ms::http_server

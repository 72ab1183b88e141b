// Parquet page decompression: SNAPPY (pyarrow's default), GZIP and ZSTD through their libraries
// (CMake option MS_WITH_PARQUET_CODECS); the page header's uncompressed size is the size the
// output must have, and the caller bounds it before anything is allocated.
#include "ms/core/error.h"
#include "ms/data/parquet.h"
#include "parquet_metadata.h"

#if MS_WITH_PARQUET_CODECS
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#endif

namespace ms::data {
bool parquet_codecs_supported() { return MS_WITH_PARQUET_CODECS != 0; }
}  // namespace ms::data

namespace ms::data::parquet {

const char* codec_name(int codec) {
  switch (codec) {
    case kUncompressed:
      return "UNCOMPRESSED";
    case kSnappy:
      return "SNAPPY";
    case kGzip:
      return "GZIP";
    case kLzo:
      return "LZO";
    case kBrotli:
      return "BROTLI";
    case kLz4:
      return "LZ4";
    case kZstd:
      return "ZSTD";
    case kLz4Raw:
      return "LZ4_RAW";
    default:
      return "unknown";
  }
}

namespace {

[[noreturn]] void corrupt(int codec, const std::string& what, const std::string& why) {
  throw Error(
      ErrorCode::kIntegrity,
      fmt::format("{}: a {} page that does not decompress: {}", what, codec_name(codec), why),
      "the file is not a whole Parquet file: download or write it again");
}

#if MS_WITH_PARQUET_CODECS
std::string inflate_gzip(std::string_view in, std::size_t size, const std::string& what) {
  std::string out(size, '\0');
  z_stream zs{};
  // 32 + MAX_WBITS: gzip or zlib framing, told by the header (writers differ).
  if (inflateInit2(&zs, 32 + MAX_WBITS) != Z_OK)
    throw Error(ErrorCode::kInternal, "zlib: cannot start inflating");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&zs, Z_FINISH);
  const std::size_t produced = out.size() - zs.avail_out;
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || produced != size)
    corrupt(kGzip, what,
            rc == Z_STREAM_END ? fmt::format("{} bytes where the header says {}", produced, size)
                               : "corrupt or longer than the header says");
  return out;
}
#endif

}  // namespace

std::string decompress(int codec, std::string_view in, std::size_t size, const std::string& what) {
  if (codec == kUncompressed) {
    if (in.size() != size)
      corrupt(codec, what, fmt::format("{} bytes where the header says {}", in.size(), size));
    return std::string(in);
  }
#if MS_WITH_PARQUET_CODECS
  if (codec == kSnappy) {
    size_t length = 0;
    if (snappy_uncompressed_length(in.data(), in.size(), &length) != SNAPPY_OK || length != size)
      corrupt(codec, what, "its length is not the page header's");
    std::string out(size, '\0');
    if (snappy_uncompress(in.data(), in.size(), out.data(), &length) != SNAPPY_OK || length != size)
      corrupt(codec, what, "corrupt snappy data");
    return out;
  }
  if (codec == kGzip) return inflate_gzip(in, size, what);
  if (codec == kZstd) {
    std::string out(size, '\0');
    const std::size_t n = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n) || n != size)
      corrupt(codec, what,
              ZSTD_isError(n) ? std::string(ZSTD_getErrorName(n))
                              : fmt::format("{} bytes where the header says {}", n, size));
    return out;
  }
#else
  if (codec == kSnappy || codec == kGzip || codec == kZstd) {
    throw Error(ErrorCode::kMissingComponent,
                fmt::format("{}: {}-compressed pages cannot be read: this ms was built without "
                            "MS_WITH_PARQUET_CODECS",
                            what, codec_name(codec)),
                "rebuild with -DMS_WITH_PARQUET_CODECS=ON (libsnappy-dev, libzstd-dev, "
                "zlib1g-dev), or rewrite the file uncompressed");
  }
#endif
  throw Error(ErrorCode::kMissingComponent,
              fmt::format("{}: its pages are {}-compressed, which ms does not read", what,
                          codec_name(codec)),
              "ms reads UNCOMPRESSED, SNAPPY, GZIP and ZSTD Parquet files: rewrite it with one "
              "of them (pyarrow: pq.write_table(t, path, compression='snappy'))");
}

}  // namespace ms::data::parquet

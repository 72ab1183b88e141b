// Parquet's integer encodings (parquet-format Encodings.md): the RLE / bit-packed hybrid of
// levels, dictionary indices and booleans, and DELTA_BINARY_PACKED. Every run is checked against
// the bytes it claims before it is read.
#include <algorithm>

#include "ms/core/error.h"
#include "ms/data/parquet_format.h"

namespace ms::data::parquet {

namespace {

[[noreturn]] void bad(const std::string& what, const std::string& why) {
  throw Error(ErrorCode::kIntegrity, fmt::format("{}: {}", what, why),
              "the file is not a whole Parquet file: download or write it again");
}

struct Cursor {
  std::string_view data;
  std::size_t pos = 0;
  const std::string& what;

  std::uint64_t varint() {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= data.size()) bad(what, "the data end inside a varint");
      const auto b = static_cast<std::uint8_t>(data[pos++]);
      value |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return value;
    }
    bad(what, "a varint longer than 10 bytes");
  }
  std::int64_t zigzag() {
    const std::uint64_t u = varint();
    return static_cast<std::int64_t>(u >> 1) ^ -static_cast<std::int64_t>(u & 1);
  }
  std::size_t left() const { return data.size() - pos; }
};

// Value i of a run of `bit_width`-bit values packed least significant bit first.
std::uint64_t unpack(const std::uint8_t* p, std::size_t i, int bit_width) {
  const std::size_t bit = i * static_cast<std::size_t>(bit_width);
  std::uint64_t v = 0;
  int got = 0;
  std::size_t byte = bit / 8;
  int shift = static_cast<int>(bit % 8);
  while (got < bit_width) {
    const int take = std::min(8 - shift, bit_width - got);
    v |= static_cast<std::uint64_t>((p[byte] >> shift) & ((1u << take) - 1)) << got;
    got += take;
    shift = 0;
    ++byte;
  }
  return v;
}

}  // namespace

std::vector<std::uint32_t> decode_rle_hybrid(std::string_view data, int bit_width,
                                             std::size_t count, const std::string& what) {
  if (bit_width < 0 || bit_width > 32) bad(what, fmt::format("a bit width of {}", bit_width));
  std::vector<std::uint32_t> out;
  // Each run header is at least a byte and yields at most... anything (an RLE run of a million
  // zeros is three bytes), so `count` is the caller's bound, checked by the caller against the
  // page's claims; reserve no more than it.
  out.reserve(count);
  Cursor c{data, 0, what};
  const std::size_t value_bytes = (static_cast<std::size_t>(bit_width) + 7) / 8;
  while (out.size() < count) {
    if (c.left() == 0)
      bad(what, fmt::format("the runs end after {} of {} values", out.size(), count));
    const std::uint64_t header = c.varint();
    if (header & 1) {  // bit-packed: (header >> 1) groups of 8 values
      const std::uint64_t groups = header >> 1;
      if (bit_width != 0 && groups > c.left() / static_cast<std::uint64_t>(bit_width))
        bad(what, "a bit-packed run longer than the data");
      const auto* p = reinterpret_cast<const std::uint8_t*>(c.data.data() + c.pos);
      const std::uint64_t wanted = count - out.size();
      const std::uint64_t n = groups >= (wanted + 7) / 8 ? wanted : groups * 8;  // no overflow
      for (std::uint64_t i = 0; i < n; ++i)
        out.push_back(bit_width == 0 ? 0 : static_cast<std::uint32_t>(unpack(p, i, bit_width)));
      c.pos += static_cast<std::size_t>(groups) * static_cast<std::size_t>(bit_width);
    } else {  // RLE: (header >> 1) repeats of one value of ceil(bit_width / 8) bytes
      const std::uint64_t repeats = header >> 1;
      if (c.left() < value_bytes) bad(what, "an RLE run ends early");
      std::uint32_t v = 0;
      for (std::size_t i = 0; i < value_bytes; ++i)
        v |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(c.data[c.pos + i])) << (8 * i);
      c.pos += value_bytes;
      if (bit_width < 32 && (v >> bit_width) != 0)
        bad(what, fmt::format("an RLE value {} wider than {} bits", v, bit_width));
      const std::uint64_t n = std::min<std::uint64_t>(repeats, count - out.size());
      out.insert(out.end(), static_cast<std::size_t>(n), v);
    }
  }
  return out;
}

std::size_t decode_delta_binary_packed(std::string_view data, std::size_t count,
                                       std::vector<std::int64_t>& out, const std::string& what) {
  Cursor c{data, 0, what};
  const std::uint64_t block_size = c.varint();
  const std::uint64_t miniblocks = c.varint();
  const std::uint64_t total = c.varint();
  if (block_size == 0 || block_size % 128 != 0 || block_size > (1u << 20) || miniblocks == 0 ||
      block_size % miniblocks != 0 || (block_size / miniblocks) % 32 != 0)
    bad(what, fmt::format("a DELTA_BINARY_PACKED block of {} values in {} miniblocks", block_size,
                          miniblocks));
  if (total != count)
    bad(what,
        fmt::format("DELTA_BINARY_PACKED data of {} values where the page has {}", total, count));
  const std::uint64_t per_miniblock = block_size / miniblocks;
  out.clear();
  out.reserve(count);
  auto value = static_cast<std::uint64_t>(c.zigzag());  // wraps as the format says
  if (count > 0) out.push_back(static_cast<std::int64_t>(value));
  while (out.size() < count) {
    const auto min_delta = static_cast<std::uint64_t>(c.zigzag());
    if (c.left() < miniblocks) bad(what, "a DELTA_BINARY_PACKED block ends early");
    const auto* widths = reinterpret_cast<const std::uint8_t*>(c.data.data() + c.pos);
    c.pos += static_cast<std::size_t>(miniblocks);
    for (std::uint64_t m = 0; m < miniblocks && out.size() < count; ++m) {
      const int width = widths[m];
      if (width > 64) bad(what, fmt::format("a miniblock bit width of {}", width));
      const std::uint64_t bytes = per_miniblock * static_cast<std::uint64_t>(width) / 8;
      if (c.left() < bytes) bad(what, "a DELTA_BINARY_PACKED miniblock ends early");
      const auto* p = reinterpret_cast<const std::uint8_t*>(c.data.data() + c.pos);
      const std::uint64_t n = std::min<std::uint64_t>(per_miniblock, count - out.size());
      for (std::uint64_t i = 0; i < n; ++i) {
        value += min_delta + (width == 0 ? 0 : unpack(p, static_cast<std::size_t>(i), width));
        out.push_back(static_cast<std::int64_t>(value));
      }
      c.pos += static_cast<std::size_t>(bytes);
    }
  }
  return c.pos;
}

}  // namespace ms::data::parquet

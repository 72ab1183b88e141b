// See image_metadata.h. The rules are Pillow's (Image.getexif, PngImagePlugin, JpegImagePlugin):
// metadata that is malformed is passed over (the image stays as stored), where PIL would raise.
#include "image_metadata.h"

#include <cstdint>
#include <optional>
#include <string>

#if MS_WITH_PNG
#include <zlib.h>
#endif

namespace ms::data {
namespace {

std::uint32_t big_endian_u32(std::string_view b, std::size_t at) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(b[at])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 2])) << 8) |
         static_cast<unsigned char>(b[at + 3]);
}

// The Orientation tag (0x0112) of the first IFD of a TIFF structure (what an Exif block holds,
// after any "Exif\0\0" prefixes, which PIL drops), as a BYTE, SHORT or LONG as PIL reads any of
// them (another type: 0, no turn); nullopt when there is no such tag or the block cannot be read.
// Cameras store photos as the sensor saw them and say in this tag how to turn them upright.
std::optional<int> tiff_orientation(std::string_view tiff) {
  while (tiff.substr(0, 6) == std::string_view("Exif\0\0", 6)) tiff.remove_prefix(6);
  auto u16 = [&tiff](std::size_t at, bool big) -> unsigned {
    const auto hi = static_cast<unsigned char>(tiff[at + (big ? 0 : 1)]);
    const auto lo = static_cast<unsigned char>(tiff[at + (big ? 1 : 0)]);
    return (hi << 8) | lo;
  };
  auto u32 = [&u16](std::size_t at, bool big) -> std::uint32_t {
    const std::uint32_t first = u16(at, big), second = u16(at + 2, big);
    return big ? (first << 16) | second : (second << 16) | first;
  };
  if (tiff.size() < 8) return std::nullopt;
  const bool big = tiff.substr(0, 2) == "MM";
  if (!big && tiff.substr(0, 2) != "II") return std::nullopt;
  if (u16(2, big) != 42) return std::nullopt;
  const std::uint32_t ifd = u32(4, big);
  if (ifd > tiff.size() || tiff.size() - ifd < 2) return std::nullopt;
  const unsigned entries = u16(ifd, big);
  for (unsigned i = 0; i < entries; ++i) {
    const std::size_t entry = ifd + 2 + 12 * static_cast<std::size_t>(i);
    if (entry + 12 > tiff.size()) return std::nullopt;
    if (u16(entry, big) != 0x0112) continue;
    const unsigned type = u16(entry + 2, big);
    const std::uint32_t value = type == 1   ? static_cast<unsigned char>(tiff[entry + 8])
                                : type == 3 ? u16(entry + 8, big)
                                : type == 4 ? u32(entry + 8, big)
                                            : 0;
    return value <= 8 ? static_cast<int>(value) : 0;
  }
  return std::nullopt;
}

// XMP's orientation as PIL finds it: the first `tiff:Orientation` followed by `="` or `>` and a
// digit (the attribute and the element forms of the property).
std::optional<int> xmp_orientation(std::string_view xmp) {
  static constexpr std::string_view kName = "tiff:Orientation";
  for (std::size_t at = xmp.find(kName); at != std::string_view::npos;
       at = xmp.find(kName, at + 1)) {
    std::string_view rest = xmp.substr(at + kName.size());
    if (rest.substr(0, 2) == "=\"") {
      rest.remove_prefix(2);
    } else if (rest.substr(0, 1) == ">") {
      rest.remove_prefix(1);
    } else {
      continue;
    }
    if (!rest.empty() && rest[0] >= '0' && rest[0] <= '9') return rest[0] - '0';
  }
  return std::nullopt;
}

int orientation_of(std::optional<std::string_view> exif, std::optional<std::string_view> xmp) {
  std::optional<int> orientation;
  if (exif) orientation = tiff_orientation(*exif);
  if (!orientation && xmp) orientation = xmp_orientation(*xmp);
  return orientation.value_or(1);
}

#if MS_WITH_PNG
// The text of a zTXt or compressed iTXt chunk, or nullopt when it is not whole zlib data or
// inflates past 1 MiB (PIL's limit for a text chunk).
std::optional<std::string> inflate_text(std::string_view compressed) {
  static constexpr std::size_t kLimit = 1 << 20;
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return std::nullopt;
  std::string out;
  char buffer[16384];
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs.avail_in = static_cast<uInt>(compressed.size());
  int rc = Z_OK;
  while (rc == Z_OK && out.size() <= kLimit) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof(buffer);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buffer, sizeof(buffer) - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // cut short
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || out.size() > kLimit) return std::nullopt;
  return out;
}

// ImageMagick's "Raw profile type exif" text: "\nexif\n<length>\n" and then the bytes in hex,
// with line breaks (PIL reads the hex after the third line break, skipping white space).
std::optional<std::string> raw_profile_bytes(std::string_view text) {
  for (int line = 0; line < 3; ++line) {
    const std::size_t end = text.find('\n');
    if (end == std::string_view::npos) return std::nullopt;
    text.remove_prefix(end + 1);
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string bytes;
  int high = -1;
  for (char c : text) {
    if (c == '\n') continue;  // PIL joins the lines before reading the hex
    if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
      if (high >= 0) return std::nullopt;  // white space inside a byte
      continue;
    }
    const int v = nibble(c);
    if (v < 0) return std::nullopt;
    if (high < 0) {
      high = v;
    } else {
      bytes.push_back(static_cast<char>((high << 4) | v));
      high = -1;
    }
  }
  if (high >= 0) return std::nullopt;
  return bytes;
}
#endif

}  // namespace

std::size_t jpeg_scan_start(std::string_view b,
                            const std::function<bool(unsigned char, std::string_view)>& segment) {
  std::size_t at = 2;  // after SOI
  while (at + 4 <= b.size() && static_cast<unsigned char>(b[at]) == 0xFF) {
    const auto marker = static_cast<unsigned char>(b[at + 1]);
    if (marker == 0xFF) {
      ++at;
      continue;
    }
    if (marker == 0xDA) return at;
    if (marker == 0xD9) break;  // the end, before any scan
    const std::size_t length =
        (static_cast<unsigned char>(b[at + 2]) << 8) | static_cast<unsigned char>(b[at + 3]);
    if (length < 2 || at + 2 + length > b.size()) break;
    if (segment && !segment(marker, b.substr(at + 4, length - 2))) break;
    at += 2 + length;
  }
  return std::string_view::npos;
}

int jpeg_orientation(std::string_view b) {
  static constexpr std::string_view kExif("Exif\0\0", 6);
  static constexpr std::string_view kXmp("http://ns.adobe.com/xap/1.0/\0", 29);
  std::optional<std::string_view> exif, xmp;
  jpeg_scan_start(b, [&](unsigned char marker, std::string_view payload) {
    if (marker != 0xE1) return true;
    if (!exif && payload.substr(0, kExif.size()) == kExif) exif = payload;  // PIL: the first
    if (payload.substr(0, kXmp.size()) == kXmp) xmp = payload.substr(kXmp.size());  // the last
    return true;
  });
  return orientation_of(exif, xmp);
}

int png_orientation(std::string_view b) {
#if MS_WITH_PNG
  std::optional<std::string> exif, raw_profile, xmp;  // the last of each, as PIL's info dict
  std::size_t at = 8;                                 // after the signature
  while (at + 12 <= b.size()) {
    const std::uint32_t length = big_endian_u32(b, at);
    const std::string_view type = b.substr(at + 4, 4);
    if (length > b.size() - at - 12 || type == "IEND") break;
    const std::string_view data = b.substr(at + 8, length);
    at += 12 + static_cast<std::size_t>(length);
    if (type == "eXIf") {
      exif = std::string(data);
      continue;
    }
    if (type != "tEXt" && type != "zTXt" && type != "iTXt") continue;
    const std::size_t key_end = data.find('\0');
    const std::string_view key = data.substr(0, key_end);
    if (key != "exif" && key != "Raw profile type exif" && key != "XML:com.adobe.xmp") continue;
    std::optional<std::string> text;
    if (key_end == std::string_view::npos) {
      text = std::string();  // PIL reads a tEXt without its NUL as an empty text
    } else if (type == "tEXt") {
      text = std::string(data.substr(key_end + 1));
    } else if (type == "zTXt") {
      if (data.size() > key_end + 1 && data[key_end + 1] == 0)
        text = inflate_text(data.substr(key_end + 2));
    } else {  // iTXt: compressed flag and method, language tag, translated keyword, text
      std::string_view rest = data.substr(key_end + 1);
      if (rest.size() < 2) continue;
      const bool compressed = rest[0] != 0;
      const bool deflate = rest[1] == 0;
      rest.remove_prefix(2);
      const std::size_t language_end = rest.find('\0');
      if (language_end == std::string_view::npos) continue;
      const std::size_t keyword_end = rest.find('\0', language_end + 1);
      if (keyword_end == std::string_view::npos) continue;
      rest.remove_prefix(keyword_end + 1);
      if (!compressed) {
        text = std::string(rest);
      } else if (deflate) {
        text = inflate_text(rest);
      }
    }
    if (!text) continue;
    if (key == "exif") {
      if (type == "tEXt") exif = std::move(text);  // PIL keeps a tEXt "exif" as bytes
    } else if (key == "Raw profile type exif") {
      raw_profile = std::move(text);
    } else {
      xmp = std::move(text);
    }
  }
  if (!exif && raw_profile) exif = raw_profile_bytes(*raw_profile);
  std::optional<std::string_view> exif_view, xmp_view;
  if (exif) exif_view = *exif;
  if (xmp) xmp_view = *xmp;
  return orientation_of(exif_view, xmp_view);
#else
  (void)b;
  return 1;
#endif
}

}  // namespace ms::data

// Image decoding, PIL-compatible bilinear resizing and normalisation into float CHW.
#include "ms/data/image.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>

#include "image_metadata.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"

#if MS_WITH_JPEG
#include <turbojpeg.h>
#endif
#if MS_WITH_PNG
#include <png.h>
#endif

namespace ms::data {
namespace {

bool is_jpeg(std::string_view b) {
  return b.size() >= 3 && static_cast<unsigned char>(b[0]) == 0xFF &&
         static_cast<unsigned char>(b[1]) == 0xD8 && static_cast<unsigned char>(b[2]) == 0xFF;
}

bool is_png(std::string_view b) { return b.size() >= 8 && b.substr(0, 8) == "\x89PNG\r\n\x1a\n"; }

[[noreturn]] void corrupt(const std::string& source, const std::string& what) {
  throw Error(
      ErrorCode::kIntegrity, fmt::format("{}: corrupt image: {}", source, what),
      "replace or remove the file (`ms dataset info DATASET --verify` checks every image of "
      "a dataset; `ms dataset iter` skips bad ones with --skip-bad)");
}

#if MS_WITH_JPEG || MS_WITH_PNG
void check_size(const std::string& source, long long width, long long height) {
  if (width <= 0 || height <= 0) corrupt(source, "zero width or height");
  // Decompression bombs are refused before decoding (fuzzing found a 337-byte JPEG declaring
  // 18249x13364 pixels, 730 MB of RGB).
  if (width * height > kMaxImagePixels) {
    corrupt(source, fmt::format("{}x{} pixels is more than the limit of {}", width, height,
                                kMaxImagePixels));
  }
}

// PIL's RGB to grey ("L"): ITU-R 601's 299/587/114 in 16-bit fixed point.
std::uint8_t pil_luma(int r, int g, int b) {
  return static_cast<std::uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}
#endif

#if MS_WITH_JPEG || MS_WITH_PNG
// The image turned upright as its EXIF orientation says, as PIL's ImageOps.exif_transpose does
// (ModelScope's LoadImage calls it): 2 mirror, 3 half turn, 4 flip, 5 transpose, 6 quarter turn
// clockwise, 7 transverse, 8 quarter turn counter-clockwise.
Image upright(Image in, int orientation) {
  if (orientation <= 1 || orientation > 8) return in;
  const int w = in.width, h = in.height, ch = in.channels;
  const bool swaps = orientation >= 5;
  Image out;
  out.width = swaps ? h : w;
  out.height = swaps ? w : h;
  out.channels = ch;
  out.pixels.resize(in.pixels.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;  // the input pixel output (x, y) shows
      switch (orientation) {
        case 2:
          sx = w - 1 - x;
          break;
        case 3:
          sx = w - 1 - x, sy = h - 1 - y;
          break;
        case 4:
          sy = h - 1 - y;
          break;
        case 5:
          sx = y, sy = x;
          break;
        case 6:
          sx = y, sy = h - 1 - x;
          break;
        case 7:
          sx = w - 1 - y, sy = h - 1 - x;
          break;
        case 8:
          sx = w - 1 - y, sy = x;
          break;
        default:
          break;
      }
      std::memcpy(&out.pixels[(static_cast<std::size_t>(y) * out.width + x) * ch],
                  &in.pixels[(static_cast<std::size_t>(sy) * w + sx) * ch], ch);
    }
  }
  return out;
}

#endif

#if MS_WITH_JPEG
// Whether a JPEG's data ends before its end-of-image marker: no EOI (FF D9) after its first
// scan's start, found by walking the segments (an Exif thumbnail or an ICC profile before it may
// hold both markers). Entropy-coded data never holds FF D9: an FF there is followed by 00 or a
// restart code.
bool jpeg_truncated(std::string_view b) {
  const std::size_t scan = jpeg_scan_start(b);
  return scan == std::string_view::npos || b.find("\xFF\xD9", scan) == std::string_view::npos;
}

// A CMYK (or YCCK) JPEG's pixels as PIL gives them: it reads the samples as Adobe stores them,
// inverted ("CMYK;I", whatever the file says), and convert("RGB") takes each channel as
// (255 - K) - C * (255 - K) / 255, rounded as its MULDIV255.
void cmyk_to_rgb(const std::vector<std::uint8_t>& cmyk, Image& image) {
  auto muldiv255 = [](int a, int b) {
    const int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  std::uint8_t* out = image.pixels.data();
  for (std::size_t i = 0; i + 3 < cmyk.size(); i += 4) {
    const int k = 255 - cmyk[i + 3];
    const int nk = 255 - k;
    int rgb[3];
    for (int c = 0; c < 3; ++c) rgb[c] = std::clamp(nk - muldiv255(255 - cmyk[i + c], nk), 0, 255);
    if (image.channels == 1) {
      *out++ = pil_luma(rgb[0], rgb[1], rgb[2]);
    } else {
      for (int c = 0; c < 3; ++c) *out++ = static_cast<std::uint8_t>(rgb[c]);
    }
  }
}

Image decode_jpeg(std::string_view bytes, const std::string& source, int channels) {
  struct Closer {
    void operator()(void* h) const { tjDestroy(h); }
  };
  std::unique_ptr<void, Closer> handle(tjInitDecompress());
  MS_ASSERT(handle);
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  if (tjDecompressHeader3(handle.get(), data, bytes.size(), &width, &height, &subsamp,
                          &colorspace) != 0) {
    const std::string what = tjGetErrorStr2(handle.get());
    // TurboJPEG decodes the chroma layouts it has names for (4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1,
    // grey); a valid file with other sampling factors is not corrupt, only not decoded here.
    if (what.find("subsampling") != std::string::npos) {
      throw Error(ErrorCode::kMissingComponent,
                  fmt::format("{}: the JPEG's chroma sampling factors are not supported ({})",
                              source, what),
                  "re-encode the image (e.g. with 4:2:0 sampling)");
    }
    corrupt(source, what);
  }
  check_size(source, width, height);
  Image image;
  image.width = width;
  image.height = height;
  image.channels = channels;
  image.pixels.resize(static_cast<std::size_t>(width) * height * channels);
  // As PIL: libjpeg converts CMYK to no RGB, so the samples are decoded as they are and converted
  // here; grey from a colour JPEG is its RGB pixels' luma (libjpeg's own Y channel is up to one
  // level off), from a grey JPEG its samples.
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  const bool rgb_to_grey = !cmyk && channels == 1 && colorspace != TJCS_GRAY;
  std::vector<std::uint8_t> decoded;
  if (cmyk || rgb_to_grey)
    decoded.resize(static_cast<std::size_t>(width) * height * (cmyk ? 4 : 3));
  const int format = cmyk ? TJPF_CMYK : channels == 1 && !rgb_to_grey ? TJPF_GRAY : TJPF_RGB;
  unsigned char* out = decoded.empty() ? image.pixels.data() : decoded.data();
  // As PIL: libjpeg's warnings (extraneous bytes before a marker, a segment cut short by the next
  // marker) are no reason to refuse the pixels, but an error is, and so is a file that ends
  // before its end-of-image marker ("image file is truncated": its missing rows would be grey
  // fill). TurboJPEG calls the outcome a warning once any warning came, even when an error
  // ended the decoding after it; but it keeps the text of the first warning and of an error
  // only. So a first pass stops at the first warning, and a second, without stopping, that ends
  // with another text ended with an error.
  if (tjDecompress2(handle.get(), data, bytes.size(), out, width, 0, height, format,
                    TJFLAG_STOPONWARNING) != 0) {
    if (tjGetErrorCode(handle.get()) != TJERR_WARNING)
      corrupt(source, tjGetErrorStr2(handle.get()));
    const std::string first_warning = tjGetErrorStr2(handle.get());
    const std::unique_ptr<void, Closer> again(tjInitDecompress());
    MS_ASSERT(again);
    if (tjDecompress2(again.get(), data, bytes.size(), out, width, 0, height, format, 0) != 0) {
      const std::string last = tjGetErrorStr2(again.get());
      if (tjGetErrorCode(again.get()) != TJERR_WARNING || last != first_warning)
        corrupt(source, last);
    }
    if (jpeg_truncated(bytes)) corrupt(source, "the file ends before the image's end marker");
  }
  if (cmyk) {
    cmyk_to_rgb(decoded, image);
  } else if (rgb_to_grey) {
    for (std::size_t i = 0, o = 0; i + 2 < decoded.size(); i += 3, ++o)
      image.pixels[o] = pil_luma(decoded[i], decoded[i + 1], decoded[i + 2]);
  }
  return image;
}
#endif

#if MS_WITH_PNG
// libpng's low-level reader (its simplified API converts as a colour-managed viewer would: 16-bit
// samples taken for linear light and gamma-encoded, gAMA chunks applied, RGB to grey in linear
// light). PIL, which ModelScope's LoadImage uses, takes the samples as they are: convert("RGB")
// keeps the high byte of 16-bit RGB and grey-with-alpha samples, clips 16-bit grey ("I;16") at
// 255, drops alpha without compositing and ignores gamma; convert("L") weighs R, G, B by ITU-R
// 601's 299/587/114 in 16-bit fixed point. So does this.
struct PngReader {
  std::string_view bytes;
  std::size_t offset = 0;
  std::string error;
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<std::uint8_t> samples;  // the decoded rows, back to back
  std::vector<png_bytep> rows;        // each row's start in samples
  Image image;                        // the output, filled row by row
  ~PngReader() { png_destroy_read_struct(&png, info != nullptr ? &info : nullptr, nullptr); }
};

void png_read_bytes(png_structp png, png_bytep out, png_size_t n) {
  auto* reader = static_cast<PngReader*>(png_get_io_ptr(png));
  if (n > reader->bytes.size() - reader->offset) png_error(png, "the file ends early");
  std::memcpy(out, reader->bytes.data() + reader->offset, n);
  reader->offset += n;
}

[[noreturn]] void png_fail(png_structp png, png_const_charp message) {
  static_cast<PngReader*>(png_get_error_ptr(png))->error = message;
  png_longjmp(png, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

Image decode_png(std::string_view bytes, const std::string& source, int channels) {
  // Everything libpng's longjmp may leave behind lives on the heap, reached through a pointer
  // that does not change after setjmp (a longjmp skips the destructors of objects made after
  // it).
  const auto reader = std::make_unique<PngReader>();
  reader->bytes = bytes;
  reader->png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, reader.get(), png_fail, png_ignore_warning);
  MS_ASSERT(reader->png != nullptr);
  reader->info = png_create_info_struct(reader->png);
  MS_ASSERT(reader->info != nullptr);
  png_structp png = reader->png;
  png_infop info = reader->info;
  if (setjmp(png_jmpbuf(png))) corrupt(source, reader->error);
  png_set_read_fn(png, reader.get(), png_read_bytes);
  // libpng refuses widths and heights past 1,000,000 by default; PIL opens those, and the pixel
  // count is checked below as for every image.
  png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
  png_read_info(png, info);
  const long long width = png_get_image_width(png, info);
  const long long height = png_get_image_height(png, info);
  check_size(source, width, height);
  const int color_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  const bool interlaced = png_set_interlace_handling(png) > 1;
  png_read_update_info(png, info);
  const int in_channels = png_get_channels(png, info);
  const int depth = png_get_bit_depth(png, info);  // 8 or 16 now (big-endian samples)
  const std::size_t row_bytes = png_get_rowbytes(png, info);
  // An interlaced image arrives in passes over the whole image, so its rows are all kept; any
  // other is converted row by row (a header declaring a large image costs the output, not also
  // 8 bytes a pixel of 16-bit samples, before its data is read).
  reader->samples.resize(row_bytes * static_cast<std::size_t>(interlaced ? height : 1));
  if (interlaced) {
    reader->rows.resize(static_cast<std::size_t>(height));
    for (long long y = 0; y < height; ++y) reader->rows[y] = reader->samples.data() + row_bytes * y;
    png_read_image(png, reader->rows.data());
  }
  // No png_read_end: what follows the pixels (a missing IEND, bytes after the last IDAT) is no
  // reason to refuse them, as PIL does not.

  const bool grey = in_channels <= 2;  // grey, or grey with alpha
  const bool clip_16 = depth == 16 && in_channels == 1;
  auto sample = [&](const std::uint8_t* pixel, int c) -> int {
    if (depth == 8) return pixel[c];
    const int value = (pixel[2 * c] << 8) | pixel[2 * c + 1];
    return clip_16 ? std::min(value, 255) : value >> 8;
  };
  // On the heap with the rest: png_read_row() may still longjmp out of the loop below.
  Image& image = reader->image;
  image.width = static_cast<int>(width);
  image.height = static_cast<int>(height);
  image.channels = channels;
  image.pixels.resize(static_cast<std::size_t>(width) * height * channels);
  const std::size_t pixel_bytes = static_cast<std::size_t>(in_channels) * (depth / 8);
  std::uint8_t* out = image.pixels.data();
  for (long long y = 0; y < height; ++y) {
    const std::uint8_t* pixel = nullptr;
    if (interlaced) {
      pixel = reader->rows[y];
    } else {
      png_read_row(png, reader->samples.data(), nullptr);
      pixel = reader->samples.data();
    }
    for (long long x = 0; x < width; ++x, pixel += pixel_bytes) {
      if (grey) {
        const auto v = static_cast<std::uint8_t>(sample(pixel, 0));
        for (int c = 0; c < channels; ++c) *out++ = v;
      } else if (channels == 3) {
        for (int c = 0; c < 3; ++c) *out++ = static_cast<std::uint8_t>(sample(pixel, c));
      } else {
        *out++ = pil_luma(sample(pixel, 0), sample(pixel, 1), sample(pixel, 2));
      }
    }
  }
  return std::move(reader->image);
}
#endif

// PIL's resampling (Imaging/Resample.c semantics, written from its documented algorithm): per
// output pixel a window of the triangle filter scaled by max(scale, 1), normalised, in 22-bit fixed
// point.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct Coefficients {
  int ksize = 0;
  std::vector<int> bounds;   // per output pixel: xmin, count
  std::vector<int> weights;  // per output pixel: ksize fixed-point weights
};

Coefficients precompute(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(out_size * 2);
  c.weights.assign(static_cast<std::size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double t = (x + xmin - center + 0.5) * ss;
      if (t < 0) t = -t;
      const double w = t < 1.0 ? 1.0 - t : 0.0;
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[x] / ww : k[x];
      c.weights[static_cast<std::size_t>(xx) * c.ksize + x] = static_cast<int>(
          w < 0 ? -0.5 + w * (1 << kPrecisionBits) : 0.5 + w * (1 << kPrecisionBits));
    }
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  return c;
}

inline std::uint8_t clip8(int v) {
  v >>= kPrecisionBits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

template <int kChannels>
void horizontal_rows(const Image& in, const Coefficients& c, Image& out) {
  const int ch = kChannels > 0 ? kChannels : in.channels;
  for (int y = 0; y < in.height; ++y) {
    const std::uint8_t* row = &in.pixels[static_cast<std::size_t>(y) * in.width * ch];
    std::uint8_t* dst = &out.pixels[static_cast<std::size_t>(y) * out.width * ch];
    for (int xx = 0; xx < out.width; ++xx) {
      const int xmin = c.bounds[xx * 2], count = c.bounds[xx * 2 + 1];
      const int* k = &c.weights[static_cast<std::size_t>(xx) * c.ksize];
      const std::uint8_t* src = row + static_cast<std::size_t>(xmin) * ch;
      if constexpr (kChannels == 3) {
        int s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < count; ++x) {
          s0 += src[x * 3] * k[x];
          s1 += src[x * 3 + 1] * k[x];
          s2 += src[x * 3 + 2] * k[x];
        }
        dst[xx * 3] = clip8(s0);
        dst[xx * 3 + 1] = clip8(s1);
        dst[xx * 3 + 2] = clip8(s2);
      } else {
        for (int b = 0; b < ch; ++b) {
          int ss = 1 << (kPrecisionBits - 1);
          for (int x = 0; x < count; ++x) ss += src[x * ch + b] * k[x];
          dst[xx * ch + b] = clip8(ss);
        }
      }
    }
  }
}

Image resize_horizontal(const Image& in, int out_width) {
  const Coefficients c = precompute(in.width, out_width);
  Image out;
  out.height = in.height;
  out.width = out_width;
  out.channels = in.channels;
  out.pixels.resize(static_cast<std::size_t>(out.height) * out.width * out.channels);
  if (in.channels == 3) {
    horizontal_rows<3>(in, c, out);
  } else {
    horizontal_rows<0>(in, c, out);
  }
  return out;
}

Image resize_vertical(const Image& in, int out_height) {
  const Coefficients c = precompute(in.height, out_height);
  Image out;
  out.height = out_height;
  out.width = in.width;
  out.channels = in.channels;
  const std::size_t stride = static_cast<std::size_t>(in.width) * in.channels;
  out.pixels.resize(static_cast<std::size_t>(out_height) * stride);
  // Taps outside, pixels inside: the inner loop runs over a contiguous row and vectorises.
  std::vector<int> acc(stride);
  for (int yy = 0; yy < out_height; ++yy) {
    const int ymin = c.bounds[yy * 2], count = c.bounds[yy * 2 + 1];
    const int* k = &c.weights[static_cast<std::size_t>(yy) * c.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < count; ++y) {
      const std::uint8_t* src = &in.pixels[(y + ymin) * stride];
      const int w = k[y];
      int* a = acc.data();
      for (std::size_t i = 0; i < stride; ++i) a[i] += src[i] * w;
    }
    std::uint8_t* dst = &out.pixels[yy * stride];
    for (std::size_t i = 0; i < stride; ++i) dst[i] = clip8(acc[i]);
  }
  return out;
}

}  // namespace

bool jpeg_supported() { return MS_WITH_JPEG != 0; }
bool png_supported() { return MS_WITH_PNG != 0; }

bool has_image_extension(std::string_view name) {
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos) return false;
  std::string ext(name.substr(dot + 1));
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "bmp" || ext == "gif" ||
         ext == "webp" || ext == "tif" || ext == "tiff";
}

Image decode_image(std::string_view bytes, const std::string& source, int channels) {
  MS_CHECK(channels == 1 || channels == 3, ErrorCode::kUsage,
           "image channels must be 1 or 3, got {}", channels);
  if (is_jpeg(bytes)) {
#if MS_WITH_JPEG
    return upright(decode_jpeg(bytes, source, channels), jpeg_orientation(bytes));
#else
    throw Error(ErrorCode::kMissingComponent,
                fmt::format("{}: JPEG support is not built in", source),
                "rebuild with -DMS_WITH_JPEG=ON (Debian package libturbojpeg0-dev)");
#endif
  }
  if (is_png(bytes)) {
#if MS_WITH_PNG
    return upright(decode_png(bytes, source, channels), png_orientation(bytes));
#else
    throw Error(ErrorCode::kMissingComponent,
                fmt::format("{}: PNG support is not built in", source),
                "rebuild with -DMS_WITH_PNG=ON (Debian package libpng-dev)");
#endif
  }
  if (bytes.empty()) corrupt(source, "empty file");
  // Recognised but not decoded: say so instead of calling the file corrupt.
  const char* format = nullptr;
  if (bytes.size() >= 2 && bytes.substr(0, 2) == "BM") format = "BMP";
  if (bytes.size() >= 4 && bytes.substr(0, 4) == "GIF8") format = "GIF";
  if (bytes.size() >= 12 && bytes.substr(0, 4) == "RIFF" && bytes.substr(8, 4) == "WEBP") {
    format = "WebP";
  }
  if (bytes.size() >= 4 && (bytes.substr(0, 4) == std::string_view("II*\0", 4) ||
                            bytes.substr(0, 4) == std::string_view("MM\0*", 4))) {
    format = "TIFF";
  }
  if (format) {
    throw Error(ErrorCode::kMissingComponent,
                fmt::format("{}: {} images are not supported (JPEG and PNG are)", source, format),
                "convert the images to PNG or JPEG");
  }
  corrupt(source, "not a JPEG or PNG file (unknown signature)");
}

Image read_image(const std::string& path, int channels) {
  // No JPEG or PNG of kMaxImagePixels takes 2 GiB (16-bit RGBA stored raw is 1.4 GB): a larger
  // file (a sparse one, a disk image named .png) is refused before it is read into memory.
  static constexpr std::uintmax_t kMaxImageFileBytes = std::uintmax_t{2} << 30;
  return decode_image(read_regular_file(path, kMaxImageFileBytes), path, channels);
}

Image resize_bilinear(const Image& image, int height, int width) {
  MS_CHECK(height > 0 && width > 0, ErrorCode::kUsage, "resize to {}x{}: sizes must be positive",
           height, width);
  MS_CHECK(image.height > 0 && image.width > 0, ErrorCode::kUsage, "cannot resize an empty image");
  // Each pass only when that size changes, horizontal first, as PIL does; but vertical first when
  // the height shrinks by more than twice what the width does, as Pillow 13 does (the passes round
  // to 8 bits in between: Pillow 12 and older, always horizontal first, are then one grey level
  // apart on some pixels).
  if (width != image.width && height != image.height) {
    const int64_t height_cut = static_cast<int64_t>(image.height) - height;
    const int64_t width_cut = static_cast<int64_t>(image.width) - width;
    if (height_cut > 0 && height_cut > width_cut * 2) {
      return resize_horizontal(resize_vertical(image, height), width);
    }
    return resize_vertical(resize_horizontal(image, width), height);
  }
  if (width != image.width) return resize_horizontal(image, width);
  if (height != image.height) return resize_vertical(image, height);
  return image;
}

ImageTransform ImageTransform::from_config(const Config& config, const std::string& prefix) {
  auto key = [&](const char* name) {
    return prefix.empty() ? std::string(name) : prefix + "." + name;
  };
  ImageTransform t;
  if (prefix.empty() && config.root().is_object()) {
    // A whole config that is a transform (`ms dataset iter --transform`): a misspelt key would
    // otherwise be a transform silently not applied.
    const std::vector<std::string> known = {"resize", "mode", "mean", "std"};
    for (const auto& [name, value] : config.root().items()) {
      if (std::find(known.begin(), known.end(), name) != known.end()) continue;
      const std::string close = did_you_mean(name, known);
      throw Error(ErrorCode::kConfig,
                  fmt::format("{}: unknown key '{}' (a transform takes resize, mode, mean and std)",
                              config.source(), name),
                  close);
    }
  }
  if (config.has(key("resize"))) {
    const Json& r = config.at(key("resize"));
    if (r.is_number_integer()) {
      t.height = t.width = config.get<int>(key("resize"));
    } else {
      MS_CHECK(
          r.is_array() && r.size() == 2 && r[0].is_number_integer() && r[1].is_number_integer(),
          ErrorCode::kConfig, "{}: key '{}' must be an integer or [height, width], got {}",
          config.source(), key("resize"), r.dump());
      t.height = r[0].get<int>();
      t.width = r[1].get<int>();
    }
    MS_CHECK(t.height > 0 && t.width > 0 && t.height <= 16384 && t.width <= 16384,
             ErrorCode::kConfig, "{}: key '{}' must be within 1..16384, got {}", config.source(),
             key("resize"), r.dump());
  }
  const std::string mode = config.get_or<std::string>(key("mode"), "RGB");
  MS_CHECK(mode == "RGB" || mode == "L", ErrorCode::kConfig,
           "{}: key '{}' must be RGB or L, got '{}'", config.source(), key("mode"), mode);
  t.channels = mode == "RGB" ? 3 : 1;
  auto floats = [&](const char* name) {
    std::vector<float> v;
    if (!config.has(key(name))) return v;
    const Json& j = config.at(key(name));
    MS_CHECK(j.is_array(), ErrorCode::kConfig, "{}: key '{}' must be a list of numbers",
             config.source(), key(name));
    for (const Json& x : j) {
      MS_CHECK(x.is_number(), ErrorCode::kConfig, "{}: key '{}' must be a list of numbers, got {}",
               config.source(), key(name), j.dump());
      v.push_back(x.get<float>());
    }
    MS_CHECK(v.size() == 1 || v.size() == static_cast<std::size_t>(t.channels), ErrorCode::kConfig,
             "{}: key '{}' needs {} (mode {}), got {}", config.source(), key(name),
             t.channels == 1 ? std::string("1 value") : fmt::format("1 or {} values", t.channels),
             mode, v.size());
    return v;
  };
  t.mean = floats("mean");
  t.std = floats("std");
  if (t.std.empty() && !t.mean.empty()) t.std.assign(t.mean.size(), 1.0f);
  if (t.mean.empty() && !t.std.empty()) t.mean.assign(t.std.size(), 0.0f);
  for (float s : t.std) {
    MS_CHECK(s != 0.0f, ErrorCode::kConfig, "{}: key '{}' must not contain 0", config.source(),
             key("std"));
  }
  for (float m : t.mean) t.mean_in_255 = t.mean_in_255 || m > 1.0f;
  return t;
}

void ImageTransform::apply(const Image& image, std::vector<float>& out) const {
  MS_ASSERT(image.channels == channels);
  const Image* src = &image;
  Image resized;
  if (height > 0 && (image.height != height || image.width != width)) {
    resized = resize_bilinear(image, height, width);
    src = &resized;
  }
  const std::size_t plane = static_cast<std::size_t>(src->height) * src->width;
  const std::size_t base = out.size();
  out.resize(base + plane * channels);
  // One 256-entry table per channel: (v / 255 - mean) / std, or (v - mean) / std for 0..255 means.
  float lut[3][256];
  for (int c = 0; c < channels; ++c) {
    float scale = 1.0f / 255.0f, shift = 0.0f;
    if (!mean.empty()) {
      const float m = mean[mean.size() == 1 ? 0 : c];
      const float s = std[std.size() == 1 ? 0 : c];
      scale = mean_in_255 ? 1.0f / s : 1.0f / (255.0f * s);
      shift = -m / s;
    }
    for (int v = 0; v < 256; ++v) lut[c][v] = v * scale + shift;
  }
  const std::uint8_t* p = src->pixels.data();
  if (channels == 3) {
    float* r = &out[base];
    float* g = r + plane;
    float* b = g + plane;
    for (std::size_t i = 0; i < plane; ++i) {
      r[i] = lut[0][p[i * 3]];
      g[i] = lut[1][p[i * 3 + 1]];
      b[i] = lut[2][p[i * 3 + 2]];
    }
  } else {
    float* dst = &out[base];
    for (std::size_t i = 0; i < plane; ++i) dst[i] = lut[0][p[i]];
  }
}

}  // namespace ms::data

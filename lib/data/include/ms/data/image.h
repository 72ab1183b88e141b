// Image decoding (JPEG via libjpeg-turbo, PNG via libpng), PIL-compatible resizing, normalisation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ms/config/config.h"
#include "ms/core/export.h"

namespace ms::data {

/// 8-bit pixels, height x width x channels (interleaved, 1 = grey, 3 = RGB).
struct Image {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<std::uint8_t> pixels;
};

/// The most pixels an image may have, decoded or resized: Pillow's (it refuses twice its
/// MAX_IMAGE_PIXELS as a decompression bomb), so an image PIL opens for ModelScope opens here too.
inline constexpr long long kMaxImagePixels = 178956970;

/// Whether this build can decode JPEG / PNG (CMake options MS_WITH_JPEG / MS_WITH_PNG).
MS_API bool jpeg_supported();
MS_API bool png_supported();

/// True for file names with an image extension (.jpg .jpeg .png .bmp .gif .webp .tif .tiff).
MS_API bool has_image_extension(std::string_view name);

/// Decodes JPEG or PNG bytes (told apart by their signature) to `channels` (1 grey or 3 RGB).
/// Turned upright as the EXIF orientation says (JPEG's Exif segment, PNG's eXIf chunk), as
/// ModelScope's LoadImage does with PIL's exif_transpose. A corrupt or truncated image is
/// ms::Error(kIntegrity) naming `source`; a recognised format that is not decoded (BMP, GIF,
/// WebP, TIFF, JPEG sampling factors TurboJPEG has no name for) or a decoder not built in is
/// kMissingComponent.
MS_API Image decode_image(std::string_view bytes, const std::string& source, int channels = 3);

/// Reads and decodes an image file.
MS_API Image read_image(const std::string& path, int channels = 3);

/// Resizes with a bilinear (triangle) filter whose support grows when shrinking, as PIL's
/// Image.resize(..., BILINEAR) does, so results match PIL within a grey level or two.
MS_API Image resize_bilinear(const Image& image, int height, int width);

/// What to do to each image before batching. Read from a config section (JSON):
/// `{"resize": [H, W] | S, "mode": "RGB" | "L", "mean": [...], "std": [...]}`.
/// Pixels become float (v / 255 - mean) / std; a mean above 1 is taken in 0..255 units
/// (mmcv/ModelScope style) and then pixels are (v - mean) / std.
struct MS_API ImageTransform {
  int height = 0;  ///< 0 = keep the decoded size
  int width = 0;
  int channels = 3;
  std::vector<float> mean;  ///< empty = no normalisation (pixels / 255)
  std::vector<float> std;
  bool mean_in_255 = false;

  /// Parses a transform section; errors name the config file and key (kConfig).
  static ImageTransform from_config(const Config& config, const std::string& prefix = "");

  /// Applies resize and normalisation, appending channels x height x width floats to `out`.
  void apply(const Image& image, std::vector<float>& out) const;
};

}  // namespace ms::data

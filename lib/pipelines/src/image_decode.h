// Minimal image decoding for the image pipelines (PNG via libpng, JPEG via libjpeg-turbo), until
// lib/data's decoders take over. Private to the pipelines module.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace ms::pipelines {

/// 8-bit RGB pixels, row-major, height x width x 3.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;
};

/// Decodes a PNG or JPEG file (by content, not name). Throws ms::Error(kUsage) naming the file for
/// anything undecodable, kMissingComponent when ms was built without the codec libraries.
RgbImage decode_image(const std::filesystem::path& path);

}  // namespace ms::pipelines

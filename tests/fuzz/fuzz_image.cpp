// libFuzzer target: image bytes -> ms::data::decode_image (PNG through libpng, JPEG through
// libjpeg-turbo), as an image dataset or `ms infer` reads a file, to RGB and to grey.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "ms/core/error.h"
#include "ms/data/image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (const int channels : {3, 1}) {
    try {
      const ms::data::Image image = ms::data::decode_image(bytes, "fuzz.img", channels);
      if (image.channels != channels || image.height <= 0 || image.width <= 0 ||
          image.pixels.size() != static_cast<std::size_t>(image.height) *
                                     static_cast<std::size_t>(image.width) * channels) {
        __builtin_trap();
      }
    } catch (const ms::Error& e) {
      ms::fuzz::rejected(
          e);  // A documented rejection: kIntegrity (corrupt) or kMissingComponent (BMP, GIF, ...).
    }
  }
  return 0;
}

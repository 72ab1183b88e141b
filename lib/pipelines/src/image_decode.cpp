#include "image_decode.h"

#include <cstring>

#include "ms/core/error.h"
#include "ms/core/file.h"

#if MS_HAVE_IMAGE_CODECS
#include <png.h>
#include <turbojpeg.h>
#endif

namespace ms::pipelines {

RgbImage decode_image(const std::filesystem::path& path) {
  const std::string data = read_file(path);
  auto bad = [&path](const std::string& why) {
    return Error(ErrorCode::kUsage, fmt::format("cannot decode image {}: {}", path.string(), why),
                 "inputs must be PNG or JPEG files");
  };
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  const bool png = data.size() >= 8 && std::memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0;
  const bool jpeg = data.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
  if (!png && !jpeg) throw bad("not a PNG or JPEG file");
#if MS_HAVE_IMAGE_CODECS
  RgbImage img;
  if (png) {
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data.data(), data.size()))
      throw bad(image.message);
    image.format = PNG_FORMAT_RGB;
    img.width = static_cast<int>(image.width);
    img.height = static_cast<int>(image.height);
    img.pixels.resize(PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, nullptr, img.pixels.data(), 0, nullptr)) {
      const std::string why = image.message;
      png_image_free(&image);
      throw bad(why);
    }
    return img;
  }
  tjhandle tj = tjInitDecompress();
  MS_CHECK(tj != nullptr, ErrorCode::kInternal, "cannot start the JPEG decoder");
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, bytes, static_cast<unsigned long>(data.size()), &w, &h, &subsamp,
                          &colorspace) != 0 ||
      w <= 0 || h <= 0) {
    const std::string why = tjGetErrorStr2(tj);
    tjDestroy(tj);
    throw bad(why);
  }
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<std::size_t>(w) * h * 3);
  if (tjDecompress2(tj, bytes, static_cast<unsigned long>(data.size()), img.pixels.data(), w, 0, h,
                    TJPF_RGB, TJFLAG_ACCURATEDCT) != 0) {
    const std::string why = tjGetErrorStr2(tj);
    tjDestroy(tj);
    throw bad(why);
  }
  tjDestroy(tj);
  return img;
#else
  throw Error(
      ErrorCode::kMissingComponent,
      fmt::format("cannot decode {}: this ms was built without the image codecs", path.string()),
      "install libpng-dev and libturbojpeg0-dev and rebuild with -DMS_WITH_IMAGE_CODECS=ON");
#endif
}

}  // namespace ms::pipelines

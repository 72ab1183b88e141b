// Where PIL finds an image's orientation, read from the file's bytes without decoding it: EXIF
// (JPEG APP1 "Exif", PNG eXIf, ImageMagick's "Raw profile type exif" PNG text) and, where that has
// no Orientation tag, XMP's tiff:Orientation. ModelScope's LoadImage turns each image upright with
// PIL's ImageOps.exif_transpose, which reads all of these (Pillow 12 and 13).
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

namespace ms::data {

/// Walks a JPEG's marker segments from its start to its first scan (SOS), handing each segment's
/// marker and payload to `segment` (which returns false to stop the walk). Returns the offset of
/// the SOS marker, or npos when the walk stops before one (stopped, malformed or cut short). Fill
/// bytes (FF) before a marker are skipped, as libjpeg skips them.
std::size_t jpeg_scan_start(
    std::string_view jpeg,
    const std::function<bool(unsigned char, std::string_view)>& segment = nullptr);

/// The orientation (1-8 turn the image; any other value leaves it as stored) PIL's exif_transpose
/// applies to a JPEG: its first Exif segment's Orientation tag, else its XMP packet's.
int jpeg_orientation(std::string_view jpeg);

/// The same for a PNG, from its chunks before or after the pixels: the last eXIf chunk (or tEXt
/// "exif"), else the last "Raw profile type exif" text, then XMP ("XML:com.adobe.xmp" text).
int png_orientation(std::string_view png);

}  // namespace ms::data

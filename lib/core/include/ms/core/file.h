// Whole-file reads and atomic writes (temp file in the same folder, fsync, rename).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace ms {

/// Reads a whole file; throws ms::Error (kNotFound / kIo) naming the path.
std::string read_file(const std::filesystem::path& path);

/// Writes `data` to `path` atomically: readers see the old file or the new one, never a part.
/// Creates missing parent folders. `mode` is applied to the new file (e.g. 0600 for credentials).
void write_file_atomic(const std::filesystem::path& path, std::string_view data,
                       unsigned mode = 0644);

}  // namespace ms

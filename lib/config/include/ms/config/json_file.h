// Reading a JSON file that may be absent (config.json, tokenizer_config.json, modules.json, ...).
#pragma once

#include <filesystem>
#include <optional>

#include "ms/config/config.h"
#include "ms/core/export.h"

namespace ms {

/// The parsed content of `path`, or nullopt when it is not a regular file. Throws
/// ms::Error(kConfig) naming the file for text that is not valid JSON.
MS_API std::optional<Json> read_json_file(const std::filesystem::path& path);

}  // namespace ms

// One way to read a resource: a local path, a file:// URL or an http(s):// URL.
#pragma once

#include <string>
#include <string_view>

#include "ms/config/registry.h"
#include "ms/core/export.h"

namespace ms::io {

/// Limits for reading a resource. Timeouts apply to network reads only.
struct ReadOptions {
  long connect_timeout_s = 10;  ///< give up connecting after this long
  long stall_timeout_s = 30;    ///< give up when no byte arrives for this long
  long total_timeout_s = 0;     ///< 0 = no limit on the whole transfer
  std::size_t max_bytes = 0;    ///< 0 = no limit; larger resources are a kIo error
};

/// Reads a whole resource into memory. Errors name the location: kNotFound for a missing file or
/// an HTTP 404, kNetwork for connection failures, timeouts and other HTTP errors.
MS_API std::string read_resource(std::string_view location, const ReadOptions& options = {});

/// True for strings with a URL scheme ("http://", "file://", ...), false for plain paths.
MS_API bool is_url(std::string_view location);

/// The scheme of a URL ("http"), or "file" for a plain path.
MS_API std::string scheme_of(std::string_view location);

/// Converts a file:// URL to a local path (percent-decoded); a plain path is returned unchanged.
MS_API std::string local_path_of(std::string_view location);

/// Reads one resource of a given scheme.
using ResourceReader = std::string (*)(std::string_view location, const ReadOptions& options);

/// Registered URL schemes ("file", "http", "https").
MS_API const Registry<ResourceReader>& url_schemes();

/// Adds the io module's registries to `registries`.
MS_API void register_io_components(Registries& registries);

}  // namespace ms::io

// Registration entry point of the config module, and the registry of configuration file formats.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "ms/config/config.h"
#include "ms/config/registry.h"
#include "ms/core/export.h"

namespace ms {

/// Parses the text of one configuration file; `source` names it in error messages.
using ConfigParser = std::function<Json(std::string_view text, const std::string& source)>;

/// Formats Config::from_file and Config::parse understand ("json", "yaml"), by name.
MS_API const Registry<ConfigParser>& config_formats();

/// Adds the config module's registries to `registries`.
MS_API void register_config_components(Registries& registries);

}  // namespace ms

// Parsers for the configuration file formats (private to the config module).
#pragma once

#include <string>
#include <string_view>

#include "ms/config/config.h"

namespace ms::detail {

/// Parses JSON; syntax errors are kConfig "<source>:<line>:<column>: invalid JSON: ...".
Json parse_json_config(std::string_view text, const std::string& source);

/// Parses YAML (plain scalars typed as in YAML 1.2's core schema); errors carry line and column.
Json parse_yaml_config(std::string_view text, const std::string& source);

/// Emits YAML for a JSON tree (used by `ms config show`).
std::string dump_yaml(const Json& value);

}  // namespace ms::detail

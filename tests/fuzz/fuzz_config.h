// The body of the two config targets (fuzz_config_json, fuzz_config_yaml): text -> Config::parse,
// then what `ms config show` does with a tree (dump as JSON and YAML) and the strict-mode walk
// over its keys.
#pragma once

#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "ms/config/config.h"
#include "ms/core/error.h"

namespace ms::fuzz {

inline void exercise_config(std::string_view text, const char* format) {
  try {
    const Config config = Config::parse(text, format, std::string("fuzz.") + format);
    (void)config.dump("json");
    (void)config.dump("yaml");
    (void)config.unread_keys();
    (void)config.has("model.type");
  } catch (const Error& e) {
    rejected(e);  // A documented rejection (kConfig with line and column).
  }
}

}  // namespace ms::fuzz

// libFuzzer target: configuration.json text -> ms::Config::parse, then what `ms config show` does
// with a tree (dump as JSON and YAML) and the strict-mode walk over its keys.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "ms/config/config.h"
#include "ms/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const ms::Config config = ms::Config::parse(text, "json", "fuzz.json");
    (void)config.dump("json");
    (void)config.dump("yaml");
    (void)config.unread_keys();
    (void)config.has("model.type");
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);  // A documented rejection (kConfig with line and column).
  }
  return 0;
}

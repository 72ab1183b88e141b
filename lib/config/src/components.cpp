#include "ms/config/components.h"

#include "formats.h"

namespace ms {

const Registry<ConfigParser>& config_formats() {
  // Built on first use, explicitly; see Registries for why there is no static self-registration.
  static const Registry<ConfigParser> formats = [] {
    Registry<ConfigParser> r("config_formats");
    r.add("json", detail::parse_json_config, "JSON (.json): ModelScope's configuration.json");
    r.add("yaml", detail::parse_yaml_config, "YAML (.yaml, .yml): trainer configs");
    return r;
  }();
  return formats;
}

void register_config_components(Registries& registries) { registries.add(config_formats()); }

}  // namespace ms

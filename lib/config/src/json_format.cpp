#include "formats.h"
#include "ms/config/json_file.h"

namespace ms::detail {

Json parse_json_config(std::string_view text, const std::string& source) {
  return parse_json(text, source, ErrorCode::kConfig);
}

}  // namespace ms::detail

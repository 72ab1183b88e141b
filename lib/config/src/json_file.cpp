#include "ms/config/json_file.h"

#include "ms/core/error.h"
#include "ms/core/file.h"

namespace ms {

std::optional<Json> read_json_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  try {
    return Json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{} is not valid JSON: {}", path.string(), e.what()),
                "fix or delete the file");
  }
}

}  // namespace ms

// See tokenizer_files.h.
#include "tokenizer_files.h"

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"

namespace ms::text {

// Vocabulary files are large (50k entries): parsed as nlohmann::json, whose objects are trees,
// rather than the insertion-ordered Json of configs.
nlohmann::json read_big_json(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  nlohmann::json out;
  JsonParseError error;
  if (!try_parse_json(text, out, error)) {
    throw json_parse_error(path.string(), error, ErrorCode::kConfig, "invalid JSON",
                           "the tokenizer files are damaged; download the model again");
  }
  return out;
}

std::unordered_map<std::string, std::int64_t> vocab_from_json(const nlohmann::json& j,
                                                              const std::string& source) {
  MS_CHECK(j.is_object(), ErrorCode::kConfig,
           "{}: the vocabulary must be a JSON object of token -> id", source);
  std::unordered_map<std::string, std::int64_t> vocab;
  vocab.reserve(j.size() * 2);
  for (const auto& [token, id] : j.items()) {
    MS_CHECK(id.is_number_integer(), ErrorCode::kConfig,
             "{}: the id of token '{}' must be an integer, got {}", source, token, id.dump());
    vocab.emplace(token, id.get<std::int64_t>());
  }
  return vocab;
}

}  // namespace ms::text

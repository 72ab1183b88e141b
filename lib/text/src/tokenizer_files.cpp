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

nlohmann::json read_tokenizer_json_without_vocab(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  bool too_deep = false;
  std::string top_key;  // the key of the root object's member being parsed
  auto keep = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (depth > static_cast<int>(kMaxJsonDepth)) {
      too_deep = true;
      return false;
    }
    if (event != nlohmann::json::parse_event_t::key) return true;
    if (depth == 1) top_key = parsed.get<std::string>();
    return !(depth == 2 && top_key == "model" && (parsed == "vocab" || parsed == "merges"));
  };
  nlohmann::json out = nlohmann::json::parse(text, keep, /*allow_exceptions=*/false);
  // Invalid JSON, or JSON beyond ms's limits: read_big_json says where and why.
  if (out.is_discarded() || too_deep) return read_big_json(path);
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

std::string component_type(const nlohmann::json& component) {
  if (component.is_object() && component.contains("type") && component["type"].is_string())
    return component["type"].get<std::string>();
  return component.dump().substr(0, 200);
}

}  // namespace ms::text

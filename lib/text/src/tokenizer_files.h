// Reading the JSON files of a tokenizer (vocab.json, encoder.json, tokenizer.json), shared by
// the WordPiece and the byte-level BPE tokenizers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>

namespace ms::text {

/// A tokenizer's JSON file; invalid JSON is ms::Error(kConfig) naming it.
nlohmann::json read_big_json(const std::filesystem::path& path);

/// A tokenizer.json without its model's vocabulary and merges (left out while parsing), for a
/// folder whose vocab.txt / vocab.json has them: the rest (added tokens, the model's type) is
/// what is read of it then, and the vocabulary is most of its bytes and of the time parsing it
/// takes (all-MiniLM-L6-v2's: 50 ms of a start-up). Errors as read_big_json.
nlohmann::json read_tokenizer_json_without_vocab(const std::filesystem::path& path);

/// A JSON object of token -> id (vocab.json, tokenizer.json's model.vocab); a non-integer id is
/// kConfig naming `source` and the token.
std::unordered_map<std::string, std::int64_t> vocab_from_json(const nlohmann::json& j,
                                                              const std::string& source);

/// The type of one of tokenizer.json's components ("BertNormalizer", "ByteLevel"), or its JSON
/// (its first 200 characters) when it has none.
std::string component_type(const nlohmann::json& component);

/// A special token of a tokenizer_config.json / special_tokens_map.json (`key`: "unk_token",
/// "pad_token", ...), written as a plain string or as a {"content": "..."} object; nullopt when
/// absent, null or neither. J: nlohmann::json or ms::Json (ordered).
template <typename J>
std::optional<std::string> token_value(const J& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->template get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].template get<std::string>();
  }
  return std::nullopt;
}

}  // namespace ms::text

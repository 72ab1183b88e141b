// Reading the JSON files of a tokenizer (vocab.json, encoder.json, tokenizer.json), shared by
// the WordPiece and the byte-level BPE tokenizers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>

namespace ms::text {

/// A tokenizer's JSON file; invalid JSON is ms::Error(kConfig) naming it.
nlohmann::json read_big_json(const std::filesystem::path& path);

/// A JSON object of token -> id (vocab.json, tokenizer.json's model.vocab); a non-integer id is
/// kConfig naming `source` and the token.
std::unordered_map<std::string, std::int64_t> vocab_from_json(const nlohmann::json& j,
                                                              const std::string& source);

}  // namespace ms::text

// See hf_features.h. The feature JSON is datasets' Features.to_dict(): {"_type": "Value",
// "dtype": "int64"}, {"_type": "ClassLabel", "names": [...]}, {"_type": "Json"}, and for lists
// {"_type": "List" (5.x; "Sequence" in older files, "LargeList"), "feature": {...}}.
#include "hf_features.h"

#include "ms/config/config.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/log.h"

namespace ms::data::detail {
namespace {

std::string type_of(const Json& feature) {
  if (!feature.is_object()) return "";
  const auto it = feature.find("_type");
  return it != feature.end() && it->is_string() ? it->get<std::string>() : "";
}

// The names of a ClassLabel feature, or of the ClassLabel a list feature holds; empty otherwise.
std::vector<std::string> class_names_of(const Json& feature) {
  const std::string type = type_of(feature);
  if (type == "List" || type == "Sequence" || type == "LargeList")
    return feature.contains("feature") ? class_names_of(feature["feature"])
                                       : std::vector<std::string>{};
  std::vector<std::string> names;
  if (type != "ClassLabel" || !feature.contains("names") || !feature["names"].is_array())
    return names;
  for (const Json& n : feature["names"]) {
    if (!n.is_string()) return {};
    names.push_back(n.get<std::string>());
  }
  return names;
}

// The cells of a Json column, JSON text as pyarrow stores it, as the values datasets gives.
void decode_json_column(Table& table, std::size_t c, const std::string& source) {
  Column& column = table.columns[c];
  if (column.type != ColumnType::kString && column.type != ColumnType::kNull) return;
  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    Value& cell = table.rows[r][c];
    const auto* text = std::get_if<std::string>(&cell);
    if (text == nullptr) continue;
    Json value;
    JsonParseError e;
    if (!try_parse_json(*text, value, e)) {
      throw Error(ErrorCode::kIntegrity,
                  fmt::format("{}: column '{}' (Hugging Face's Json feature), row {}: {}", source,
                              column.name, r + 1, e.reason),
                  "the file's cells of a Json column must be JSON text: write the file again");
    }
    if (value.is_null())
      cell = std::monostate{};
    else
      cell = value.dump();
  }
  column.type = ColumnType::kJson;
}

}  // namespace

void apply_hf_features(Table& table, std::string_view metadata, const std::string& source) {
  Json root;
  JsonParseError e;
  const bool parsed = try_parse_json(metadata, root, e);
  const Json* features = nullptr;
  if (parsed && root.is_object() && root.contains("info") && root["info"].is_object() &&
      root["info"].contains("features"))
    features = &root["info"]["features"];
  if (features == nullptr || !features->is_object()) {
    log::warn(
        "{}: its \"huggingface\" metadata is not datasets' {{\"info\": {{\"features\": "
        "...}}}}{}; its columns are read as their Parquet types (Json and ClassLabel "
        "features are not applied)",
        source, parsed ? "" : fmt::format(" (not JSON: {})", e.reason));
    return;
  }
  for (std::size_t c = 0; c < table.columns.size(); ++c) {
    const auto it = features->find(table.columns[c].name);
    if (it == features->end()) continue;
    if (type_of(*it) == "Json") decode_json_column(table, c, source);
    table.columns[c].class_names = class_names_of(*it);
  }
}

}  // namespace ms::data::detail

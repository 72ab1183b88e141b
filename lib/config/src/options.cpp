#include "ms/config/options.h"

#include <cmath>

#include "ms/core/error.h"
#include "ms/core/text.h"

namespace ms {

ComponentOptions::ComponentOptions(const nlohmann::json& options, std::string component)
    : options_(options), component_(std::move(component)) {
  if (!options_.is_object())
    fail(ErrorCode::kConfig, "{}: options must be an object, got {}", component_, options_.dump());
}

const nlohmann::json* ComponentOptions::find(const char* key) {
  read_.insert(key);
  auto it = options_.find(key);
  return it == options_.end() || it->is_null() ? nullptr : &*it;
}

void ComponentOptions::wrong(const char* key, const char* what) const {
  fail(ErrorCode::kConfig, "{}: option '{}' must be {}, got {}", component_, key, what,
       options_.at(key).dump());
}

std::string ComponentOptions::text(const char* key, const std::string& fallback) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->is_string()) wrong(key, "a string");
  return v->get<std::string>();
}

double ComponentOptions::number(const char* key, double fallback) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->is_number() || !std::isfinite(v->get<double>())) wrong(key, "a finite number");
  return v->get<double>();
}

double ComponentOptions::number(const char* key) {
  if (find(key) == nullptr)
    fail(ErrorCode::kConfig, "{}: option '{}' is required", component_, key);
  return number(key, 0.0);
}

std::int64_t ComponentOptions::integer(const char* key, std::int64_t fallback) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->is_number_integer()) wrong(key, "an integer");
  return v->get<std::int64_t>();
}

std::int64_t ComponentOptions::integer(const char* key) {
  if (find(key) == nullptr)
    fail(ErrorCode::kConfig, "{}: option '{}' is required", component_, key);
  return integer(key, 0);
}

std::vector<std::int64_t> ComponentOptions::integers(const char* key) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) fail(ErrorCode::kConfig, "{}: option '{}' is required", component_, key);
  std::vector<std::int64_t> out;
  if (!v->is_array()) wrong(key, "a list of integers");
  for (const auto& item : *v) {
    if (!item.is_number_integer()) wrong(key, "a list of integers");
    out.push_back(item.get<std::int64_t>());
  }
  return out;
}

bool ComponentOptions::flag(const char* key, bool fallback) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) wrong(key, "true or false");
  return v->get<bool>();
}

std::vector<double> ComponentOptions::numbers(const char* key, std::size_t count) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) fail(ErrorCode::kConfig, "{}: option '{}' is required", component_, key);
  if (v->is_number()) return std::vector<double>(count, number(key, 0.0));
  if (!v->is_array() || v->size() != count)
    wrong(key, fmt::format("a number or a list of {}", count).c_str());
  std::vector<double> out;
  for (const auto& item : *v) {
    if (!item.is_number() || !std::isfinite(item.get<double>()))
      wrong(key, fmt::format("a number or a list of {}", count).c_str());
    out.push_back(item.get<double>());
  }
  return out;
}

nlohmann::json ComponentOptions::value(const char* key) {
  const nlohmann::json* v = find(key);
  return v == nullptr ? nlohmann::json() : *v;
}

void ComponentOptions::check_all_read() const {
  for (const auto& [key, value] : options_.items()) {
    if (read_.count(key) != 0) continue;
    std::vector<std::string> known(read_.begin(), read_.end());
    throw Error(
        ErrorCode::kConfig, fmt::format("{}: unknown option '{}'", component_, key),
        known.empty() ? std::string("it takes no options") : choices_hint(key, known, "it takes"));
  }
}

}  // namespace ms

// The options object of a component built by `type` (a metric, a scheduler, a hook): typed reads
// by name, and an error for every key nothing read, so a misspelt option is never ignored.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ms/core/export.h"

namespace ms {

class MS_API ComponentOptions {
 public:
  /// `options` must be a JSON object (kConfig otherwise); `component` names it in errors.
  ComponentOptions(const nlohmann::json& options, std::string component);

  std::string text(const char* key, const std::string& fallback);
  double number(const char* key, double fallback);
  /// A required number: kConfig when absent.
  double number(const char* key);
  std::int64_t integer(const char* key, std::int64_t fallback);
  std::int64_t integer(const char* key);
  std::vector<std::int64_t> integers(const char* key);
  bool flag(const char* key, bool fallback);
  /// A number, or a list of numbers (one per item, e.g. per parameter group): `count` values.
  std::vector<double> numbers(const char* key, std::size_t count);
  /// The option as it is (null when absent).
  nlohmann::json value(const char* key);
  /// kConfig for the first key no accessor asked for, with the close matches among those read.
  void check_all_read() const;
  /// The component's name as errors give it ("CheckpointHook").
  const std::string& component() const { return component_; }

 private:
  const nlohmann::json* find(const char* key);
  [[noreturn]] void wrong(const char* key, const char* what) const;

  const nlohmann::json& options_;
  std::string component_;
  std::set<std::string> read_;
};

}  // namespace ms

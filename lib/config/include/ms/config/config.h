// Config: one configuration tree read from JSON or YAML, with dotted-key access and overrides.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ms/core/error.h"
#include "ms/core/export.h"

namespace ms {

/// Key order is kept as written so that `ms config show` prints files the way they read.
using Json = nlohmann::ordered_json;

/// A configuration tree and the file it came from. Every error names that file and the full key
/// path ("configs/a.json: key 'train.optimizer.lr' must be a number, got string \"x\"").
///
/// Key paths are dot-separated. Inside a list a segment is either an index ("hooks.0") or, for a
/// list of objects carrying "type", that type ("train.hooks.CheckpointHook"), as in ModelScope.
///
/// Const members may run on several threads at once; set(), apply_override() and merge() change
/// the tree and must not run beside any other call.
class MS_API Config {
 public:
  /// An empty object, with a source name used in messages.
  explicit Config(Json root = Json::object(), std::string source = "<config>");

  /// Reads a .json, .yaml or .yml file. A folder means its configuration.json (ModelScope's
  /// layout). Throws kNotFound for a missing file and kConfig (with line and column) for bad
  /// syntax.
  static Config from_file(const std::filesystem::path& path);

  /// Parses text in the given format ("json" or "yaml"); `source` names it in messages.
  static Config parse(std::string_view text, std::string_view format, std::string source);

  const Json& root() const { return root_; }
  const std::string& source() const { return source_; }

  bool has(std::string_view key) const;

  /// The value at `key`; throws kConfig "missing key" naming the file and path.
  const Json& at(std::string_view key) const;

  /// The value at `key` converted to T; a wrong type is a kConfig error naming the key.
  template <typename T>
  T get(std::string_view key) const {
    return convert<T>(at(key), key);
  }

  /// Like get(), but returns `fallback` when the key is absent (a present key of the wrong type is
  /// still an error).
  template <typename T>
  T get_or(std::string_view key, T fallback) const {
    if (!has(key)) return fallback;
    return get<T>(key);
  }

  /// Sets `key` to `value`, creating missing objects on the way.
  void set(std::string_view key, Json value);

  /// Applies one `KEY=VALUE` override from --set / --cfg-options. VALUE is a JSON literal
  /// (3, 0.1, true, null, "x", [..], {..}); a bare word that is not JSON is taken as a string.
  /// Throws kUsage naming the assignment for a malformed key or value.
  void apply_override(std::string_view assignment);

  /// Merges `other` into this tree with ModelScope's rule: objects merge key by key, a list of
  /// objects with "type" merges element-wise by type (new types are appended), anything else
  /// is replaced.
  void merge(const Json& other);

  /// Keys (leaf paths) that no at()/get()/has() call has read: strict mode reports these, as
  /// they are usually misspelt. Reading a key marks its whole subtree as read.
  std::vector<std::string> unread_keys() const;

  /// Throws kConfig listing unread keys, if any.
  void check_all_read() const;

  /// Text form: "json" (indented) or "yaml".
  std::string dump(std::string_view format) const;

  /// Type name of a JSON value as shown in messages ("string", "integer", "object", ...).
  static std::string type_name(const Json& value);

 private:
  template <typename T>
  T convert(const Json& value, std::string_view key) const;
  [[noreturn]] void type_error(std::string_view key, std::string_view expected,
                               const Json& value) const;

  /// Walks `key`; returns nullptr if absent. `canonical` receives the path with list indices.
  const Json* find(std::string_view key, std::string* canonical) const;
  void mark_read(const std::string& canonical) const;

  // The keys read so far. Reads are const and may come from several threads at once (pipelines
  // sharing a model's configuration), so the set has a lock of its own; a copy starts unlocked.
  struct ReadKeys {
    std::set<std::string> keys;
    mutable std::mutex mutex;
    ReadKeys() = default;
    ReadKeys(const ReadKeys& other) : keys(other.copy()) {}
    ReadKeys& operator=(const ReadKeys& other) {
      if (this != &other) {
        std::set<std::string> copied = other.copy();
        std::lock_guard<std::mutex> lock(mutex);
        keys = std::move(copied);
      }
      return *this;
    }
    std::set<std::string> copy() const {
      std::lock_guard<std::mutex> lock(mutex);
      return keys;
    }
  };

  Json root_;
  std::string source_;
  mutable ReadKeys read_;
};

/// Splits a dotted key into segments; throws kUsage for an empty key or an empty segment.
MS_API std::vector<std::string> split_key(std::string_view key);

/// ModelScope's merge rule, on raw JSON (see Config::merge).
MS_API void merge_json(Json& base, const Json& other);

namespace detail {
template <typename T>
struct IsVector : std::false_type {};
template <typename T, typename A>
struct IsVector<std::vector<T, A>> : std::true_type {};
}  // namespace detail

template <typename T>
T Config::convert(const Json& value, std::string_view key) const {
  if constexpr (detail::IsVector<T>::value) {
    // Element by element, so that each gets the checks of its type ([1, 1e300] as ints was
    // [1, INT_MIN]); an element is named by its index.
    if (!value.is_array()) type_error(key, "a list", value);
    T out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
      out.push_back(
          convert<typename T::value_type>(value[i], std::string(key) + "." + std::to_string(i)));
    }
    return out;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!value.is_boolean()) type_error(key, "a boolean", value);
  } else if constexpr (std::is_integral_v<T>) {
    if (!value.is_number_integer()) type_error(key, "an integer", value);
    // nlohmann's get<T>() wraps out-of-range values (-5 as size_t is 2^64 - 5): check the range.
    if (value.is_number_unsigned()) {
      if (value.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
        type_error(key, "an integer in range", value);
    } else if constexpr (std::is_unsigned_v<T>) {
      if (value.get<std::int64_t>() < 0) type_error(key, "a non-negative integer", value);
    } else if (value.get<std::int64_t>() <
                   static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
               value.get<std::int64_t>() >
                   static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
      type_error(key, "an integer in range", value);
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!value.is_number()) type_error(key, "a number", value);
    // A double past a float's range would become infinity without a word.
    if (value.is_number_float() &&
        std::abs(value.get<double>()) > static_cast<double>(std::numeric_limits<T>::max()))
      type_error(key, "a number in range", value);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!value.is_string()) type_error(key, "a string", value);
  } else if constexpr (std::is_same_v<T, Json>) {
    return value;
  }
  try {
    return value.get<T>();
  } catch (const nlohmann::json::exception&) {
    type_error(key, "a value of another type", value);
  }
}

}  // namespace ms

// Registry<T>: named components grouped by task, with close-match suggestions for unknown types.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ms/core/error.h"
#include "ms/core/export.h"
#include "ms/core/text.h"

namespace ms {

/// One row of `ms list`.
struct RegistryEntry {
  std::string group;
  std::string type;
  std::string description;
};

/// The type-erased face of a registry, for listing.
class MS_API RegistryBase {
 public:
  explicit RegistryBase(std::string name) : name_(std::move(name)) {}
  virtual ~RegistryBase() = default;
  const std::string& name() const { return name_; }
  virtual std::vector<RegistryEntry> entries() const = 0;

 private:
  std::string name_;
};

/// Components of one kind (models, pipelines, config formats, ...) keyed by group and type.
/// As in ModelScope, the group is the task for models and pipelines, and "default" otherwise;
/// lookups stay within the group asked for.
template <typename T>
class Registry : public RegistryBase {
 public:
  static constexpr const char* kDefaultGroup = "default";

  using RegistryBase::RegistryBase;

  /// Registers `value` as `type` in `group`. Registering the same type twice in a group is a bug.
  void add(std::string type, T value, std::string description = {},
           std::string group = kDefaultGroup) {
    auto& slot = groups_[group];
    if (slot.count(type) != 0) {
      fail(ErrorCode::kInternal, "duplicate registration of '{}' in registry '{}' group '{}'", type,
           name(), group);
    }
    slot.emplace(std::move(type), Item{std::move(value), std::move(description)});
  }

  /// The component, or nullptr.
  const T* find(std::string_view type, std::string_view group = kDefaultGroup) const {
    auto g = groups_.find(std::string(group));
    if (g == groups_.end()) return nullptr;
    auto it = g->second.find(std::string(type));
    return it == g->second.end() ? nullptr : &it->second.value;
  }

  /// The component; an unknown type is a kNotFound error naming the registry and group, with the
  /// close matches among registered types and the full list.
  const T& get(std::string_view type, std::string_view group = kDefaultGroup) const {
    if (const T* found = find(type, group)) return *found;
    const std::vector<std::string> known = types(group);
    std::string message = fmt::format("unknown type '{}' in registry '{}'", type, name());
    if (group != kDefaultGroup) message += fmt::format(" (group '{}')", group);
    std::string hint = did_you_mean(type, known);
    if (!hint.empty()) hint += " ";
    hint += known.empty() ? std::string("nothing is registered there")
                          : "registered: " + join(known, ", ");
    throw Error(ErrorCode::kNotFound, message, hint);
  }

  bool contains(std::string_view type, std::string_view group = kDefaultGroup) const {
    return find(type, group) != nullptr;
  }

  /// Registered types in a group, sorted.
  std::vector<std::string> types(std::string_view group = kDefaultGroup) const {
    std::vector<std::string> out;
    auto g = groups_.find(std::string(group));
    if (g != groups_.end()) {
      for (const auto& entry : g->second) out.push_back(entry.first);
    }
    return out;
  }

  std::vector<std::string> groups() const {
    std::vector<std::string> out;
    for (const auto& entry : groups_) out.push_back(entry.first);
    return out;
  }

  std::vector<RegistryEntry> entries() const override {
    std::vector<RegistryEntry> out;
    for (const auto& [group, items] : groups_) {
      for (const auto& [type, item] : items) out.push_back({group, type, item.description});
    }
    return out;
  }

 private:
  struct Item {
    T value;
    std::string description;
  };
  std::map<std::string, std::map<std::string, Item>> groups_;
};

/// The set of registries a process knows, by name, for `ms list`. Registries are owned by their
/// modules; each module's register_components(Registries&) adds its own here explicitly (no static
/// self-registration: the linker drops such objects from static archives).
class MS_API Registries {
 public:
  /// Adds a registry; a second registry with the same name is a bug.
  void add(const RegistryBase& registry);
  /// Adds a registry that lives in a component loaded on demand (the torch layer): its name is
  /// listed at once, and `load` runs on the first get() (and may throw, e.g. kMissingComponent).
  void add_deferred(std::string name, std::function<const RegistryBase&()> load);
  /// The registry called `name`; unknown names are kNotFound with close matches.
  const RegistryBase& get(std::string_view name) const;
  bool contains(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, const RegistryBase*, std::less<>> registries_;
  std::map<std::string, std::function<const RegistryBase&()>, std::less<>> deferred_;
};

}  // namespace ms

#include "ms/config/registry.h"

#include <algorithm>

namespace ms {

void Registries::add(const RegistryBase& registry) {
  if (contains(registry.name()))
    fail(ErrorCode::kInternal, "registry '{}' added twice", registry.name());
  registries_.emplace(registry.name(), &registry);
}

void Registries::add_deferred(std::string name, std::function<const RegistryBase&()> load) {
  if (contains(name)) fail(ErrorCode::kInternal, "registry '{}' added twice", name);
  deferred_.emplace(std::move(name), std::move(load));
}

const RegistryBase& Registries::get(std::string_view name) const {
  auto it = registries_.find(name);
  if (it != registries_.end()) return *it->second;
  auto deferred = deferred_.find(name);
  if (deferred != deferred_.end()) return deferred->second();
  std::string hint = did_you_mean(name, names());
  if (!hint.empty()) hint += " ";
  hint += "registries: " + join(names(), ", ");
  throw Error(ErrorCode::kNotFound, fmt::format("unknown registry '{}'", name), hint);
}

bool Registries::contains(std::string_view name) const {
  return registries_.count(name) != 0 || deferred_.count(name) != 0;
}

std::vector<std::string> Registries::names() const {
  std::vector<std::string> out;
  for (const auto& entry : registries_) out.push_back(entry.first);
  for (const auto& entry : deferred_) out.push_back(entry.first);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace ms

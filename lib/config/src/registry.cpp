#include "ms/config/registry.h"

namespace ms {

void Registries::add(const RegistryBase& registry) {
  auto [it, inserted] = registries_.emplace(registry.name(), &registry);
  if (!inserted) fail(ErrorCode::kInternal, "registry '{}' added twice", registry.name());
}

const RegistryBase& Registries::get(std::string_view name) const {
  auto it = registries_.find(name);
  if (it != registries_.end()) return *it->second;
  std::string hint = did_you_mean(name, names());
  if (!hint.empty()) hint += " ";
  hint += "registries: " + join(names(), ", ");
  throw Error(ErrorCode::kNotFound, fmt::format("unknown registry '{}'", name), hint);
}

bool Registries::contains(std::string_view name) const { return registries_.count(name) != 0; }

std::vector<std::string> Registries::names() const {
  std::vector<std::string> out;
  for (const auto& entry : registries_) out.push_back(entry.first);
  return out;
}

}  // namespace ms

// `ms list [REGISTRY]`: what components this ms has registered.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "ms/config/components.h"
#include "ms/infer/pipeline.h"
#include "ms/io/resource.h"

namespace ms::cli {
namespace {

struct ListOptions {
  std::string registry;
  bool json = false;
};

Registries torch_free_registries() {
  Registries registries;
  register_config_components(registries);
  io::register_io_components(registries);
  return registries;
}

// Pipelines live in the torch layer: listing them loads LibTorch, so only on request.
void list_pipelines(bool json) {
  const std::vector<std::string> rows = infer::pipeline_factory().registered();
  if (json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const std::string& row : rows) {
      const auto colon = row.find(": ");
      out.push_back({{"group", row.substr(0, colon)}, {"type", row.substr(colon + 2)}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  for (const std::string& row : rows) {
    const auto colon = row.find(": ");
    std::printf("%s/%s\n", row.substr(0, colon).c_str(), row.substr(colon + 2).c_str());
  }
}

void run_list(const ListOptions& options) {
  if (options.registry == "pipelines") {
    list_pipelines(options.json);
    return;
  }
  const Registries registries = torch_free_registries();
  if (options.registry.empty()) {
    if (options.json) {
      std::printf("%s\n", nlohmann::json(registries.names()).dump().c_str());
    } else {
      for (const std::string& name : registries.names()) std::printf("%s\n", name.c_str());
    }
    return;
  }
  const RegistryBase& registry = registries.get(options.registry);
  if (options.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const RegistryEntry& entry : registry.entries()) {
      out.push_back(
          {{"group", entry.group}, {"type", entry.type}, {"description", entry.description}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  for (const RegistryEntry& entry : registry.entries()) {
    std::string name = entry.group == "default" ? entry.type : entry.group + "/" + entry.type;
    std::printf("%-24s %s\n", name.c_str(), entry.description.c_str());
  }
}

}  // namespace

void add_list_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto options = std::make_shared<ListOptions>();
  CLI::App* command =
      app.add_subcommand("list", "List registries, or the components registered in one");
  command->add_option("registry", options->registry,
                      "Registry name ('pipelines' loads LibTorch); omit to list the registries");
  command->add_flag("--json", options->json, "Print JSON");
  command->callback([options] { run_list(*options); });
}

}  // namespace ms::cli

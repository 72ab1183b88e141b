// `ms list [REGISTRY]`: what components this ms has registered.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "ms/infer/registries.h"
#include "ms/infer/torch_layer.h"

namespace ms::cli {
namespace {

struct ListOptions {
  std::string registry;
  bool json = false;
};

void run_list(const ListOptions& options) {
  // Every error of a --json run is a JSON document on stdout too, not only those of the
  // command line's parse (a script cannot tell in advance which it will meet).
  if (options.json) report_errors_as_json();
  const Registries registries = infer::default_registries();
  if (options.registry.empty()) {
    if (options.json) {
      std::printf("%s\n", json_text(nlohmann::json(registries.names())).c_str());
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
    std::printf("%s\n", json_text(out, 2).c_str());
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
  command->footer(
      "Examples:\n"
      "  ms list                 # the registries\n"
      "  ms list metrics         # what evaluation.metrics and --metrics take\n"
      "  ms list hooks --json\n" +
      std::string(kExitCodesHelp));
  const std::vector<std::string> torch_registries(infer::kTorchLayerRegistries.begin(),
                                                  infer::kTorchLayerRegistries.end());
  command->add_option("registry", options->registry,
                      "Registry name (" + join(torch_registries, ", ") +
                          " load LibTorch); omit to list the registries");
  command->add_flag("--json", options->json, "Print JSON");
  command->callback([options] { run_list(*options); });
}

}  // namespace ms::cli

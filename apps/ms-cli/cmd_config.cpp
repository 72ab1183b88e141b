// `ms config show`: print a configuration after merging overrides, as YAML or JSON.
#include <cstdio>

#include "cli.h"
#include "ms/config/config.h"

namespace ms::cli {
namespace {

struct ConfigShowOptions {
  std::string path;
  std::vector<std::string> overrides;
  bool json = false;
  std::string key;
};

void run_config_show(const ConfigShowOptions& options) {
  // Every error of a --json run is a JSON document on stdout too, not only those of the
  // command line's parse (a script cannot tell in advance which it will meet).
  if (options.json) report_errors_as_json();
  Config config = Config::from_file(options.path);
  for (const std::string& assignment : options.overrides) config.apply_override(assignment);
  if (!options.key.empty()) {
    const Json& value = config.at(options.key);
    std::printf("%s\n", options.json || !value.is_string()
                            ? json_text(value, options.json ? 2 : -1).c_str()
                            : value.get<std::string>().c_str());
    return;
  }
  std::fputs(config.dump(options.json ? "json" : "yaml").c_str(), stdout);
}

}  // namespace

void add_config_command(CLI::App& app, const GlobalOptions& /*global*/) {
  CLI::App* config = app.add_subcommand("config", "Inspect configuration files");
  config->footer(
      "Examples:\n"
      "  ms config show MODEL_DIR --set train.max_epochs=3\n"
      "  ms config show configs/text-classification --key train.optimizer --json\n" +
      std::string(kExitCodesHelp));
  config->require_subcommand(1);

  auto options = std::make_shared<ConfigShowOptions>();
  CLI::App* show = config->add_subcommand(
      "show",
      "Print a configuration (JSON or YAML file, or a model folder) with overrides applied");
  show->add_option("path", options->path,
                   "A .json/.yaml/.yml file, or a folder with configuration.json")
      ->required();
  show->add_option("--set,--cfg-options", options->overrides,
                   "Override a key: KEY=VALUE, VALUE a JSON literal or a bare word "
                   "(e.g. --set train.max_epochs=3 --set 'evaluation.metrics=[\"accuracy\"]')")
      ->take_all()
      ->allow_extra_args(false);
  show->add_option("--key", options->key, "Print only this dotted key (e.g. train.optimizer.lr)");
  show->add_flag("--json", options->json, "Print JSON instead of YAML");
  show->footer(
      "Lists of objects with a 'type' can be addressed by type: --set "
      "train.hooks.CheckpointHook.interval=2");
  show->callback([options] { run_config_show(*options); });
}

}  // namespace ms::cli

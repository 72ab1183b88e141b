// `ms env`: what this ms sees: versions, LibTorch and CUDA, threads, cache, hub endpoint, token.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "ms/core/device.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/core/version.h"
#include "ms/data/archive.h"
#include "ms/data/image.h"
#include "ms/data/parquet.h"
#include "ms/hub/client.h"
#include "ms/hub_server/server.h"
#include "ms/infer/export.h"
#include "ms/infer/torch_layer.h"
#include "ms/serve/server.h"

namespace ms::cli {
namespace {

struct EnvOptions {
  bool json = false;
  std::optional<int> threads;
  std::optional<std::string> device;
};

void run_env(const EnvOptions& options) {
  // Every error of a --json run is a JSON document on stdout too, not only those of the
  // command line's parse (a script cannot tell in advance which it will meet).
  if (options.json) report_errors_as_json();
  // Parse --device before anything else so that a typo fails fast with a usage error.
  std::optional<DeviceSpec> device;
  if (options.device) device = parse_device(*options.device);

  nlohmann::ordered_json out;
  out["ms_version"] = ms::version();
  out["cache_dir"] = cache_dir().string();
  out["hub_endpoint"] = hub_endpoint();
  // Checked as every hub command checks it, so that the report does not show as usable an
  // endpoint they all refuse; a warning, as the rest of the report still holds.
  std::optional<std::string> endpoint_problem;
  try {
    check_endpoint(hub_endpoint(), hub_endpoint_source());
  } catch (const Error& e) {
    endpoint_problem = e.what();
    out["hub_endpoint_error"] = e.what();
    log::warn("{}", e.what());
  }
  // The token the hub commands would send, by their rule (a corrupt jar is none; Python's
  // legacy file is one).
  // A token they would refuse (a ';' in it) is said to be none, with why.
  std::optional<std::string> token;
  std::optional<std::string> token_value;
  if (const auto from_env = api_token_env()) {
    token = "MODELSCOPE_API_TOKEN";
    token_value = *from_env;
  } else if (const auto stored = hub::stored_token()) {
    token = active_credentials_dir()->string();
    token_value = *stored;
  }
  const std::string problem = token_value ? hub::token_problem(*token_value) : std::string();
  out["token_configured"] = token.has_value() && problem.empty();
  if (token) out["token_source"] = *token;
  if (!problem.empty()) {
    out["token_error"] = fmt::format("{} ({})", problem, *token);
    log::warn("{} ({}): the hub commands refuse it", problem, *token);
  }
  out["cpu_cores"] = usable_cores();  // those this process may run on (taskset, cpusets)
  out["torch_layer"] = infer::torch_layer_path().string();
  // Optional parts that a build may lack (their options were turned off at configure time).
  nlohmann::ordered_json components;
  components["hub_server"] = hub_server::hub_server_available();
  components["serve"] = serve::serve_available();
  components["zip"] = data::zip_supported();
  components["jpeg"] = data::jpeg_supported();
  components["png"] = data::png_supported();
  components["parquet_codecs"] = data::parquet_codecs_supported();
  components["onnx_export"] = infer::onnx_export_available();
  out["components"] = components;

  // LibTorch is loaded last so that everything above is reported even when it is missing.
  std::optional<Error> torch_error;
  std::optional<Error> device_error;
  nlohmann::ordered_json torch;
  try {
    infer::TorchRuntime& runtime = *infer::load_torch_layer({options.threads}).runtime;
    const infer::TorchInfo info = runtime.info();
    torch["available"] = true;
    torch["version"] = info.version;
    torch["cuda_available"] = info.cuda_available;
    torch["cuda_device_count"] = info.cuda_device_count;
    torch["threads"] = info.num_threads;
    torch["interop_threads"] = info.num_interop_threads;
    torch["parallel_backend"] = info.parallel_backend;
    if (device) {
      // A device that is not usable here is reported after the rest of the report.
      try {
        torch["device"] = runtime.resolve_device(*device);
      } catch (const Error& e) {
        torch["device_error"] = e.what();
        device_error = e;
      }
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kMissingComponent) throw;
    torch["available"] = false;
    torch["error"] = e.what();
    torch_error = e;
  }
  out["libtorch"] = torch;

  if (options.json) {
    std::printf("%s\n", json_text(out, 2).c_str());
  } else {
    auto line = [](const char* key, const std::string& value) {
      std::printf("%-18s %s\n", key, value.c_str());
    };
    line("ms", ms::version());
    if (torch["available"].get<bool>()) {
      line("libtorch", torch["version"].get<std::string>());
      line("cuda",
           torch["cuda_available"].get<bool>()
               ? fmt::format("available, {} device(s)", torch["cuda_device_count"].get<int>())
               : std::string("not available"));
      line("threads", fmt::format("{} intra-op ({}), {} inter-op", torch["threads"].get<int>(),
                                  torch["parallel_backend"].get<std::string>(),
                                  torch["interop_threads"].get<int>()));
    } else {
      line("libtorch", "not available: " + torch["error"].get<std::string>());
    }
    if (torch.contains("device")) line("device", torch["device"].get<std::string>());
    std::string built, missing;
    for (const auto& [name, on] : components.items())
      (on.get<bool>() ? built : missing) += " " + name;
    line("components", "built:" + (built.empty() ? " none" : built) +
                           (missing.empty() ? "" : "; not built:" + missing));
    line("cpu cores", std::to_string(usable_cores()));
    line("cache dir", cache_dir().string());
    line("hub endpoint", endpoint_problem ? hub_endpoint() + " (refused: " + *endpoint_problem + ")"
                                          : hub_endpoint());
    line("token", !token            ? std::string("not configured")
                  : problem.empty() ? "configured (" + *token + ")"
                                    : "refused: " + problem + " (" + *token + ")");
  }
  std::fflush(stdout);
  // The report is printed either way; a missing LibTorch still fails the command so scripts notice.
  // The report is the --json document and holds these errors: no second document after it.
  report_errors_as_json(false);
  if (torch_error) throw *torch_error;
  if (device_error) throw *device_error;
}

}  // namespace

void add_env_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto options = std::make_shared<EnvOptions>();
  CLI::App* command = app.add_subcommand(
      "env",
      "Show versions, LibTorch and CUDA, threads, cache folder, hub endpoint and token state");
  command->add_flag("--json", options->json, "Print one JSON object on stdout");
  add_threads_option(*command, options->threads);
  command->add_option(
      "--device", options->device,
      "Also check that this device is usable: cpu, gpu, gpu:N, cuda, cuda:N or auto");
  command->footer(
      "Exits 6 (after printing the report) when LibTorch cannot be loaded, or when --device names "
      "a\n"
      "GPU and CUDA is not available; exits 2 for a malformed --device.");
  command->callback([options] { run_env(*options); });
}

}  // namespace ms::cli

#include "cli.h"
#include "ms/hub/repo_id.h"

namespace ms::cli {

namespace {
bool json_errors = false;
std::vector<std::string> args;
}  // namespace

void set_program_args(int argc, char** argv) { args.assign(argv, argv + argc); }
const std::vector<std::string>& program_args() { return args; }

void report_errors_as_json(bool on) { json_errors = on; }
bool errors_as_json() { return json_errors; }

void add_hub_options(CLI::App& cmd, infer::HubModelOptions& hub) {
  cmd.add_option(
      "--revision", hub.revision,
      std::string("Hub model ids: branch or tag (default ") + hub::kDefaultRevision + ")");
  cmd.add_flag("--offline", hub.offline, "Hub model ids: use the cache only, no network");
  cmd.add_option("--endpoint", hub.endpoint, "Hub model ids: the hub URL");
  cmd.add_option("--token", hub.token, "Hub model ids: access token");
}

void add_threads_option(CLI::App& command, std::optional<int>& threads) {
  command
      .add_option("--threads", threads,
                  "LibTorch intra-op threads (default: $OMP_NUM_THREADS, else every core)")
      ->check(CLI::PositiveNumber);
}

}  // namespace ms::cli

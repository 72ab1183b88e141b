#include "cli.h"

namespace ms::cli {

namespace {
bool json_errors = false;
std::vector<std::string> args;
}  // namespace

void set_program_args(int argc, char** argv) { args.assign(argv, argv + argc); }
const std::vector<std::string>& program_args() { return args; }

void report_errors_as_json() { json_errors = true; }
bool errors_as_json() { return json_errors; }

void add_threads_option(CLI::App& command, std::optional<int>& threads) {
  command
      .add_option("--threads", threads,
                  "LibTorch intra-op threads (default: $OMP_NUM_THREADS, else every core)")
      ->check(CLI::PositiveNumber);
}

}  // namespace ms::cli

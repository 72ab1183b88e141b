#include "cli.h"

namespace ms::cli {

void add_threads_option(CLI::App& command, std::optional<int>& threads) {
  command
      .add_option("--threads", threads,
                  "LibTorch intra-op threads (default: $OMP_NUM_THREADS, else every core)")
      ->check(CLI::PositiveNumber);
}

}  // namespace ms::cli

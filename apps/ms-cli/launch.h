// `ms train --nproc N`: a local launcher with torchrun's contract, for one machine.
#pragma once

#include <string>
#include <vector>

namespace ms::cli {

/// Runs `nproc` copies of this program with `args` (argv without --nproc) as the workers of one
/// data-parallel run: each gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR
/// (127.0.0.1) and MASTER_PORT (a free port), as torchrun sets them, and OMP_NUM_THREADS (the
/// cores shared out) unless the user set threads. SIGINT / SIGTERM / SIGHUP are passed on. When a
/// worker fails, the others are stopped (SIGTERM, then SIGKILL after a grace period). Returns the
/// exit code: 0, the first failed worker's code, or 128 + the signal that killed it.
int run_local_workers(int nproc, const std::vector<std::string>& args);

/// argv without `--nproc N` / `--nproc=N` (the workers' command line).
std::vector<std::string> without_option(const std::vector<std::string>& argv,
                                        const std::string& option);

}  // namespace ms::cli

// The environment contract of data-parallel workers, as PyTorch's torchrun sets it (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), with the equivalents srun
// sets for a step's tasks (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, and this node's
// task count from SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE with SLURM_NODEID, else
// SLURM_NTASKS_PER_NODE) where torchrun's are absent,
// and torchrun's agent store (TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT).
// Torch-free: the CLI reads it to launch workers (`ms train --nproc`), the trainer to join them.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "ms/core/export.h"

namespace ms::infer {

/// One worker's place in a data-parallel run.
struct DistributedEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// How long a worker waits for the others (rendezvous, a collective, rank 0's evaluation)
  /// before giving up with a clear error: MS_DIST_TIMEOUT seconds, default 1800 (PyTorch's).
  std::chrono::milliseconds timeout{1800 * 1000};
  /// torchrun's agent hosts the store itself (TORCHELASTIC_USE_AGENT_STORE=True): every worker,
  /// rank 0 included, joins it as a client, under the prefix of this restart attempt
  /// (TORCHELASTIC_RESTART_COUNT), as PyTorch's env:// rendezvous does.
  bool agent_store = false;
  int restart_count = 0;
  /// Restarts torchrun's agent has left after this attempt (TORCHELASTIC_MAX_RESTARTS less
  /// TORCHELASTIC_RESTART_COUNT): a failing attempt with some left is not the run's last word.
  int restarts_left = 0;
  bool is_main() const { return rank == 0; }
};

/// The variable lookup (std::getenv in use; a map in tests).
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
MS_API EnvLookup process_env();

/// Which launcher's worker variables this process has: torchrun's (WORLD_SIZE), srun's for a
/// step's task (SLURM_STEP_NUM_TASKS and SLURM_PROCID), or neither. An sbatch script is neither.
enum class WorkerLauncher { kNone, kTorchrun, kSlurm };
MS_API WorkerLauncher worker_launcher(const EnvLookup& env = process_env());

/// This node's entry of a Slurm task-count list (SLURM_STEP_TASKS_PER_NODE's "2(x3),1": three
/// nodes of 2 tasks, then one of 1), `node_id` being SLURM_NODEID (needed only when the nodes'
/// counts differ). kUsage naming `name` when the list is malformed or has no such node.
MS_API int slurm_tasks_on_node(const std::string& name, const std::string& list,
                               const std::optional<std::string>& node_id, int most = 1 << 20);

/// The worker's DistributedEnv, or nullopt when the process is not one of several workers
/// (no WORLD_SIZE / SLURM_STEP_NUM_TASKS, or a world of 1). A malformed or inconsistent value (a
/// rank outside the world, a port outside 1..65535, a missing MASTER_ADDR under Slurm) is kUsage
/// naming the variable.
MS_API std::optional<DistributedEnv> read_distributed_env(const EnvLookup& env = process_env());

}  // namespace ms::infer

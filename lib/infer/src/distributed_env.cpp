// torchrun's / Slurm's worker variables -> DistributedEnv.
#include "ms/infer/distributed_env.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <vector>

#include "ms/core/error.h"
#include "ms/core/text.h"

namespace ms::infer {
namespace {

// A whole decimal integer in [low, high] (digits only: no sign, no spaces), else kUsage naming
// the variable.
int parse_int(const std::string& name, const std::string& text, int low, int high) {
  const std::optional<long long> value = parse_whole_number(text, low, high);
  MS_CHECK(value.has_value(), ErrorCode::kUsage, "{}={} is not an integer in {}..{}", name, text,
           low, high);
  return static_cast<int>(*value);
}

}  // namespace

int slurm_tasks_on_node(const std::string& name, const std::string& list,
                        const std::optional<std::string>& node_id, int most) {
  // "2(x3),1": three nodes of 2 tasks, then one of 1, in node order.
  std::vector<int> counts;
  for (const std::string& item : split(list, ',')) {
    const std::size_t open = item.find('(');
    int count = 0, repeat = 1;
    const bool ok = [&] {
      const auto c = parse_whole_number(item.substr(0, open), 0, most);
      if (!c) return false;
      count = static_cast<int>(*c);
      if (open == std::string::npos) return true;
      if (item.size() < open + 4 || item.compare(open, 2, "(x") != 0 || item.back() != ')')
        return false;
      const auto r = parse_whole_number(item.substr(open + 2, item.size() - open - 3), 1, most);
      if (!r) return false;
      repeat = static_cast<int>(*r);
      return true;
    }();
    MS_CHECK(
        ok && counts.size() + static_cast<std::size_t>(repeat) <= static_cast<std::size_t>(most),
        ErrorCode::kUsage, "{}={} is not a list of task counts such as 2(x3),1", name, list);
    counts.insert(counts.end(), static_cast<std::size_t>(repeat), count);
  }
  MS_CHECK(!counts.empty(), ErrorCode::kUsage, "{}={} is not a list of task counts such as 2(x3),1",
           name, list);
  std::size_t node = 0;
  if (node_id) {
    node = static_cast<std::size_t>(parse_int("SLURM_NODEID", *node_id, 0, most));
    MS_CHECK(node < counts.size(), ErrorCode::kUsage, "SLURM_NODEID={} has no entry in {}={}",
             *node_id, name, list);
  } else if (std::adjacent_find(counts.begin(), counts.end(), std::not_equal_to<>()) !=
             counts.end()) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{}={} gives the nodes other task counts, and SLURM_NODEID (this "
                            "node's index) is not set",
                            name, list),
                "run the workers under srun, which sets SLURM_NODEID");
  }
  MS_CHECK(counts[node] > 0, ErrorCode::kUsage, "{}={} gives node {} no task", name, list, node);
  return counts[node];
}

WorkerLauncher worker_launcher(const EnvLookup& env) {
  if (env("WORLD_SIZE")) return WorkerLauncher::kTorchrun;
  // srun's step variables: an sbatch script itself has SLURM_NTASKS and SLURM_PROCID too, but
  // is not one of the step's workers.
  if (env("SLURM_STEP_NUM_TASKS") && env("SLURM_PROCID")) return WorkerLauncher::kSlurm;
  return WorkerLauncher::kNone;
}

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    return value ? std::optional<std::string>(value) : std::nullopt;
  };
}

std::optional<DistributedEnv> read_distributed_env(const EnvLookup& env) {
  // torchrun's names first; Slurm's (srun) when torchrun's are absent.
  const WorkerLauncher launcher = worker_launcher(env);
  const bool torchrun = launcher == WorkerLauncher::kTorchrun;
  // A rank without a world is a launch gone wrong (PyTorch's env:// refuses it too), not a
  // single process.
  if (const auto rank = env("RANK"); rank && !torchrun) {
    throw Error(ErrorCode::kUsage, fmt::format("RANK={} is set but WORLD_SIZE is not", *rank),
                "set WORLD_SIZE (the number of workers), or unset RANK to run one process");
  }
  if (launcher == WorkerLauncher::kNone) return std::nullopt;
  auto get = [&](const char* torchrun_name, const char* slurm_name) {
    const std::string name = torchrun ? torchrun_name : slurm_name;
    return std::make_pair(name, env(name));
  };
  constexpr int kMaxWorld = 1 << 20;
  DistributedEnv d;
  auto [world_name, world] = get("WORLD_SIZE", "SLURM_STEP_NUM_TASKS");
  d.world_size = parse_int(world_name, *world, 1, kMaxWorld);
  auto [rank_name, rank] = get("RANK", "SLURM_PROCID");
  if (d.world_size == 1) {
    // One worker runs as one process; a rank it cannot have means the launch is wrong.
    if (rank) parse_int(rank_name, *rank, 0, 0);
#ifdef MS_TEST_HOOKS
    // Test builds: MS_TEST_GROUP_OF_ONE=1 makes the one worker a process group of its own, so
    // that the GPU check exercises NCCL on a machine with one card (NCCL refuses two ranks on
    // one card).
    if (env("MS_TEST_GROUP_OF_ONE").value_or("") != "1") return std::nullopt;
#else
    return std::nullopt;
#endif
  }
  MS_CHECK(rank.has_value(), ErrorCode::kUsage, "{}={} is set but {} is not", world_name, *world,
           rank_name);
  d.rank = parse_int(rank_name, *rank, 0, d.world_size - 1);
  auto [local_name, local] = get("LOCAL_RANK", "SLURM_LOCALID");
  d.local_rank = local ? parse_int(local_name, *local, 0, kMaxWorld) : d.rank;
  std::string local_world_name = "LOCAL_WORLD_SIZE";
  if (torchrun) {
    const std::optional<std::string> local_world = env(local_world_name);
    d.local_world_size =
        local_world ? parse_int(local_world_name, *local_world, 1, kMaxWorld) : d.world_size;
  } else {
    local_world_name = "SLURM_STEP_TASKS_PER_NODE";
    // This node's task count: srun's per-node list of the step (else of the job), else
    // --ntasks-per-node's number (set by that option only), else all tasks on one node.
    std::optional<int> count;
    for (const char* name : {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}) {
      if (const std::optional<std::string> list = env(name)) {
        local_world_name = name;
        count = slurm_tasks_on_node(name, *list, env("SLURM_NODEID"), kMaxWorld);
        break;
      }
    }
    if (!count) {
      if (const std::optional<std::string> per_node = env("SLURM_NTASKS_PER_NODE")) {
        local_world_name = "SLURM_NTASKS_PER_NODE";
        count = parse_int(local_world_name, *per_node, 1, kMaxWorld);
      }
    }
    d.local_world_size = count.value_or(d.world_size);
  }
  if (d.local_rank >= d.local_world_size) {
    throw Error(
        ErrorCode::kUsage,
        local ? fmt::format("{}={} is not below {}={}", local_name, d.local_rank, local_world_name,
                            d.local_world_size)
              : fmt::format("{} is not set, so {}={} stands for it, and that is not below "
                            "{}={}",
                            local_name, rank_name, d.rank, local_world_name, d.local_world_size),
        fmt::format("set {} (this worker's index on its machine)", local_name));
  }
  MS_CHECK(d.local_world_size <= d.world_size, ErrorCode::kUsage, "{}={} is more than {}={}",
           local_world_name, d.local_world_size, world_name, d.world_size);
  // Both named, as PyTorch's env:// wants them: a default address or port would let workers
  // of another machine, or another run, meet somewhere else without a word.
  const std::optional<std::string> addr = env("MASTER_ADDR");
  const std::optional<std::string> port = env("MASTER_PORT");
  if (!addr || !port) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{}={} is set but {} is not", world_name, *world,
                            !addr ? "MASTER_ADDR" : "MASTER_PORT"),
                torchrun ? "set MASTER_ADDR (rank 0's host) and MASTER_PORT (a free port there), "
                           "as torchrun does, or start the workers with ms train --nproc N"
                         : "a Slurm run needs MASTER_ADDR (the first node's host name) and "
                           "MASTER_PORT (a free port there)");
  }
  MS_CHECK(!addr->empty(), ErrorCode::kUsage, "MASTER_ADDR is empty");
  d.master_addr = *addr;
  d.master_port = parse_int("MASTER_PORT", *port, 1, 65535);
  d.agent_store = env("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  if (const auto count = env("TORCHELASTIC_RESTART_COUNT"))
    d.restart_count = parse_int("TORCHELASTIC_RESTART_COUNT", *count, 0, kMaxWorld);
  if (const auto most = env("TORCHELASTIC_MAX_RESTARTS"))
    d.restarts_left =
        std::max(0, parse_int("TORCHELASTIC_MAX_RESTARTS", *most, 0, kMaxWorld) - d.restart_count);
  if (const std::optional<std::string> timeout = env("MS_DIST_TIMEOUT"))
    d.timeout = std::chrono::seconds(parse_int("MS_DIST_TIMEOUT", *timeout, 1, 7 * 24 * 3600));
  return d;
}

}  // namespace ms::infer

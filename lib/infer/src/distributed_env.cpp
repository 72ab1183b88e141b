// torchrun's / Slurm's worker variables -> DistributedEnv.
#include "ms/infer/distributed_env.h"

#include <algorithm>
#include <cstdlib>

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

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    return value ? std::optional<std::string>(value) : std::nullopt;
  };
}

std::optional<DistributedEnv> read_distributed_env(const EnvLookup& env) {
  // torchrun's names first; Slurm's (srun) when torchrun's are absent.
  const bool torchrun = env("WORLD_SIZE").has_value();
  // A rank without a world is a launch gone wrong (PyTorch's env:// refuses it too), not a
  // single process.
  if (const auto rank = env("RANK"); rank && !torchrun) {
    throw Error(ErrorCode::kUsage, fmt::format("RANK={} is set but WORLD_SIZE is not", *rank),
                "set WORLD_SIZE (the number of workers), or unset RANK to run one process");
  }
  // srun's step variables: an sbatch script itself has SLURM_NTASKS and SLURM_PROCID too, but
  // is not one of the step's workers.
  const bool slurm =
      !torchrun && env("SLURM_STEP_NUM_TASKS").has_value() && env("SLURM_PROCID").has_value();
  if (!torchrun && !slurm) return std::nullopt;
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
  auto [local_world_name, local_world] = get("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE");
  // Slurm writes e.g. "2(x3)" for heterogeneous nodes: the count before "(" is this node's.
  std::string local_world_text = local_world.value_or("");
  if (!torchrun) local_world_text = local_world_text.substr(0, local_world_text.find('('));
  d.local_world_size = local_world_text.empty()
                           ? d.world_size
                           : parse_int(local_world_name, local_world_text, 1, kMaxWorld);
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

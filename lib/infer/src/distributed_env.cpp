// torchrun's / Slurm's worker variables -> DistributedEnv.
#include "ms/infer/distributed_env.h"

#include <cstdlib>

#include "ms/core/error.h"

namespace ms::infer {
namespace {

// A whole decimal integer in [low, high], else kUsage naming the variable.
int parse_int(const std::string& name, const std::string& text, int low, int high) {
  std::size_t used = 0;
  long value = 0;
  try {
    value = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MS_CHECK(used == text.size() && !text.empty() && value >= low && value <= high, ErrorCode::kUsage,
           "{}={} is not an integer in {}..{}", name, text, low, high);
  return static_cast<int>(value);
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
  MS_CHECK(d.local_rank < d.local_world_size, ErrorCode::kUsage, "{}={} is not below {}={}",
           local_name, d.local_rank, local_world_name, d.local_world_size);
  const std::optional<std::string> addr = env("MASTER_ADDR");
  MS_CHECK(addr.has_value() || torchrun, ErrorCode::kUsage,
           "a Slurm run ({} set) needs MASTER_ADDR (the first node's host name) and MASTER_PORT",
           world_name);
  if (addr) {
    MS_CHECK(!addr->empty(), ErrorCode::kUsage, "MASTER_ADDR is empty");
    d.master_addr = *addr;
  }
  if (const std::optional<std::string> port = env("MASTER_PORT"))
    d.master_port = parse_int("MASTER_PORT", *port, 1, 65535);
  d.agent_store = env("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  if (d.agent_store)
    d.restart_count = parse_int("TORCHELASTIC_RESTART_COUNT",
                                env("TORCHELASTIC_RESTART_COUNT").value_or("0"), 0, kMaxWorld);
  if (const std::optional<std::string> timeout = env("MS_DIST_TIMEOUT"))
    d.timeout = std::chrono::seconds(parse_int("MS_DIST_TIMEOUT", *timeout, 1, 7 * 24 * 3600));
  return d;
}

}  // namespace ms::infer

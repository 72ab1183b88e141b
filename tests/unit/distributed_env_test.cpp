// Unit tests of the worker variables of data-parallel runs (torchrun's, srun's, torchrun's agent
// store): ms::infer::read_distributed_env over a map of variables.
#include "ms/infer/distributed_env.h"

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <map>
#include <string>

#include "catch.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/infer/launch.h"

using ms::infer::DistributedEnv;
using ms::infer::read_distributed_env;
using Vars = std::map<std::string, std::string>;

namespace {

ms::infer::EnvLookup lookup(const Vars& vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

// The message of the kUsage error `vars` give.
std::string usage_error(const Vars& vars) {
  try {
    read_distributed_env(lookup(vars));
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kUsage);
    return e.what();
  }
  FAIL("no error for these variables");
  return {};
}

const Vars kTorchrun = {{"RANK", "1"},
                        {"WORLD_SIZE", "4"},
                        {"LOCAL_RANK", "1"},
                        {"LOCAL_WORLD_SIZE", "2"},
                        {"MASTER_ADDR", "node0"},
                        {"MASTER_PORT", "29511"}};

}  // namespace

TEST_CASE("one process: no variables, or a world of 1", "[infer][distributed]") {
  CHECK_FALSE(read_distributed_env(lookup({})).has_value());
  CHECK_FALSE(read_distributed_env(lookup({{"WORLD_SIZE", "1"}, {"RANK", "0"}})).has_value());
  // A rank a world of 1 cannot have is a wrong launch, not a single process.
  CHECK_THROWS_AS(read_distributed_env(lookup({{"WORLD_SIZE", "1"}, {"RANK", "3"}})), ms::Error);
  // An sbatch script has these but no step variables: it is not a worker.
  CHECK_FALSE(
      read_distributed_env(lookup({{"SLURM_NTASKS", "4"}, {"SLURM_PROCID", "0"}})).has_value());
}

TEST_CASE("torchrun's variables", "[infer][distributed]") {
  const DistributedEnv d = *read_distributed_env(lookup(kTorchrun));
  CHECK(d.rank == 1);
  CHECK(d.world_size == 4);
  CHECK(d.local_rank == 1);
  CHECK(d.local_world_size == 2);
  CHECK(d.master_addr == "node0");
  CHECK(d.master_port == 29511);
  CHECK_FALSE(d.is_main());
  CHECK_FALSE(d.agent_store);
  CHECK(d.timeout == std::chrono::seconds(1800));

  Vars agent = kTorchrun;
  agent["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  agent["TORCHELASTIC_RESTART_COUNT"] = "2";
  agent["MS_DIST_TIMEOUT"] = "7";
  const DistributedEnv a = *read_distributed_env(lookup(agent));
  CHECK(a.agent_store);
  CHECK(a.restart_count == 2);
  CHECK(a.timeout == std::chrono::seconds(7));
  CHECK(a.restarts_left == 0);
  // Restarts left after this attempt: its failure is not the run's last word.
  agent["TORCHELASTIC_MAX_RESTARTS"] = "3";
  CHECK(read_distributed_env(lookup(agent))->restarts_left == 1);
  agent["TORCHELASTIC_MAX_RESTARTS"] = "2";
  CHECK(read_distributed_env(lookup(agent))->restarts_left == 0);
}

TEST_CASE("srun's step variables", "[infer][distributed]") {
  const DistributedEnv d = *read_distributed_env(lookup({{"SLURM_PROCID", "5"},
                                                         {"SLURM_STEP_NUM_TASKS", "6"},
                                                         {"SLURM_NTASKS", "6"},
                                                         {"SLURM_LOCALID", "2"},
                                                         {"SLURM_NODEID", "1"},
                                                         {"SLURM_STEP_TASKS_PER_NODE", "3(x2)"},
                                                         {"MASTER_ADDR", "n1"},
                                                         {"MASTER_PORT", "1234"}}));
  CHECK(d.rank == 5);
  CHECK(d.world_size == 6);
  CHECK(d.local_rank == 2);
  CHECK(d.local_world_size == 3);
  CHECK(d.master_addr == "n1");
  // srun -N 2 -n 2 without --ntasks-per-node: SLURM_NTASKS_PER_NODE is unset, and the per-node
  // lists say one task a node (the world size was taken for the local one: "all 2 workers of
  // this machine would share one GPU").
  const Vars across = {{"SLURM_PROCID", "0"},
                       {"SLURM_LOCALID", "0"},
                       {"SLURM_STEP_NUM_TASKS", "2"},
                       {"SLURM_NODEID", "0"},
                       {"SLURM_TASKS_PER_NODE", "1(x2)"},
                       {"MASTER_ADDR", "n1"},
                       {"MASTER_PORT", "1234"}};
  CHECK(read_distributed_env(lookup(across))->local_world_size == 1);
  Vars step = across;
  step["SLURM_STEP_TASKS_PER_NODE"] = "2";  // the step's list comes first
  step["SLURM_STEP_NUM_TASKS"] = "3";
  CHECK(read_distributed_env(lookup(step))->local_world_size == 2);
  // --ntasks-per-node's number where srun's lists are absent.
  Vars per_node = across;
  per_node.erase("SLURM_TASKS_PER_NODE");
  per_node["SLURM_NTASKS_PER_NODE"] = "1";
  CHECK(read_distributed_env(lookup(per_node))->local_world_size == 1);
  per_node.erase("SLURM_NTASKS_PER_NODE");
  CHECK(read_distributed_env(lookup(per_node))->local_world_size == 2);
  CHECK(usage_error({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}}).find("MASTER_ADDR") !=
        std::string::npos);
}

TEST_CASE("malformed or inconsistent variables name the variable", "[infer][distributed]") {
  auto with = [](const std::string& name, const std::string& value) {
    Vars v = kTorchrun;
    if (value.empty())
      v.erase(name);
    else
      v[name] = value;
    return v;
  };
  CHECK(usage_error(with("RANK", "4")).find("RANK=4") != std::string::npos);
  CHECK(usage_error(with("RANK", "")).find("RANK") != std::string::npos);
  CHECK(usage_error(with("WORLD_SIZE", "two")).find("WORLD_SIZE=two") != std::string::npos);
  CHECK(usage_error(with("MASTER_PORT", "0")).find("MASTER_PORT") != std::string::npos);
  CHECK(usage_error(with("MASTER_PORT", "65536")).find("MASTER_PORT") != std::string::npos);
  CHECK(usage_error(with("LOCAL_RANK", "2")).find("LOCAL_RANK") != std::string::npos);
  CHECK(usage_error(with("MS_DIST_TIMEOUT", "0")).find("MS_DIST_TIMEOUT") != std::string::npos);
  CHECK(usage_error(with("RANK", "1 ")).find("RANK") != std::string::npos);
  // Digits only: std::stol took these.
  CHECK(usage_error(with("MASTER_PORT", " 29631")).find("MASTER_PORT") != std::string::npos);
  CHECK(usage_error(with("RANK", "+1")).find("RANK=+1") != std::string::npos);
  // Nothing defaults where PyTorch's env:// would refuse: workers that meet at 127.0.0.1:29500
  // by default can meet another run's, or none on another machine.
  CHECK(usage_error(with("MASTER_PORT", "")).find("MASTER_PORT is not") != std::string::npos);
  CHECK(usage_error(with("MASTER_ADDR", "")).find("MASTER_ADDR is not") != std::string::npos);
  CHECK(usage_error({{"RANK", "1"}}).find("WORLD_SIZE is not") != std::string::npos);
  CHECK(usage_error(with("LOCAL_WORLD_SIZE", "5")).find("LOCAL_WORLD_SIZE=5 is more than") !=
        std::string::npos);
  // Without LOCAL_RANK, RANK stands for it: the message says so (it named a LOCAL_RANK=3 no one
  // had set).
  Vars unset_local = kTorchrun;
  unset_local.erase("LOCAL_RANK");
  unset_local["RANK"] = "3";
  CHECK(usage_error(unset_local).find("LOCAL_RANK is not set, so RANK=3 stands for it") !=
        std::string::npos);
}

// Started as a worker by the next test (hidden: it runs only when named).
TEST_CASE("launch test worker", "[.launch-worker]") { std::_Exit(3); }

TEST_CASE("run_local_workers waits for its own workers and gives the signal handlers back",
          "[infer][launch]") {
  // A child of the caller's own that exits first: waitpid(-1) took it for a worker before.
  const pid_t other = ::fork();
  REQUIRE(other >= 0);
  if (other == 0) ::_exit(7);
  struct sigaction before {};
  ::sigaction(SIGTERM, nullptr, &before);
  const ms::infer::WorkersOutcome outcome =
      ms::infer::run_local_workers(1, {"ms_unit_tests", "[.launch-worker]"});
  CHECK(outcome.exit_code == 3);
  CHECK(outcome.document.empty());  // it wrote none
  int status = 0;
  CHECK(::waitpid(other, &status, 0) == other);
  CHECK(WEXITSTATUS(status) == 7);
  struct sigaction after {};
  ::sigaction(SIGTERM, nullptr, &after);
  CHECK(after.sa_handler == before.sa_handler);
  // SIGCHLD inherited as ignored (the kernel would reap the workers itself, losing their
  // statuses): still the worker's own code, and the caller's setting back afterwards.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  struct sigaction child_before {};
  ::sigaction(SIGCHLD, &ignore, &child_before);
  const ms::infer::WorkersOutcome ignored =
      ms::infer::run_local_workers(1, {"ms_unit_tests", "[.launch-worker]"});
  struct sigaction child_after {};
  ::sigaction(SIGCHLD, &child_before, &child_after);
  CHECK(ignored.exit_code == 3);
  CHECK(child_after.sa_handler == SIG_IGN);
}

namespace {
// What a worker of a launch test writes where --json documents go under the launcher.
void write_document(const std::string& text) {
  const char* file = std::getenv(ms::infer::kDocumentFileVariable);
  if (file != nullptr) ms::write_file_atomic(file, text + "\n");
}
bool is_rank0() {
  const char* rank = std::getenv("RANK");
  return rank != nullptr && std::string(rank) == "0";
}
}  // namespace

// Started as the workers of the next test: rank 1 is killed, rank 0 fails as a worker whose peer
// went does (exit 5, its document saying so), in whichever order they happen to end.
TEST_CASE("launch test worker whose peer is killed", "[.launch-peer-killed]") {
  if (is_rank0()) {
    write_document(R"({"error": {"code": "network", "exit_code": 5}})");
    std::_Exit(5);
  }
  std::raise(SIGKILL);
}
// Rank 1 fails on its own (exit 3, its document saying why); rank 0 then as its peer went.
TEST_CASE("launch test worker whose peer fails on its own", "[.launch-peer-fails]") {
  if (is_rank0()) {
    write_document(R"({"error": {"code": "network", "exit_code": 5}})");
    std::_Exit(5);
  }
  write_document(R"({"error": {"code": "config", "exit_code": 3}})");
  std::_Exit(3);
}
// Rank 0 fails on its own (exit 7, its document saying so); rank 1 then fails as its peer went.
TEST_CASE("launch test worker that fails on its own", "[.launch-own-failure]") {
  if (is_rank0()) {
    write_document(R"({"error": {"code": "integrity", "exit_code": 7}})");
    std::_Exit(7);
  }
  write_document(R"({"error": {"code": "network", "exit_code": 5}})");
  std::_Exit(5);
}
// Both succeed; rank 0 writes its summary.
TEST_CASE("launch test worker that succeeds", "[.launch-success]") {
  if (is_rank0()) write_document(R"({"iters": 8})");
  std::_Exit(0);
}

TEST_CASE("run_local_workers reports the failure a worker had on its own, not its peers' 5",
          "[infer][launch]") {
  const ms::infer::WorkersOutcome killed =
      ms::infer::run_local_workers(2, {"ms_unit_tests", "[.launch-peer-killed]"});
  CHECK(killed.exit_code == 128 + SIGKILL);
  CHECK(killed.failure.find("worker 1 of 2 was killed by signal 9") != std::string::npos);
  // Rank 0's document is not the run's: the caller reports `failure`.
  CHECK(killed.document.empty());
  const ms::infer::WorkersOutcome peer =
      ms::infer::run_local_workers(2, {"ms_unit_tests", "[.launch-peer-fails]"});
  CHECK(peer.exit_code == 3);
  CHECK(peer.document == R"({"error": {"code": "config", "exit_code": 3}})");
  const ms::infer::WorkersOutcome own =
      ms::infer::run_local_workers(2, {"ms_unit_tests", "[.launch-own-failure]"});
  CHECK(own.exit_code == 7);
  CHECK(own.failure.find("worker 0 of 2 exited with code 7") != std::string::npos);
  CHECK(own.document == R"({"error": {"code": "integrity", "exit_code": 7}})");
  const ms::infer::WorkersOutcome success =
      ms::infer::run_local_workers(2, {"ms_unit_tests", "[.launch-success]"});
  CHECK(success.exit_code == 0);
  CHECK(success.document == R"({"iters": 8})");
}

TEST_CASE("Slurm's per-node task lists", "[infer][distributed]") {
  using ms::infer::slurm_tasks_on_node;
  const std::string list = "2(x3),1";
  CHECK(slurm_tasks_on_node("L", list, "0") == 2);
  CHECK(slurm_tasks_on_node("L", list, "2") == 2);
  CHECK(slurm_tasks_on_node("L", list, "3") == 1);
  CHECK(slurm_tasks_on_node("L", "4", "0") == 4);
  CHECK(slurm_tasks_on_node("L", "3(x2)", std::nullopt) == 3);  // every node alike
  auto error = [](const std::string& list, std::optional<std::string> node) {
    try {
      slurm_tasks_on_node("SLURM_TASKS_PER_NODE", list, node);
    } catch (const ms::Error& e) {
      CHECK(e.code() == ms::ErrorCode::kUsage);
      return std::string(e.what());
    }
    FAIL("no error for " << list);
    return std::string();
  };
  CHECK(error(list, "4").find("SLURM_NODEID=4 has no entry") != std::string::npos);
  CHECK(error(list, std::nullopt).find("SLURM_NODEID") != std::string::npos);
  for (const char* bad : {"", "2(3)", "2(x)", "x", "2(x3", "2,,1", "-1", "2(x0)"})
    CHECK(error(bad, "0").find("SLURM_TASKS_PER_NODE=") != std::string::npos);
}

TEST_CASE("which launcher's workers", "[infer][distributed]") {
  using ms::infer::worker_launcher;
  using ms::infer::WorkerLauncher;
  CHECK(worker_launcher(lookup({})) == WorkerLauncher::kNone);
  CHECK(worker_launcher(lookup(kTorchrun)) == WorkerLauncher::kTorchrun);
  CHECK(worker_launcher(lookup({{"SLURM_PROCID", "1"}, {"SLURM_STEP_NUM_TASKS", "2"}})) ==
        WorkerLauncher::kSlurm);
  // An sbatch script: not a step's task.
  CHECK(worker_launcher(lookup({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}})) ==
        WorkerLauncher::kNone);
}

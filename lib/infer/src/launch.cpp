// The local worker launcher of `ms train --nproc N` (see launch.h).
#include "ms/infer/launch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "ms/config/json_file.h"
#include "ms/core/device.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/infer/distributed_env.h"
#include "ms/infer/worker_output.h"

extern char** environ;

namespace ms::infer {
namespace {

// The workers' pids, for the signal handler (async-signal-safe reads only).
constexpr int kMaxWorkers = 1024;
volatile pid_t g_workers[kMaxWorkers];
volatile int g_worker_count = 0;

// The first SIGINT / SIGTERM / SIGHUP the launcher received (and passed on), or 0.
volatile sig_atomic_t g_received_signal = 0;

void forward_signal(int signo) {
  for (int i = 0; i < g_worker_count; ++i)
    if (g_workers[i] > 0) kill(g_workers[i], signo);
}

// A TCP port free on 127.0.0.1 now (the kernel's pick), as torchrun picks one.
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  MS_CHECK(fd >= 0, ErrorCode::kIo, "socket(): {}", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  MS_CHECK(ok, ErrorCode::kNetwork, "cannot find a free port on 127.0.0.1: {}",
           std::strerror(errno));
  return ntohs(addr.sin_port);
}

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
}

int exit_code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Exit 5 is what a worker reports when a peer failed (its collective or the store broke): it
// names no cause of its own.
bool peer_failure(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 5; }

// A worker's --json document (at `path`, when it wrote one) if it is the run's: a result when
// the run succeeded, an error whose exit_code is the run's when it failed; else empty.
std::string run_document(const std::filesystem::path& path, int exit_code) {
  std::error_code missing;
  if (!std::filesystem::exists(path, missing)) return {};
  std::string text = read_file(path);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  Json document;
  JsonParseError ignored;
  if (!try_parse_json(text, document, ignored) || !document.is_object()) return {};
  const auto error = document.find("error");
  const bool failed = error != document.end();
  if (failed != (exit_code != 0)) return {};
  if (failed && (!error->is_object() || error->value("exit_code", -1) != exit_code)) return {};
  return text;
}

// The folder for the launcher's files, as Python's tempfile.gettempdir() (and so torchrun) picks
// it: the first of $TMPDIR, $TEMP, $TMP, /tmp, /var/tmp, /usr/tmp and the current folder that is a
// folder this process may write to (std::filesystem::temp_directory_path() fails on a TMPDIR that
// does not exist).
std::filesystem::path temp_directory() {
  std::vector<std::string> candidates;
  for (const char* name : {"TMPDIR", "TEMP", "TMP"})
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0')
      candidates.emplace_back(value);
  for (const char* dir : {"/tmp", "/var/tmp", "/usr/tmp"}) candidates.emplace_back(dir);
  for (const std::string& dir : candidates) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec) && ::access(dir.c_str(), W_OK | X_OK) == 0)
      return dir;
  }
  std::error_code ec;
  const std::filesystem::path here = std::filesystem::current_path(ec);
  return ec ? std::filesystem::path(".") : here;
}

// What the launcher's own lines start with: "ms train" or "ms eval", the command it runs.
std::string command_name(const std::vector<std::string>& args) {
  for (const std::string& a : args)
    if (a == "train" || a == "eval") return "ms " + a;
  return "ms";
}

}  // namespace

void die_with_launcher() {
  if (const char* value = std::getenv("MS_LAUNCHER_PID")) {
    const std::string launcher = value;
    // It is this worker's alone: a program the worker starts is not the launcher's child.
    ::unsetenv("MS_LAUNCHER_PID");
    // A launcher killed with SIGKILL cannot stop its workers: the kernel does, and a launcher
    // that died before this call is noticed here. SIGKILL, not SIGTERM: a worker stopped
    // (SIGSTOP) would hold a SIGTERM, and the work dir's lock, until someone continued it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (std::to_string(getppid()) != launcher) {
      std::fprintf(stderr, "ms: the launcher (pid %s) is gone; stopping\n", launcher.c_str());
      std::exit(128 + SIGTERM);
    }
    return;
  }
  if (std::getenv("TORCHELASTIC_RUN_ID") == nullptr) return;
  // Under torchrun: its agent stops its workers, unless it was killed with SIGKILL, which left
  // them training (and holding the work dir). The agent is this process's parent; a parent
  // death signal is tied to the thread that started the child, which an agent need not keep,
  // so a thread watches for the process to be handed to another parent, and then stops it as
  // the agent would have (SIGTERM: the run ends as after Ctrl-C).
  const pid_t agent = getppid();
  // A worker stopped (SIGSTOP) when the agent dies runs no thread to notice: the death signal
  // continues it, and the watch below then stops it. (A spurious one, when the agent's thread
  // that started this worker ends, continues a running process: nothing.)
  prctl(PR_SET_PDEATHSIG, SIGCONT);
  std::thread([agent] {
    while (getppid() == agent) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::fprintf(stderr, "ms: torchrun's agent (pid %d) is gone; stopping\n",
                 static_cast<int>(agent));
    std::fflush(stderr);
    kill(getpid(), SIGTERM);
  }).detach();
}

std::vector<std::string> without_option(const std::vector<std::string>& argv,
                                        const std::string& option) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == option) {
      ++i;  // and its value
      continue;
    }
    if (argv[i].rfind(option + "=", 0) == 0) continue;
    out.push_back(argv[i]);
  }
  return out;
}

void ensure_open_files_for(int world_size) {
  // Rank 0 hosts the rendezvous store (a connection from every rank) and has a Gloo connection to
  // every other rank; LibTorch's store thread aborts the process when it runs out of files.
  const rlim_t needed = static_cast<rlim_t>(world_size) * 2 + 64;
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur >= needed) return;
  // The soft limit may go up to the hard one (many systems: 1024 of 1M or more).
  files.rlim_cur = std::min(files.rlim_max, std::max(needed, static_cast<rlim_t>(4096)));
  setrlimit(RLIMIT_NOFILE, &files);
  if (files.rlim_cur < needed) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} workers need up to {} open files each, but this process may open "
                            "{} at most",
                            world_size, needed, files.rlim_cur),
                fmt::format("raise the limit (ulimit -n {}; the hard limit is in "
                            "/etc/security/limits.conf), or start fewer workers",
                            needed));
  }
}

WorkersOutcome run_local_workers(int nproc, const std::vector<std::string>& args) {
  MS_CHECK(nproc >= 1 && nproc <= kMaxWorkers, ErrorCode::kUsage,
           "--nproc must be between 1 and {}, got {}", kMaxWorkers, nproc);
  switch (worker_launcher()) {
    case WorkerLauncher::kTorchrun:
      throw Error(ErrorCode::kUsage,
                  "--nproc starts workers itself, but WORLD_SIZE is set (this is already a "
                  "torchrun worker)",
                  "drop --nproc under torchrun, or unset WORLD_SIZE");
    case WorkerLauncher::kSlurm:
      // A step of one task (srun -n1, an interactive srun --pty shell) is no group of workers:
      // its --nproc starts this node's workers, as `srun -n1 torchrun --nproc_per_node N` does.
      if (const char* tasks = std::getenv("SLURM_STEP_NUM_TASKS");
          tasks != nullptr && std::string(tasks) == "1")
        break;
      // Every task of the step would start a job of its own.
      throw Error(ErrorCode::kUsage,
                  "--nproc starts workers itself, but SLURM_PROCID and SLURM_STEP_NUM_TASKS are "
                  "set (this is already a task of an srun step, which is a worker)",
                  "drop --nproc under srun (srun -n N starts the N workers), or run ms with "
                  "--nproc outside srun");
    case WorkerLauncher::kNone:
      break;
  }
  g_received_signal = 0;  // (a call that ended in an exception left its own)
  const int port = free_port();
  // Every worker's variables: the parent's environment with torchrun's names set.
  std::map<std::string, std::string> base;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const std::size_t eq = entry.find('=');
    if (eq != std::string::npos) base[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  base["WORLD_SIZE"] = std::to_string(nproc);
  base["LOCAL_WORLD_SIZE"] = std::to_string(nproc);
  base["MASTER_ADDR"] = "127.0.0.1";
  base["MASTER_PORT"] = std::to_string(port);
  base["MS_LAUNCHER_PID"] = std::to_string(getpid());
  // Each worker's --json document goes to a file, not to the stdout they share: the launcher
  // prints the one that is the run's outcome (rank 0's result, the failing worker's error), else
  // one of its own naming the failure (rank 0 only saw its peer go, or a signal killed one).
  struct DocumentFolder {
    std::filesystem::path path;
    ~DocumentFolder() {
      std::error_code ignored;
      if (!path.empty()) std::filesystem::remove_all(path, ignored);
    }
  } documents;
  {
    const std::filesystem::path temp = temp_directory();
    std::string pattern = (temp / "ms-launch-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw Error(
          ErrorCode::kIo,
          fmt::format("cannot make a folder in {}: {}", temp.string(), std::strerror(errno)),
          "set TMPDIR to a folder this user may write to");
    }
    documents.path = pattern;
  }
  const auto document_of = [&documents](int rank) {
    return documents.path / fmt::format("rank{}.json", rank);
  };
  bool threads_given = base.count("OMP_NUM_THREADS") > 0;
  for (const std::string& a : args)
    if (a == "--threads" || a.rfind("--threads=", 0) == 0) threads_given = true;
  if (!threads_given) {
    // N workers each taking every core would fight over them: share the cores out.
    const unsigned cores = usable_cores();
    base["OMP_NUM_THREADS"] = std::to_string(std::max(1u, cores / static_cast<unsigned>(nproc)));
  }
  log::info("starting {} workers (MASTER_ADDR=127.0.0.1 MASTER_PORT={})", nproc, port);

  // Signals go to the workers while they run; the caller's own handling is back on return (a
  // program calling this as a library keeps its handlers).
  struct Forwarding {
    std::vector<std::pair<int, struct sigaction>> replaced;
    Forwarding() {
      // A SIGCHLD inherited as ignored (a parent's signal(SIGCHLD, SIG_IGN) survives exec) makes
      // the kernel reap the workers itself, and their exit statuses would be lost.
      // Only such a setting is replaced: a handler of the caller's keeps hearing of its children.
      struct sigaction previous_child {};
      if (sigaction(SIGCHLD, nullptr, &previous_child) == 0 &&
          (previous_child.sa_handler == SIG_IGN || (previous_child.sa_flags & SA_NOCLDWAIT) != 0)) {
        struct sigaction child {};
        child.sa_handler = SIG_DFL;
        sigemptyset(&child.sa_mask);
        if (sigaction(SIGCHLD, &child, nullptr) == 0)
          replaced.emplace_back(SIGCHLD, previous_child);
      }
      struct sigaction forward {};
      forward.sa_handler = [](int signo) {
        const int saved_errno = errno;  // the code it interrupts may be about to read it
        if (g_received_signal == 0) g_received_signal = signo;
        forward_signal(signo);
        errno = saved_errno;
      };
      sigemptyset(&forward.sa_mask);
      // A signal the launcher was started ignoring (SIGHUP under nohup, SIGINT for a script's
      // background job) stays ignored, as it does for one process: forwarding it would end the
      // run.
      for (int signo : {SIGINT, SIGTERM, SIGHUP}) {
        struct sigaction inherited {};
        if (sigaction(signo, nullptr, &inherited) != 0 || inherited.sa_handler == SIG_IGN) continue;
        if (sigaction(signo, &forward, nullptr) == 0) replaced.emplace_back(signo, inherited);
      }
    }
    ~Forwarding() {
      for (const auto& [signo, previous] : replaced) sigaction(signo, &previous, nullptr);
      g_worker_count = 0;
    }
  } forwarding;

  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Each worker's stderr goes through a pipe to WorkerStderr, which prints an error that several
  // workers report alike only once.
  std::vector<int> read_fds;
  // The launcher holds a pipe per worker; the workers inherit the limit it leaves.
  ensure_open_files_for(nproc);
  struct ClosePipes {
    std::vector<int>& fds;
    ~ClosePipes() {
      for (int fd : fds) close(fd);
    }
  } close_unread{read_fds};
  for (int rank = 0; rank < nproc; ++rank) {
    std::map<std::string, std::string> env = base;
    env["RANK"] = std::to_string(rank);
    env["LOCAL_RANK"] = std::to_string(rank);
    env[kDocumentFileVariable] = document_of(rank).string();
    std::vector<std::string> entries;
    for (const auto& [k, v] : env) entries.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (std::string& e : entries) envp.push_back(e.data());
    envp.push_back(nullptr);
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
      forward_signal(SIGTERM);
      throw Error(ErrorCode::kIo,
                  fmt::format("cannot start worker {}: pipe(): {}", rank, std::strerror(errno)));
    }
    read_fds.push_back(pipe_fds[0]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);  // the worker holds the write end now: its exit ends the stream
    if (rc != 0) {
      forward_signal(SIGTERM);
      throw Error(ErrorCode::kIo,
                  fmt::format("cannot start worker {}: {}", rank, std::strerror(rc)));
    }
    g_workers[rank] = pid;
    g_worker_count = rank + 1;
  }

  WorkerStderr worker_stderr(std::exchange(read_fds, {}));

  // Wait for every worker. After the first failure the others get a grace period to fail on
  // their own (they notice a dead peer at their next collective, and rank 0 then prints the
  // failure it saw), then SIGTERM, then SIGKILL.
  constexpr auto kOwnExit = std::chrono::seconds(10);
  constexpr auto kTermGrace = std::chrono::seconds(30);
  // A worker's stderr ends when it exits, unless a child of its own still holds it: this long
  // at most is waited for the rest of it.
  constexpr double kStreamEnd = 5;
  const std::string command = command_name(args);
  WorkersOutcome outcome;
  // A worker's failure: its exit code (128 + a signal), who, and how the launcher says it.
  struct Failure {
    int code;
    int rank;
    std::string text;
  };
  // The first failure; the first of a worker's own (not a peer's: exit 5); rank 0's.
  std::optional<Failure> first, own, rank0;
  bool terminated = false;
  int running = nproc;
  // After a failure: when the others get SIGTERM, then SIGKILL (time_point::max(): not yet due).
  using Clock = std::chrono::steady_clock;
  Clock::time_point term_at = Clock::time_point::max(), kill_at = Clock::time_point::max();
  // Each worker is waited for by its pid, never waitpid(-1): a program that calls this has
  // children of its own, whose exits are its business.
  // Of the workers that have exited, one that failed on its own comes first: a worker killed
  // makes its peers fail with 5 a moment later, and all of them are often there at one look.
  const auto next_exit = [&](int& status) -> int {
    while (true) {
      int ready = -1;
      for (int rank = 0; rank < nproc; ++rank) {
        const pid_t pid = g_workers[rank];
        if (pid <= 0) continue;
        siginfo_t info{};
        // WNOWAIT: only looks; the one taken is reaped below.
        const int rc = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
        if (rc != 0 && errno == ECHILD) {  // reaped by someone else: its status is lost
          status = 1 << 8;                 // as an exit with 1
          return rank;
        }
        if (rc != 0 || info.si_pid != pid) continue;
        const bool peer = info.si_code == CLD_EXITED && info.si_status == 5;
        if (ready < 0 || !peer) ready = rank;
        if (!peer) break;
      }
      if (ready >= 0 && waitpid(g_workers[ready], &status, 0) == g_workers[ready]) return ready;
      if (first) {  // a worker failed: the others wind down, or are made to
        const auto now = Clock::now();
        if (!terminated && now >= term_at) {
          forward_signal(SIGTERM);
          // A stopped worker (SIGSTOP, a debugger) acts on SIGTERM only once it runs again.
          forward_signal(SIGCONT);
          terminated = true;
          kill_at = now + kTermGrace;
        } else if (now >= kill_at) {
          forward_signal(SIGKILL);
          kill_at = Clock::time_point::max();
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  while (running > 0) {
    int status = 0;
    const int rank = next_exit(status);
    --running;
    g_workers[rank] = 0;
    if (status == 0) continue;
    const Failure failure{exit_code_of(status), rank,
                          fmt::format("worker {} of {} {}", rank, nproc, describe(status))};
    // (A worker the launcher's SIGTERM ended did not fail on its own.)
    if (!own && !peer_failure(status) && !terminated) own = failure;
    if (!first) {
      first = failure;
      // Its own account of the failure first (what it wrote before exiting).
      worker_stderr.wait_closed(static_cast<std::size_t>(rank), kStreamEnd);
      // (Only when the worker ended by that signal: one that failed on its own just before
      // keeps its account.)
      if (const int signo = g_received_signal; signo != 0 && failure.code == 128 + signo) {
        // The launcher was stopped and passed the signal on: the workers did not fail on
        // their own, which "worker 0 ... was killed by signal 15" would say.
        std::fprintf(stderr, "%s: stopped by signal %d (%s), passed on to the workers\n",
                     command.c_str(), signo, strsignal(signo));
      } else {
        std::fprintf(stderr, "%s: %s%s\n", command.c_str(), failure.text.c_str(),
                     nproc > 1 ? "; stopping the others" : "");
      }
      term_at = Clock::now() + kOwnExit;
    }
    // Rank 0's own failure (not one the launcher's SIGTERM caused) says most: a failure that
    // only rank 0 can have (its evaluation, a checkpoint write) makes the others fail with 5,
    // and the first of those may be reaped before rank 0.
    if (rank == 0 && !terminated) rank0 = failure;
  }
  if (const std::size_t repeated = worker_stderr.finish(kStreamEnd); repeated > 0)
    std::fprintf(stderr, "%s: %zu more worker(s) failed with an error printed above\n",
                 command.c_str(), repeated);
  // The run's failure: rank 0's own, else the first of a worker's own, else the first.
  const std::optional<Failure>& reported = rank0 && rank0->code != 5 ? rank0 : own ? own : first;
  if (reported) {
    outcome.exit_code = reported->code;
    outcome.failure = reported->text;
  }
  // Whose document is the run's: the failing worker's, or rank 0's result.
  outcome.document = run_document(document_of(reported ? reported->rank : 0), outcome.exit_code);
  outcome.interrupted_by = g_received_signal;
  g_received_signal = 0;
  return outcome;
}

}  // namespace ms::infer

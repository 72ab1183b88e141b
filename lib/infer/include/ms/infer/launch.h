// `ms train --nproc N` and `ms eval --nproc N`: a local launcher with torchrun's contract, for one
// machine. Torch-free: it starts, watches and stops copies of this program; the workers join
// through the trainer.
#pragma once

#include <string>
#include <vector>

#include "ms/core/export.h"

namespace ms::infer {

/// Runs `nproc` copies of this program with `args` (argv without --nproc) as the workers of one
/// data-parallel run: each gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR
/// (127.0.0.1) and MASTER_PORT (a free port), as torchrun sets them, and OMP_NUM_THREADS (the
/// cores this process may use, shared out) unless the user set threads. SIGINT / SIGTERM / SIGHUP
/// are passed on. The workers' stderr comes through WorkerStderr (an error several report alike
/// prints once). When a worker fails, the others get 10 s to fail on their own, then SIGTERM (and
/// SIGCONT), then SIGKILL 30 s later. Only the workers are waited for (the caller's other
/// children are left to it), and the signal handlers in place before the call are back when it
/// returns. One call at a time per process (the signal handler reaches one launch's workers).
struct WorkersOutcome {
  /// 0, else rank 0's own failure code unless it is 5 (a peer failed), else the first failed
  /// worker's that is not 5 (128 + the signal that killed one), else 5.
  int exit_code = 0;
  /// The failure that exit_code is, as the launcher printed it ("worker 1 of 2 was killed by
  /// signal 9 (Killed)"); empty when none failed.
  std::string failure;
  /// The run's --json document: the one the worker whose failure `exit_code` is wrote (each
  /// writes its own to the file MS_DOCUMENT_FILE names in its environment, which this sets), or
  /// rank 0's result when the run succeeded. Empty when that worker wrote none (a signal ended
  /// it, no --json) or its document says another code: the caller then reports `failure`.
  std::string document;
  /// The first SIGINT / SIGTERM / SIGHUP this process received while the workers ran (and passed
  /// on to them), or 0.
  int interrupted_by = 0;
};
/// The variable naming the file where a worker of run_local_workers writes its --json document.
inline constexpr const char* kDocumentFileVariable = "MS_DOCUMENT_FILE";
MS_API WorkersOutcome run_local_workers(int nproc, const std::vector<std::string>& args);

/// Makes sure this process may open the files a data-parallel run of `world_size` workers needs
/// (rank 0: a connection per rank to its store and to Gloo), raising the soft limit towards the
/// hard one; ms::Error(kUsage) naming `ulimit -n` when it cannot. Running out would abort rank 0
/// inside LibTorch's store thread.
MS_API void ensure_open_files_for(int world_size);

/// In a worker `ms train --nproc` started (MS_LAUNCHER_PID set), or one torchrun's agent started
/// (TORCHELASTIC_RUN_ID set): ends this process when the launcher or agent dies, even by
/// SIGKILL, so that no orphan keeps training or holds the work dir.
MS_API void die_with_launcher();

/// argv without `--nproc N` / `--nproc=N` (the workers' command line).
MS_API std::vector<std::string> without_option(const std::vector<std::string>& argv,
                                               const std::string& option);

}  // namespace ms::infer

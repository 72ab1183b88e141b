#!/usr/bin/env bash
# GPU check: builds ms against the machine's own LibTorch (pip torch), prints `ms env`, checks how
# --device is honoured, compares `ms infer --device gpu:0` with the CPU on all-MiniLM-L6-v2, runs
# the GPU benchmarks (bench/device/infer_gpu.sh: batch inference against transformers and
# sentence-transformers; images_gpu.sh: ResNet-18 against a torchvision DataLoader;
# train_gpu.sh: training against the CPU and against Python),
# then the end-to-end tests on gpu:0.
#
#   bash bench/device/prepare_carry.sh      # here: build-carry/ (MiniLM in fp16, Gloo's headers)
#   MS_MINILM_DIR=$PWD/build-carry/minilm-fp16 bash scripts/gpu-check.sh   # there; carry
#                                           # build-carry/minilm-fp16 and build-carry/gloo
#
# The GPU machine has no network and takes at most 64 MiB of carried files, so the MiniLM folder
# usually travels as a float16 copy (scripts/make_half_model.py, 45 MiB); ms widens it to float32
# on load, and the CPU and GPU runs below use the same weights either way.
#
# A lease is short: each part after the build runs only if MS_GPU_BUDGET_S (default 560) seconds
# from the start leave it its usual time, else it says "skipped (time)". MS_GPU_ONLY="infer
# images cpu-vs-gpu train ddp tests" runs only the named parts (a second call after a first one ran out of time, with
# MS_GPU_SKIP_BUILD=1 on the same machine).
#
# Env: MS_MINILM_DIR (a MiniLM folder; without it the MiniLM parts are skipped), MS_GPU_BUILD
# (build folder, default build-gpu), MS_GPU_SKIP_BUILD=1, MS_GPU_SENTENCES (CPU comparison,
# default 2000), MS_GPU_BENCH_SENTENCES (default 100000), MS_CMAKE_ARGS (extra cmake arguments).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${MS_GPU_BUILD:-$root/build-gpu}"
n="${MS_GPU_SENTENCES:-2000}"
py="${PYTHON:-python3}"
step() { echo; echo "== $* ($(date -u +%H:%M:%S), ${SECONDS}s)"; }
budget="${MS_GPU_BUDGET_S:-560}"
# part NAME SECONDS: whether to run part NAME, which usually takes SECONDS.
part() {
  if [ -n "${MS_GPU_ONLY:-}" ] && [[ " $MS_GPU_ONLY " != *" $1 "* ]]; then return 1; fi
  if [ $((SECONDS + $2)) -gt "$budget" ]; then
    echo; echo "== $1: skipped (time: ${SECONDS}s of ${budget}s used, it needs ~$2s)"; return 1
  fi
}

step "toolchain"
"$py" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'  || echo "no python torch"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

if [ "${MS_GPU_SKIP_BUILD:-0}" != 1 ]; then
  step "configure + build"
  prefix="$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  # Optional components whose libraries this machine lacks are switched off (the device machine
  # has no cpp-httplib, and may lack ONNX, libzip, libjpeg-turbo or libpng); each is reported.
  optional=()
  off() { optional+=("-D$1=OFF"); echo "  no $2 here: -D$1=OFF"; }
  if ! pkg-config --exists cpp-httplib 2>/dev/null; then
    off MS_WITH_HUB_SERVER cpp-httplib
  elif ! pkg-config --exists libbrotlidec 2>/dev/null; then
    off MS_WITH_HUB_SERVER "brotli's decoder (libbrotlidec)"
  fi
  ls /usr/lib/*/cmake/ONNX/ONNXConfig.cmake /usr/local/lib*/cmake/ONNX/ONNXConfig.cmake \
    >/dev/null 2>&1 || off MS_WITH_ONNX "the ONNX library"
  pkg-config --exists libzip 2>/dev/null || off MS_WITH_ZIP libzip
  pkg-config --exists libturbojpeg 2>/dev/null || off MS_WITH_JPEG libjpeg-turbo
  pkg-config --exists libpng 2>/dev/null || off MS_WITH_PNG libpng
  # c10d's ProcessGroupGloo.hpp needs Gloo's headers, which PyPI's torch wheels do not ship:
  # bench/device/prepare_carry.sh carries Debian's (header-only use; nothing is linked).
  if [ -f "$root/build-carry/gloo/include/gloo/config.h" ]; then
    optional+=("-DMS_GLOO_INCLUDE_DIR=$root/build-carry/gloo/include")
  fi
  # ProcessGroupNCCL.hpp includes nccl.h, which comes with the wheel torch depends on
  # (nvidia-nccl-cu*), not with torch's own headers.
  nccl_include="$("$py" -c 'import glob, os, site
found = [h for d in site.getsitepackages() for h in glob.glob(d + "/nvidia/nccl*/include/nccl.h")]
print(os.path.dirname(found[0]) if found else "")' 2>/dev/null || true)"
  [ -n "$nccl_include" ] && optional+=("-DMS_NCCL_INCLUDE_DIR=$nccl_include")
  # Tests are not built here: the end-to-end scripts below drive the ms binary directly. The
  # test-only switches are in (-DMS_TEST_HOOKS=ON: environment variables read once, or only where
  # a test forces a path), so that the tests that need them run on the GPU too.
  # shellcheck disable=SC2086
  if ! cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
      -DMS_BUILD_TESTS=OFF -DMS_TEST_HOOKS=ON "${optional[@]}" ${MS_CMAKE_ARGS:-} > "$build.configure.log" 2>&1; then
    tail -40 "$build.configure.log"; echo "configure FAILED"; exit 1
  fi
  grep -E "Torch|CUDA|WARNING|not found" "$build.configure.log" | head -20 || true
  if ! cmake --build "$build" -j "$(nproc)" --target ms_cli ms_torch > "$build.build.log" 2>&1; then
    grep -E "error|Error" "$build.build.log" | head -30; tail -5 "$build.build.log"; echo "build FAILED"
    exit 1
  fi
  tail -1 "$build.build.log"
  echo "CUDA streams per infer worker: $(grep -q '^MS_TORCH_CUDA_STREAMS:INTERNAL=1' "$build/CMakeCache.txt" && echo on || echo off)"
  echo "NCCL for data-parallel training on GPUs: $(grep -q '^MS_TORCH_NCCL:INTERNAL=1' "$build/CMakeCache.txt" && echo "on (nccl.h: ${nccl_include:-on the compiler path})" || echo off)"
fi
ms="$build/bin/ms"

step "ms env"
"$ms" env

step "--device is honoured exactly"
tiny="$root/tests/data/infer/tiny/cls"
for dev in gpu gpu:0 cuda:0 auto gpu:7; do
  out=$("$ms" infer -m "$tiny" --input "a short test" --device "$dev" 2>&1) && rc=0 || rc=$?
  echo "--device $dev -> exit $rc: $(echo "$out" | head -1 | cut -c1-200)"
done

e2e_on_gpu() {  # test script [test names] -> summary, with the first failures in full
  local log left=$((budget - SECONDS))
  if [ "$left" -lt 20 ]; then echo "  skipped (time)"; return; fi
  log="$(mktemp)"
  MS_BIN="$ms" MS_SOURCE_DIR="$root" MS_INFER_DEVICE=gpu:0 MS_NO_PROGRESS=1 MS_TEST_HOOKS=1 \
    timeout "$((left < 300 ? left : 300))" "$py" "$@" -v > "$log" 2>&1 ||
    { grep -A12 -E "^(FAIL|ERROR):" "$log" | head -60; }
  grep -E "\.\.\. (ok|FAIL|ERROR|skipped)" "$log" | sed 's/^/  /'
  tail -3 "$log"
  rm -f "$log"
}
model="${MS_MINILM_DIR:-}"
if [ -z "$model" ] || [ ! -f "$model/model.safetensors" ]; then
  echo "MS_MINILM_DIR is not set to a MiniLM folder (scripts/fetch_minilm.sh): skipping the MiniLM parts"
  model=""
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ -n "$model" ] && part infer 185; then
  step "batch inference benchmark (bench/device/infer_gpu.sh, ${MS_GPU_BENCH_SENTENCES:-100000} sentences)"
  MS_BIN="$ms" MINILM="$model" N="${MS_GPU_BENCH_SENTENCES:-100000}" WORK="$work/infer" \
    timeout "$((budget - SECONDS))" bash bench/device/infer_gpu.sh || echo "infer_gpu.sh FAILED"
fi

if part images 90; then
  step "ResNet-18 over an image folder (bench/device/images_gpu.sh)"
  MS_BIN="$ms" WORK="$work/images" timeout "$((budget - SECONDS))" bash bench/device/images_gpu.sh ||
    echo "images_gpu.sh FAILED"
fi

if [ -n "$model" ] && part cpu-vs-gpu 40; then
  step "MiniLM: $n sentences, CPU vs gpu:0 (batch 64): fp32 embeddings must agree (cosine >= 0.99999)"
  "$py" bench/make_sentences.py "$n" "$work/in.txt"
  run() {  # device threads -> seconds
    local s e
    s=$(date +%s.%N)
    "$ms" infer -m "$model" --input-file "$work/in.txt" -b 64 --device "$1" --threads "$2" \
      -o "$work/$1.jsonl" >&2 || { echo "ms infer --device $1 FAILED" >&2; return 1; }
    e=$(date +%s.%N)
    "$py" -c "print(f'{$e - $s:.2f}')"
  }
  if cpu_s=$(run cpu "$(nproc)") && gpu_s=$(run gpu:0 "$(nproc)"); then
    "$py" - "$work/cpu.jsonl" "$work/gpu:0.jsonl" "$n" "$cpu_s" "$gpu_s" <<'PY' || echo "cpu vs gpu FAILED"
import json, math, sys
cpu = [json.loads(l) for l in open(sys.argv[1])]
gpu = [json.loads(l) for l in open(sys.argv[2])]
n, cpu_s, gpu_s = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
assert [c["id"] for c in cpu] == [g["id"] for g in gpu] == list(range(n)), "ids differ"
worst, maxdiff = 1.0, 0.0
for c, g in zip(cpu, gpu):
    a, b = c["text_embedding"], g["text_embedding"]
    cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    worst = min(worst, cos)
    maxdiff = max(maxdiff, max(abs(x - y) for x, y in zip(a, b)))
print(f"cpu vs gpu:0 over {n} embeddings: min cosine {worst:.7f}, max |diff| {maxdiff:.2e}")
print(f"wall, start-up and model load included: cpu {cpu_s} s, gpu:0 {gpu_s} s")
sys.exit(0 if worst >= 0.99999 else 1)
PY
  fi
fi

if [ -n "$model" ] && part train 120; then
  step "training check (bench/device/train_gpu.sh)"
  MS_BIN="$ms" MINILM="$model" WORK="$work/train" timeout "$((budget - SECONDS))" bash bench/device/train_gpu.sh ||
    echo "train_gpu.sh FAILED"
fi

if part ddp 30; then
  step "data-parallel training over NCCL: one worker per GPU (2 workers vs 1 process on 2 GPUs; refused on 1), and a group of one over NCCL vs one process"
  e2e_on_gpu tests/e2e/test_train_distributed.py DistributedTrainTest.test_ranks_on_gpus_exchange_over_nccl \
    DistributedTrainTest.test_a_group_of_one_equals_one_process
fi

if part tests 150; then
  # Newest first: the fp16 TorchScript exports and --dtype have not run on a GPU before.
  step "TorchScript exports (fp32 and fp16) run by ms infer on gpu:0 (tests/e2e/test_export_torchscript.py)"
  e2e_on_gpu tests/e2e/test_export_torchscript.py

  step "weight formats, sentence-transformers modules, --dtype on gpu:0 (tests/e2e/test_infer_formats.py)"
  e2e_on_gpu tests/e2e/test_infer_formats.py

  step "task heads on gpu:0 vs transformers references (tests/data/infer/tiny)"
  e2e_on_gpu tests/e2e/test_infer_heads.py

  step "vision (small CNN, TorchScript, ResNet where torchvision exists) on gpu:0"
  e2e_on_gpu tests/e2e/test_infer_image.py

  step "ms serve on gpu:0: answers equal ms infer's, batching, errors (tests/e2e/test_serve.py)"
  if "$ms" env --json 2>/dev/null |
    "$py" -c 'import json, sys; sys.exit(not json.load(sys.stdin)["components"]["serve"])'; then
    e2e_on_gpu tests/e2e/test_serve.py
  else
    echo "  this build has no ms serve (no cpp-httplib on this machine): skipped"
  fi
fi

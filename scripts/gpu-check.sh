#!/usr/bin/env bash
# GPU check for `ms infer`: builds ms against the machine's own LibTorch (pip torch), prints
# `ms env`, runs the task-head fidelity tests on gpu:0, and compares `ms infer --device gpu:0`
# with the CPU on all-MiniLM-L6-v2 (outputs and timings).
#
#   MS_MINILM_DIR=/path/to/all-MiniLM-L6-v2 bash scripts/gpu-check.sh
#
# Env: MS_MINILM_DIR (the folder scripts/fetch_minilm.sh lays out; required: the GPU machine has
# no network), MS_GPU_BUILD (build folder, default build-gpu), MS_GPU_SKIP_BUILD=1,
# MS_GPU_SENTENCES (default 2000), MS_CMAKE_ARGS (extra cmake arguments).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${MS_GPU_BUILD:-$root/build-gpu}"
n="${MS_GPU_SENTENCES:-2000}"
py="${PYTHON:-python3}"
step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

step "toolchain"
"$py" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

if [ "${MS_GPU_SKIP_BUILD:-0}" != 1 ]; then
  step "configure + build"
  prefix="$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  # Optional components whose libraries this machine may lack are switched off here.
  # shellcheck disable=SC2086
  cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    ${MS_CMAKE_ARGS:-} 2>&1 | grep -E "Torch|CUDA|error|Error|warning" || true
  cmake --build "$build" -j "$(nproc)" 2>&1 | tail -3
fi
ms="$build/bin/ms"

step "ms env"
"$ms" env

step "task heads on gpu:0 vs transformers references (tests/data/infer/tiny)"
MS_BIN="$ms" MS_SOURCE_DIR="$root" MS_INFER_DEVICE=gpu:0 MS_NO_PROGRESS=1 \
  timeout 300 "$py" tests/e2e/test_infer_heads.py 2>&1 | tail -4 || echo "task heads on gpu:0: FAILED"

model="${MS_MINILM_DIR:-}"
if [ -z "$model" ] || [ ! -f "$model/model.safetensors" ]; then
  echo "MS_MINILM_DIR is not set to a MiniLM folder (scripts/fetch_minilm.sh): skipping the MiniLM comparison"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" bench/make_sentences.py "$n" "$work/in.txt"

step "MiniLM: $n sentences, CPU vs gpu:0 (batch 64)"
run() {  # device threads -> seconds
  local s e
  s=$(date +%s.%N)
  "$ms" infer -m "$model" --input-file "$work/in.txt" -b 64 --device "$1" --threads "$2" -o "$work/$1.jsonl"
  e=$(date +%s.%N)
  "$py" -c "print(f'{$e - $s:.2f}')"
}
cpu_s=$(run cpu "$(nproc)")
gpu_s=$(run gpu:0 "$(nproc)")
gpu2_s=$(run gpu:0 "$(nproc)")
echo "cpu ($(nproc) threads): ${cpu_s} s; gpu:0: ${gpu_s} s (first run), ${gpu2_s} s (second run)"
"$py" - "$work/cpu.jsonl" "$work/gpu:0.jsonl" "$n" "$cpu_s" "$gpu2_s" <<'PY'
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
print(f"sentences/s: cpu {n / cpu_s:.1f}, gpu:0 {n / gpu_s:.1f} (wall, incl. start-up and model load)")
sys.exit(0 if worst >= 0.9999 else 1)
PY

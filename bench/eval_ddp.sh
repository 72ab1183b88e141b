#!/usr/bin/env bash
# Data-parallel evaluation on this machine: `ms eval` of the Fashion-MNIST small CNN over the
# 10,000 test images,
#   1 process x 2 threads           (one process using both cores)
#   1 process x 1 thread            (what rank 0 did alone under 2 workers before the evaluation
#                                    was shared out: the other rank waited)
#   --nproc 2, 1 thread each        (each worker a contiguous half of the batches)
# Wall time of the whole command (start-up, PNG decoding). The figures must be equal in every row
# (the script checks). An EvaluationHook under `ms train --nproc 2` shares its batches out alike.
#
#   bash bench/eval_ddp.sh        # MS_BIN (build/bin/ms), BATCH (64), OUT
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
batch="${BATCH:-64}"
out="${OUT:-$root/bench/out/eval_ddp}"
data="$root/bench/out/fmnist/data/fmnist"
source "$root/bench/fmnist_pngs.sh"
fmnist_pngs "$data"
cfg="$root/configs/image-classification-small-cnn"
rm -rf "$out"
mkdir -p "$out"
# A model to evaluate: one short epoch from scratch (its accuracy does not matter here).
"$ms" train --model "$cfg" --dataset "imagefolder:$data" --split "train[:10%]" \
  --work-dir "$out/model" --max-epochs 1 --seed 7 --threads 2 \
  --set 'train.hooks=[{"type":"CheckpointHook","interval":1}]' --json >"$out/model.json" 2>"$out/model.log"

timed() {  # NAME COMMAND...: wall seconds to $out/NAME.s, stdout to $out/NAME.json
  local name="$1" start
  shift
  start=$(date +%s.%N)
  "$@" >"$out/$name.json" 2>"$out/$name.log"
  echo "$(date +%s.%N) - $start" | bc >"$out/$name.s"
}
eval_args=(eval --model "$out/model/output" --dataset "imagefolder:$data" --split test
  --batch-size "$batch" --json)
timed one_t2 env OMP_NUM_THREADS=2 "$ms" "${eval_args[@]}" --threads 2
timed one_t1 env OMP_NUM_THREADS=1 "$ms" "${eval_args[@]}" --threads 1
timed nproc2 "$ms" "${eval_args[@]}" --nproc 2

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def figure(name):
    with open(os.path.join(out, name + ".json")) as f:
        return f.read().strip()
def secs(name):
    return float(open(os.path.join(out, name + ".s")).read())
base = figure("one_t2")
print(f"{'ms eval, 10,000 test images':<40} {'seconds':>8} {'images/s':>9}  figure")
for name, label in (("one_t2", "1 process x 2 threads"),
                    ("one_t1", "1 process x 1 thread (rank 0 alone)"),
                    ("nproc2", "--nproc 2, 1 thread each")):
    s = secs(name)
    same = "same" if figure(name) == base else "DIFFERS: " + figure(name)
    print(f"{label:<40} {s:>8.2f} {10000 / s:>9.0f}  {same}")
    if figure(name) != base:
        sys.exit(f"{name}: the figure differs from one process's")
print(f"--nproc 2 over rank 0 alone: {secs('one_t1') / secs('nproc2'):.2f}x; "
      f"over 1 process x 2 threads: {secs('one_t2') / secs('nproc2'):.2f}x")
PY

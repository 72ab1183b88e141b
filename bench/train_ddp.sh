#!/usr/bin/env bash
# Data-parallel scaling of `ms train` on this machine: the Fashion-MNIST small CNN
# (configs/image-classification-small-cnn) for one epoch over a slice of the training images,
#   1 rank  x 2 threads, batch 64     (one process using both cores)
#   1 rank  x 1 thread,  batch 32     (one rank's share of the work, on half the images)
#   --nproc 2 (1 thread each), batch 32 per rank = 64 in all
#   the real torchrun, 2 ranks, the same
# Samples/s are the training split's rows over the run's wall time (start-up, image decoding and
# the end-of-epoch checkpoint included, no evaluation). The all-reduce (and contention) share of a
# 2-rank step is 1 - t(1 rank x 1 thread, half the images) / t(2 ranks): what the second rank's
# company costs a rank that does the same work.
#
#   bash bench/train_ddp.sh        # MS_BIN (build/bin/ms), SLICE (percent of train, 32), OUT
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
slice="${SLICE:-32}"
out="${OUT:-$root/bench/out/ddp}"
data="$root/bench/out/fmnist/data/fmnist"
source "$root/bench/fmnist_pngs.sh"
fmnist_pngs "$data"
cfg="$root/configs/image-classification-small-cnn"
half=$((slice / 2))
# No evaluation: the checkpoint, the text log and the timer are the hooks that remain.
hooks='train.hooks=[{"type":"CheckpointHook","interval":1},{"type":"TextLoggerHook","interval":50},{"type":"IterTimerHook"}]'
rm -rf "$out"
mkdir -p "$out"

run_one_rank() {  # NAME SPLIT BATCH THREADS; the run's wall seconds go to $out/NAME.s
  local name="$1" split="$2" batch="$3" threads="$4" start
  start=$(date +%s.%N)
  OMP_NUM_THREADS="$threads" "$ms" train --model "$cfg" --dataset "imagefolder:$data" \
    --split "train[:$split%]" --work-dir "$out/$name" --max-epochs 1 --seed 7 \
    --set "train.dataloader.batch_size_per_gpu=$batch" --set "$hooks" --threads "$threads" \
    --json >"$out/$name.json" 2>"$out/$name.log"
  echo "$(date +%s.%N) - $start" | bc >"$out/$name.s"
}

run_one_rank one_b64 "$slice" 64 2
run_one_rank one_b32_half "$half" 32 1
# --nproc gives each worker affinity cores / N threads itself.
start=$(date +%s.%N)
"$ms" train --model "$cfg" --dataset "imagefolder:$data" --split "train[:$slice%]" \
  --work-dir "$out/nproc2" --max-epochs 1 --seed 7 --set "train.dataloader.batch_size_per_gpu=32" \
  --set "$hooks" --nproc 2 --json >"$out/nproc2.json" 2>"$out/nproc2.log"
echo "$(date +%s.%N) - $start" | bc >"$out/nproc2.s"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start=$(date +%s.%N)
OMP_NUM_THREADS=1 /usr/bin/python3 "$root/tests/e2e/tools/torchrun.py" --nproc_per_node 2 \
  --master_addr 127.0.0.1 --master_port "$port" --no_python "$ms" train --model "$cfg" \
  --dataset "imagefolder:$data" --split "train[:$slice%]" --work-dir "$out/torchrun2" \
  --max-epochs 1 --seed 7 --set "train.dataloader.batch_size_per_gpu=32" --set "$hooks" \
  --json >"$out/torchrun2.json" 2>"$out/torchrun2.log"
echo "$(date +%s.%N) - $start" | bc >"$out/torchrun2.s"

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def rows(name):
    with open(os.path.join(out, name + ".json")) as f:
        lines = [l for l in f.read().splitlines() if l.strip().startswith("{")]
    return json.loads(lines[0])["train_rows"]
def secs(name):
    return float(open(os.path.join(out, name + ".s")).read())
print(f"{'run':<34} {'rows':>6} {'seconds':>8} {'samples/s':>9}")
for name, label in (("one_b64", "1 rank x 2 threads, batch 64"),
                    ("one_b32_half", "1 rank x 1 thread, batch 32, half"),
                    ("nproc2", "--nproc 2, batch 32 each"),
                    ("torchrun2", "torchrun 2 ranks, batch 32 each")):
    r, s = rows(name), secs(name)
    print(f"{label:<34} {r:>6} {s:>8.1f} {r / s:>9.1f}")
for name in ("nproc2", "torchrun2"):
    print(f"{name}: speed-up over 1 rank x 2 threads {secs('one_b64') / secs(name):.2f}x; "
          f"all-reduce and contention share {1 - secs('one_b32_half') / secs(name):.0%}")
PY

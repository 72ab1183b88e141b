#!/usr/bin/env bash
# The trainer's overhead: one epoch of the Fashion-MNIST small CNN (configs/image-classification-
# small-cnn) under `ms train` against ms_bench_bare_train_loop (bench/cpp/bare_train_loop.cpp: the
# same model builder, batch source and optimizer in a plain loop with no hooks), in alternating
# pairs so that a drift in the machine's speed hits both sides alike.
#
#   bash bench/train_overhead.sh     # MS_BIN (build/bin/ms), BARE (build/bin/ms_bench_bare_train_loop),
#                                    # THREADS (2), PAIRS (2), OUT (bench/out/train_overhead)
# Data: the 70,000 PNGs bench/train_fmnist.sh makes (made here too if missing). ms's loop time is
# the sum of the IterTimerHook's iter_time over the logged iterations (a whole iteration: data
# loading, step and every hook; the end-of-epoch evaluation and checkpoint are not part of it, nor
# of the bare loop). Run it on a quiet machine: with 2 intra-op threads on 2 cores, any other
# busy process stalls LibTorch's parallel regions and swamps a few-percent difference.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
bare="${BARE:-$root/build/bin/ms_bench_bare_train_loop}"
threads="${THREADS:-2}"
pairs="${PAIRS:-2}"
out="${OUT:-$root/bench/out/train_overhead}"
data="${FMNIST:-$root/bench/out/fmnist/data/fmnist}"
source "$root/bench/fmnist_pngs.sh"
fmnist_pngs "$data"
cfg="$root/configs/image-classification-small-cnn"
export OMP_NUM_THREADS="$threads"
mkdir -p "$out"
rm -f "$out"/bare*.json "$out"/load.txt
for i in $(seq 1 "$pairs"); do
  echo "bare$i $(cut -d" " -f1-3 /proc/loadavg)" >>"$out/load.txt"
  "$bare" "$cfg" "imagefolder:$data" --threads "$threads" --epochs 1 >"$out/bare$i.json"
  echo "ms$i $(cut -d" " -f1-3 /proc/loadavg)" >>"$out/load.txt"
  rm -rf "$out/ms$i"
  "$ms" train --model "$cfg" --dataset "imagefolder:$data" --work-dir "$out/ms$i" --max-epochs 1 \
    --threads "$threads" --json >"$out/ms$i.json" 2>"$out/ms$i.log"
done
python3 - "$out" "$pairs" <<'PY'
import glob, json, sys
out, pairs = sys.argv[1], int(sys.argv[2])
print("| pair | bare loop samples/s | ms train loop samples/s | ms train overhead |")
print("| --- | --- | --- | --- |")
total_bare = total_ms = 0.0
for i in range(1, pairs + 1):
    bare = json.loads(open(f"{out}/bare{i}.json").read())
    ms = json.load(open(f"{out}/ms{i}.json"))
    log = sorted(glob.glob(f"{out}/ms{i}/*.log.json"))[-1]
    lines = [json.loads(l) for l in open(log) if l.strip()]
    # Each train line's iter_time is the mean over the iterations since the previous line.
    loop_s, prev = 0.0, 0
    for l in lines:
        if l.get("mode") == "train" and "iter_time" in l:
            loop_s += l["iter_time"] * (l["iter"] - prev)
            prev = l["iter"]
    # TextLoggerHook's ignore_last (ModelScope's default) leaves the epoch's tail unlogged: the
    # bare loop's time is scaled to the same share of the epoch's (full) batches.
    share = prev / ms["iters"]
    ms_sps = ms["train_rows"] * share / loop_s
    total_bare += bare["seconds"] * share
    total_ms += loop_s
    print(f"| {i} | {bare['samples_per_s']:.1f} | {ms_sps:.1f} | "
          f"{100 * (bare['samples_per_s'] / ms_sps - 1):+.1f}% |")
print(f"\nall pairs: ms train's loop took {100 * (total_ms / total_bare - 1):+.1f}% longer than the bare "
      f"loop's time ({total_ms:.1f} s vs {total_bare:.1f} s)")
print("\nload averages (1/5/15 min) before each run: "
      + "; ".join(l.strip() for l in open(f"{out}/load.txt")))
PY
#!/usr/bin/env bash
# Fashion-MNIST small CNN from scratch (configs/image-classification-small-cnn): `ms train` for the
# shipped config's epochs (test accuracy, then `ms eval` on output/), then one epoch timed side by
# side with the idiomatic PyTorch loop of bench/train_fmnist.py (same model, batch 64, Adam lr
# 0.002, same thread count, PIL decode of the same PNGs, no loader workers on either side).
#
#   bash bench/train_fmnist.sh            # MS_BIN (build/bin/ms), THREADS (2), OUT (bench/out/fmnist)
#   FULL=0 bash bench/train_fmnist.sh     # the one-epoch comparison only
# Data: scripts/make_dataset_fixtures.py --per-class 6000 --test-per-class 1000 (all 70,000 images
# of Debian's dataset-fashion-mnist as PNGs). Peak RSS from /usr/bin/time -v.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
threads="${THREADS:-2}"
out="${OUT:-$root/bench/out/fmnist}"
full="${FULL:-1}"
py=/usr/bin/python3  # Debian's: torch 1.13 (what ms links), torchvision, PIL
mkdir -p "$out"
data="$out/data/fmnist"
source "$root/bench/fmnist_pngs.sh"
fmnist_pngs "$data"
cfg="$root/configs/image-classification-small-cnn"
export OMP_NUM_THREADS="$threads"

if [ "$full" = 1 ]; then
  rm -rf "$out/full"
  /usr/bin/time -v -o "$out/full.time" "$ms" train --model "$cfg" --dataset "imagefolder:$data" \
    --work-dir "$out/full" --threads "$threads" --json >"$out/full.json" 2>"$out/full.log"
  "$ms" eval --model "$out/full/output" --dataset "imagefolder:$data" --split test --json \
    >"$out/full_eval.json"
fi

rm -rf "$out/ms1"
# The machine may be shared: the load averages before each side go into the summary.
echo "ms $(cut -d" " -f1-3 /proc/loadavg)" >"$out/load.txt"
/usr/bin/time -v -o "$out/ms1.time" "$ms" train --model "$cfg" --dataset "imagefolder:$data" \
  --work-dir "$out/ms1" --max-epochs 1 --threads "$threads" --json >"$out/ms1.json" 2>"$out/ms1.log"
echo "python $(cut -d" " -f1-3 /proc/loadavg)" >>"$out/load.txt"
/usr/bin/time -v -o "$out/py1.time" "$py" "$root/bench/train_fmnist.py" "$data" --epochs 1 \
  --threads "$threads" >"$out/py1.json"

echo "end $(cut -d" " -f1-3 /proc/loadavg)" >>"$out/load.txt"
python3 "$root/bench/train_summary.py" "$out" fmnist

#!/usr/bin/env bash
# GPU training check (issue 15, point 5): all-MiniLM-L6-v2 + a fresh 2-label head finetuned for
# one epoch (STEPS steps of batch 16, default 300) with configs/text-classification's recipe:
#   1. `ms train --device gpu:0` and `ms train --device cpu` from the same seed: the two loss
#      curves (TextLoggerHook, every 10 iterations) side by side, and their largest difference;
#   2. samples/s of `ms train` on gpu:0 against Python transformers + torch on the same card
#      (bench/train_minilm_spam.py --device cuda: same data, seed, batch, schedule);
#   3. mixed precision (use_fp16: fp16 autocast, dynamic loss scale) on the GPU: samples/s and the
#      loss, against Python's torch.autocast + GradScaler (--amp fp16); refused on a CPU.
# The data is synthetic and deterministic (bench/make_sentences.py; label "spam" when a sentence
# names music or a market, else "ham"), so that nothing has to be carried.
#
#   MS_BIN=build-gpu/bin/ms MINILM=DIR bash bench/device/train_gpu.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ms="${MS_BIN:?set MS_BIN}"
model="${MINILM:?set MINILM to an all-MiniLM-L6-v2 folder}"
steps="${STEPS:-300}"
py="${PYTHON:-python3}"
work="${WORK:-$(mktemp -d)}"
gpu="${GPU_DEVICE:-gpu:0}"  # GPU_DEVICE=cpu: a dry run on a machine without a GPU
mkdir -p "$work/data"
"$py" "$root/bench/make_sentences.py" $((steps * 16 + 500)) "$work/sentences.txt"
"$py" - "$work/sentences.txt" "$work/data" "$steps" <<'PY'
import csv, sys
lines = [l.rstrip("\n") for l in open(sys.argv[1])]
n = int(sys.argv[3]) * 16
def label(t):
    words = set(t.lower().strip(".!?,").split())
    return "spam" if words & {"music", "guitar", "market", "price"} else "ham"
for name, rows in (("train", lines[:n]), ("test", lines[n:])):
    with open(f"{sys.argv[2]}/{name}.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label"])
        w.writerows([t, label(t)] for t in rows)
PY

train() {  # device work_dir
  "$ms" train --model "$model" --config "$root/configs/text-classification" \
    --dataset "csv:$work/data/train.csv" --eval-dataset "csv:$work/data/test.csv" \
    --set preprocessor.max_length=128 --max-epochs 1 --seed 42 --device "$1" \
    --work-dir "$2" --json >"$2.json" 2>"$2.log" || { tail -5 "$2.log"; echo "ms train --device $1 FAILED"; return 1; }
}
echo "ms train on $gpu, then on the CPU ($(nproc) threads): $steps steps of batch 16"
train "$gpu" "$work/gpu"
train cpu "$work/cpu"
MS_GPU="$work/gpu" MS_CPU="$work/cpu" "$py" - <<'PY'
import glob, json, os
def curve(d):
    log = sorted(glob.glob(f"{d}/*.log.json"))[-1]
    rows = [json.loads(l) for l in open(log) if l.strip()]
    train = [r for r in rows if r.get("mode") == "train" and "loss" in r]
    return {r["iter"]: r for r in train}, [r for r in rows if r.get("mode") == "val"]
g, gv = curve(os.environ["MS_GPU"])
c, cv = curve(os.environ["MS_CPU"])
print("iter | loss gpu | loss cpu")
worst = 0.0
for it in sorted(g):
    if it in c:
        worst = max(worst, abs(g[it]["loss"] - c[it]["loss"]))
        if it % 50 == 0 or it == 10:
            print(f"{it} | {g[it]['loss']:.5f} | {c[it]['loss']:.5f}")
print(f"largest loss difference over {len(g)} logged points: {worst:.2e}")
print("evaluation gpu:", gv[-1] if gv else None)
print("evaluation cpu:", cv[-1] if cv else None)
for name, d in (("gpu", os.environ["MS_GPU"]), ("cpu", os.environ["MS_CPU"])):
    s = json.load(open(d + ".json"))
    log = sorted(glob.glob(f"{d}/*.log.json"))[-1]
    rows = [json.loads(l) for l in open(log) if l.strip()]
    t = [r["iter_time"] for r in rows if r.get("mode") == "train" and "iter_time" in r]
    print(f"ms {name}: {s['train_rows'] / (sum(t) / len(t) * s['iters']):.1f} samples/s "
          f"(mean logged iter_time {sum(t) / len(t) * 1000:.1f} ms)")
PY

echo "Python transformers + torch on the same card (bench/train_minilm_spam.py --device cuda)"
"$py" "$root/bench/train_minilm_spam.py" "$model" "$work/data" --epochs 1 --batch 16 --lr 1e-4 \
  --weight-decay 0.01 --max-length 128 --seed 42 --threads "$(nproc)" \
  --device "$([ "$gpu" = cpu ] && echo cpu || echo cuda)" 2>"$work/py.log" | tail -1 ||
  { tail -5 "$work/py.log"; echo "python FAILED"; }

echo "mixed precision (use_fp16: autocast to fp16, dynamic loss scale) on $gpu, then Python's"
train_amp() {
  "$ms" train --model "$model" --config "$root/configs/text-classification" \
    --dataset "csv:$work/data/train.csv" --set preprocessor.max_length=128 --set use_fp16=true \
    --max-epochs 1 --seed 42 --device "$gpu" --work-dir "$work/amp" --json >"$work/amp.json" 2>"$work/amp.log"
}
if train_amp; then
  MS_AMP="$work/amp" "$py" - <<'PY'
import glob, json, os
d = os.environ["MS_AMP"]
s = json.load(open(d + ".json"))
rows = [json.loads(l) for l in open(sorted(glob.glob(f"{d}/*.log.json"))[-1]) if l.strip()]
t = [r["iter_time"] for r in rows if r.get("mode") == "train" and "iter_time" in r]
loss = [r["loss"] for r in rows if r.get("mode") == "train" and "loss" in r]
print(f"ms fp16 AMP: {s['train_rows'] / (sum(t) / len(t) * s['iters']):.1f} samples/s; "
      f"loss {loss[0]:.5f} at the first log, {loss[-1]:.5f} at the last")
PY
  "$py" "$root/bench/train_minilm_spam.py" "$model" "$work/data" --epochs 1 --batch 16 --lr 1e-4 \
    --weight-decay 0.01 --max-length 128 --seed 42 --threads "$(nproc)" --amp fp16 \
    --device cuda 2>"$work/py_amp.log" | tail -1 || { tail -5 "$work/py_amp.log"; echo "python AMP FAILED"; }
else
  # Without CUDA (a dry run) it must be refused, not ignored.
  echo "  exit $?: $(head -2 "$work/amp.log")"
fi

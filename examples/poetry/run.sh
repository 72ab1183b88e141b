#!/usr/bin/env bash
# The seed's text-generation example, offline: a small character-level Chinese GPT-2 learns
# classical poetry (唐诗三百首 and 宋词 from Debian's fortunes-zh), then writes a poem from the
# first line "落木旧山寺".
#
#   examples/poetry/run.sh [WORK_DIR]        (default: ./poetry-work)
#
# Environment: MS (the ms binary, default build/bin/ms), EPOCHS (default 8), SEED (default 42),
# LAYERS / WIDTH / HEADS (default 4 / 256 / 4). About 4 minutes on 2 CPU cores with the defaults.
# Prints the held-out perplexity per epoch next to the unigram baseline, then sampled poems.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ms="${MS:-$root/build/bin/ms}"
work="${1:-poetry-work}"
epochs="${EPOCHS:-8}"
seed="${SEED:-42}"

if [[ ! -f /usr/share/games/fortunes/tang300 ]]; then
  echo "poetry: Debian's fortunes-zh is not installed (sudo apt-get install fortunes-zh)" >&2
  exit 4
fi
python3 "$root/scripts/prepare_poetry.py" "$work" --layers "${LAYERS:-4}" --width "${WIDTH:-256}" \
  --heads "${HEADS:-4}"
rm -rf "$work/run"  # a rerun trains afresh (its logs alone are read below)
"$ms" train --model "$work/model" --dataset "jsonl:$work/data/train.jsonl" \
  --eval-dataset "jsonl:$work/data/validation.jsonl" --work-dir "$work/run" \
  --max-epochs "$epochs" --set "train.lr_scheduler.T_max=$epochs" --seed "$seed"

echo
echo "held-out perplexity by epoch (unigram baseline $(python3 -c \
  'import json,sys; print(round(json.load(open(sys.argv[1]))["unigram_ppl"], 1))' \
  "$work/baseline.json")):"
python3 - "$work/run" <<'PY'
import glob, json, sys
for path in sorted(glob.glob(sys.argv[1] + "/*.log.json")):
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        if row.get("mode") == "eval" and "evaluation/ppl" in row:
            print(f"  epoch {row['epoch']}: {row['evaluation/ppl']:.1f}")
PY
echo
echo "poems from 落木旧山寺 (the best epoch's model, top-k 20 sampling, seeds 1..3):"
for s in 1 2 3; do
  "$ms" infer --model "$work/run/output_best" --input "落木旧山寺" --set max_new_tokens=64 \
    --set top_k=20 --set "seed=$s" --set repetition_penalty=1.1
done

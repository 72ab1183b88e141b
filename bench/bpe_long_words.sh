#!/usr/bin/env bash
# GPT-2 byte-level BPE on pieces without a space (random letters: one pre-tokenised piece each),
# `ms tokenize` vs Hugging Face tokenizers (Rust, in build/venv-torch-newest) on the same
# vocabulary: seconds, best of 3 (ms: the whole process; tokenizers: encode() alone), and whether
# the ids are equal. A piece of n bytes costs GPT-2's rescanning merge loop n^2; ms merges through
# a heap (n log n), as tokenizers does.
#   bash bench/bpe_long_words.sh [SIZES...]      # default: 50000 1000000 bytes
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
vocab="${MS_GPT2_VOCAB_DIR:-$root/build/models/gpt2-vocab}"
[ -f "$vocab/vocab.json" ] || python3 "$root/scripts/fetch_gpt2_vocab.py" "$vocab" >/dev/null
python="$root/build/venv-torch-newest/bin/python"
[ -x "$python" ] || bash "$root/scripts/setup_python_interop.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sizes=("$@")
[ "${#sizes[@]}" -gt 0 ] || sizes=(50000 1000000)
printf '| bytes | ms tokenize (process) | HF tokenizers encode() | ids equal |\n| --- | --- | --- | --- |\n'
for n in "${sizes[@]}"; do
  python3 -c "import random,sys; random.seed(1); print(''.join(random.choice('abcdefghijklmnopqrstuvwxyz') for _ in range($n)))" >"$work/in.txt"
  best=""
  for _ in 1 2 3; do
    start=$(date +%s.%N)
    "$ms" tokenize -m "$vocab" --input-file "$work/in.txt" >"$work/ms.jsonl"
    t=$(echo "$(date +%s.%N) - $start" | bc)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
  done
  "$python" - "$vocab" "$work/in.txt" "$work/ms.jsonl" "$n" "$best" <<'PY'
import json, sys, time
from tokenizers import Tokenizer, models, pre_tokenizers
vocab, text_file, ms_file, n, ms_seconds = sys.argv[1:6]
tok = Tokenizer(models.BPE.from_file(f"{vocab}/vocab.json", f"{vocab}/merges.txt"))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
text = open(text_file).read().rstrip("\n")
best = None
for _ in range(3):
    start = time.perf_counter()
    ids = tok.encode(text).ids
    took = time.perf_counter() - start
    best = took if best is None else min(best, took)
ms = json.loads(open(ms_file).readline())["input_ids"]
print(f"| {int(n):,} | {float(ms_seconds):.2f} s | {best:.2f} s | {ids == ms} |")
PY
done

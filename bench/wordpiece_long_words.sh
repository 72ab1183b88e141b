#!/usr/bin/env bash
# WordPiece on words that match only letter by letter (99 x's: the longest a word may be before
# BERT's tokenizers make it [UNK]), against ordinary short words, 1 MiB of each:
# `ms tokenize` vs Hugging Face tokenizers (Rust, in build/venv-torch-newest) with
# all-MiniLM-L6-v2's tokenizer.json, both truncating to 512 tokens. Seconds, best of 3 (ms: the
# whole process; tokenizers: encode() alone), and whether the ids are equal. Each word is tried
# from its longest possible piece down; ms starts at the vocabulary's longest token (18 letters).
#   bash bench/wordpiece_long_words.sh [MS_BIN...]      # several binaries: before/after
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${MS_MINILM_DIR:-$(bash "$root/scripts/fetch_minilm.sh")}"
python="$root/build/venv-torch-newest/bin/python"
[ -x "$python" ] || bash "$root/scripts/setup_python_interop.sh"
bins=("$@")
[ "${#bins[@]}" -gt 0 ] || bins=("${MS_BIN:-$root/build/bin/ms}")
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -c "print(('x' * 99 + ' ') * 10480)" >"$work/long.txt"
python3 -c "print('x ' * 524288)" >"$work/short.txt"
printf '| input (1 MiB) | tokenizer | seconds (best of 3) | ids equal to tokenizers |\n| --- | --- | --- | --- |\n'
for input in long short; do
  "$python" - "$model" "$work/$input.txt" "$work/hf.json" <<'PY'
import json, sys, time
from tokenizers import Tokenizer
model, text_file, out = sys.argv[1:4]
tok = Tokenizer.from_file(f"{model}/tokenizer.json")
tok.enable_truncation(512)
text = open(text_file).read().rstrip("\n")
best = None
for _ in range(3):
    start = time.perf_counter()
    ids = tok.encode(text).ids
    took = time.perf_counter() - start
    best = took if best is None else min(best, took)
json.dump({"ids": ids, "seconds": best}, open(out, "w"))
PY
  printf '| %s | HF tokenizers encode() | %.2f |  |\n' "$input" \
    "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['seconds'])" "$work/hf.json")"
  for ms in "${bins[@]}"; do
    best=""
    for _ in 1 2 3; do
      start=$(date +%s.%N)
      "$ms" tokenize -m "$model" --max-length 512 --input-file "$work/$input.txt" >"$work/ms.jsonl"
      t=$(echo "$(date +%s.%N) - $start" | bc)
      if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
    done
    equal=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['input_ids'] == json.load(open(sys.argv[2]))['ids'])" "$work/ms.jsonl" "$work/hf.json")
    printf '| %s | %s (process) | %.2f | %s |\n' "$input" "$ms" "$best" "$equal"
  done
done

#!/usr/bin/env bash
# Memory of two large-input paths, this ms against another build (e.g. an older commit's):
#  1. `ms tokenize` of one long line (BERT WordPiece, MiniLM's vocabulary);
#  2. `ms hub serve` answering parallel file listings of a repo of many small files.
# Usage: bench/memory.sh NEW_MS [OLD_MS]   (MS_MINILM_DIR: a MiniLM folder; default build/models)
# Needs /usr/bin/time (Debian: time) and curl. Everything is on 127.0.0.1, in a temp folder.
set -euo pipefail
new=${1:?usage: bench/memory.sh NEW_MS [OLD_MS]}
old=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
minilm=${MS_MINILM_DIR:-$here/build/models/all-MiniLM-L6-v2}
line_mb=${LINE_MB:-10}
files=${REPO_FILES:-20000}
listings=${LISTINGS:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -c "import sys; sys.stdout.write('word ' * ($line_mb * 1024 * 1024 // 5) + '\n')" > "$work/line.txt"
python3 - "$work/repo" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 200}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "w") as f:
        f.write(f"x{i}")
PY

for ms in $new $old; do
  echo "== $ms"
  /usr/bin/time -f "tokenize, one ${line_mb} MB line: %M KB max RSS, %e s" \
    "$ms" tokenize -m "$minilm" --input-file "$work/line.txt" > /dev/null
  root="$work/hub-$(basename "$(dirname "$(dirname "$ms")")")-$$"
  token=$(HOME="$work" "$ms" hub token create alice --root "$root")
  HOME="$work" "$ms" hub serve --root "$root" --port 0 --json > "$work/ep.json" 2> "$work/hub.err" &
  pid=$!
  for _ in $(seq 100); do [ -s "$work/ep.json" ] && break; sleep 0.1; done
  endpoint=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['endpoint'])" "$work/ep.json")
  MODELSCOPE_ENDPOINT=$endpoint MODELSCOPE_API_TOKEN=$token MODELSCOPE_CACHE="$work/cache" HOME="$work" \
    "$ms" upload alice/many "$work/repo" --create > /dev/null
  curls=()
  for _ in $(seq "$listings"); do
    curl -s -o /dev/null "$endpoint/api/v1/models/alice/many/repo/files?Recursive=true" &
    curls+=($!)
  done
  wait "${curls[@]}"
  echo "hub serve after $listings parallel listings of $files files: $(grep VmRSS /proc/$pid/status | tr -s ' '), $(grep VmHWM /proc/$pid/status | tr -s ' ')"
  kill "$pid"
  wait "$pid" 2> /dev/null || true
  rm -f "$work/ep.json"
done

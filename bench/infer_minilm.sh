#!/usr/bin/env bash
# MiniLM sentence embeddings, `ms infer` vs sentence-transformers, same machine, same threads.
#
#   bash bench/infer_minilm.sh [N_SENTENCES] [THREADS...]
#
# Env: MS_BIN (default build/bin/ms), ST_PYTHON (a python with sentence-transformers; default
# ~/.cache/ms-infer/venv/bin/python), MS_MINILM_DIR (default: scripts/fetch_minilm.sh).
# Prints one line per run and a summary table; wall times include process start and model load.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-10000}"
shift || true
if [ $# -gt 0 ]; then threads=("$@"); else threads=(1 2); fi
ms_bin="${MS_BIN:-$root/build/bin/ms}"
py="${ST_PYTHON:-$HOME/.cache/ms-infer/venv/bin/python}"
model="${MS_MINILM_DIR:-$(bash "$root/scripts/fetch_minilm.sh")}"
out="$root/bench/out"
mkdir -p "$out"
input="$out/sentences-$n.txt"
[ -f "$input" ] || python3 "$root/bench/make_sentences.py" "$n" "$input"

ms_torch="$("$ms_bin" env --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["libtorch"].get("version"))')"
st_torch="$("$py" -c 'import torch; print(torch.__version__)')"
echo "input: $n sentences ($input); ms LibTorch $ms_torch; sentence-transformers on torch $st_torch"
echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-8s %-6s %-8s %10s %12s %10s\n' side batch threads wall_s sent_per_s encode_s
for t in "${threads[@]}"; do
  for b in 32 64; do
    s=$(date +%s.%N)
    OMP_NUM_THREADS=$t "$ms_bin" infer -m "$model" --input-file "$input" -b "$b" --threads "$t" -o "$out/ms.jsonl"
    e=$(date +%s.%N)
    ms_wall=$(python3 -c "print(f'{$e-$s:.2f}')")
    printf '%-8s %-6s %-8s %10s %12s %10s\n' ms "$b" "$t" "$ms_wall" "$(python3 -c "print(f'{$n/($e-$s):.1f}')")" -
    s=$(date +%s.%N)
    res=$(OMP_NUM_THREADS=$t "$py" "$root/bench/st_embed.py" "$model" "$input" "$b" "$t" 2>/dev/null | tail -1)
    e=$(date +%s.%N)
    enc=$(printf '%s' "$res" | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["encode_s"])')
    printf '%-8s %-6s %-8s %10s %12s %10s\n' st "$b" "$t" "$(python3 -c "print(f'{$e-$s:.2f}')")" \
      "$(python3 -c "print(f'{$n/($e-$s):.1f}')")" "$enc"
  done
done

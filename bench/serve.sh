#!/usr/bin/env bash
# `ms serve` vs a Python server with ModelScope's API (bench/serve_st_server.py: FastAPI +
# sentence-transformers, one request at a time as `modelscope server` runs its pipeline), both
# serving all-MiniLM-L6-v2 embeddings on 2 threads, under wrk (Debian's `wrk`): one sentence per
# request (bench/make_sentences.py), 1, 16 and 64 connections; requests/s and p50/p99 latency.
#
#   bash bench/serve.sh [SECONDS=15]
# Env: MS_BIN, MS_MINILM_DIR, MS_SERVE_ARGS (extra ms serve options, e.g. "--max-wait-ms 0").
# The Python side's venv (Debian's python3-torch 1.13 + pinned PyPI packages) is made in
# bench/out/venv-serve-bench.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-15}"
ms="${MS_BIN:-$root/build/bin/ms}"
minilm="${MS_MINILM_DIR:-$root/build/models/all-MiniLM-L6-v2}"
venv="$root/bench/out/venv-serve-bench"
command -v wrk >/dev/null || { echo "bench/serve.sh needs wrk (apt-get install wrk)" >&2; exit 6; }
[ -d "$minilm" ] || { echo "no MiniLM at $minilm (bash scripts/fetch_minilm.sh)" >&2; exit 4; }
[ -x "$venv/bin/python" ] || {
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q "transformers==4.41.2" "sentence-transformers==2.7.0" \
    "tokenizers==0.19.1" "fastapi==0.165.0" "uvicorn==0.55.0"
}
export SENTENCES="$root/bench/out/sentences-2000.txt"
[ -f "$SENTENCES" ] || python3 "$root/bench/make_sentences.py" 2000 "$SENTENCES"
export OMP_NUM_THREADS=2
log="$root/bench/out/serve"
mkdir -p "$log"

wait_health() {
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2
  return 1
}

# One wrk run -> "requests/s p50_ms p99_ms non2xx"
load() {
  local port=$1 conns=$2 duration=$3
  wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$root/bench/serve_wrk.lua" \
    "http://127.0.0.1:$port" | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(v, unit): return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p = {k: ms(v, u) for k, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print("%.1f %.2f %.2f %s" % (rps, p["50"], p["99"], bad.group(1) if bad else 0))'
}

run_side() {
  local name=$1 port=$2
  shift 2
  "$@" >"$log/$name.out" 2>"$log/$name.err" &
  local pid=$!
  wait_health "$port"
  load "$port" 16 3 >/dev/null  # warm-up
  for c in 1 16 64; do
    read -r rps p50 p99 bad < <(load "$port" "$c" "$secs")
    printf '%-8s %6s %10s %9s %9s %7s\n' "$name" "$c" "$rps" "$p50" "$p99" "$bad"
  done
  kill -TERM "$pid"
  wait "$pid" || true
}

echo "MiniLM-L6 embeddings, one sentence per request, 2 threads, ${secs}s per point"
printf '%-8s %6s %10s %9s %9s %7s\n' server clients "req/s" "p50 ms" "p99 ms" non-2xx
# shellcheck disable=SC2086
run_side ms 18571 "$ms" serve -m "$minilm" --port 18571 --threads 2 ${MS_SERVE_ARGS:-}
run_side python 18572 "$venv/bin/python" "$root/bench/serve_st_server.py" "$minilm" 18572 2

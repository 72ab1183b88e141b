#!/usr/bin/env bash
# Hub transfer benchmark on loopback, all clients against the same `ms hub serve` in one run:
#   big file (BIG_MB, default 2048 MiB): `ms download` vs curl (one stream to a file), also vs
#   curl followed by openssl dgst -sha256 (ms verifies while streaming), and ms hashing in one
#   chain (MS_HASH_LANES=1, as against a hub without sha256 checkpoints, or on under 4 cores),
#   mixed repo (big file + SMALL_FILES small ones): `ms download` vs the Python modelscope client,
#   warm re-run (everything cached) of `ms download`, and `ms upload` throughput.
# RUNS rounds (default 5) interleave the clients; the table shows the best and the median of each,
# stderr every time.
# Python peer: $MS_MODELSCOPE_PYTHON, else the interop venv (scripts/setup_python_interop.sh), else skipped.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
big_mb="${BIG_MB:-2048}"
small_files="${SMALL_FILES:-200}"
work="$(mktemp -d "${BENCH_DIR:-/tmp}/ms-hub-bench-XXXXXX")"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
# Flushes dirty pages left by the previous client, so that its writeback does not slow the next.
settle() { sync; sleep 0.5; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }
rate() { python3 -c "print(f'{$1 / ($3 - $2) / 2**20:.0f} MiB/s')"; }

# The newest modelscope venv of scripts/setup_python_interop.sh, unless given.
py="${MS_MODELSCOPE_PYTHON:-$(ls -d "$root"/build/venv-modelscope-*/ 2>/dev/null | sort -V | tail -n 1)bin/python}"
[ -x "$py" ] && "$py" -c "import modelscope" 2>/dev/null || py=""

echo "== preparing ${big_mb} MiB + ${small_files} small files in $work" >&2
mkdir -p "$work/src"
head -c "$((big_mb << 20))" /dev/urandom > "$work/src/big.bin"
python3 - "$work/src" "$small_files" <<'PY'
import os, random, sys
random.seed(1)
for i in range(int(sys.argv[2])):
    d = os.path.join(sys.argv[1], "small", f"d{i % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:04d}.txt"), "wb") as f:
        f.write(os.urandom(random.randint(1024, 64 * 1024)))
PY
total_bytes=$(du -sb "$work/src" | cut -f1)
big_bytes=$((big_mb << 20))

"$ms" hub serve --root "$work/root" --port 0 --json > "$work/serve.out" 2> "$work/serve.err" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/serve.out" ] && break; sleep 0.1; done
endpoint=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['endpoint'])" "$work/serve.out")
token=$("$ms" hub token create bench --root "$work/root")
export MODELSCOPE_ENDPOINT="$endpoint" MODELSCOPE_API_TOKEN="$token" MS_NO_PROGRESS=1
export MODELSCOPE_CREDENTIALS_PATH="$work/cred"

settle; t0=$(now); MODELSCOPE_CACHE="$work/up-cache" "$ms" upload bench/mixed "$work/src" --create > /dev/null; t1=$(now)
upload_s=$(secs "$t0" "$t1"); upload_rate=$(rate "$total_bytes" "$t0" "$t1")

url="$endpoint/api/v1/models/bench/mixed/repo?Revision=master&FilePath=big.bin"
runs="${RUNS:-5}"
curl_t=(); curlsha_t=(); msbig_t=(); mschain_t=(); msmixed_t=(); py_t=()
# Rounds interleave the clients so that load from other processes hits all of them alike.
for round in $(seq "$runs"); do
  echo "== round $round of $runs" >&2
  settle; t0=$(now); curl -sf -b "m_session_id=$token" -o "$work/curl.bin" "$url"; t1=$(now)
  curl_t+=("$(secs "$t0" "$t1")")
  t0=$(now); openssl dgst -sha256 "$work/curl.bin" > /dev/null; t1=$(now)
  curlsha_t+=("$(python3 -c "print(f'{${curl_t[-1]} + $t1 - $t0:.3f}')")"); rm -f "$work/curl.bin"

  settle; t0=$(now); MODELSCOPE_CACHE="$work/ms-big" MS_HASH_LANES=1 "$ms" download bench/mixed big.bin > /dev/null; t1=$(now)
  mschain_t+=("$(secs "$t0" "$t1")"); rm -rf "$work/ms-big"

  settle; t0=$(now); MODELSCOPE_CACHE="$work/ms-big" "$ms" download bench/mixed big.bin > /dev/null; t1=$(now)
  msbig_t+=("$(secs "$t0" "$t1")"); rm -rf "$work/ms-big"

  settle; t0=$(now); MODELSCOPE_CACHE="$work/ms-mixed" "$ms" download bench/mixed > /dev/null; t1=$(now)
  msmixed_t+=("$(secs "$t0" "$t1")")
  if [ "$round" = 1 ]; then
    cmp "$work/src/big.bin" "$work/ms-mixed/models/bench/mixed/big.bin"
    warm=()
    for _ in 1 2 3 4 5; do
      t0=$(now); MODELSCOPE_CACHE="$work/ms-mixed" "$ms" download bench/mixed > /dev/null; t1=$(now)
      warm+=("$(python3 -c "print(f'{($t1 - $t0) * 1000:.0f}')")")
    done
  fi
  rm -rf "$work/ms-mixed"

  if [ -n "$py" ]; then
    settle; t0=$(now)
    MODELSCOPE_CACHE="$work/py-mixed" "$py" -c "import sys
from modelscope.hub.snapshot_download import snapshot_download
snapshot_download('bench/mixed', endpoint=sys.argv[1], token=sys.argv[2])" "$endpoint" "$token" > /dev/null 2>&1
    t1=$(now); py_t+=("$(secs "$t0" "$t1")"); rm -rf "$work/py-mixed"
  fi
done
best() { python3 -c "import sys; print(min(map(float, sys.argv[1:])))" "$@"; }
median() { python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3f}')" "$@"; }
curl_s=$(best "${curl_t[@]}"); msbig_s=$(best "${msbig_t[@]}"); msmixed_s=$(best "${msmixed_t[@]}")
curl_m=$(median "${curl_t[@]}"); msbig_m=$(median "${msbig_t[@]}"); msmixed_m=$(median "${msmixed_t[@]}")
curl_rate=$(python3 -c "print(f'{$big_bytes / $curl_s / 2**20:.0f} MiB/s')")
msbig_rate=$(python3 -c "print(f'{$big_bytes / $msbig_s / 2**20:.0f} MiB/s')")
py_s="n/a"; py_m="n/a"; [ -n "$py" ] && py_s=$(best "${py_t[@]}") && py_m=$(median "${py_t[@]}")
curlsha_s=$(best "${curlsha_t[@]}"); mschain_s=$(best "${mschain_t[@]}")
echo "all times (s): curl ${curl_t[*]} | curl+openssl-sha256 ${curlsha_t[*]} | ms big ${msbig_t[*]} | ms big one chain ${mschain_t[*]} | ms mixed ${msmixed_t[*]} | python mixed ${py_t[*]:-n/a}" >&2
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }

cat <<EOF2
$(nproc) cores: $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average $(cut -d' ' -f1-3 /proc/loadavg)

| measure (best of ${runs}; median) | ms | peer | ratio |
| --- | --- | --- | --- |
| big file ${big_mb} MiB: ms download vs curl -o (one stream, no verification) | ${msbig_s} s (${msbig_rate}); ${msbig_m} s | ${curl_s} s (${curl_rate}); ${curl_m} s | $(ratio "$curl_s" "$msbig_s") curl; $(ratio "$curl_m" "$msbig_m") |
| big file: ms download vs curl then openssl dgst -sha256 (both verified) | ${msbig_s} s | ${curlsha_s} s | $(ratio "$curlsha_s" "$msbig_s") |
| big file: ms download hashing in one chain (MS_HASH_LANES=1) vs curl | ${mschain_s} s | ${curl_s} s | $(ratio "$curl_s" "$mschain_s") curl |
| mixed repo (big + ${small_files} small): ms vs Python modelscope | ${msmixed_s} s; ${msmixed_m} s | ${py_s} s; ${py_m} s | $( [ "$py_s" = n/a ] && echo n/a || echo "$(ratio "$py_s" "$msmixed_s") Python; $(ratio "$py_m" "$msmixed_m")") |
| warm re-run, all cached (5 runs, ms) | ${warm[*]} ms | | |
| ms upload of the mixed repo ($((total_bytes >> 20)) MiB) | ${upload_s} s (${upload_rate}) | | |
EOF2

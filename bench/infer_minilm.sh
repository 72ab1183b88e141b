#!/usr/bin/env bash
# MiniLM sentence embeddings: `ms infer` vs sentence-transformers, same machine, same threads,
# same batch sizes, runs interleaved (ms, st, ms, st, ...) and the best of R kept per cell.
#
#   bash bench/infer_minilm.sh [N_SENTENCES=10000] [THREADS=1 2] 
#
# Env: MS_BIN (default build/bin/ms), ST_PYTHON (python with sentence-transformers; default
# ~/.cache/ms-infer/venv/bin/python), MS_MINILM_DIR (default: scripts/fetch_minilm.sh),
# BENCH_REPEAT (default 2), BENCH_BATCHES (default "32 64").
# Wall times include process start and model load on both sides. CPU seconds (user + system of
# the whole process) are reported too: on a shared machine they are steadier than wall time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-10000}"
shift || true
if [ $# -gt 0 ]; then threads="$*"; else threads="1 2"; fi
export MS_BIN="${MS_BIN:-$root/build/bin/ms}"
export ST_PYTHON="${ST_PYTHON:-$HOME/.cache/ms-infer/venv/bin/python}"
export MS_MINILM_DIR="${MS_MINILM_DIR:-$(bash "$root/scripts/fetch_minilm.sh")}"
out="$root/bench/out"
mkdir -p "$out"
input="$out/sentences-$n.txt"
[ -f "$input" ] || python3 "$root/bench/make_sentences.py" "$n" "$input"

python3 - "$input" "$n" "$threads" "${BENCH_BATCHES:-32 64}" "${BENCH_REPEAT:-2}" "$out" "$root" <<'PY'
import json, os, resource, subprocess, sys, time
inp, n, threads, batches, repeat, out, root = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), \
    sys.argv[4].split(), int(sys.argv[5]), sys.argv[6], sys.argv[7]
ms, py, model = os.environ["MS_BIN"], os.environ["ST_PYTHON"], os.environ["MS_MINILM_DIR"]

def run(cmd, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout

ms_torch = json.loads(subprocess.run([ms, "env", "--json"], capture_output=True, text=True).stdout)["libtorch"]["version"]
st_ver = subprocess.run([py, "-c", "import torch, sentence_transformers as s, transformers as t; "
                         "print(torch.__version__, s.__version__, t.__version__)"], capture_output=True, text=True).stdout.split()
print(f"{n} sentences; ms (LibTorch {ms_torch}) vs sentence-transformers {st_ver[1]} (transformers {st_ver[2]}, "
      f"torch {st_ver[0]}); {os.cpu_count()} cores; best of {repeat}")
print(f"{'threads':>7} {'batch':>5} | {'ms wall':>8} {'ms cpu':>7} {'ms s/s':>7} | {'st wall':>8} {'st cpu':>7} "
      f"{'st enc':>7} {'st s/s':>7} | {'wall x':>6} {'cpu x':>6}")
for t in threads:
    env = dict(os.environ, OMP_NUM_THREADS=t)
    for b in batches:
        best = {"ms": None, "st": None}
        for _ in range(repeat):
            w, c, _ = run([ms, "infer", "-m", model, "--input-file", inp, "-b", b, "--threads", t,
                           "-o", os.path.join(out, "ms.jsonl")], env)
            if best["ms"] is None or w < best["ms"][0]:
                best["ms"] = (w, c)
            w, c, so = run([py, os.path.join(root, "bench", "st_embed.py"), model, inp, b, t], env)
            enc = json.loads(so.strip().splitlines()[-1])["encode_s"]
            if best["st"] is None or w < best["st"][0]:
                best["st"] = (w, c, enc)
        (mw, mc), (sw, sc, se) = best["ms"], best["st"]
        print(f"{t:>7} {b:>5} | {mw:8.1f} {mc:7.1f} {n / mw:7.1f} | {sw:8.1f} {sc:7.1f} {se:7.1f} {n / sw:7.1f} | "
              f"{sw / mw:6.2f} {sc / mc:6.2f}", flush=True)
PY

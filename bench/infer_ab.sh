#!/usr/bin/env bash
# Two ms builds on the same `ms infer` job, runs interleaved (a, b, a, b, ...), best of R per cell;
# for checking that a refactor left results and speed as they were. Outputs must agree: the script
# prints the largest difference between the two builds' embeddings.
#
#   bash bench/infer_ab.sh OLD_MS NEW_MS [N_SENTENCES=10000] [THREADS=1 2]
#
# Env: MS_MINILM_DIR (default: scripts/fetch_minilm.sh), BENCH_REPEAT (default 3), BENCH_BATCHES
# (default "32"). Wall times include process start and model load; CPU seconds are user + system of
# the whole process (steadier than wall time on a shared machine).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 2 ] || { echo "usage: $0 OLD_MS NEW_MS [N] [THREADS...]" >&2; exit 2; }
a="$1" b="$2" n="${3:-10000}"
shift 3 2>/dev/null || shift $#
threads="${*:-1 2}"
model="${MS_MINILM_DIR:-$(bash "$root/scripts/fetch_minilm.sh")}"
out="$root/bench/out"
mkdir -p "$out"
input="$out/sentences-$n.txt"
[ -f "$input" ] || python3 "$root/bench/make_sentences.py" "$n" "$input"

python3 - "$a" "$b" "$model" "$input" "$n" "$threads" "${BENCH_BATCHES:-32}" "${BENCH_REPEAT:-3}" "$out" <<'PY'
import json, os, resource, subprocess, sys, time
a, b, model, inp, n, threads, batches, repeat, out = sys.argv[1:]
n, repeat = int(n), int(repeat)

def run(ms, t, batch, dest):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    p = subprocess.run([ms, "infer", "-m", model, "--input-file", inp, "-b", batch, "--threads", t,
                        "-o", dest], env=dict(os.environ, OMP_NUM_THREADS=t), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"{ms} failed:\n{p.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

def embeddings(path):
    with open(path) as f:
        return [json.loads(line)["text_embedding"] for line in f]

print(f"{n} sentences, all-MiniLM-L6-v2; A = {a}; B = {b}; best of {repeat}")
print(f"{'threads':>7} {'batch':>5} | {'A wall':>7} {'A cpu':>7} | {'B wall':>7} {'B cpu':>7} | {'B/A wall':>8} {'B/A cpu':>7}")
for t in threads.split():
    for batch in batches.split():
        best = {}
        for _ in range(repeat):
            for name, ms in (("a", a), ("b", b)):
                w, c = run(ms, t, batch, os.path.join(out, f"ab-{name}.jsonl"))
                if name not in best or w < best[name][0]:
                    best[name] = (w, c)
        (aw, ac), (bw, bc) = best["a"], best["b"]
        print(f"{t:>7} {batch:>5} | {aw:7.2f} {ac:7.2f} | {bw:7.2f} {bc:7.2f} | {bw / aw:8.3f} {bc / ac:7.3f}", flush=True)
diff = max(abs(x - y) for ea, eb in zip(embeddings(os.path.join(out, "ab-a.jsonl")),
                                        embeddings(os.path.join(out, "ab-b.jsonl"))) for x, y in zip(ea, eb))
print(f"largest |A - B| over all embedding values: {diff:.3g}")
PY

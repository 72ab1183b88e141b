#!/usr/bin/env bash
# CSV rows/s: `ms dataset info csv:FILE` (parse + per-column type inference + conversion, whole
# process, best of 3) against Python's csv module (list of string rows) and pandas.read_csv
# (typed columns), both from Debian's /usr/bin/python3.
#
#   bash bench/data_csv.sh [ROWS]     (default 1,000,000 rows, 6 columns, some quoted fields)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
py=/usr/bin/python3
rows="${1:-1000000}"
file="${MS_BENCH_DIR:-/tmp/ms-bench-data}/table-$rows.csv"
mkdir -p "$(dirname "$file")"

if [ ! -f "$file" ]; then
  "$py" - "$file" "$rows" <<'PY'
import csv, random, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(0)
words = ["alpha", "beta", "gamma, delta", "say \"hi\"", "multi\nline", "zeta"]
with open(path + ".tmp", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "x", "y", "flag", "name", "count"])
    for i in range(n):
        w.writerow([i, f"{rng.random():.6f}", f"{rng.gauss(0, 1):.4f}", rng.random() < 0.5,
                    rng.choice(words), rng.randrange(1000)])
import os; os.rename(path + ".tmp", path)
PY
fi
size_mb="$(du -m "$file" | cut -f1)"
echo "== $rows rows x 6 columns, ${size_mb} MB, cores: $(nproc)"

"$py" - "$ms" "$file" "$rows" <<'PY'
import csv, json, subprocess, sys, time
ms, path, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])

def best(fn, n=3):
    t = min(timed(fn) for _ in range(n))
    return rows / t

def timed(fn):
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0

def run_ms():
    out = subprocess.run([ms, "dataset", "info", "csv:" + path, "--json"], check=True, capture_output=True)
    assert json.loads(out.stdout)["splits"][0]["rows"] == rows

def run_csv():
    with open(path, newline="") as f:
        assert sum(1 for _ in csv.reader(f)) == rows + 1

print(f"ms dataset info (typed):        {best(run_ms):,.0f} rows/s")
print(f"python csv.reader (strings):    {best(run_csv):,.0f} rows/s")
try:
    import pandas as pd
    print(f"pandas.read_csv {pd.__version__} (typed): {best(lambda: pd.read_csv(path)):,.0f} rows/s")
except ImportError:
    print("pandas: not installed (Debian python3-pandas)")
PY

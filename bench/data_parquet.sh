#!/usr/bin/env bash
# Parquet rows/s and peak memory: `ms dataset info parquet:FILE` (whole process: footer, pages,
# snappy, typed rows) against pyarrow.parquet.read_table and Hugging Face's
# datasets.load_dataset("parquet") (a fresh cache folder each time, so it converts the file as a
# user's first load does), best of 3, from the newest modelscope venv (pyarrow, datasets).
#
#   bash bench/data_parquet.sh [ROWS]     (default 1,000,000 rows: text, label, score; snappy)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
venv="$(ls -d "$root"/build/venv-modelscope-*/ 2>/dev/null | sort -V | tail -n 1)"
[ -n "$venv" ] || { echo "needs build/venv-modelscope-* (scripts/setup_python_interop.sh)" >&2; exit 1; }
py="${venv}bin/python"
rows="${1:-1000000}"
dir="${MS_BENCH_DIR:-/tmp/ms-bench-data}"
file="$dir/table-$rows.parquet"
mkdir -p "$dir"

if [ ! -f "$file" ]; then
  "$py" - "$file" "$rows" <<'PY'
import os, random, sys
import pyarrow as pa, pyarrow.parquet as pq
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(0)
words = "the a model data train fast slow cat dog runs over under blue red green text".split()
text = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 20))) for _ in range(n)]
table = pa.table({"text": text, "label": [rng.randrange(2) for _ in range(n)],
                  "score": [rng.random() for _ in range(n)]})
pq.write_table(table, path + ".tmp")  # pyarrow's defaults: snappy, dictionary, 1 MiB pages
os.rename(path + ".tmp", path)
PY
fi
echo "== $rows rows (text, label, score), $(du -m "$file" | cut -f1) MB snappy, cores: $(nproc)"

peak_kb() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -n 1; }
echo "peak RSS, ms dataset info:        $(peak_kb "$ms" dataset info "parquet:$file" --json) KB"
echo "peak RSS, pyarrow read_table:     $(peak_kb "$py" -c "import pyarrow.parquet as pq; pq.read_table('$file')") KB"

"$py" - "$ms" "$file" "$rows" <<'PY'
import json, subprocess, sys, tempfile, time
ms, path, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])

def best(fn, n=3):
    times = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return min(times)

def run_ms():
    out = subprocess.run([ms, "dataset", "info", "parquet:" + path, "--json"], check=True,
                         capture_output=True)
    assert json.loads(out.stdout)["splits"][0]["rows"] == rows

import pyarrow, pyarrow.parquet as pq
def run_pyarrow():
    assert pq.read_table(path).num_rows == rows

import datasets
datasets.disable_progress_bars()
def run_datasets():
    with tempfile.TemporaryDirectory() as cache:
        ds = datasets.load_dataset("parquet", data_files=path, split="train", cache_dir=cache)
        assert ds.num_rows == rows

def run_ms_head():
    out = subprocess.run([ms, "dataset", "head", "parquet:" + path, "-n", "5"], check=True,
                         capture_output=True)
    assert len(out.stdout.splitlines()) == 5

def run_pyarrow_head():
    assert len(pq.ParquetFile(path).read_row_group(0).slice(0, 5)) == 5

for name, fn in [("ms dataset info (whole process)", run_ms),
                 (f"pyarrow {pyarrow.__version__} read_table (in process)", run_pyarrow),
                 (f"datasets {datasets.__version__} load_dataset (in process, cold cache)",
                  run_datasets)]:
    t = best(fn)
    print(f"{name:58s} {t:6.2f} s  {rows / t / 1e6:5.2f} M rows/s")
for name, fn in [("ms dataset head -n 5 (whole process)", run_ms_head),
                 ("pyarrow first row group, 5 rows (in process)", run_pyarrow_head)]:
    print(f"{name:58s} {best(fn):6.3f} s")
PY

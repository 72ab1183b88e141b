#!/usr/bin/env bash
# A look at the first rows of a big CSV: `ms dataset head csv:FILE -n 5` (reads a start of the
# file) against the same through a pipe (`cat FILE | ms dataset head csv:/dev/stdin`: a pipe is
# read to its end, which is what head did with every file before), pandas.read_csv(nrows=5)
# (Debian's /usr/bin/python3) and Hugging Face datasets' streaming reader (build/venv-datasets,
# made by scripts/setup_python_interop.sh), each its wall time and peak memory (best of 3); then
# the same rows as a JSON array and as Parquet.
#
#   bash bench/data_head.sh [ROWS]     (default 10,000,000 rows, ~1 GB)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
rows="${1:-10000000}"
file="${MS_BENCH_DIR:-/tmp/ms-bench-data}/head-$rows.csv"
mkdir -p "$(dirname "$file")"

if [ ! -f "$file" ]; then
  /usr/bin/python3 - "$file" "$rows" <<'PY'
import csv, random, sys, os
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(0)
with open(path + ".tmp", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "text", "score", "label"])
    for i in range(n):
        w.writerow([i, "row %d: " % i + "lorem ipsum dolor sit amet " * 3, f"{rng.random():.6f}",
                    rng.randrange(5)])
os.rename(path + ".tmp", path)
PY
fi
echo "== $(du -m "$file" | cut -f1) MB, $rows rows; cores: $(nproc)"

# best of 3: "<seconds> <peak KiB>" of the fastest run
best() {
  local out best_line="" t
  for _ in 1 2 3; do
    out="$( { /usr/bin/time -f '%e %M' bash -c "$1" >/dev/null; } 2>&1 | tail -n 1)"
    t="${out%% *}"
    if [ -z "$best_line" ] || awk "BEGIN{exit !($t < ${best_line%% *})}"; then best_line="$out"; fi
  done
  awk -v what="$2" '{printf "%-44s %8.2f s %9.0f MB\n", what, $1, $2 / 1024}' <<<"$best_line"
}
best "'$ms' dataset head 'csv:$file' -n 5" "ms dataset head (a start of the file)"
best "cat '$file' | '$ms' dataset head csv:/dev/stdin -n 5" "ms dataset head of a pipe (whole file)"
best "/usr/bin/python3 -c 'import pandas, sys; pandas.read_csv(sys.argv[1], nrows=5)' '$file'" \
  "pandas.read_csv(nrows=5)"
venv="$root/build/venv-datasets/bin/python"
if [ -x "$venv" ]; then
  best "HF_HOME=/tmp/ms-bench-data/hf '$venv' -c 'import datasets, itertools, sys; \
list(itertools.islice(datasets.load_dataset(\"csv\", data_files=sys.argv[1], split=\"train\", \
streaming=True), 5))' '$file'" "datasets streaming, first 5 rows"
else
  echo "datasets: no build/venv-datasets (bash scripts/setup_python_interop.sh)"
fi

# The same rows as one JSON array on one line (json.dump's way), a fifth of them: `head` finds its
# first elements by their brackets; the pipe, Python's json.load and datasets' streaming reader
# (whose json builder loads an array whole) read all of it.
array="${file%.csv}.json"
if [ ! -f "$array" ]; then
  /usr/bin/python3 - "$file" "$array" "$((rows / 5))" <<'PY'
import csv, itertools, json, os, sys
src, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, newline="") as f:
    rows = [dict(r) for r in itertools.islice(csv.DictReader(f), n)]
with open(path + ".tmp", "w") as f:
    json.dump(rows, f)
os.rename(path + ".tmp", path)
PY
fi
echo "== $(du -m "$array" | cut -f1) MB JSON array, $((rows / 5)) rows"
best "'$ms' dataset head 'json:$array' -n 5" "ms dataset head (its first elements)"
best "cat '$array' | '$ms' dataset head json:/dev/stdin -n 5" "ms dataset head of a pipe (whole)"
best "/usr/bin/python3 -c 'import json, sys; json.load(open(sys.argv[1]))[:5]' '$array'" \
  "python json.load, first 5"
if [ -x "$venv" ]; then
  best "HF_HOME=/tmp/ms-bench-data/hf '$venv' -c 'import datasets, itertools, sys; \
list(itertools.islice(datasets.load_dataset(\"json\", data_files=sys.argv[1], split=\"train\", \
streaming=True), 5))' '$array'" "datasets streaming, first 5 rows"
fi

# The same CSV as Parquet (pyarrow, row groups of 100,000 rows, snappy): `head` reads the footer
# and the first row group; pyarrow's iter_batches and datasets' streaming reader read by row
# group too. Needs pyarrow: build/venv-datasets.
if [ -x "$venv" ]; then
  parquet="${file%.csv}.parquet"
  if [ ! -f "$parquet" ]; then
    "$venv" -c 'import sys, pyarrow.csv as c, pyarrow.parquet as p
p.write_table(c.read_csv(sys.argv[1]), sys.argv[2] + ".tmp", row_group_size=100000)' \
      "$file" "$parquet" && mv "$parquet.tmp" "$parquet"
  fi
  echo "== $(du -m "$parquet" | cut -f1) MB Parquet, $rows rows"
  best "'$ms' dataset head '$parquet' -n 5" "ms dataset head (footer, first row group)"
  best "cat '$parquet' | '$ms' dataset head parquet:/dev/stdin -n 5" \
    "ms dataset head of a pipe (whole file)"
  best "'$venv' -c 'import sys, pyarrow.parquet as p; \
next(p.ParquetFile(sys.argv[1]).iter_batches(batch_size=5))' '$parquet'" \
    "pyarrow iter_batches, first 5 rows"
  best "HF_HOME=/tmp/ms-bench-data/hf '$venv' -c 'import datasets, itertools, sys; \
list(itertools.islice(datasets.load_dataset(\"parquet\", data_files=sys.argv[1], \
split=\"train\", streaming=True), 5))' '$parquet'" "datasets streaming, first 5 rows"
fi

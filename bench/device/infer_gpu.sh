#!/usr/bin/env bash
# GPU batch inference benchmark (issue 19): N sentences (bench/make_sentences.py, default 100k)
# embedded with all-MiniLM-L6-v2 on gpu:0 by `ms infer` and by Python (transformers + mean
# pooling, and sentence-transformers; bench/device/infer_gpu_peers.py), fp32 and fp16, batch 64,
# 256 and 1024; start-up excluded and included. Then fidelity: ms's fp16 and bf16 embeddings
# against its fp32 ones (cosine), and the first lines of each ms run against each other.
#
#   MS_BIN=build-gpu/bin/ms MINILM=DIR bash bench/device/infer_gpu.sh   # on the lent GPU machine
#
# Env: N (100000), BATCHES ("64 256 1024"), DTYPES ("fp32 fp16"), PEERS ("transformers
# sentence-transformers"), WORK (a scratch folder; default a temporary one), WORKER_RUNS (the
# batch-256 runs with other worker counts, attention kernels or CUDA graphs; see below).
# ms's "start-up excluded" is its job's own run loop (tokenising, batches, formatting and writing
# the JSON lines, from its -v log); "included" is the whole process, model load and CUDA start-up
# in it. The peers' "excluded" is encode() on all sentences, after a warm-up; "included" adds the
# process's imports, model load and warm-up, measured once per process. ms writes every embedding
# to disk (JSON lines, or one .npy matrix in the runs marked -o .npy); the peers keep numpy arrays
# in memory.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ms="${MS_BIN:?set MS_BIN}"
model="${MINILM:?set MINILM to an all-MiniLM-L6-v2 folder}"
n="${N:-100000}"
py="${PYTHON:-python3}"
device="${DEVICE:-gpu:0}"  # DEVICE=cpu: a dry run of the ms side (with DTYPES=fp32 PEERS=)
work="${WORK:-$(mktemp -d)}"
mkdir -p "$work"
results="$work/results.jsonl"
: >"$results"
"$py" "$root/bench/make_sentences.py" "$n" "$work/in.txt"

echo "ms infer on $device, $n sentences (wall includes start-up; job = ms's own run loop)"
for dtype in ${DTYPES:-fp32 fp16}; do
  for b in ${BATCHES:-64 256 1024}; do
    s=$(date +%s.%N)
    "$ms" -v infer -m "$model" --input-file "$work/in.txt" -b "$b" --device "$device" --dtype "$dtype" \
      -o "$work/ms_${dtype}_$b.jsonl" 2>"$work/ms_${dtype}_$b.log" ||
      { tail -5 "$work/ms_${dtype}_$b.log"; echo "ms infer FAILED ($dtype, batch $b)"; continue; }
    e=$(date +%s.%N)
    job=$(sed -n 's/.* inputs: .*, \([0-9.]*\) s$/\1/p' "$work/ms_${dtype}_$b.log")
    echo "{\"peer\": \"ms\", \"dtype\": \"$dtype\", \"batch\": $b, \"n\": $n, \"wall_s\": $(awk "BEGIN{print $e - $s}"), \"encode_s\": $job}" >>"$results"
    echo "  $dtype batch $b: $(grep -o 'stages: .*' "$work/ms_${dtype}_$b.log")"
    echo "    $(grep -o 'inside the batches.*' "$work/ms_${dtype}_$b.log")"
    # The first 5,000 lines only are kept for the fidelity checks (100k lines are ~400 MB).
    head -n 5000 "$work/ms_${dtype}_$b.jsonl" >"$work/ms_${dtype}_$b.head" && rm "$work/ms_${dtype}_$b.jsonl"
  done
done
# Host workers: 1 (one host thread feeding the card, before the overlap), and more than the
# default 4, each on its own CUDA stream. A third field names the attention kernels
# (MS_BERT_KERNELS): "torch" runs LibTorch's ops one by one, against the default fused
# scaled_dot_product_attention of the grid above (same dtype, batch 256, 4 workers). A fourth,
# "graphs", replays the forward passes from CUDA graphs (MS_CUDA_GRAPHS=1). A fifth, "npy", writes
# the embeddings as one .npy matrix (-o FILE.npy) instead of JSON lines: no float formatting.
for spec in ${WORKER_RUNS:-fp16:4::graphs fp32:4::graphs fp16:8::graphs fp16:16::graphs fp16:4::graphs:npy fp16:8::graphs:npy fp16:4:::npy fp32:1 fp16:8 fp16:16 fp16:4:torch}; do
  IFS=: read -r dtype w kernels graphs out <<<"$spec"
  label="w$w${kernels:+_$kernels}${graphs:+_graphs}${out:+_$out}"
  what="--workers $w${kernels:+ MS_BERT_KERNELS=$kernels}${graphs:+ MS_CUDA_GRAPHS=1}${out:+ -o .$out}"
  s=$(date +%s.%N)
  MS_BERT_KERNELS="${kernels:-}" MS_CUDA_GRAPHS="${graphs:+1}" "$ms" -v infer -m "$model" --input-file "$work/in.txt" -b 256 --device "$device" --dtype "$dtype" \
    --workers "$w" -o "$work/ms_$label.${out:-jsonl}" 2>"$work/ms_$label.log" || { tail -5 "$work/ms_$label.log"; echo "ms $what FAILED"; continue; }
  e=$(date +%s.%N)
  job=$(sed -n 's/.* inputs: .*, \([0-9.]*\) s$/\1/p' "$work/ms_$label.log")
  echo "{\"peer\": \"ms $what\", \"dtype\": \"$dtype\", \"batch\": 256, \"n\": $n, \"wall_s\": $(awk "BEGIN{print $e - $s}"), \"encode_s\": $job}" >>"$results"
  echo "  $dtype batch 256, $what: $(grep -o 'stages: .*' "$work/ms_$label.log")"
  echo "    $(grep -o 'inside the batches.*' "$work/ms_$label.log")"
  grep -o 'CUDA graphs.*' "$work/ms_$label.log" | sed 's/^/    /' || true
  # Kept for the fidelity check: more streams, other kernels or the .npy file must not change the
  # embeddings.
  if [ "$out" = npy ]; then
    mv "$work/ms_$label.npy" "$work/ms_${label}_$dtype.npy"
  else
    head -n 5000 "$work/ms_$label.jsonl" >"$work/ms_${label}_$dtype.head" && rm "$work/ms_$label.jsonl"
  fi
done
head -n 5000 "$work/in.txt" >"$work/in5000.txt"
"$ms" infer -m "$model" --input-file "$work/in5000.txt" -b 256 --device "$device" \
  --dtype bf16 -o "$work/ms_bf16.head" 2>/dev/null || echo "ms infer --dtype bf16 FAILED"

for peer in ${PEERS-transformers sentence-transformers}; do
  for dtype in ${DTYPES:-fp32 fp16}; do
    echo "$peer $dtype ..."
    PYTHONUNBUFFERED=1 PEER_DEVICE="$([ "$device" = cpu ] && echo cpu || echo cuda:0)" "$py" "$root/bench/device/infer_gpu_peers.py" "$peer" "$model" \
      "$work/in.txt" "$dtype" "$(echo ${BATCHES:-64 256 1024} | tr ' ' ,)" >>"$results" \
      2>"$work/$peer-$dtype.log" || { tail -5 "$work/$peer-$dtype.log"; echo "$peer $dtype FAILED"; }
  done
done

"$py" - "$results" "$work" <<'PY'
import glob, json, math, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print()
print("| side | dtype | batch | sentences/s, start-up excluded | sentences/s, start-up included |")
print("| --- | --- | --- | --- | --- |")
best = {}
for r in rows:
    incl = r["wall_s"] if "wall_s" in r else r["startup_s"] + r["encode_s"]
    ex, inc = r["n"] / r["encode_s"], r["n"] / incl
    print(f"| {r['peer']} | {r['dtype']} | {r['batch']} | {ex:,.0f} | {inc:,.0f} |")
    side = "ms" if r["peer"].startswith("ms") else "python"
    if side:
        best[side] = max(best.get(side, 0), ex)
if "ms" in best and "python" in best:
    print(f"\nbest ms {best['ms']:,.0f} vs best Python {best['python']:,.0f} sentences/s "
          f"(start-up excluded): {best['ms'] / best['python']:.2f}x")

def load(path, rows=5000):
    if not path.endswith(".npy"):
        return [json.loads(l)["text_embedding"] for l in open(path)]
    import ast, struct  # a float32 (N, D) .npy of ms infer -o FILE.npy: its first rows
    with open(path, "rb") as f:
        head = f.read(10)
        shape = ast.literal_eval(f.read(struct.unpack("<H", head[8:10])[0]).decode("latin1"))["shape"]
        n, d = min(rows, shape[0]), shape[1]
        values = struct.unpack(f"<{n * d}f", f.read(4 * n * d))
    return [values[i * d:(i + 1) * d] for i in range(n)]

def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

work = sys.argv[2]
ref_path = os.path.join(work, "ms_fp32_256.head")
if os.path.exists(ref_path):
    ref = load(ref_path)
    for other in sorted(glob.glob(os.path.join(work, "ms_*.head")) + glob.glob(os.path.join(work, "ms_*.npy"))):
        if other == ref_path:
            continue
        emb = load(other)
        worst = min(cosine(a, b) for a, b in zip(ref, emb))
        print(f"{os.path.basename(other)} vs ms_fp32_256: {len(emb)} embeddings, min cosine {worst:.7f}")
PY

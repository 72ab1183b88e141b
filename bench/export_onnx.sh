#!/usr/bin/env bash
# `ms export --format onnx` side by side with Python, on this machine, 2 threads:
#  1. export time for all-MiniLM-L6-v2 (sentence embedding) and a ResNet-18 (random weights,
#     torchvision layout): `ms export` (whole process, and its own export seconds) vs
#     torch.onnx.export (Debian's torch 1.13: model load, and the export call alone);
#  2. MiniLM sentences/s over N sentences (bench/make_sentences.py) four ways: `ms infer`, `ms
#     infer` on the TorchScript export, the exported ONNX graph in onnxruntime (tokenized by HF
#     `tokenizers`), sentence-transformers; batch 64, every side sorting its inputs by length.
#
#   bash bench/export_onnx.sh [N=5000]
# Env: MS_BIN, ST_PYTHON (sentence-transformers venv, bench/setup_st_venv.sh), MS_MINILM_DIR.
# A venv for onnxruntime + tokenizers (PyPI) is made in bench/out/venv-onnx-bench.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-5000}"
ms="${MS_BIN:-$root/build/bin/ms}"
st="${ST_PYTHON:-$HOME/.cache/ms-infer/venv/bin/python}"
minilm="${MS_MINILM_DIR:-$root/build/models/all-MiniLM-L6-v2}"
out="$root/bench/out/export"
venv="$root/bench/out/venv-onnx-bench"
mkdir -p "$out"
[ -x "$venv/bin/python" ] || {
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$root/scripts/requirements-onnxruntime.txt"
  "$venv/bin/pip" install -q "tokenizers==0.19.1"
}
export OMP_NUM_THREADS=2
resnet="$out/resnet18"
[ -f "$resnet/model.safetensors" ] || /usr/bin/python3 "$root/scripts/make_tiny_vision.py" --resnet 18 "$resnet" >/dev/null
sentences="$root/bench/out/sentences-$n.txt"
[ -f "$sentences" ] || python3 "$root/bench/make_sentences.py" "$n" "$sentences"

secs() { python3 -c 'import sys,time; t=time.perf_counter(); import subprocess; r=subprocess.run(sys.argv[1:], stdout=subprocess.PIPE); print(f"{time.perf_counter()-t:.2f}", r.stdout.decode().strip().splitlines()[-1] if r.stdout.strip() else ""); sys.exit(r.returncode)' "$@"; }

echo "export time (s): ms = whole process (its own export step); torch = load + torch.onnx.export"
for kind in minilm resnet; do
  model=$([ "$kind" = minilm ] && echo "$minilm" || echo "$resnet")
  for i in 1 2; do
    rm -rf "$out/ms-$kind"
    read -r wall json < <(secs "$ms" export -m "$model" -o "$out/ms-$kind" --json)
    own=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["seconds"], 2))' "$json")
    read -r pywall pyjson < <(secs "$st" "$root/bench/export_onnx_torch.py" "$kind" "$model" "$out/torch-$kind.onnx")
    pyexp=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(round(d["load_s"],2), round(d["export_s"],2))' "$pyjson")
    echo "  $kind run $i: ms $wall ($own) | torch $pywall (load, export: $pyexp)"
  done
done

rm -rf "$out/ms-minilm-ts"
"$ms" export -m "$minilm" -o "$out/ms-minilm-ts" --format torchscript 2>/dev/null

echo "MiniLM sentences/s, $n sentences, batch 64, 2 threads (whole process; encode only in brackets)"
for i in 1 2; do
  read -r w _ < <(secs "$ms" infer -m "$minilm" --input-file "$sentences" -b 64 --threads 2 -o "$out/ms.jsonl")
  read -r wt _ < <(secs "$ms" infer -m "$out/ms-minilm-ts" --input-file "$sentences" -b 64 --threads 2 -o "$out/ms-ts.jsonl")
  read -r wo jo < <(secs "$venv/bin/python" "$root/bench/onnx_embed.py" "$out/ms-minilm" "$sentences" 64 2)
  read -r ws js < <(secs "$st" "$root/bench/st_embed.py" "$minilm" "$sentences" 64 2)
  python3 - "$n" "$w" "$wo" "$jo" "$ws" "$js" "$wt" <<'PY'
import json, sys
n, w, wo, jo, ws, js, wt = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4]), float(sys.argv[5]), json.loads(sys.argv[6]), float(sys.argv[7])
print(f"  ms infer {n / w:7.0f} | ms infer on the TorchScript export {n / wt:7.0f} | "
      f"onnxruntime {n / wo:7.0f} ({n / jo['encode_s']:.0f}) | "
      f"sentence-transformers {n / ws:7.0f} ({n / js['encode_s']:.0f})")
PY
done

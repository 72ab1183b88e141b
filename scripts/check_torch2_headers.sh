#!/usr/bin/env bash
# Compiles every torch-layer source file (-fsyntax-only) against the headers of a LibTorch 2.x
# release, so that API drift shows up on a machine without a GPU or a 2.x LibTorch install. The
# headers come from PyPI's torch wheel (pinned by sha256; only headers are extracted: nothing is
# linked or run). The pipelines' GPU code (CUDA streams and graphs, which only a CUDA LibTorch
# builds) is checked too, against the CUDA runtime's headers from PyPI's nvidia-cuda-runtime wheel.
# Needs build/compile_commands.json (scripts/setup.sh makes it).
#
#   bash scripts/check_torch2_headers.sh      # torch 2.11.0, the GPU machine's version
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

source "$root/scripts/torch2_wheel.sh"
headers="$torch2_cache/torch-${torch2_version}-headers"
if [ ! -d "$headers/torch/include" ]; then
  wheel="$(torch2_fetch_torch)"
  torch2_extract "$wheel" "$headers" torch/include/
fi

cuda_headers="$torch2_cache/cuda-13.0-headers"
if [ ! -d "$cuda_headers" ]; then
  cuda_wheels=($(torch2_fetch_cuda_runtime))  # the runtime's wheel, then CUPTI's
  crt_wheel="$(torch2_fetch_cuda_crt)"
  torch2_extract "${cuda_wheels[0]}" "$cuda_headers.runtime" nvidia/cu13/include/
  torch2_extract "$crt_wheel" "$cuda_headers.crt" nvidia/cu13/include/
  # One include folder holding both wheels' headers.
  rm -rf "$cuda_headers.tmp" && mkdir -p "$cuda_headers.tmp"
  cp -a "$cuda_headers.runtime/." "$cuda_headers.crt/." "$cuda_headers.tmp/"
  rm -rf "$cuda_headers.runtime" "$cuda_headers.crt"
  mv "$cuda_headers.tmp" "$cuda_headers"
fi

[ -f build/compile_commands.json ] || { echo "run scripts/setup.sh first (no build/compile_commands.json)" >&2; exit 2; }
python3 - "$headers/torch/include" "$cuda_headers/nvidia/cu13/include" <<'PY'
import json, shlex, subprocess, sys
inc, cuda_inc = sys.argv[1], sys.argv[2]
# What lib/pipelines/CMakeLists.txt defines when LibTorch is a CUDA build.
cuda_defines = ["-DMS_TORCH_CUDA=1", "-DMS_TORCH_CUDA_GRAPHS=1", "-isystem", cuda_inc]
failed = checked = 0
for c in json.load(open("build/compile_commands.json")):
    f = c["file"]
    if not any(f"/lib/{m}/" in f for m in ("torch_layer", "tensor", "models", "pipelines", "trainer", "export")):
        continue
    # The wheel bundles ONNX headers of its own that clash with Debian's libonnx-dev: the files
    # that include ONNX (the ONNX graph builder) are left out; they use no LibTorch API beyond
    # what the other export files use.
    if "/lib/export/" in f and '#include "onnx' in open(f, encoding="utf-8").read():
        continue
    args, out, skip = shlex.split(c["command"]), [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
        elif a in ("-o", "-MT", "-MF") or (a == "-isystem" and args[i + 1].startswith("/usr/include/torch")):
            skip = True
        elif a not in ("-c", "-MD", f):
            out.append(a)
    cmd = [out[0], "-isystem", f"{inc}/torch/csrc/api/include", "-isystem", inc, *out[1:], "-fsyntax-only", f]
    variants = [cmd] + ([cmd[:-2] + cuda_defines + cmd[-2:]] if "/lib/pipelines/" in f else [])
    for variant in variants:
        r = subprocess.run(variant, capture_output=True, text=True)
        checked += 1
        if r.returncode != 0 or "warning" in r.stderr:
            failed += r.returncode != 0
            cuda = " (CUDA build)" if variant is not cmd else ""
            print(f"--- {f}{cuda}\n{r.stderr}")
print(f"check_torch2_headers: {checked} compiles of torch-layer files, {failed} failed, against {inc}")
sys.exit(1 if failed or not checked else 0)
PY

#!/usr/bin/env bash
# Compiles every torch-layer source file (-fsyntax-only) against the headers of a LibTorch 2.x
# release, so that API drift shows up on a machine without a GPU or a 2.x LibTorch install. The
# headers come from PyPI's torch wheel (pinned by sha256; only headers are extracted: nothing is
# linked or run). Needs build/compile_commands.json (scripts/setup.sh makes it).
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

[ -f build/compile_commands.json ] || { echo "run scripts/setup.sh first (no build/compile_commands.json)" >&2; exit 2; }
python3 - "$headers/torch/include" <<'PY'
import json, shlex, subprocess, sys
inc = sys.argv[1]
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
    r = subprocess.run(cmd, capture_output=True, text=True)
    checked += 1
    if r.returncode != 0 or "warning" in r.stderr:
        failed += r.returncode != 0
        print(f"--- {f}\n{r.stderr}")
print(f"check_torch2_headers: {checked} torch-layer files, {failed} failed, against {inc}")
sys.exit(1 if failed or not checked else 0)
PY

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

version=2.11.0
wheel="torch-${version}-cp311-cp311-manylinux_2_28_x86_64.whl"
sha256=7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a
cache="${MS_WHEEL_CACHE:-$HOME/.cache/ms/wheels}"
headers="$cache/torch-${version}-headers"

if [ ! -d "$headers/torch/include" ]; then
  mkdir -p "$cache"
  if [ ! -f "$cache/$wheel" ] || ! echo "$sha256  $cache/$wheel" | sha256sum -c --quiet - 2>/dev/null; then
    echo "check_torch2_headers: downloading torch==$version (~530 MB) from PyPI" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux_2_28_x86_64 "torch==$version" -d "$cache" >&2
  fi
  echo "$sha256  $cache/$wheel" | sha256sum -c --quiet - || { echo "sha256 mismatch: $cache/$wheel" >&2; exit 7; }
  tmp="$headers.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$tmp" && python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
z.extractall(members=[n for n in z.namelist() if n.startswith("torch/include/")])' "$cache/$wheel")
  mv "$tmp" "$headers"
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

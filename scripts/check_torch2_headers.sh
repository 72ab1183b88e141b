#!/usr/bin/env bash
# Compiles every torch-layer source file (-fsyntax-only) against the headers of a LibTorch 2.x
# release, so that API drift shows up on a machine without a GPU or a 2.x LibTorch install. The
# headers come from PyPI's torch wheel (pinned by sha256; only headers are extracted: nothing is
# linked or run). The pipelines' GPU code (CUDA streams and graphs, which only a CUDA LibTorch
# builds) is checked too, against the CUDA runtime's headers from PyPI's nvidia-cuda-runtime wheel,
# and compiled to objects whose references into LibTorch and the CUDA runtime must be symbols that
# the wheel's libraries export (many of LibTorch's CUDA-side classes are not exported: a call into
# one compiles, and fails only when the GPU machine links). That needs the wheel's libraries
# (about 1 GB extracted, once). Needs build/compile_commands.json (scripts/setup.sh makes it).
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
cuda_libs="$torch2_cache/torch-${torch2_version}-cuda-libs"
if [ ! -d "$cuda_headers" ] || [ ! -d "$cuda_libs" ]; then
  cuda_wheels=($(torch2_fetch_cuda_runtime))  # the runtime's wheel, then CUPTI's
fi
if [ ! -d "$cuda_libs" ]; then
  torch2_extract "$(torch2_fetch_torch)" "$cuda_libs" torch/lib/libtorch_cuda.so \
    torch/lib/libc10_cuda.so torch/lib/libtorch_cpu.so torch/lib/libc10.so torch/lib/libtorch.so
  torch2_extract "${cuda_wheels[0]}" "$cuda_libs.runtime" nvidia/cu13/lib/
  mv "$cuda_libs.runtime/nvidia/cu13/lib/"libcudart.so.* "$cuda_libs/torch/lib/" && rm -rf "$cuda_libs.runtime"
fi
if [ ! -d "$cuda_headers" ]; then
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
python3 - "$headers/torch/include" "$cuda_headers/nvidia/cu13/include" "$cuda_libs/torch/lib" <<'PY'
import glob, json, os, re, shlex, subprocess, sys, tempfile
inc, cuda_inc, libs = sys.argv[1:4]
# What lib/pipelines/CMakeLists.txt defines when LibTorch is a CUDA build.
cuda_defines = ["-DMS_TORCH_CUDA=1", "-DMS_TORCH_CUDA_GRAPHS=1", "-isystem", cuda_inc]
failed = checked = 0

def dynamic_symbols(paths):
    names = set()
    for path in paths:
        out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True).stdout
        names.update(line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip())
    return names

exported = dynamic_symbols(glob.glob(os.path.join(libs, "*.so*")))
# References into LibTorch (c10::, at::, torch::, mangled) and the CUDA runtime (cuda*); weak
# references ("w", inline code's TLS wrappers) need no definition.
into_torch = re.compile(r"^(_ZN|_ZNK|_ZTI|_ZTV)(3c10|2at|5torch)|^cuda")

def unexported(obj):
    out = subprocess.run(["nm", "-u", obj], capture_output=True, text=True).stdout
    wanted = {line.split()[-1] for line in out.splitlines() if line.split()[0] == "U"}
    missing = sorted(n for n in wanted if into_torch.match(n) and n not in exported)
    if not missing:
        return []
    return subprocess.run(["c++filt"], input="\n".join(missing), capture_output=True,
                          text=True).stdout.splitlines()
def sources_of(entry):
    """The sources a compile command compiles: a unity build's batch file (MS_UNITY_BUILD) only
    includes them, and each is checked on its own, with the batch's flags."""
    if "/Unity/unity_" not in entry["file"]:
        return [entry["file"]]
    return re.findall(r'^#include "([^"]+)"', open(entry["file"], encoding="utf-8").read(), re.M)

commands = [({**c, "file": f}, c["file"]) for c in json.load(open("build/compile_commands.json"))
            for f in sources_of(c)]
for c, compiled in commands:
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
        elif a == "-include" and args[i + 1].endswith("cmake_pch.hxx"):
            # The precompiled header (MS_PRECOMPILED_HEADERS) holds the build's LibTorch 1.13
            # headers, which GCC would take in place of the 2.x ones: each source is checked as
            # it includes them.
            skip = True
        elif a not in ("-c", "-MD", "-Winvalid-pch", compiled):
            out.append(a)
    cmd = [out[0], "-isystem", f"{inc}/torch/csrc/api/include", "-isystem", inc, *out[1:], "-fsyntax-only", f]
    r = subprocess.run(cmd, capture_output=True, text=True)
    checked += 1
    if r.returncode != 0 or "warning" in r.stderr:
        failed += r.returncode != 0
        print(f"--- {f}\n{r.stderr}")
    if "/lib/pipelines/" not in f:
        continue
    with tempfile.TemporaryDirectory() as tmp:
        obj = os.path.join(tmp, "cuda.o")
        r = subprocess.run(cmd[:-2] + cuda_defines + ["-c", "-o", obj, f], capture_output=True, text=True)
        checked += 1
        missing = unexported(obj) if r.returncode == 0 else []
        if r.returncode != 0 or "warning" in r.stderr or missing:
            failed += r.returncode != 0 or bool(missing)
            print(f"--- {f} (CUDA build)\n{r.stderr}")
            for name in missing:
                print(f"    not exported by the wheel's libraries: {name}")
print(f"check_torch2_headers: {checked} compiles of torch-layer files, {failed} failed, against {inc}")
sys.exit(1 if failed or not checked else 0)
PY

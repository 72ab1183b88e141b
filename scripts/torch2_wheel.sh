# Sourced by check_torch2_headers.sh and check_torch2_build.sh: PyPI's torch 2.11.0 wheel (the GPU
# machine's LibTorch), downloaded once into the wheel cache and checked against its sha256, and
# parts of it extracted there. PyPI is the only network these scripts use.
torch2_version=2.11.0
torch2_cache="${MS_WHEEL_CACHE:-$HOME/.cache/ms/wheels}"

# Downloads (when missing) the wheel named $2 of requirement $1 for platform tag $4, pinned by
# sha256 $3, into the cache; prints its path.
torch2_fetch_wheel() {
  local requirement="$1" file="$2" sha256="$3" platform="$4"
  mkdir -p "$torch2_cache"
  if [ ! -f "$torch2_cache/$file" ] || ! echo "$sha256  $torch2_cache/$file" | sha256sum -c --quiet - 2>/dev/null; then
    echo "downloading $requirement from PyPI" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --platform "$platform" \
      "$requirement" -d "$torch2_cache" >&2
  fi
  echo "$sha256  $torch2_cache/$file" | sha256sum -c --quiet - || { echo "sha256 mismatch: $torch2_cache/$file" >&2; return 7; }
  echo "$torch2_cache/$file"
}

# Extracts the members of wheel $1 whose names start with one of the prefixes $3... into folder $2
# (made atomically: a half-extracted folder is never left under its final name). No-op if there.
torch2_extract() {
  local wheel="$1" dest="$2"
  shift 2
  [ -d "$dest" ] && return 0
  local tmp="$dest.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$tmp" && python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
z.extractall(members=[n for n in z.namelist() if n.startswith(tuple(sys.argv[2:]))])' "$wheel" "$@")
  mv "$tmp" "$dest"
}

# The torch wheel itself (~530 MB).
torch2_fetch_torch() {
  torch2_fetch_wheel "torch==$torch2_version" "torch-${torch2_version}-cp311-cp311-manylinux_2_28_x86_64.whl" \
    7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a manylinux_2_28_x86_64
}

# CUDA 13's runtime and CUPTI libraries, which the wheel's libtorch_cpu.so links (its profiler)
# even when nothing runs on a GPU.
torch2_fetch_cuda_runtime() {
  torch2_fetch_wheel "nvidia-cuda-runtime==13.0.96" \
    "nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl" \
    7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548 manylinux_2_17_x86_64
  torch2_fetch_wheel "nvidia-cuda-cupti==13.0.85" \
    "nvidia_cuda_cupti-13.0.85-py3-none-manylinux_2_25_x86_64.whl" \
    4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8 manylinux_2_25_x86_64
}

# CUDA 13.0's crt/ headers, which the runtime's headers include (cuda_runtime.h, host_defines.h):
# compiling LibTorch's CUDA headers needs both wheels' include/ folders.
torch2_fetch_cuda_crt() {
  torch2_fetch_wheel "nvidia-cuda-crt==13.0.88" \
    "nvidia_cuda_crt-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl" \
    2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4 manylinux_2_17_x86_64
}

#!/usr/bin/env bash
# Installs what ms needs on Debian 12 / Ubuntu, then configures and builds it into build/ (Release).
# Idempotent: packages already present are not reinstalled, and a second build is incremental.
#
#   bash scripts/setup.sh              # packages + build
#   MS_SETUP_SKIP_BUILD=1 bash scripts/setup.sh    # packages only
#   MS_CMAKE_ARGS="-DMS_WITH_TORCH=OFF" bash scripts/setup.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Debian packages for the build, the tests and the benchmarks. libopenblas0-openmp is explicit:
# without it LibTorch falls back to the reference BLAS (about 20x slower matmul).
packages=(
  build-essential cmake ninja-build lld pkg-config git ca-certificates
  libfmt-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev catch2
  libcurl4-openssl-dev libssl-dev libsqlite3-dev zlib1g-dev
  libcpp-httplib-dev libzip-dev libturbojpeg0-dev libpng-dev
  # The servers' front checks compressed request bodies with brotli's decoder (and zlib).
  libbrotli-dev
  libtorch-dev libopenblas0-openmp
  # Parquet datasets' compressed pages (MS_WITH_PARQUET_CODECS): snappy (pyarrow's default), zstd.
  libsnappy-dev libzstd-dev
  # Gloo headers for data-parallel training (c10d ProcessGroupGloo.hpp includes them).
  libgloo-dev
  # `ms export --format onnx` (MS_WITH_ONNX): ONNX's protobuf classes and checker.
  libonnx-dev libprotobuf-dev
  python3 curl openssl
  # Test data (pinned by sha256 in scripts/make_dataset_fixtures.py) and dataset benchmarks:
  # libjpeg-turbo's tjbench, PIL + numpy + torch + pandas under /usr/bin/python3 as peers.
  dataset-fashion-mnist python3-sklearn
  # Classical Chinese poems for the text-generation example and its test (examples/poetry).
  fortunes-zh
  libjpeg-turbo-progs python3-pil python3-numpy python3-pandas python3-torch
  # Python torch/torchvision on the same LibTorch: fixture generators, the ResNet fidelity tests
  # and bench/setup_st_venv.sh (sentence-transformers for bench/).
  python3-torchvision python3-venv
  # The libFuzzer targets of tests/fuzz (scripts/test.sh builds them in build-fuzz): clang and its
  # runtime libraries (libclang_rt.fuzzer, asan, ubsan).
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Make LibTorch use the OpenMP build of OpenBLAS: it obeys at::set_num_threads, the pthread
# build does not. libtorch_cpu links libopenblas.so.0 as well as libblas.so.3: left on the pthread
# build, both get loaded, and OpenBLAS's yielding pthreads fight LibTorch's spinning OpenMP threads
# for the cores (GPT-2 decoding on 2 cores ran 3.5x slower). Only switch when the alternative
# exists (it does once libopenblas0-openmp is in).
arch_dir="/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  target="$arch_dir/openblas-openmp/$lib"
  name="$lib-$(basename "$arch_dir")"
  if [ -e "$target" ] && command -v update-alternatives >/dev/null; then
    current="$(update-alternatives --query "$name" 2>/dev/null | awk '/^Value:/{print $2}')"
    if [ "$current" != "$target" ]; then
      ${sudo_cmd[@]+"${sudo_cmd[@]}"} update-alternatives --set "$name" "$target" >/dev/null 2>&1 || true
    fi
  fi
done

if [ "${MS_SETUP_SKIP_BUILD:-0}" != "1" ]; then
  jobs="${MS_BUILD_JOBS:-$(nproc)}"
  # shellcheck disable=SC2086
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${MS_CMAKE_ARGS:-} >/dev/null
  ninja -C build -j "$jobs"
fi

#!/usr/bin/env bash
# Builds ms against LibTorch 2.11's CPU library (PyPI's torch wheel, the GPU machine's version) in
# build-torch2/ and runs the torch-layer unit tests there, so that code only LibTorch 2.x compiles
# (its fused attention, at::scaled_dot_product_attention) runs, and is tested, on a machine with
# neither a GPU nor a 2.x LibTorch install. Slower than check_torch2_headers.sh (a full build of
# the torch layer: ~20 minutes on 2 cores), which only compiles.
#
#   bash scripts/check_torch2_build.sh                 # build, then the torch unit tests
#   bash scripts/check_torch2_build.sh "[kernels]"     # a Catch2 filter for the unit tests
#
# The wheel is a CUDA build; only its CPU library is linked (libtorch_cpu.so and libc10.so),
# with CUDA's runtime and CUPTI from PyPI's nvidia wheels to satisfy its links: nothing runs on a
# GPU. ONNX export is left out: the wheel bundles ONNX and protobuf headers that clash with
# Debian's. The end-to-end tests run against it by hand:
#   MS_BIN=build-torch2/bin/ms MS_SOURCE_DIR=$PWD MS_TEST_HOOKS=1 python3 tests/e2e/test_X.py
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/torch2_wheel.sh"
build="${MS_TORCH2_BUILD:-$root/build-torch2}"

# A site-packages-like folder: torch/ (headers and the CPU libraries) beside nvidia/cu13/lib,
# where libtorch_cpu.so's RPATH looks for CUDA's runtime and CUPTI.
torch_dir="$torch2_cache/torch-${torch2_version}-cpu"
if [ ! -d "$torch_dir" ]; then
  parts="$torch_dir.parts.$$"
  torch2_extract "$(torch2_fetch_torch)" "$parts/torch-wheel" torch/include/ torch/lib/libc10.so \
    torch/lib/libtorch_cpu.so torch/lib/libgomp.so.1
  mkdir -p "$parts/site/nvidia/cu13/lib"
  mv "$parts/torch-wheel/torch" "$parts/site/"
  cuda_wheels="$(torch2_fetch_cuda_runtime)"
  for wheel in $cuda_wheels; do
    torch2_extract "$wheel" "$parts/$(basename "$wheel")" nvidia/cu13/lib/
    cp -a "$parts/$(basename "$wheel")/nvidia/cu13/lib/." "$parts/site/nvidia/cu13/lib/"
  done
  mv "$parts/site" "$torch_dir" && rm -rf "$parts"
fi

# A CMake package named Torch over the CPU library only: the wheel's own TorchConfig.cmake wants
# the CUDA toolkit. The definitions are those its torch_cpu target carries.
mkdir -p "$build/torch-cpu-package"
cat > "$build/torch-cpu-package/TorchConfig.cmake" <<CMAKE
set(TORCH_INCLUDE_DIRS "$torch_dir/torch/include" "$torch_dir/torch/include/torch/csrc/api/include")
add_library(torch2_cpu SHARED IMPORTED)
set_target_properties(torch2_cpu PROPERTIES
  IMPORTED_LOCATION "$torch_dir/torch/lib/libtorch_cpu.so"
  INTERFACE_INCLUDE_DIRECTORIES "\${TORCH_INCLUDE_DIRS}"
  INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=1;USE_DISTRIBUTED;USE_C10D_GLOO;USE_RPC;USE_TENSORPIPE")
add_library(torch2_c10 SHARED IMPORTED)
set_target_properties(torch2_c10 PROPERTIES IMPORTED_LOCATION "$torch_dir/torch/lib/libc10.so")
set(TORCH_LIBRARIES torch2_cpu torch2_c10)
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")
set(Torch_FOUND TRUE)
CMAKE

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMS_TEST_HOOKS=ON -DMS_WITH_ONNX=OFF \
  -DTorch_DIR="$build/torch-cpu-package" \
  -DCMAKE_BUILD_RPATH="$torch_dir/torch/lib" ${MS_CMAKE_ARGS:-} >"$build.configure.log"
nice cmake --build "$build" -j "$(nproc)"
"$build/bin/ms" env | grep -i libtorch
"$build/bin/ms_torch_unit_tests" "$@"

#!/usr/bin/env bash
# On the lent GPU machine (16 cores, no network), with build-carry/ from prepare_carry.sh:
#   1. scripts/gpu-check.sh with the float16 MiniLM and the carried Gloo headers (device checks,
#      the batch-inference and training benchmarks, the end-to-end tests on gpu:0);
#   2. a torch-free build with the carried cpp-httplib and SQLite, then bench/hub_download.sh
#      (ms vs curl vs Python modelscope on loopback) on a machine with cores to spare.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
carry="$root/build-carry"

if [ "${MS_DEVICE_SKIP_GPU:-0}" != 1 ]; then
  MS_MINILM_DIR="$carry/minilm-fp16" bash scripts/gpu-check.sh 2>&1 |
    grep -v -E "^-- |CMake Warning|TorchConfig|CMAKE_CUDA_ARCH|its value" || echo "gpu-check FAILED"
fi

echo; echo "== hub build (torch-free, carried cpp-httplib + SQLite) ($(date -u +%H:%M:%S))"
export PKG_CONFIG_PATH="$carry/deps/lib/pkgconfig" CMAKE_PREFIX_PATH="$carry/deps"
export LD_LIBRARY_PATH="$carry/deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cmake -S . -B build-hub -G Ninja -DCMAKE_BUILD_TYPE=Release -DMS_WITH_TORCH=OFF \
  -DMS_BUILD_TESTS=OFF > build-hub.log 2>&1 && cmake --build build-hub -j "$(nproc)" >> build-hub.log 2>&1 ||
  { tail -30 build-hub.log; exit 1; }
build-hub/bin/ms env | grep components

site="$carry/site-packages"
mkdir -p "$site" && tar xJf "$carry/modelscope.tar.xz" -C "$site"
cat > "$carry/python-modelscope" <<PY
#!/usr/bin/env bash
PYTHONPATH="$site" exec python3 "\$@"
PY
chmod +x "$carry/python-modelscope"
"$carry/python-modelscope" -c "import modelscope; print('python modelscope', modelscope.__version__)" ||
  echo "python modelscope unavailable: the mixed-repo row will say n/a"

echo; echo "== bench/hub_download.sh ($(date -u +%H:%M:%S))"
MS_BIN="$root/build-hub/bin/ms" MS_MODELSCOPE_PYTHON="$carry/python-modelscope" RUNS="${RUNS:-3}" \
  BENCH_DIR=/tmp timeout 400 bash bench/hub_download.sh

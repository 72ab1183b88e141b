#!/usr/bin/env bash
# Prepares build-carry/ (git-ignored) for a run on the lent GPU machine, which has no network,
# takes at most 64 MiB of carried files, and lacks cpp-httplib, SQLite headers and the Python
# modelscope client:
#   build-carry/minilm-fp16/   all-MiniLM-L6-v2 with float16 weights (scripts/make_half_model.py)
#   build-carry/gloo/include/  Debian's Gloo headers, which the torch layer compiles against
#   build-carry/deps/          this machine's (Debian 12) cpp-httplib and SQLite, header + library,
#                              with brotli (which libcpp-httplib needs) and a pkg-config file
#   build-carry/modelscope.tar.xz  the site-packages of the interop venv (modelscope==1.36.3)
# Then, on the device: bash bench/device/run.sh  (see there).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
carry="$root/build-carry"
mkdir -p "$carry"
if [ ! -f "$carry/minilm-fp16/model.safetensors" ]; then
  model="$(bash "$root/scripts/fetch_minilm.sh" | tail -1)"
  /usr/bin/python3 "$root/scripts/make_half_model.py" "$model" "$carry/minilm-fp16"
fi
# Gloo's headers (c10d's ProcessGroupGloo.hpp includes them; PyPI's torch wheels lack them).
rm -rf "$carry/gloo" && mkdir -p "$carry/gloo/include" && cp -r /usr/include/gloo "$carry/gloo/include/"
deps="$carry/deps"
rm -rf "$deps" && mkdir -p "$deps/include" "$deps/lib/pkgconfig"
cp /usr/include/httplib.h /usr/include/sqlite3.h /usr/include/sqlite3ext.h /usr/include/zlib.h /usr/include/zconf.h "$deps/include/"
cp -r /usr/include/brotli "$deps/include/"
lib=/usr/lib/x86_64-linux-gnu
cp -P "$lib"/libcpp-httplib.so* "$lib"/libsqlite3.so* "$lib"/libbrotli{common,dec,enc}.so.1* "$deps/lib/"
cat > "$deps/lib/pkgconfig/cpp-httplib.pc" <<PC
prefix=\${pcfiledir}/../..
Name: cpp-httplib
Description: cpp-httplib carried from Debian 12
Version: 0.11.4
Libs: -L\${prefix}/lib -lcpp-httplib
Cflags: -I\${prefix}/include -DCPPHTTPLIB_OPENSSL_SUPPORT -DCPPHTTPLIB_ZLIB_SUPPORT -DCPPHTTPLIB_BROTLI_SUPPORT
PC
venv="$root/build/venv-modelscope-1.40.2/lib/python3.11/site-packages"
[ -d "$venv/modelscope" ] || MS_MODELSCOPE_VERSIONS=1.40.2 bash "$root/scripts/setup_python_interop.sh"
(cd "$venv" && tar cJf "$carry/modelscope.tar.xz" --exclude=__pycache__ --exclude='*.pyc' \
  modelscope modelscope_hub requests urllib3 idna certifi charset_normalizer tqdm filelock packaging \
  ./*.dist-info)
du -sh "$carry"

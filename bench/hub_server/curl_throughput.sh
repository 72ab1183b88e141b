#!/usr/bin/env bash
# Loopback throughput of `ms hub serve` measured with curl: blob upload (PUT) and file download
# of one big file, to /dev/null and to a file. Prints MB/s (10^6 bytes per second).
#
#   bash bench/hub_server/curl_throughput.sh [SIZE_MIB=1024] [MS_BIN=build/bin/ms]
set -euo pipefail

size_mib="${1:-1024}"
ms="${MS_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin/ms}"
work="$(mktemp -d /tmp/ms-bench-hub.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

token="$("$ms" hub token create bench --root "$work/root")"
"$ms" hub serve --root "$work/root" --port 0 > "$work/serve.out" 2> "$work/serve.err" &
server_pid=$!
for _ in $(seq 100); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
endpoint="$(sed -n 's/.*listening on //p' "$work/serve.out")"
auth=(-H "Authorization: Bearer $token")

head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/big.bin"
sha="$(sha256sum "$work/big.bin" | cut -d' ' -f1)"
bytes="$(stat -c %s "$work/big.bin")"
curl -sf "${auth[@]}" -X POST "$endpoint/api/v1/models" -d '{"Path":"bench","Name":"m","Visibility":5}' > /dev/null

mbps() { python3 -c "import sys; print(f'{$bytes / float(sys.argv[1]) / 1e6:.0f}')" "$1"; }

t="$(curl -sf "${auth[@]}" -H 'Expect:' -T "$work/big.bin" -o /dev/null -w '%{time_total}' \
  "$endpoint/api/v1/repos/models/bench/m/info/lfs/objects/$sha")"
echo "upload (PUT, sha256 verified, fsync): $(mbps "$t") MB/s"
curl -sf "${auth[@]}" -X POST "$endpoint/api/v1/repos/models/bench/m/commit/master" \
  -d "{\"actions\":[{\"action\":\"create\",\"path\":\"big.bin\",\"type\":\"lfs\",\"size\":$bytes,\"sha256\":\"$sha\"}]}" > /dev/null

url="$endpoint/api/v1/models/bench/m/repo?Revision=master&FilePath=big.bin"
for run in 1 2 3; do
  t="$(curl -sf -o /dev/null -w '%{time_total}' "$url")"
  echo "download to /dev/null, run $run: $(mbps "$t") MB/s"
done
t="$(curl -sf -o "$work/got.bin" -w '%{time_total}' "$url")"
echo "download to a file: $(mbps "$t") MB/s"
cmp -s "$work/got.bin" "$work/big.bin" && echo "bytes identical"

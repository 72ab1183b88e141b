#!/usr/bin/env bash
# The quick start on embedded defaults: sets up (packages + build), then shows what ms sees of this
# machine, a shipped example configuration with an override applied, and a hub round trip
# (serve, upload, download) on a temporary root.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh
ms="$root/build/bin/ms"

echo "== ms env"
"$ms" env
echo
echo "== ms config show configs/text-classification --set train.max_epochs=1"
"$ms" config show configs/text-classification --set train.max_epochs=1

# The hub job: a self-hosted hub on 127.0.0.1 with a temporary root, a model folder uploaded to it
# and downloaded back into a temporary cache, exactly as Python's modelscope lays it out.
echo
echo "== ms hub serve, ms upload, ms download (temporary hub root and cache)"
work="$(mktemp -d)"
"$ms" hub serve --root "$work/hub" --port 0 --json > "$work/serve.json" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/serve.json" ] && break; sleep 0.1; done
export MODELSCOPE_ENDPOINT="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$work/serve.json")"
export MODELSCOPE_API_TOKEN="$("$ms" hub token create demo --root "$work/hub")"
export MODELSCOPE_CACHE="$work/cache" MODELSCOPE_CREDENTIALS_PATH="$work/credentials"
"$ms" upload demo/text-classification configs/text-classification --create --commit-message "quick start"
local_dir="$("$ms" download demo/text-classification)"
echo "downloaded to $local_dir:"
(cd "$local_dir" && find . -type f | sort)
diff -r configs/text-classification "$local_dir" --exclude=.msc --exclude=.mdl --exclude=.mv && echo "round trip: identical"

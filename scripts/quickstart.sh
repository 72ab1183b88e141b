#!/usr/bin/env bash
# The quick start on embedded defaults: sets up (packages + build), then shows what ms sees of this
# machine and a shipped example configuration with an override applied.
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

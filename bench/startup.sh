#!/usr/bin/env bash
# Start-up time of `ms --version` and `ms config show` (no LibTorch) against `ms env` (loads
# LibTorch), with hyperfine. Peer: the Python modelscope CLI's start-up, when installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
command -v hyperfine >/dev/null || { echo "bench: install hyperfine (apt-get install hyperfine)" >&2; exit 6; }

cmds=("$ms --version" "$ms config show $root/configs/text-classification" "$ms env")
peer="${MODELSCOPE_CLI:-}"
[ -n "$peer" ] && cmds+=("$peer --help")
hyperfine --warmup 3 --runs "${RUNS:-30}" -N --export-markdown "${OUT:-/dev/stdout}" "${cmds[@]}"

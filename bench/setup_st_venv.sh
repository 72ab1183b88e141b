#!/usr/bin/env bash
# The Python side of bench/infer_minilm.sh and of the fixture generators (scripts/make_*.py):
# Debian's python3-torch 1.13 (same LibTorch as ms) plus pinned transformers/sentence-transformers
# from PyPI, in a venv that sees the system packages.
#
#   bash bench/setup_st_venv.sh [VENV=~/.cache/ms-infer/venv]
set -euo pipefail
venv="${1:-$HOME/.cache/ms-infer/venv}"
/usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null || {
  echo "setup_st_venv: needs Debian's python3-torch and python3-torchvision (apt-get install python3-torchvision)" >&2
  exit 6
}
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q "transformers==4.41.2" "sentence-transformers==2.7.0" "tokenizers==0.19.1"
"$venv/bin/python" -c 'import torch, transformers, sentence_transformers as s; print("torch", torch.__version__, "transformers", transformers.__version__, "sentence-transformers", s.__version__)'
echo "$venv/bin/python"

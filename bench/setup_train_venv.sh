#!/usr/bin/env bash
# The Python side of bench/train_minilm_spam.sh: Debian's python3-torch 1.13 (the LibTorch ms links)
# plus transformers from PyPI, in a venv that sees the system packages.
#
#   bash bench/setup_train_venv.sh [VENV=bench/.venv-train]     # prints the venv's python
#
# transformers 4.49.0 is the newest release that runs on torch 1.13: 4.50.x and 4.51.x fail to
# import modeling_bert (No module named 'torch.distributed.tensor'), and 4.52 on need torch >= 2.1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/.venv-train}"
/usr/bin/python3 -c 'import torch' 2>/dev/null || {
  echo "setup_train_venv: needs Debian's python3-torch (apt-get install python3-torch)" >&2
  exit 6
}
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "transformers==4.49.0" "tokenizers==0.21.4" \
  "huggingface-hub==0.36.2" "safetensors==0.8.0" >&2
"$venv/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' >&2
echo "$venv/bin/python"

#!/usr/bin/env bash
# Runs the transformers interop tests against the newest transformers release, which needs a
# newer torch than Debian's 1.13 (transformers 5.x refuses to build BERT under torch 2.6).
#
# CI's build/venv-transformers (scripts/setup_python_interop.sh) is transformers 4.49.0 over
# Debian's torch 1.13, the newest pair that runs on the LibTorch ms links. This script makes
# build/venv-transformers-newest from scripts/requirements-transformers-newest.txt (transformers
# 5.25.0 over PyPI's torch 2.11.0, pinned by sha256; about 2.8 GB of wheels, most of them CUDA
# libraries that `import torch` loads even on a CPU) and runs the same tests with it:
#   tests/e2e/test_train_interop.py      output/ and checkpoints of `ms train` load and score alike
#   tests/e2e/test_export_safetensors.py `ms export --format safetensors` repos load and generate alike
#   tests/e2e/test_export_onnx.py -k gpt2  the ONNX GPT-2 against transformers' logits (needs
#                                          build/venv-onnxruntime, as in CI)
# It is not in CI for the size of that download. Run it when a new transformers comes out (update
# the requirements file's pins) or when touching model loading, export or the checkpoint format.
#
#   bash scripts/check_transformers_newest.sh        # MS_BIN (default build/bin/ms) must be built
#
# Env: MS_BIN, PYTHON (the python3 of the venv; default python3), MS_WHEEL_CACHE (a folder of
# wheels pip may take instead of downloading them, such as scripts/check_torch2_build.sh's torch).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
requirements="$root/scripts/requirements-transformers-newest.txt"
venv="$root/build/venv-transformers-newest"
ms="${MS_BIN:-$root/build/bin/ms}"
[ -x "$ms" ] || { echo "check_transformers_newest.sh: $ms is not built (scripts/test.sh builds it)" >&2; exit 1; }

ready() {  # the venv holds every pinned package at its version, and transformers' BERT imports
  "$venv/bin/python" - "$requirements" >/dev/null 2>&1 <<'PY'
import importlib.metadata, re, sys
for line in open(sys.argv[1]):
    m = re.match(r"([A-Za-z0-9_.-]+)==([^ ]+)", line)
    if m and importlib.metadata.version(m.group(1)) != m.group(2):
        sys.exit(1)
from transformers import BertForSequenceClassification  # noqa: F401 (its torch layer imports)
PY
}

if ! ready; then
  echo "making $venv (about 2.8 GB from PyPI; log: $venv.log)"
  find_links=()
  [ -d "${MS_WHEEL_CACHE:-$HOME/.cache/ms/wheels}" ] && find_links=(--find-links "${MS_WHEEL_CACHE:-$HOME/.cache/ms/wheels}")
  # An interrupted install fails ready() above and is made again from scratch (--clear).
  if ! { "$python" -m venv --clear "$venv" &&
         "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
           "${find_links[@]}" -r "$requirements"; } >"$venv.log" 2>&1; then
    tail -20 "$venv.log"; echo "check_transformers_newest.sh: the venv could not be made" >&2; exit 1
  fi
  ready || { echo "check_transformers_newest.sh: $venv does not import transformers' BERT" >&2; exit 1; }
fi
"$venv/bin/python" -c 'import torch, transformers; print("transformers", transformers.__version__, "over torch", torch.__version__)'

export MS_BIN="$ms" MS_SOURCE_DIR="$root" MS_TRANSFORMERS_PYTHON="$venv/bin/python" MS_NO_PROGRESS=1
failed=0
for test in "tests/e2e/test_train_interop.py" "tests/e2e/test_export_safetensors.py" \
  "tests/e2e/test_export_onnx.py -k gpt2"; do
  echo "== $test"
  # shellcheck disable=SC2086
  "$python" $test || failed=1
done
exit "$failed"

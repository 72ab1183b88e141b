#!/usr/bin/env bash
# Creates build/venv-modelscope with the official Python `modelscope` package, used by the interop
# end-to-end test (tests/e2e/test_hub_interop.py) to upload to and download from `ms hub serve`.
# The version is pinned: v1.36.3 is the last release whose hub client lives in the package itself
# (see shared reference modelscope-spec.md section 0).
#
#   bash scripts/setup_python_interop.sh            # into build/venv-modelscope
#   MS_INTEROP_VENV=/some/dir bash scripts/setup_python_interop.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MS_INTEROP_VENV:-$root/build/venv-modelscope}"
python="${PYTHON:-python3}"

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "modelscope==1.36.3"
"$venv/bin/python" -c 'import modelscope, sys; print("modelscope", modelscope.__version__, "in", sys.prefix)'

#!/usr/bin/env bash
# Sets up (packages + build, through scripts/setup.sh, and the Python modelscope venv for the
# interop tests), checks the layering, then runs every test (Catch2 units and end-to-end tests of
# the real binary) through CTest. Skips count as failures here: everything they need is installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh
bash scripts/setup_python_interop.sh
scripts/check_layering.sh
MS_TESTS_STRICT=1 ctest --test-dir build --output-on-failure --timeout 900 -j "${MS_TEST_JOBS:-2}"

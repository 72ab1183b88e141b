#!/usr/bin/env bash
# Sets up (packages + build, through scripts/setup.sh), checks the layering, then runs every test
# (Catch2 units and end-to-end tests of the real binary) through CTest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh
scripts/check_layering.sh
ctest --test-dir build --output-on-failure --timeout 900 -j "${MS_TEST_JOBS:-2}"

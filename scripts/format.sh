#!/usr/bin/env bash
# Applies clang-format (Google base, 100 columns; see .clang-format) to the project's C++ files.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
git ls-files '*.h' '*.hpp' '*.cpp' '*.cc' | xargs clang-format -i

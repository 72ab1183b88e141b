#!/usr/bin/env bash
# Applies clang-format (Google base, 100 columns; see .clang-format) to the project's C++ files.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Debian names the binary after its version (clang-format-14) unless clang-format is installed.
format="$(command -v clang-format || command -v clang-format-14)" ||
  { echo "format.sh: no clang-format (apt install clang-format)" >&2; exit 1; }
git ls-files '*.h' '*.hpp' '*.cpp' '*.cc' | xargs "$format" -i

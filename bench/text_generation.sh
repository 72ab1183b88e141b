#!/usr/bin/env bash
# Generation tokens/s, `ms infer` vs transformers generate(): see bench/text_generation.py.
#   bash bench/text_generation.sh [--threads 2] [--batches 1 8] [--repeat 2]
# Needs build/venv-transformers (scripts/setup_python_interop.sh) and GPT-2's BPE vocabulary
# (scripts/fetch_gpt2_vocab.py, which scripts/test.sh runs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vocab="${MS_GPT2_VOCAB_DIR:-$root/build/models/gpt2-vocab}"
[ -f "$vocab/vocab.json" ] || python3 "$root/scripts/fetch_gpt2_vocab.py" "$vocab" >/dev/null
[ -x "$root/build/venv-transformers/bin/python" ] || bash "$root/scripts/setup_python_interop.sh"
MS_GPT2_VOCAB_DIR="$vocab" exec "$root/build/venv-transformers/bin/python" \
  "$root/bench/text_generation.py" "$@"

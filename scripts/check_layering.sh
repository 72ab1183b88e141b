#!/usr/bin/env bash
# Fails when a torch-free module (or the CLI) includes LibTorch, ATen or c10 headers, or when a
# module reaches into another module's private src/ folder. CI runs this before the tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Modules below the torch line in ARCHITECTURE.md; everything else under lib/ may use torch.
torch_free=(core config io hub http_server hub_server data text metrics infer serve)
status=0

scan_dirs=(apps/ms-cli)
for m in "${torch_free[@]}"; do
  [ -d "lib/$m" ] && scan_dirs+=("lib/$m")
done

torch_includes=$(grep -rnE '^\s*#\s*include\s*[<"](torch/|ATen/|c10/|caffe2/)' "${scan_dirs[@]}" \
  --include='*.h' --include='*.hpp' --include='*.cpp' --include='*.cc' || true)
if [ -n "$torch_includes" ]; then
  echo "check_layering: torch headers in torch-free code:" >&2
  echo "$torch_includes" >&2
  status=1
fi

private_includes=$(grep -rnE '^\s*#\s*include\s*"[^"]*(\.\./)+[a-z_]+/src/' lib apps \
  --include='*.h' --include='*.hpp' --include='*.cpp' || true)
if [ -n "$private_includes" ]; then
  echo "check_layering: includes of another module's private src/ headers:" >&2
  echo "$private_includes" >&2
  status=1
fi

if [ $status -eq 0 ]; then
  echo "check_layering: ok (${#scan_dirs[@]} torch-free folders checked)"
fi
exit $status

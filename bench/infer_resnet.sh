#!/usr/bin/env bash
# A folder of JPEGs through ResNet-18 (image-classification, top 5): `ms infer` vs a Python
# torchvision + PIL loop doing the same work (decode, Resize 256, CenterCrop 224, normalise,
# batch 32, forward, softmax, top 5), same machine, same thread count, best of BENCH_REPEAT.
#
#   bash bench/infer_resnet.sh [N_IMAGES=600] [THREADS=1 2]
#
# The weights are a random torchvision ResNet-18 (scripts/make_tiny_vision.py --resnet 18: the
# speed does not depend on them), the images 640x480 JPEGs (bench/make_jpegs.py). Peer Python:
# $MS_TORCHVISION_PYTHON, else ~/.cache/ms-infer/venv/bin/python, else /usr/bin/python3 (torch,
# torchvision, PIL). Wall time is the whole process on both sides (start-up, model
# load, decoding, output).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
n="${1:-600}"
shift || true
threads="${*:-1 2}"
repeat="${BENCH_REPEAT:-2}"
work="${MS_BENCH_DIR:-/tmp/ms-bench-data}"
py=""
for cand in "${MS_TORCHVISION_PYTHON:-}" "$HOME/.cache/ms-infer/venv/bin/python" /usr/bin/python3; do
  if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c "import torch, torchvision, PIL" 2>/dev/null; then
    py="$cand"
    break
  fi
done
[ -n "$py" ] || { echo "no Python with torch, torchvision and PIL" >&2; exit 6; }

images="$work/jpeg-$n"
[ -d "$images" ] || /usr/bin/python3 "$root/bench/make_jpegs.py" "$images" "$n"
model="$work/resnet18-bench"
if [ ! -f "$model/model.safetensors" ]; then
  "$py" "$root/scripts/make_tiny_vision.py" --resnet 18 "$model" >&2
  # The standard ImageNet evaluation preprocessing instead of the test's small sizes.
  "$py" - "$model/configuration.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["preprocessor"]["val"] = [{"type": "Resize", "size": 256}, {"type": "CenterCrop", "size": 224},
                            {"type": "ToTensor"},
                            {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}]
json.dump(c, open(p, "w"), indent=2)
PY
fi

peer() {  # THREADS -> runs the torchvision loop, prints nothing
  OMP_NUM_THREADS="$1" "$py" - "$model" "$images" "$1" <<'PY'
import os, sys
import torch, torchvision
from PIL import Image
from safetensors.torch import load_file
from torchvision import transforms
model_dir, root, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
model = torchvision.models.resnet18(num_classes=10)
model.load_state_dict(load_file(os.path.join(model_dir, "model.safetensors")))
model.eval()
tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                         transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs)
out = []
with torch.inference_mode():
    for i in range(0, len(files), 32):
        batch = torch.stack([tf(Image.open(f).convert("RGB")) for f in files[i:i + 32]])
        top = torch.softmax(model(batch), -1).topk(5)
        out.extend(zip(top.values.tolist(), top.indices.tolist()))
assert len(out) == len(files)
PY
}

best_of() {  # COMMAND... -> best wall seconds of $repeat runs
  local best="" s e t
  for _ in $(seq "$repeat"); do
    s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N)
    t=$(python3 -c "print(f'{$e - $s:.2f}')")
    best=$(python3 -c "print(min(float('$t'), float('${best:-1e9}')))")
  done
  echo "$best"
}

torch_v=$("$py" -c "import torch, torchvision; print(f'torch {torch.__version__}, torchvision {torchvision.__version__}')")
echo "$n JPEGs 640x480, ResNet-18, batch 32; ms (LibTorch $("$ms" env --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["libtorch"].get("version"))')) vs Python ($torch_v); $(nproc) cores; best of $repeat"
echo
echo "| threads | ms wall | ms images/s | python wall | python images/s | ratio |"
echo "| --- | --- | --- | --- | --- | --- |"
for t in $threads; do
  ms_s=$(best_of env OMP_NUM_THREADS="$t" "$ms" infer -m "$model" --input-dir "$images" -b 32 --threads "$t")
  py_s=$(best_of peer "$t")
  python3 -c "n=$n; m=$ms_s; p=$py_s; print(f'| $t | {m:.2f} s | {n/m:.0f} | {p:.2f} s | {n/p:.0f} | {p/m:.2f}x |')"
done

#!/usr/bin/env bash
# ResNet-18 over a folder of images on gpu:0 (issue 19): `ms infer --device gpu:0` against a
# torchvision loop with a DataLoader decoding on CPU worker processes (PIL, Resize 256,
# CenterCrop 224, normalise; pinned batches, forward, softmax, top 5 to the host), same card.
#
#   MS_BIN=build-gpu/bin/ms bash bench/device/images_gpu.sh     # on the lent GPU machine
#
# Env: N (images, default 4000), BATCH (64), LOADER_WORKERS (default: the cores), WORK (scratch).
# The images are 640x480 PNGs cropped from scikit-learn's two sample photos (the device build of
# ms has no JPEG decoder: libjpeg-turbo is not on that machine); the weights are a random
# torchvision ResNet-18 (scripts/make_tiny_vision.py --resnet 18; speed does not depend on them).
# ms: whole process (wall) and its own run loop (its -v log). Python: start-up (imports, model,
# warm-up) and the loop over all images, reported apart.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ms="${MS_BIN:?set MS_BIN}"
n="${N:-4000}"
batch="${BATCH:-64}"
py="${PYTHON:-python3}"
work="${WORK:-$(mktemp -d)}"
device="${DEVICE:-gpu:0}"  # DEVICE=cpu: a dry run on a machine without a GPU
mkdir -p "$work"

"$py" - "$work/images" "$n" <<'PY'
import os, random, sys
from PIL import Image
from sklearn.datasets import load_sample_images
out, n = sys.argv[1], int(sys.argv[2])
srcs = [Image.fromarray(a) for a in load_sample_images().images]
rng = random.Random(0)
os.makedirs(out, exist_ok=True)
for i in range(n):
    src = srcs[i % 2]
    x, y = rng.randrange(0, 80), rng.randrange(0, 60)
    img = src.crop((x, y, x + 560, y + 367)).resize((640, 480), Image.BILINEAR)
    img.save(os.path.join(out, f"{i:05d}.png"), compress_level=1)
PY
model="$work/resnet18"
"$py" "$root/scripts/make_tiny_vision.py" --resnet 18 "$model" >/dev/null
"$py" - "$model/configuration.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["preprocessor"]["val"] = [{"type": "Resize", "size": 256}, {"type": "CenterCrop", "size": 224},
                            {"type": "ToTensor"},
                            {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}]
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY

echo "ResNet-18, $n PNGs 640x480, batch $batch, $device"
for workers in 4 16; do
  s=$(date +%s.%N)
  "$ms" -v infer -m "$model" --input-dir "$work/images" -b "$batch" --device "$device" \
    --workers "$workers" -o "$work/ms.jsonl" 2>"$work/ms.log" || { tail -5 "$work/ms.log"; exit 1; }
  e=$(date +%s.%N)
  job=$(sed -n 's/.* inputs: .*, \([0-9.]*\) s$/\1/p' "$work/ms.log")
  awk -v n="$n" -v w="$(awk "BEGIN{print $e - $s}")" -v j="$job" -v k="$workers" 'BEGIN {
    printf "ms infer, %d workers: %.0f images/s (run loop %.2f s), %.0f images/s whole process (%.2f s)\n",
      k, n / j, j, n / w, w }'
  grep -o -e 'stages: .*' -e 'inside the batches.*' "$work/ms.log" | sed 's/^/  /'
done

LOADER_WORKERS="${LOADER_WORKERS:-$(nproc)}" PEER_DEVICE="$([ "$device" = cpu ] && echo cpu || echo cuda:0)" "$py" - "$model" "$work/images" "$batch" <<'PY'
import os, sys, time
t_start = time.perf_counter()
import torch, torchvision
from PIL import Image
from safetensors.torch import load_file
from torchvision import transforms
model_dir, root, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
workers = int(os.environ["LOADER_WORKERS"])
dev = torch.device(os.environ["PEER_DEVICE"])
model = torchvision.models.resnet18(num_classes=10)
model.load_state_dict(load_file(os.path.join(model_dir, "model.safetensors")))
model = model.eval().to(dev)
tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                         transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
files = sorted(os.path.join(root, f) for f in os.listdir(root))

class Files(torch.utils.data.Dataset):
    def __len__(self):
        return len(files)
    def __getitem__(self, i):
        return tf(Image.open(files[i]).convert("RGB"))

def run(limit=None):
    data = Files() if limit is None else torch.utils.data.Subset(Files(), range(limit))
    loader = torch.utils.data.DataLoader(data, batch_size=batch, num_workers=workers,
                                         pin_memory=True)
    out = []
    with torch.inference_mode():
        for x in loader:
            top = torch.softmax(model(x.to(dev, non_blocking=True)), -1).topk(5)
            out.extend(zip(top.values.cpu().tolist(), top.indices.cpu().tolist()))
    return out

run(limit=2 * batch)  # warm-up: CUDA context, cuDNN, worker start
if dev.type == "cuda":
    torch.cuda.synchronize()
startup = time.perf_counter() - t_start
t0 = time.perf_counter()
out = run()
seconds = time.perf_counter() - t0
assert len(out) == len(files)
print(f"torchvision DataLoader ({workers} workers), torch {torch.__version__}: "
      f"{len(files) / seconds:.0f} images/s (loop {seconds:.2f} s), "
      f"{len(files) / (seconds + startup):.0f} images/s with start-up ({startup:.2f} s)")
PY

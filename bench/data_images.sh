#!/usr/bin/env bash
# Images/s decoded + resized (224x224 bilinear) + normalised through the ms loader, with 0, 1 and 2
# workers, against libjpeg-turbo's single-core decode limit (tjbench) and a Python loader doing
# the same work (PIL + torch DataLoader from Debian's /usr/bin/python3, same worker counts).
#
#   bash bench/data_images.sh [N_IMAGES]        (needs build/bin/ms; see bench/README.md)
#
# Images: N JPEG crops (quality 90, 640x480) of scikit-learn's china.jpg / flower.jpg, written
# once by PIL into $MS_BENCH_DIR (default /tmp/ms-bench-data); then the 10,000 Fashion-MNIST test
# images as 28x28 grey PNGs (scripts/make_dataset_fixtures.py), normalised without resizing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ms="${MS_BIN:-$root/build/bin/ms}"
py=/usr/bin/python3
n="${1:-600}"
dir="${MS_BENCH_DIR:-/tmp/ms-bench-data}/jpeg-$n"

peer() {  # DIR H W MODE MEAN STD
  "$py" - "$@" <<'PY'
import os, sys, time
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
torch.set_num_threads(1)
root, h, w, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
mean_l = [float(x) for x in sys.argv[5].split(",")]
std_l = [float(x) for x in sys.argv[6].split(",")]
files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs)
c = 3 if mode == "RGB" else 1
mean = torch.tensor(mean_l).view(c, 1, 1)
std = torch.tensor(std_l).view(c, 1, 1)

class Images(Dataset):
    def __len__(self):
        return len(files)
    def __getitem__(self, i):
        img = Image.open(files[i]).convert(mode)
        if img.size != (w, h):
            img = img.resize((w, h), Image.BILINEAR)
        t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(h, w, c)
        t = t.permute(2, 0, 1).float().div_(255)
        return (t - mean) / std, 0

for workers in (0, 1, 2):
    best = 0
    for _ in range(3):
        loader = DataLoader(Images(), batch_size=32, num_workers=workers)
        t0 = time.perf_counter()
        n = sum(b[0].shape[0] for b in loader)
        best = max(best, n / (time.perf_counter() - t0))
    print(f"PIL + torch DataLoader, {workers} workers:  {best:.0f} images/s")
PY
}

ms_loader() {  # SPEC SPLIT TRANSFORM
  for w in 0 1 2; do
    best=0
    for _ in 1 2 3; do
      r="$("$ms" dataset iter "$1" --split "$2" --batch-size 32 --workers "$w" --transform "$3" --json |
           "$py" -c 'import json,sys; print(json.load(sys.stdin)["samples_per_second"])')"
      best="$("$py" -c "print(max($best, $r))")"
    done
    printf 'ms loader, %d workers:               %.0f images/s\n' "$w" "$best"
  done
}

[ -d "$dir" ] || "$py" "$root/bench/make_jpegs.py" "$dir" "$n"
one="$(find "$dir" -name '*.jpg' | sort | head -1)"
transform='{"resize": [224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}'

echo "== $n JPEGs 640x480 -> 224x224 float CHW, batch 32, cores: $(nproc)"
# tjbench writes its decoded output next to its input: give it a copy outside the image folder.
tjdir="$(mktemp -d)"
cp "$one" "$tjdir/"
tj="$(tjbench "$tjdir/$(basename "$one")" -rgb -benchtime 2 -warmup 1 2>/dev/null | awk '/Frame rate/ {print $(NF-1); exit}')"
rm -rf "$tjdir"
echo "tjbench decode only (1 core, RGB):   ${tj} images/s"

ms_loader "imagefolder:$dir" train "$transform"

peer "$dir" 224 224 RGB 0.485,0.456,0.406 0.229,0.224,0.225

fm="${MS_BENCH_DIR:-/tmp/ms-bench-data}/fmnist"
if [ ! -d "$fm/fmnist/test" ]; then
  python3 "$root/scripts/make_dataset_fixtures.py" "$fm" --per-class 1 --test-per-class 1000 >/dev/null
fi
echo "== 10000 Fashion-MNIST PNGs 28x28 grey -> float, batch 32"
ms_loader "imagefolder:$fm/fmnist" test '{"mode": "L", "mean": [0.286], "std": [0.353]}'
peer "$fm/fmnist/test" 28 28 L 0.286 0.353

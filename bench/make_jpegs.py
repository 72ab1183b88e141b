#!/usr/bin/env python3
"""Writes N JPEGs (quality 90, 640x480) cropped from scikit-learn's china.jpg / flower.jpg into
OUT/class0..class3 (an imagefolder), atomically (OUT.tmp, then renamed). Needs PIL and the
Debian python3-sklearn images; run with /usr/bin/python3.

    /usr/bin/python3 bench/make_jpegs.py OUT N
"""
import os
import random
import sys

from PIL import Image

SK = "/usr/lib/python3/dist-packages/sklearn/datasets/images"


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    srcs = [Image.open(os.path.join(SK, f)).convert("RGB") for f in ("china.jpg", "flower.jpg")]
    rng = random.Random(0)
    tmp = out + ".tmp"
    for i in range(n):
        src = srcs[i % 2]
        x, y = rng.randrange(0, 80), rng.randrange(0, 60)
        img = src.crop((x, y, x + 560, y + 367)).resize((640, 480), Image.BILINEAR)
        cls = os.path.join(tmp, f"class{i % 4}")
        os.makedirs(cls, exist_ok=True)
        img.save(os.path.join(cls, f"{i:05d}.jpg"), quality=90)
    os.rename(tmp, out)


if __name__ == "__main__":
    main()

"""The pixel_values `ms infer` feeds an image classifier, computed with torchvision (the transforms
scripts/make_tiny_vision.py checks ms against), for tests/e2e/test_export_onnx.py. Needs Debian's
/usr/bin/python3 with python3-torchvision and python3-pil.

  python image_pixels.py MODEL_DIR OUT.npz IMAGE...

Writes OUT.npz with pixel_values [len(IMAGE), 3, crop, crop] (Resize + CenterCrop + Normalize from
the model's configuration.json preprocessor.val).
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
import make_tiny_vision  # noqa: E402


def main():
    model_dir, out, images = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(os.path.join(model_dir, "configuration.json")) as f:
        steps = {s["type"]: s for s in json.load(f)["preprocessor"]["val"]}
    resize, crop = steps["Resize"]["size"], steps["CenterCrop"]["size"]
    pixels = torch.stack([make_tiny_vision.preprocess(make_tiny_vision.load(p), resize, crop) for p in images])
    np.savez(out, pixel_values=pixels.numpy().astype(np.float32))


if __name__ == "__main__":
    main()

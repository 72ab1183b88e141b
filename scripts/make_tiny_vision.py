#!/usr/bin/env python3
"""Image-classification fixtures checked against torchvision.

  python scripts/make_tiny_vision.py                 # writes tests/data/infer/vision (small CNN + images)
  python scripts/make_tiny_vision.py --resnet 18 DIR # a random torchvision ResNet-18 model folder in DIR
                                                     # with expected.json (used by the e2e test at run time:
                                                     # ResNet weights are too big to commit)
Also writes tests/data/infer/vision/torchscript: the small CNN traced with torch.jit.trace.
Needs torch, torchvision and PIL: Debian's /usr/bin/python3 with python3-torch, python3-torchvision
and python3-pil (scripts/setup.sh installs them). Debian has no safetensors package, so the
.safetensors file is written here (the format is an 8-byte little-endian header length, a JSON
header {name: {dtype, shape, data_offsets}}, then the raw little-endian bytes).
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "infer", "vision")
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def load(path):
    return Image.open(path).convert("RGB")


def preprocess(img, resize, crop):
    # As ModelScope's pipelines do: torchvision's transforms on the PIL image, so that Resize is
    # PIL's antialiased bilinear filter on 8-bit pixels.
    img = TF.center_crop(TF.resize(img, resize, interpolation=TF.InterpolationMode.BILINEAR), crop)
    return TF.normalize(TF.to_tensor(img), MEAN, STD)


def expected(model, images, resize, crop, k=5):
    out = {}
    with torch.no_grad():
        for name in images:
            x = preprocess(load(os.path.join(ROOT, "images", name)), resize, crop)
            p = torch.softmax(model(x.unsqueeze(0))[0], -1)
            top = p.topk(min(k, p.numel()))
            out[name] = {"scores": top.values.tolist(), "indices": top.indices.tolist()}
    return out


def small_cnn(channels, classes):
    layers, c_in = [], 3
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Linear(c_in, classes)

        def forward(self, x):
            return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))
    return Net()


def randomise_bn(model):
    # Non-trivial running statistics, so that eval-mode BatchNorm is really exercised.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


SAFETENSORS_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.int64: "I64",
                      torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
                      torch.bool: "BOOL"}


def save_safetensors(tensors, path):
    """Writes {name: tensor} as a .safetensors file; wider dtypes first, so every tensor's data
    starts at a multiple of its element size (the header is padded to 8 bytes)."""
    order = sorted(tensors, key=lambda name: (-tensors[name].element_size(), name))
    header, chunks, offset = {}, [], 0
    for name in order:
        t = tensors[name].detach().cpu().contiguous()
        array = t.numpy()
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for raw in chunks:
            f.write(raw)


def write_model(folder, model, config):
    os.makedirs(folder, exist_ok=True)
    save_safetensors(model.state_dict(), os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "configuration.json"), "w") as f:
        json.dump(config, f, indent=2)


def transforms(resize, crop):
    return [{"type": "Resize", "size": resize}, {"type": "CenterCrop", "size": crop}, {"type": "ToTensor"},
            {"type": "Normalize", "mean": MEAN, "std": STD}]


def main():
    torch.manual_seed(0)
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    images = ["a.png", "b.png"]
    if len(sys.argv) == 4 and sys.argv[1] == "--resnet":
        depth, out = int(sys.argv[2]), sys.argv[3]
        model = getattr(torchvision.models, f"resnet{depth}")(num_classes=10).eval()
        randomise_bn(model)
        write_model(out, model, {"framework": "pytorch", "task": "image-classification",
                                 "model": {"type": f"resnet{depth}"},
                                 "preprocessor": {"val": transforms(72, 64)}})
        with open(os.path.join(out, "expected.json"), "w") as f:
            json.dump({"versions": versions, "items": expected(model, images, 72, 64)}, f)
        return
    os.makedirs(os.path.join(ROOT, "images"), exist_ok=True)
    rng = np.random.default_rng(0)
    # Smooth random images (a gradient plus noise) so that resizing has something to interpolate.
    for name, (h, w) in (("a.png", (24, 32)), ("b.png", (40, 20))):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200
        img = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(ROOT, "images", name))
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(os.path.join(ROOT, "images", "c.jpg"), quality=90)
    with open(os.path.join(ROOT, "images", "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    model = small_cnn([4, 8], 3).eval()
    randomise_bn(model)
    folder = os.path.join(ROOT, "small-cnn")
    write_model(folder, model, {"framework": "pytorch", "task": "image-classification",
                                "model": {"type": "small-cnn", "channels": [4, 8], "labels": ["cat", "dog", "bird"]},
                                "preprocessor": {"val": transforms(20, 16)}})
    reference = {"versions": versions, "labels": ["cat", "dog", "bird"], "items": expected(model, images, 20, 16, 3)}
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(reference, f)
    # The same network as a traced TorchScript module, for the generic TorchScript pipeline.
    folder = os.path.join(ROOT, "torchscript")
    os.makedirs(folder, exist_ok=True)
    torch.jit.trace(model, torch.randn(1, 3, 16, 16)).save(os.path.join(folder, "model.pt"))
    with open(os.path.join(folder, "configuration.json"), "w") as f:
        json.dump({"framework": "pytorch", "task": "image-classification",
                   "model": {"type": "torchscript", "file": "model.pt", "labels": ["cat", "dog", "bird"]},
                   "preprocessor": {"val": transforms(20, 16)}}, f, indent=2)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(reference, f)


if __name__ == "__main__":
    main()

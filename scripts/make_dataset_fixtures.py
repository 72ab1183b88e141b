#!/usr/bin/env python3
"""Builds dataset fixtures from real data that Debian packages ship (standard library only).

  make_dataset_fixtures.py OUT [--per-class N] [--test-per-class M]

Writes into OUT:
  fmnist/                 imagefolder of Fashion-MNIST PNGs: train/<class>/*.png, test/<class>/*.png
                          (N and M images per class, the first ones in the IDX files)
  fmnist_zip/             a ModelScope-style zip dataset: fmnist_zip.json (subset -> split ->
                          {meta, file}), train.csv / test.csv with an "image:FILE" column, train.zip /
                          test.zip, and a second subset "iris" whose meta is scikit-learn's iris.csv
  fmnist_labels.json      {split: [[relative path, class name], ...]} for checking label ids
Sources are checked against pinned sha256 digests; a mismatch stops with exit code 3.
"""
import argparse
import csv
import gzip
import hashlib
import json
import os
import shutil
import struct
import sys
import zipfile
import zlib

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian dataset-fashion-mnist
SKLEARN_DATA = "/usr/lib/python3/dist-packages/sklearn/datasets/data"  # Debian python3-sklearn
PINNED = {
    f"{FMNIST_DIR}/train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    f"{FMNIST_DIR}/train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    f"{FMNIST_DIR}/t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    f"{FMNIST_DIR}/t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    f"{SKLEARN_DATA}/iris.csv": "f13ffa8fdd56fd8e6c8d16d4081a3fbd3114bcd0aae4256c43205169cd9d1449",
}
# Fashion-MNIST class ids 0..9 in the IDX files. The folder names sort differently on purpose:
# imagefolder ids come from sorted folder names, not from the source ids.
CLASSES = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle_boot"]


def check_sources():
    for path, digest in PINNED.items():
        if not os.path.exists(path):
            sys.exit(f"missing {path}: install the Debian packages dataset-fashion-mnist and python3-sklearn")
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != digest:
            print(f"sha256 mismatch for {path}: {h.hexdigest()} != {digest}", file=sys.stderr)
            sys.exit(3)


def read_idx(images_gz, labels_gz):
    with gzip.open(images_gz, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 0x0803, "bad image IDX magic"
        pixels = f.read(n * rows * cols)
    with gzip.open(labels_gz, "rb") as f:
        magic, m = struct.unpack(">II", f.read(8))
        assert magic == 0x0801 and m == n, "bad label IDX"
        labels = f.read(m)
    return n, rows, cols, pixels, labels


def png_bytes(width, height, grey):
    """8-bit greyscale PNG of `grey` (row-major bytes)."""
    raw = b"".join(b"\x00" + grey[y * width:(y + 1) * width] for y in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def write_split(out_dir, split, images_gz, labels_gz, per_class):
    n, rows, cols, pixels, labels = read_idx(images_gz, labels_gz)
    counts = [0] * 10
    written = []
    for i in range(n):
        c = labels[i]
        if counts[c] >= per_class:
            continue
        counts[c] += 1
        rel = f"{split}/{CLASSES[c]}/{i:05d}.png"
        path = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(png_bytes(cols, rows, pixels[i * rows * cols:(i + 1) * rows * cols]))
        written.append([rel, CLASSES[c]])
        if min(counts) >= per_class:
            break
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--test-per-class", type=int, default=5)
    args = parser.parse_args()
    check_sources()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    fm = os.path.join(out, "fmnist")
    shutil.rmtree(fm, ignore_errors=True)
    labels = {
        "train": write_split(fm, "train", f"{FMNIST_DIR}/train-images-idx3-ubyte.gz",
                             f"{FMNIST_DIR}/train-labels-idx1-ubyte.gz", args.per_class),
        "test": write_split(fm, "test", f"{FMNIST_DIR}/t10k-images-idx3-ubyte.gz",
                            f"{FMNIST_DIR}/t10k-labels-idx1-ubyte.gz", args.test_per_class),
    }
    with open(os.path.join(out, "fmnist_labels.json"), "w") as f:
        json.dump(labels, f)

    # ModelScope layout: the structure file names, per subset and split, a meta csv whose
    # "image:FILE" column points into the split's zip.
    zd = os.path.join(out, "fmnist_zip")
    shutil.rmtree(zd, ignore_errors=True)
    os.makedirs(zd)
    for split, items in labels.items():
        with zipfile.ZipFile(os.path.join(zd, f"{split}.zip"), "w", zipfile.ZIP_DEFLATED) as z:
            for rel, _ in items:
                z.write(os.path.join(fm, rel), rel)
        with open(os.path.join(zd, f"{split}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image:FILE", "category"])
            for rel, name in items:
                w.writerow([rel, name])
    shutil.copy(f"{SKLEARN_DATA}/iris.csv", os.path.join(zd, "iris.csv"))
    structure = {
        "default": {
            "train": {"meta": "train.csv", "file": "train.zip"},
            "test": {"meta": "test.csv", "file": "test.zip"},
            "validation": {"meta": "", "file": ""},
        },
        "iris": {"train": {"meta": "iris.csv"}},
    }
    with open(os.path.join(zd, "fmnist_zip.json"), "w") as f:
        json.dump(structure, f, indent=2)
    print(out)


if __name__ == "__main__":
    main()

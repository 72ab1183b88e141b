#!/usr/bin/env python3
"""Copies a model folder with its float32 safetensors weights rounded to float16.

Used only to carry a real model to the GPU machine, whose upload limit (64 MiB) is below
all-MiniLM-L6-v2's 87 MiB of float32 weights. `ms` widens float16 weights back to float32 when it
loads them, so the CPU and GPU runs of scripts/gpu-check.sh still compare the same numbers.

    python3 scripts/make_half_model.py SRC_DIR DST_DIR
"""
import json
import os
import shutil
import struct
import sys

try:
    import numpy as np
except ImportError:  # the standalone python3 may lack numpy; Debian's has it
    sys.exit("make_half_model.py needs numpy (try /usr/bin/python3)")


def convert(src_file: str, dst_file: str) -> None:
    with open(src_file, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    out_header, chunks, offset = {}, [], 0
    for name, spec in header.items():
        if name == "__metadata__":
            out_header[name] = spec
            continue
        begin, end = spec["data_offsets"]
        raw = data[begin:end]
        if spec["dtype"] == "F32":
            raw = np.frombuffer(raw, dtype="<f4").astype("<f2").tobytes()
            spec = dict(spec, dtype="F16")
        out_header[name] = dict(spec, data_offsets=[offset, offset + len(raw)])
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(out_header).encode()
    encoded += b" " * (-len(encoded) % 8)  # keeps the tensor data 8-byte aligned
    tmp = dst_file + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for c in chunks:
            f.write(c)
    os.replace(tmp, dst_file)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    shutil.copytree(src, dst, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx"))
    for name in os.listdir(src):
        if name.endswith(".safetensors"):
            convert(os.path.join(src, name), os.path.join(dst, name))


if __name__ == "__main__":
    main()

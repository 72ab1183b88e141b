"""Writes tests/data/trainer/optimizers.json (PyTorch 1.x) or optimizers-torch2.json (2.x): the
weights torch.optim reaches after each of 300 steps of SGD, Adam and AdamW over two parameter
groups, which tests/unit/optimizer_test.cpp compares ms's optimizers against bit for bit, built
against the same major version (2.x's Adam interpolates its first moment: other bits).

    /usr/bin/python3 scripts/make_optimizer_reference.py        # Debian's 1.13
    PYTHON_WITH_TORCH_2.11 scripts/make_optimizer_reference.py  # pip's torch==2.11.0

The gradient of every step is 2 * (p - target) (computed by the same ATen kernels on both sides),
the learning rate of group g is set to lr_g * 0.99**t before step t (as a schedule would), and
some cases clip the gradients first with torch.nn.utils.clip_grad_norm_. Only the weights after
steps 1, 10, 100 and 300 are stored, as float32 bit patterns.
"""
import json
import os
import struct

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
STEPS = 300
KEEP = [1, 10, 100, 300]

CASES = [
    {"type": "SGD", "lr": 0.05},
    {"type": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
    {"type": "SGD", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"type": "SGD", "lr": 0.05, "momentum": 0.8, "dampening": 0.3, "maximize": True},
    {"type": "Adam", "lr": 0.01},
    {"type": "Adam", "lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.05,
     "amsgrad": True},
    {"type": "AdamW", "lr": 0.01},
    {"type": "AdamW", "lr": 0.02, "weight_decay": 0.1, "amsgrad": True},
    {"type": "SGD", "lr": 0.05, "momentum": 0.9, "clip": {"max_norm": 0.5}},
    {"type": "AdamW", "lr": 0.01, "clip": {"max_norm": 0.2, "norm_type": "inf"}},
]


def start_params():
    g = torch.Generator().manual_seed(7)
    shapes = [[(3, 4), (4,)], [(5,)]]
    return [[torch.randn(s, generator=g) for s in group] for group in shapes]


def targets():
    g = torch.Generator().manual_seed(11)
    return [[torch.randn(s, generator=g) for s in group] for group in [[(3, 4), (4,)], [(5,)]]]


def bits(t):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in t.reshape(-1).tolist()]


def run(case):
    params = [[p.clone().requires_grad_(True) for p in group] for group in start_params()]
    target = targets()
    options = {k: v for k, v in case.items() if k not in ("type", "clip")}
    cls = getattr(torch.optim, case["type"])
    base_lrs = [options["lr"], options["lr"] * 0.5]
    opt = cls([{"params": params[0]}, {"params": params[1], "lr": base_lrs[1]}], **options)
    out = {}
    for t in range(1, STEPS + 1):
        for gi, group in enumerate(opt.param_groups):
            group["lr"] = base_lrs[gi] * 0.99 ** (t - 1)
        with torch.no_grad():
            for group, tgt in zip(params, target):
                for p, q in zip(group, tgt):
                    p.grad = (p - q).mul(2)
        if "clip" in case:
            norm = case["clip"].get("norm_type", 2.0)
            torch.nn.utils.clip_grad_norm_([p for g in params for p in g], case["clip"]["max_norm"],
                                           norm_type=float(norm))
        opt.step()
        if t in KEEP:
            out[str(t)] = [bits(p.detach()) for g in params for p in g]
    return out


def main():
    torch.set_num_threads(1)
    cases = []
    for case in CASES:
        cases.append({"config": case, "base_lr_scale": [1.0, 0.5], "weights": run(case)})
    start = [[bits(p) for p in g] for g in start_params()]
    tgt = [[bits(p) for p in g] for g in targets()]
    shapes = [[list(p.shape) for p in g] for g in start_params()]
    name = "optimizers.json" if torch.__version__.startswith("1.") else "optimizers-torch2.json"
    path = os.path.join(ROOT, "tests", "data", "trainer", name)
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "steps": STEPS, "shapes": shapes, "start": start,
                   "targets": tgt, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(path)


if __name__ == "__main__":
    main()

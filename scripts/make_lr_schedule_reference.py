"""Writes tests/data/trainer/lr_schedules.json: the rates torch.optim.lr_scheduler gives per step
(two parameter groups, 120 steps) for each schedule ms implements, which
tests/unit/lr_scheduler_test.cpp compares ms's schedules against.

    /usr/bin/python3 scripts/make_lr_schedule_reference.py [MODELSCOPE_PACKAGE_DIR]

Debian's python3-torch (1.13). The warmup cases run ModelScope's own warmup classes
(modelscope/trainers/lrscheduler/warmup/{base,warmup}.py, loaded from MODELSCOPE_PACKAGE_DIR,
default build/venv-modelscope-1.36.3's, with its registry imports stubbed).
"""
import importlib.util
import json
import os
import sys
import types

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def modelscope_warmups(package_dir):
    """ModelScope's LinearWarmup / ConstantWarmup / ExponentialWarmup classes, loaded from its
    source without importing the rest of modelscope."""
    registry = types.SimpleNamespace(register_module=lambda **kw: (lambda cls: cls))
    names = types.SimpleNamespace(ConstantWarmup="ConstantWarmup", LinearWarmup="LinearWarmup",
                                  ExponentialWarmup="ExponentialWarmup")
    stubs = {"modelscope": {}, "modelscope.metainfo": {"LR_Schedulers": names},
             "modelscope.trainers": {}, "modelscope.trainers.lrscheduler": {},
             "modelscope.trainers.lrscheduler.builder": {"LR_SCHEDULER": registry}}
    for name, attrs in stubs.items():
        module = types.ModuleType(name)
        module.__path__ = []
        module.__dict__.update(attrs)
        sys.modules[name] = module
    folder = os.path.join(package_dir, "trainers", "lrscheduler", "warmup")
    package = types.ModuleType("modelscope.trainers.lrscheduler.warmup")
    package.__path__ = [folder]
    sys.modules[package.__name__] = package
    for part in ("base", "warmup"):
        name = f"{package.__name__}.{part}"
        spec = importlib.util.spec_from_file_location(name, os.path.join(folder, f"{part}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[f"{package.__name__}.warmup"]


WARMUPS = modelscope_warmups(sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    ROOT, "build", "venv-modelscope-1.36.3", "lib", "python3.11", "site-packages", "modelscope"))

CASES = [
    {"type": "StepLR", "step_size": 7, "gamma": 0.5},
    {"type": "MultiStepLR", "milestones": [3, 10, 10, 50], "gamma": 0.3},
    {"type": "ExponentialLR", "gamma": 0.97},
    {"type": "CosineAnnealingLR", "T_max": 40, "eta_min": 0.0001},
    {"type": "CosineAnnealingLR", "T_max": 1},
    {"type": "LinearLR", "start_factor": 0.1, "end_factor": 0.9, "total_iters": 25},
    {"type": "LinearLR"},
    {"type": "ConstantLR", "factor": 0.25, "total_iters": 12},
    {"type": "PolynomialLR", "total_iters": 60, "power": 2.0},
    {"type": "PolynomialLR", "total_iters": 30, "power": 0.5},
    {"type": "OneCycleLR", "max_lr": 0.5, "total_steps": 120},
    {"type": "OneCycleLR", "max_lr": [0.4, 0.02], "epochs": 8, "steps_per_epoch": 15, "pct_start": 0.25,
     "anneal_strategy": "linear", "three_phase": True, "base_momentum": 0.8, "max_momentum": [0.9, 0.99]},
    {"type": "ReduceLROnPlateau", "factor": 0.5, "patience": 3, "cooldown": 2, "min_lr": [0.001, 0.0005]},
    {"type": "ReduceLROnPlateau", "mode": "max", "threshold_mode": "abs", "threshold": 0.01, "patience": 2},
    {"type": "StepLR", "step_size": 3, "gamma": 0.5,
     "options": {"warmup": {"type": "LinearWarmup", "warmup_iters": 5}}},
    {"type": "LinearLR", "start_factor": 0.5, "total_iters": 20,
     "options": {"warmup": {"type": "ExponentialWarmup", "warmup_iters": 8, "warmup_ratio": 0.01}}},
    {"type": "CosineAnnealingLR", "T_max": 30,
     "options": {"warmup": {"type": "ConstantWarmup", "warmup_iters": 4, "warmup_ratio": 0.3}}},
]
STEPS = 120
BASE_LRS = [0.1, 0.0037]

out = []
for case in CASES:
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS)], lr=BASE_LRS[0],
                          momentum=0.9)
    options = {k: v for k, v in case.items() if k not in ("type", "options")}
    sched = getattr(torch.optim.lr_scheduler, case["type"])(opt, **options)
    if "options" in case:  # what LrSchedulerHook does with options.warmup
        warmup = dict(case["options"]["warmup"])
        sched = getattr(WARMUPS, warmup.pop("type"))(sched, **warmup)
    cycles = case["type"] == "OneCycleLR"  # it sets the groups' momentum too
    # ReduceLROnPlateau steps on a metric: a noisy curve that improves, then stalls.
    plateau = case["type"] == "ReduceLROnPlateau"
    metrics = [round(1.0 / (1 + i / 10) + 0.05 * ((i * 7919) % 13) / 13, 6) if i < 40 else 0.3
               for i in range(STEPS)]
    if plateau and case.get("mode") == "max":
        metrics = [-m for m in metrics]
    # The groups' rates (a warmup leaves get_last_lr() behind; the optimizer's rates are the truth).
    lrs = [[g["lr"] for g in opt.param_groups]]
    momentums = [[g["momentum"] for g in opt.param_groups]]
    for i in range(STEPS):
        opt.step()
        if plateau:
            sched.step(metrics[i])
        else:
            sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
        momentums.append([g["momentum"] for g in opt.param_groups])
    out.append({"config": case, "base_lrs": BASE_LRS, "lrs": lrs, **({"momentums": momentums} if cycles else {}),
                **({"metrics": metrics} if plateau else {})})

path = os.path.join(ROOT, "tests", "data", "trainer", "lr_schedules.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    json.dump({"generator": "scripts/make_lr_schedule_reference.py", "torch": torch.__version__, "cases": out}, f,
              separators=(",", ":"))
    f.write("\n")
print(path, os.path.getsize(path), "bytes")

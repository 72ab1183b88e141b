"""Writes tests/data/trainer/lr_schedules.json: the rates torch.optim.lr_scheduler gives per step
(two parameter groups, 120 steps) for each schedule ms implements, which
tests/unit/lr_scheduler_test.cpp compares ms's schedules against.

    /usr/bin/python3 scripts/make_lr_schedule_reference.py   # Debian's python3-torch (1.13)
"""
import json
import os

import torch

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
]
STEPS = 120
BASE_LRS = [0.1, 0.0037]

out = []
for case in CASES:
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS)], lr=BASE_LRS[0],
                          momentum=0.9)
    options = {k: v for k, v in case.items() if k != "type"}
    sched = getattr(torch.optim.lr_scheduler, case["type"])(opt, **options)
    cycles = case["type"] == "OneCycleLR"  # it sets the groups' momentum too
    lrs = [list(sched.get_last_lr())]
    momentums = [[g["momentum"] for g in opt.param_groups]]
    for _ in range(STEPS):
        opt.step()
        sched.step()
        lrs.append(list(sched.get_last_lr()))
        momentums.append([g["momentum"] for g in opt.param_groups])
    out.append({"config": case, "base_lrs": BASE_LRS, "lrs": lrs, **({"momentums": momentums} if cycles else {})})

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "trainer", "lr_schedules.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    json.dump({"generator": "scripts/make_lr_schedule_reference.py", "torch": torch.__version__, "cases": out}, f,
              separators=(",", ":"))
    f.write("\n")
print(path, os.path.getsize(path), "bytes")

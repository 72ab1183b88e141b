#!/usr/bin/env python3
"""Summarises a bench/train_*.sh run directory as a markdown table (standard library only).

  train_summary.py OUT NAME

Reads OUT/ms1.json (`ms train --json`), OUT/ms1/*.log.json (TextLoggerHook lines),
OUT/py1.json (the Python loop's JSON line), OUT/{ms1,py1}.time (/usr/bin/time -v) and, when
present, OUT/ms1_eval.json (`ms eval` on OUT/ms1/output) and OUT/full.json + OUT/full_eval.json
(a full run and `ms eval` on its output/).
ms's training-loop time is the mean logged iter_time (IterTimerHook: a whole iteration, data
loading and hooks included) times the iterations; its compute part subtracts data_load_time.
"""
import glob
import json
import os
import re
import sys


def time_v(path):
    text = open(path).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    return rss / 1024, secs


def main():
    out, name = sys.argv[1], sys.argv[2]
    ms = json.load(open(f"{out}/ms1.json"))
    py = json.loads(open(f"{out}/py1.json").read().strip().splitlines()[-1])
    log = sorted(glob.glob(f"{out}/ms1/*.log.json"))[-1]
    lines = [json.loads(l) for l in open(log) if l.strip()]
    train = [l for l in lines if l.get("mode") == "train" and "iter_time" in l]
    iter_t = sum(l["iter_time"] for l in train) / len(train)
    data_t = sum(l["data_load_time"] for l in train) / len(train)
    ms_sps = ms["train_rows"] / (iter_t * ms["iters"])
    ms_rss, ms_wall = time_v(f"{out}/ms1.time")
    py_rss, py_wall = time_v(f"{out}/py1.time")
    py_iter = 1000 * py["train_s"] / py["iters"]
    py_compute = 1000 * py["compute_s"] / py["iters"]
    acc_ms = next(v for k, v in ms["metrics"].items() if "accuracy" in k)
    print(f"## {name}: one epoch, {py['threads']} threads, torch {py['torch']}\n")
    print("| side | train samples/s | ms/iter (whole) | ms/iter (fwd+bwd+step) | process wall s | "
          "peak RSS MiB | test accuracy after 1 epoch |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| ms train | {ms_sps:.1f} | {1000 * iter_t:.1f} | {1000 * (iter_t - data_t):.1f} "
          f"(+ hooks) | {ms_wall:.1f} | {ms_rss:.0f} | {acc_ms:.4f} |")
    print(f"| python | {py['samples_per_s']:.1f} | {py_iter:.1f} | {py_compute:.1f} | "
          f"{py_wall:.1f} | {py_rss:.0f} | {py['test_accuracy']:.4f} |")
    print(f"\nms / python samples/s: {ms_sps / py['samples_per_s']:.2f}x")
    if os.path.exists(f"{out}/load.txt"):
        print("\nload averages (1/5/15 min) before each side: "
              + "; ".join(l.strip() for l in open(f"{out}/load.txt")))
    if os.path.exists(f"{out}/ms1_eval.json"):
        print(f"\nms eval on the one-epoch output/: {open(f'{out}/ms1_eval.json').read().strip()}")
    if os.path.exists(f"{out}/full.json"):
        full = json.load(open(f"{out}/full.json"))
        ev = json.load(open(f"{out}/full_eval.json"))
        rss, wall = time_v(f"{out}/full.time")
        print(f"\nfull run ({full['epochs']} epochs, {full['iters']} iters, {wall:.0f} s, "
              f"peak RSS {rss:.0f} MiB): trainer metrics {json.dumps(full['metrics'])}; "
              f"ms eval on output/: {json.dumps(ev)}")


if __name__ == "__main__":
    main()

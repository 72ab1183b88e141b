#!/usr/bin/env python3
"""The Python side of bench/train_fmnist.sh: an idiomatic PyTorch loop training the small CNN of
configs/image-classification-small-cnn on an imagefolder of Fashion-MNIST PNGs.

  train_fmnist.py DATA [--epochs 1] [--threads N] [--batch 64] [--lr 0.002] [--seed 42]

DATA has train/<class>/*.png and test/<class>/*.png (scripts/make_dataset_fixtures.py). The model is
the one ms builds for `small-cnn` with channels [32, 64, 128] (lib/models/src/vision.cpp SmallCnn):
per entry Conv3x3(pad 1) + BatchNorm + ReLU + MaxPool(2), then adaptive average pool and a Linear.
Data as the config's preprocessor: PIL decode, RGB, ToTensor, Normalize(0.286, 0.353); torchvision's
ImageFolder + DataLoader(shuffle, num_workers=0, like ms's workers_per_gpu 0). Adam(lr), StepLR(1,
0.5) by epoch, cross-entropy.
Prints one JSON object: samples/s over the training epoch(s) (data loading included), the part of
that time spent in forward + backward + optimizer step alone (`compute_s`), and test accuracy.
Runs with Debian's /usr/bin/python3 (torch 1.13, torchvision, PIL): the torch ms links.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torchvision
from torchvision import transforms


def small_cnn(channels, classes):
    layers, cin = [], 3
    for c in channels:
        layers += [nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
        cin = c
    return nn.Sequential(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(cin, classes))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    tf = transforms.Compose([
        transforms.Lambda(lambda im: im.convert("RGB")),
        transforms.ToTensor(),
        transforms.Normalize([0.286] * 3, [0.353] * 3),
    ])
    train = torchvision.datasets.ImageFolder(f"{args.data}/train", transform=tf)
    test = torchvision.datasets.ImageFolder(f"{args.data}/test", transform=tf)
    train_dl = torch.utils.data.DataLoader(train, batch_size=args.batch, shuffle=True, num_workers=0)
    test_dl = torch.utils.data.DataLoader(test, batch_size=256, shuffle=False, num_workers=0)

    model = small_cnn([32, 64, 128], len(train.classes))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()

    samples, compute_s, iters = 0, 0.0, 0
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for x, y in train_dl:
            c0 = time.perf_counter()
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            compute_s += time.perf_counter() - c0
            samples += x.shape[0]
            iters += 1
        sched.step()
    train_s = time.perf_counter() - t0

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in test_dl:
            correct += (model(x).argmax(1) == y).sum().item()
            total += y.numel()
    print(json.dumps({
        "side": "python", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "epochs": args.epochs, "samples": samples, "iters": iters, "train_s": round(train_s, 2),
        "samples_per_s": round(samples / train_s, 1), "compute_s": round(compute_s, 2),
        "compute_ms_per_iter": round(1000 * compute_s / iters, 2),
        "test_accuracy": correct / total, "last_loss": round(loss.item(), 4)}))


if __name__ == "__main__":
    main()

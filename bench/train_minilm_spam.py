#!/usr/bin/env python3
"""The Python side of bench/train_minilm_spam.sh: transformers' BertForSequenceClassification on
all-MiniLM-L6-v2 (fresh 2-label head) finetuned on the SpamAssassin CSVs with a plain PyTorch loop,
the recipe of configs/text-classification (what `ms train` runs):

  train_minilm_spam.py MINILM DATA [--epochs 1] [--threads N] [--batch 16] [--lr 1e-4]
                       [--weight-decay 0.01] [--max-length 128] [--seed 42] [--limit N]
                       [--device cpu|cuda] [--amp fp16|bf16]

DATA has train.csv / test.csv (text,label; scripts/prepare_spam_assassin.py). Labels are the
sorted class names (ham=0, spam=1), as ms builds its label map. AdamW over all parameters,
LinearLR(start_factor 1.0, end_factor 0.1, total_iters 3) stepped per epoch, gradient clipping at
norm 1.0, batches padded to their longest row, shuffled by a generator seeded with --seed; eval
batch 64. --limit keeps the first N training rows (a shorter timing run).
Prints one JSON object: training samples/s (tokenisation excluded: done once up front, as ms
does), the forward+backward+step part of it, and test accuracy. Needs bench/setup_train_venv.sh's
venv (Debian's torch 1.13 + transformers 4.49.0).
"""
import argparse
import csv
import json
import sys
import time

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def read_csv(path, limit=None):
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8", newline="") as f:
        rows = [(r["text"], r["label"]) for r in csv.DictReader(f)]
    return rows[:limit] if limit else rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["fp16", "bf16"], default=None,
                   help="torch.autocast for the forward pass (fp16 with a GradScaler)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_rows = read_csv(f"{args.data}/train.csv", args.limit)
    test_rows = read_csv(f"{args.data}/test.csv")
    names = sorted({label for _, label in train_rows})
    label_id = {n: i for i, n in enumerate(names)}
    tok = AutoTokenizer.from_pretrained(args.model)

    def encode(rows):
        enc = tok([t for t, _ in rows], truncation=True, max_length=args.max_length)
        return [(ids, label_id[label]) for ids, (_, label) in zip(enc["input_ids"], rows)]

    def collate(items):
        longest = max(len(ids) for ids, _ in items)
        input_ids = torch.full((len(items), longest), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for i, (ids, _) in enumerate(items):
            input_ids[i, :len(ids)] = torch.tensor(ids)
            mask[i, :len(ids)] = 1
        return input_ids, mask, torch.tensor([y for _, y in items])

    t0 = time.perf_counter()
    train, test = encode(train_rows), encode(test_rows)
    tokenize_s = time.perf_counter() - t0

    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label_id)
    # float32 whatever the checkpoint holds (the GPU check carries MiniLM as float16 weights).
    model = model.float().to(args.device)
    dev = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    train_dl = torch.utils.data.DataLoader(train, batch_size=args.batch, shuffle=True,
                                           generator=gen, collate_fn=collate)
    test_dl = torch.utils.data.DataLoader(test, batch_size=64, shuffle=False, collate_fn=collate)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=3)

    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.amp)
    scaler = torch.cuda.amp.GradScaler() if args.amp == "fp16" else None
    samples, iters, compute_s = 0, 0, 0.0
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        for input_ids, mask, labels in train_dl:
            c0 = time.perf_counter()
            input_ids, mask, labels = input_ids.to(dev), mask.to(dev), labels.to(dev)
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            compute_s += time.perf_counter() - c0
            samples += labels.numel()
            iters += 1
            if iters % 50 == 0:
                print(f"epoch {epoch + 1} iter {iters} loss {loss.item():.4f} "
                      f"{samples / (time.perf_counter() - t0):.1f} samples/s", file=sys.stderr)
        sched.step()
    train_s = time.perf_counter() - t0

    model.eval()
    correct = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for input_ids, mask, labels in test_dl:
            input_ids, mask, labels = input_ids.to(dev), mask.to(dev), labels.to(dev)
            logits = model(input_ids=input_ids, attention_mask=mask).logits
            correct += (logits.argmax(1) == labels).sum().item()
    eval_s = time.perf_counter() - t0
    import transformers
    print(json.dumps({
        "side": "python", "device": args.device, "amp": args.amp, "torch": torch.__version__, "transformers": transformers.__version__,
        "threads": torch.get_num_threads(), "epochs": args.epochs, "samples": samples,
        "iters": iters, "tokenize_s": round(tokenize_s, 2), "train_s": round(train_s, 2),
        "samples_per_s": round(samples / train_s, 2), "compute_s": round(compute_s, 2),
        "eval_s": round(eval_s, 2), "test_rows": len(test), "test_accuracy": correct / len(test)}))


if __name__ == "__main__":
    main()

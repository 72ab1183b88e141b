"""Writes tests/data/metrics/ppl.json: seeded batches of logits [rows, positions, vocab] and labels
(some -100) and the perplexity ModelScope's PplMetric gives for them (per batch F.cross_entropy,
averaged over batches weighted by rows, then exp), computed with torch (Debian's python3-torch):

    /usr/bin/python3 scripts/make_ppl_reference.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    g = torch.Generator().manual_seed(5)
    batches = []
    avg, rows = 0.0, 0
    for rows_in_batch in (3, 2, 4):
        logits = torch.randn(rows_in_batch, 6, 11, generator=g, dtype=torch.float64) * 3
        labels = torch.randint(0, 11, (rows_in_batch, 6), generator=g)
        labels[0, 0] = -100
        labels[-1, 4:] = -100
        loss = F.cross_entropy(logits.view(-1, 11), labels.view(-1)).item()
        avg = (avg * rows + loss * rows_in_batch) / (rows + rows_in_batch)
        rows += rows_in_batch
        batches.append({"logits": logits.reshape(-1).tolist(), "shape": list(logits.shape),
                        "labels": labels.reshape(-1).tolist(), "label_shape": list(labels.shape)})
    path = os.path.join(ROOT, "tests", "data", "metrics", "ppl.json")
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "batches": batches, "ppl": math.exp(avg)}, f)
        f.write("\n")
    print(path)


if __name__ == "__main__":
    main()

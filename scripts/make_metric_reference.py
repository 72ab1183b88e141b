"""Writes tests/data/metrics/reference.json: fixed batches (seeded) and what scikit-learn and
seqeval compute for them, which tests/unit/metrics_test.cpp compares ms's metrics against.

    /usr/bin/python3 scripts/make_metric_reference.py [SEQEVAL_SOURCE_DIR]

Needs numpy and scikit-learn (Debian python3-sklearn) and seqeval (pure Python: a pip install, or
its unpacked source folder given as the argument, e.g. from `pip download seqeval==1.2.2`).
"""
import json
import os
import sys

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])
from seqeval.metrics import accuracy_score as seq_accuracy  # noqa: E402
from seqeval.metrics import classification_report  # noqa: E402
from seqeval.metrics import f1_score as seq_f1, precision_score, recall_score  # noqa: E402

rng = np.random.default_rng(13)
cases = []


def batches(n, size):
    """Splits range(n) into batches of `size` (the metric sees them one by one)."""
    return [(i, min(n, i + size)) for i in range(0, n, size)]


# Sequence classification: 3 and 5 classes (micro/macro F1), 2 classes (binary F1); some rows tie.
for classes, n in ((3, 57), (5, 40), (2, 33)):
    logits = np.round(rng.normal(size=(n, classes)), 1)
    labels = rng.integers(0, classes, size=n)
    preds = logits.argmax(axis=1)
    if classes > 2:
        expected = {"accuracy": accuracy_score(labels, preds),
                    "micro-f1": f1_score(labels, preds, average="micro"),
                    "macro-f1": f1_score(labels, preds, average="macro"), }
        expected["f1"] = expected["micro-f1"]
    else:
        binary = f1_score(labels, preds, average="binary", zero_division=0)
        expected = {"accuracy": accuracy_score(labels, preds), "binary-f1": binary, "f1": binary}
    cases.append({"metric": "seq-cls-metric", "options": {},
                  "batches": [{"outputs": {"logits": {"shape": [b - a, classes], "values": logits[a:b].ravel().tolist()}},
                               "inputs": {"labels": {"shape": [b - a], "values": labels[a:b].tolist()}}}
                              for a, b in batches(n, 16)],
                  "expected": {k: float(v) for k, v in expected.items()}})

# Token classification: BIO tags of two types; -100 marks ignored positions.
tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
n, tokens = 24, 9
logits = np.round(rng.normal(size=(n, tokens, len(tags))), 1)
labels = rng.integers(0, len(tags), size=(n, tokens))
labels[:, -2:] = -100  # padding
labels[rng.random((n, tokens)) < 0.1] = -100  # sub-word continuations
preds = logits.argmax(axis=2)
truth_tags = [[tags[l] for l in row if l != -100] for row in labels]
pred_tags = [[tags[p] for p, l in zip(prow, lrow) if l != -100] for prow, lrow in zip(preds, labels)]
cases.append({"metric": "token-cls-metric", "options": {"label2id": {t: i for i, t in enumerate(tags)}},
              "batches": [{"outputs": {"logits": {"shape": [b - a, tokens, len(tags)],
                                                  "values": logits[a:b].ravel().tolist()}},
                           "inputs": {"labels": {"shape": [b - a, tokens], "values": labels[a:b].ravel().tolist()}}}
                          for a, b in batches(n, 8)],
              "expected": {"precision": precision_score(truth_tags, pred_tags),
                           "recall": recall_score(truth_tags, pred_tags),
                           "f1": seq_f1(truth_tags, pred_tags),
                           "accuracy": seq_accuracy(truth_tags, pred_tags)}})

# The same batches with return_entity_level_metrics: ModelScope's TokenClassificationMetric
# flattens seqeval's per-type report to TYPE_precision, TYPE_recall, TYPE_f1, TYPE_number.
entity_level = dict(cases[-1]["expected"])
report = classification_report(truth_tags, pred_tags, output_dict=True, zero_division=0)
for name, score in report.items():
    if name not in ("micro avg", "macro avg", "weighted avg"):
        entity_level.update({f"{name}_precision": score["precision"], f"{name}_recall": score["recall"],
                             f"{name}_f1": score["f1-score"], f"{name}_number": score["support"]})
cases.append({"metric": "token-cls-metric",
              "options": dict(cases[-1]["options"], return_entity_level_metrics=True),
              "batches": cases[-1]["batches"],
              "expected": {k: float(v) for k, v in entity_level.items()}})

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "metrics", "reference.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump({"generator": "scripts/make_metric_reference.py", "cases": cases}, f, separators=(",", ":"))
    f.write("\n")
print(out, os.path.getsize(out), "bytes")

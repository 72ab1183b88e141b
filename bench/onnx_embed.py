#!/usr/bin/env python3
"""onnxruntime side of bench/export_onnx.sh: embeds a .txt file (one sentence a line) with the
MiniLM graph `ms export` wrote, tokenized by Hugging Face `tokenizers` from the model's
tokenizer.json, sorted by length and batched, each batch padded to its longest sentence.

usage: onnx_embed.py EXPORT_DIR INPUT.txt BATCH THREADS -> {"load_s", "encode_s"}
"""
import json
import sys
import time

t0 = time.perf_counter()
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

folder, path, batch, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
session = ort.InferenceSession(f"{folder}/model.onnx", opts, providers=["CPUExecutionProvider"])
tok = Tokenizer.from_file(f"{folder}/tokenizer.json")
tok.enable_truncation(256)
tok.enable_padding()
# Sorted by length, as sentence-transformers' encode() and `ms infer` batch them, so that a batch
# pads little (in file order, padding to each batch's longest sentence tripled the time).
sentences = sorted((l.rstrip("\n") for l in open(path, encoding="utf-8")), key=len)
t1 = time.perf_counter()
dims = 0
for i in range(0, len(sentences), batch):
    enc = tok.encode_batch(sentences[i:i + batch])
    feed = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64)}
    out = session.run(["sentence_embedding"], feed)[0]
    dims = out.shape[1]
t2 = time.perf_counter()
print(json.dumps({"onnxruntime": ort.__version__, "n": len(sentences), "dim": dims,
                  "load_s": t1 - t0, "encode_s": t2 - t1}))

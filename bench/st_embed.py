#!/usr/bin/env python3
"""sentence-transformers side of bench/infer_minilm.sh: embeds a .txt file, one sentence a line.

usage: st_embed.py MODEL_DIR INPUT.txt BATCH THREADS   -> prints load and encode seconds as JSON
"""
import json
import sys
import time

t0 = time.perf_counter()
import torch
from sentence_transformers import SentenceTransformer

model_dir, path, batch, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
model = SentenceTransformer(model_dir, device="cpu")
sentences = [l.rstrip("\n") for l in open(path, encoding="utf-8")]
t1 = time.perf_counter()
emb = model.encode(sentences, batch_size=batch, convert_to_numpy=True)
t2 = time.perf_counter()
print(json.dumps({"torch": torch.__version__, "n": len(sentences), "dim": int(emb.shape[1]),
                  "load_s": t1 - t0, "encode_s": t2 - t1}))

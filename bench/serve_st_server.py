#!/usr/bin/env python3
"""The Python peer of bench/serve.sh: ModelScope's service API (POST /call, GET /health) for a
sentence-embedding model, served the way `modelscope server` serves it (FastAPI + uvicorn, the
pipeline called inside an async handler, so one request runs at a time), with
sentence-transformers as the pipeline. `modelscope server` 1.40.2 itself did not start beside
Debian's torch 1.13 (the LibTorch ms uses): its pipelines import `datasets`, and the newest
`datasets`/pyarrow need NumPy 2 while that torch is built against NumPy 1.24 (older pins were not
tried).

usage: serve_st_server.py MODEL_DIR PORT THREADS
"""
import sys

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from sentence_transformers import SentenceTransformer

model_dir, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
model = SentenceTransformer(model_dir, device="cpu")
app = FastAPI()


@app.get("/health")
def health():
    return {"Code": 200, "Data": {}, "Message": "success", "RequestId": "", "Success": True}


@app.post("/call")
async def call(request: Request):
    body = await request.json()
    inp = body["input"]
    source = inp["source_sentence"]
    compare = inp.get("sentences_to_compare")
    sentences = list(source) + list(compare or [])
    emb = model.encode(sentences, batch_size=32, convert_to_numpy=True)
    scores = np.dot(emb[0:1], emb[1:].T).tolist()[0] if compare else []
    return {"text_embedding": emb.tolist(), "scores": scores}


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")

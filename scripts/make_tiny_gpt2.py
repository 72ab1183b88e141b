#!/usr/bin/env python3
"""Writes tests/data/infer/tiny/gpt2/: a small random-initialised GPT2LMHeadModel (2 layers, 16
wide, 2 heads, n_inner 40) in ModelScope layout with a byte-level BPE tokenizer (the 256 byte
tokens, a few merges, <|endoftext|>), and tests/data/infer/tiny/gpt2_reference.safetensors: the
logits transformers gives for it, for tests/unit/gpt2_test.cpp. Needs transformers
(build/venv-transformers, made by scripts/setup_python_interop.sh):

    build/venv-transformers/bin/python scripts/make_tiny_gpt2.py

Weights are drawn wider than GPT-2's initialisation (std 0.3, LayerNorm scales and biases random
too) so that the logits spread over several units and a wrong mask, position or cache shows
far above the test's 1e-4 tolerance. Cases (tensors named <case>.<what>):
  full   two unpadded rows: input_ids, logits (positions 0..t-1, Hugging Face's default)
  left   three left-padded rows: input_ids, attention_mask, position_ids (cumsum(mask) - 1, 1 on
         padding: what generate() passes), logits, labels (-100 on padding), loss (without the
         first real token of each row: it is predicted from padding)
  right  three right-padded rows with labels (padding ignored): input_ids, attention_mask, labels,
         logits, loss (default positions)
The script also checks that transformers' own incremental decoding (past_key_values) gives the
full forward's logits on `left`, so the C++ cache test compares against the same numbers.
"""
import json
import os
import shutil

import torch
import transformers
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "infer", "tiny")
PROMPTS = ["the cat sat on", "hello", "落木旧山寺", "a b"]
MAX_NEW_TOKENS = 8
MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "r e", "a n", "Ġ o", "Ġ w",
          "e n", "a t", "in g", "Ġ b"]


def byte_alphabet():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def write_tokenizer(d):
    vocab = {c: b for b, c in byte_alphabet().items()}
    for m in MERGES:
        vocab["".join(m.split(" "))] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    return len(vocab)


def main():
    d = os.path.join(ROOT, "gpt2")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    vocab_size = write_tokenizer(d)
    eos = vocab_size - 1
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab_size, n_positions=24, n_embd=16, n_layer=2, n_head=2,
                        n_inner=40, activation_function="gelu_new", bos_token_id=eos,
                        eos_token_id=eos, resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    model.save_pretrained(d, safe_serialization=True)
    GPT2Tokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt")).save_pretrained(d)
    for extra in ("special_tokens_map.json", "added_tokens.json"):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    with open(os.path.join(d, "configuration.json"), "w") as f:
        json.dump({"framework": "pytorch", "task": "text-generation", "model": {"type": "gpt2"},
                   "pipeline": {"type": "text-generation"}}, f, indent=2)

    g = torch.Generator().manual_seed(1)
    t = 7
    ref = {}
    with torch.no_grad():
        ids = torch.randint(0, vocab_size, (2, t), generator=g)
        ref["full.input_ids"] = ids
        ref["full.logits"] = model(ids).logits

        ids = torch.randint(0, vocab_size, (3, t), generator=g)
        mask = torch.ones(3, t, dtype=torch.long)
        mask[1, :2] = 0
        mask[2, :5] = 0
        ids[mask == 0] = eos
        pos = mask.cumsum(-1) - 1
        pos.masked_fill_(mask == 0, 1)
        labels = ids.masked_fill(mask == 0, -100)
        # A row's first token is predicted from the padding before it, whose logits are anyone's
        # (transformers' eager and sdpa attention already disagree on them); ms ignores that
        # target, and so does the reference loss.
        scored = labels.clone()
        for row in range(3):
            first = int((mask[row] == 0).sum())
            if first > 0:
                scored[row, first] = -100
        out = model(ids, attention_mask=mask, position_ids=pos, labels=scored)
        ref.update({"left.input_ids": ids, "left.attention_mask": mask, "left.position_ids": pos,
                    "left.labels": labels, "left.logits": out.logits, "left.loss": out.loss})
        # transformers' own cache: a 4-token prefix, then one token at a time.
        step = model(ids[:, :4], attention_mask=mask[:, :4], position_ids=pos[:, :4], use_cache=True)
        past = step.past_key_values
        for i in range(4, t):
            step = model(ids[:, i:i + 1], attention_mask=mask[:, :i + 1], position_ids=pos[:, i:i + 1],
                         past_key_values=past, use_cache=True)
            past = step.past_key_values
            real = mask[:, i] == 1
            diff = (step.logits[:, 0][real] - out.logits[:, i][real]).abs().max().item()
            assert diff < 1e-5, f"transformers' cache differs from its full forward by {diff}"

        ids = torch.randint(0, vocab_size, (3, t), generator=g)
        mask = torch.ones(3, t, dtype=torch.long)
        mask[0, 4:] = 0
        mask[2, 6:] = 0
        ids[mask == 0] = eos
        labels = ids.masked_fill(mask == 0, -100)
        out = model(ids, attention_mask=mask, labels=labels)
        ref.update({"right.input_ids": ids, "right.attention_mask": mask, "right.labels": labels,
                    "right.logits": out.logits, "right.loss": out.loss})
    # Greedy generation (transformers' generate), batched with left padding and one prompt at a
    # time: tests/e2e/test_text_generation.py checks `ms infer` against both.
    # generate() asks whether the model is FSDP-managed by importing torch.distributed.fsdp, which
    # Debian's torch 1.13 cannot import under Python 3.11 (a dataclass with a mutable default); it
    # is not, so answer for it.
    import transformers.generation.utils as generation_utils
    generation_utils.is_fsdp_managed_module = lambda module: False
    tok = GPT2Tokenizer.from_pretrained(d)
    tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    with torch.no_grad():
        enc = tok(PROMPTS, return_tensors="pt", padding=True)
        batched = model.generate(**enc, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, pad_token_id=eos)
        texts = tok.batch_decode(batched, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        for prompt, text in zip(PROMPTS, texts):
            one = tok(prompt, return_tensors="pt")
            alone = model.generate(**one, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, pad_token_id=eos)
            assert tok.decode(alone[0], skip_special_tokens=True, clean_up_tokenization_spaces=False) == text
        # CTRL's repetition penalty, a deterministic logits processor: with greedy decoding it has
        # one right answer.
        processed = {}
        for name, extra in {"repetition_penalty=1.5": {"repetition_penalty": 1.5}}.items():
            out = model.generate(**enc, do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                                 pad_token_id=eos, **extra)
            processed[name] = tok.batch_decode(out, skip_special_tokens=True,
                                               clean_up_tokenization_spaces=False)
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "max_new_tokens": MAX_NEW_TOKENS, "prompts": PROMPTS, "texts": texts,
                   "processed": processed}, f,
                  ensure_ascii=False, indent=1)
        f.write("\n")
    ref = {k: v.contiguous() for k, v in ref.items()}
    print("logit std", ref["full.logits"].std().item(), "losses", ref["left.loss"].item(), ref["right.loss"].item())
    save_file(ref, os.path.join(ROOT, "gpt2_reference.safetensors"),
              metadata={"torch": torch.__version__, "transformers": transformers.__version__})
    print(d)


if __name__ == "__main__":
    main()

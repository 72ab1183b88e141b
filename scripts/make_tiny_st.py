#!/usr/bin/env python3
"""Writes tests/data/infer/tiny/st_dense and st_concat: very small random-initialised
sentence-transformers models (BERT hidden 16, 1 layer) with the modules after the encoder, and
the embeddings sentence-transformers gives for them, for tests/e2e/test_infer_formats.py.

  ~/.cache/ms-infer/venv/bin/python scripts/make_tiny_st.py   # needs sentence-transformers 2.x

st_dense:  Transformer -> Pooling(cls) -> Dense(16->8, tanh, pytorch_model.bin) -> Normalize
st_concat: Transformer (legacy non-zip pytorch_model.bin) -> Pooling(cls, max, mean,
           mean_sqrt_len, weightedmean, lasttoken: 6 x 16 concatenated) -> Dense(96->12,
           identity, no bias, model.safetensors) -> Normalize -> Dense(12->6, sigmoid)
Both use the Hugging Face layout (no configuration.json): the task comes from modules.json.
"""
import json
import os
import shutil
import sys
import tempfile

import sentence_transformers
import torch
import transformers
from safetensors.torch import load_file, save_file
from sentence_transformers import SentenceTransformer, models
from transformers import BertConfig, BertModel, BertTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tiny_bert import ROOT, TEXTS, VOCAB  # noqa: E402  (same vocabulary and sentences)

VERSIONS = {"torch": torch.__version__, "transformers": transformers.__version__,
            "sentence-transformers": sentence_transformers.__version__}


def encoder_folder(tmp):
    """A tiny BertModel + tokenizer saved as a Hugging Face folder, for models.Transformer."""
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=24, max_position_embeddings=40, type_vocab_size=2, hidden_act="gelu")
    d = os.path.join(tmp, "encoder")
    BertModel(cfg, add_pooling_layer=False).eval().save_pretrained(d, safe_serialization=True)
    vocab = os.path.join(tmp, "vocab.txt")
    with open(vocab, "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab_file=vocab, do_lower_case=True).save_pretrained(d)
    return d


def save(name, modules, after_save=None):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    SentenceTransformer(modules=modules, device="cpu").save(d)
    # Only what ms reads (and sentence-transformers needs to load the folder back) is kept.
    for extra in ("README.md", "tokenizer.json", "special_tokens_map.json"):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    # The reference comes from the saved folder, so the files are what is checked; the format
    # changes come after, as sentence-transformers 2.x reads Dense weights only from
    # pytorch_model.bin. They move the same float32 values bit for bit.
    model = SentenceTransformer(d, device="cpu")
    emb = model.encode(TEXTS, batch_size=4, convert_to_numpy=True)
    if after_save:
        after_save(d)
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": TEXTS, "embeddings": emb.tolist(), "versions": VERSIONS}, f, ensure_ascii=False)
        f.write("\n")


def to_legacy_bin(folder):
    """model.safetensors -> pytorch_model.bin in the pre-1.6 (non-zip) torch.save format."""
    sd = load_file(os.path.join(folder, "model.safetensors"))
    torch.save(sd, os.path.join(folder, "pytorch_model.bin"), _use_new_zipfile_serialization=False)
    os.remove(os.path.join(folder, "model.safetensors"))


def to_safetensors(folder):
    """pytorch_model.bin (as sentence-transformers 2.x saves Dense) -> model.safetensors."""
    sd = torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu")
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(folder, "model.safetensors"))
    os.remove(os.path.join(folder, "pytorch_model.bin"))


def main():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        enc = encoder_folder(tmp)
        t = models.Transformer(enc, max_seq_length=32)
        save("st_dense", [t, models.Pooling(16, pooling_mode="cls"),
                          models.Dense(16, 8, activation_function=torch.nn.Tanh()), models.Normalize()])

        t = models.Transformer(enc, max_seq_length=32)
        pool = models.Pooling(16, pooling_mode_cls_token=True, pooling_mode_max_tokens=True,
                              pooling_mode_mean_tokens=True, pooling_mode_mean_sqrt_len_tokens=True,
                              pooling_mode_weightedmean_tokens=True, pooling_mode_lasttoken=True)
        first = models.Dense(96, 12, bias=False, activation_function=torch.nn.Identity())
        second = models.Dense(12, 6, activation_function=torch.nn.Sigmoid())

        def convert(d):
            to_legacy_bin(d)
            to_safetensors(os.path.join(d, "2_Dense"))

        save("st_concat", [t, pool, first, models.Normalize(), second], after_save=convert)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Prepares the poetry finetune (the seed's text-generation example, offline): classical Chinese
poems from Debian's fortunes-zh (唐诗三百首 `tang300`, 宋词 `song100`) become a dataset and a fresh
character-level GPT-2 model folder for `ms train`:

    python3 scripts/prepare_poetry.py OUT [--sources tang300,song100] [--layers 4] [--width 256]
        [--heads 4] [--positions 128] [--holdout-every 10]

writes
    OUT/data/train.jsonl, OUT/data/validation.jsonl   {"text": poem, "title": ..., "author": ...};
                                                      every Nth poem is held out
    OUT/model/vocab.txt        BERT-style: [PAD] [UNK] [CLS] [SEP] [MASK], then every character
                               of the training poems (Chinese GPT models on ModelScope tokenize
                               text into characters this way)
    OUT/model/config.json      a GPT-2 config of the given size (no weights: `ms train` starts from
                               a random initialisation)
    OUT/model/configuration.json   the recipe configs/text-generation-poetry/configuration.json
    OUT/baseline.json          the held-out perplexity of a unigram model (add-one counts of the
                               training characters), the figure the trained model must beat

Records are separated by "%" lines; the title and author lines are wrapped in ANSI colour codes,
which are removed. A poem's lines are joined as written (with their punctuation). Only the
standard library is used.
"""
import argparse
import json
import math
import os
import re
import shutil
import sys

FORTUNES = "/usr/share/games/fortunes"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def poems(path):
    """(title, author, text) of every record of a fortunes-zh file."""
    with open(path, encoding="utf-8") as f:
        records = f.read().split("\n%\n")
    for record in records:
        lines = [ANSI.sub("", line).strip() for line in record.strip().splitlines()]
        lines = [line for line in lines if line and line != "%"]
        if len(lines) < 3:
            continue
        title = re.sub(r"^题目[:：]", "", lines[0]).strip("《》")
        author = re.sub(r"^作者[:：]", "", lines[1])
        text = "".join(lines[2:])
        if text:
            yield title, author, text


def write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for title, author, text in rows:
            f.write(json.dumps({"text": text, "title": title, "author": author},
                               ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def unigram_perplexity(train, held_out, vocab):
    """exp of the mean negative log-likelihood of the held-out targets (each character and the
    end-of-text [SEP], as the model predicts them after [CLS]) under add-one character counts."""
    counts = {}
    for _, _, text in train:
        for ch in list(text) + ["[SEP]"]:
            counts[ch] = counts.get(ch, 0) + 1
    total = sum(counts.values()) + len(vocab)
    nll, n = 0.0, 0
    for _, _, text in held_out:
        for ch in list(text) + ["[SEP]"]:
            key = ch if ch in vocab else "[UNK]"
            nll -= math.log((counts.get(key, 0) + 1) / total)
            n += 1
    return math.exp(nll / n), n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--sources", default="tang300,song100",
                    help="fortunes-zh files (names under %s, or paths)" % FORTUNES)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--positions", type=int, default=128)
    ap.add_argument("--holdout-every", type=int, default=10)
    args = ap.parse_args()

    rows = []
    for source in args.sources.split(","):
        path = source if os.sep in source else os.path.join(FORTUNES, source)
        if not os.path.isfile(path):
            sys.exit(f"prepare_poetry: {path} does not exist: install Debian's fortunes-zh "
                     "(sudo apt-get install fortunes-zh)")
        rows.extend(poems(path))
    if not rows:
        sys.exit("prepare_poetry: no poems found in " + args.sources)
    held_out = [r for i, r in enumerate(rows) if i % args.holdout_every == args.holdout_every - 1]
    train = [r for i, r in enumerate(rows) if i % args.holdout_every != args.holdout_every - 1]

    data_dir = os.path.join(args.out, "data")
    model_dir = os.path.join(args.out, "model")
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(model_dir, exist_ok=True)
    write_jsonl(os.path.join(data_dir, "train.jsonl"), train)
    write_jsonl(os.path.join(data_dir, "validation.jsonl"), held_out)

    chars = sorted({ch for _, _, text in train for ch in text if not ch.isspace()})
    vocab = SPECIALS + chars
    with open(os.path.join(model_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    config = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": len(vocab), "n_positions": args.positions, "n_embd": args.width,
        "n_layer": args.layers, "n_head": args.heads, "activation_function": "gelu_new",
        "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
        "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
        "bos_token_id": vocab.index("[CLS]"), "eos_token_id": vocab.index("[SEP]"),
        "pad_token_id": vocab.index("[PAD]"), "tie_word_embeddings": True,
    }
    with open(os.path.join(model_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    shutil.copyfile(os.path.join(ROOT, "configs", "text-generation-poetry", "configuration.json"),
                    os.path.join(model_dir, "configuration.json"))

    ppl, targets = unigram_perplexity(train, held_out, set(vocab))
    with open(os.path.join(args.out, "baseline.json"), "w", encoding="utf-8") as f:
        json.dump({"unigram_ppl": ppl, "held_out_targets": targets, "train_poems": len(train),
                   "held_out_poems": len(held_out), "vocab_size": len(vocab)}, f, indent=2)
        f.write("\n")
    print(f"{len(train)} training poems, {len(held_out)} held out, {len(vocab)} tokens; "
          f"unigram held-out perplexity {ppl:.1f}")


if __name__ == "__main__":
    main()

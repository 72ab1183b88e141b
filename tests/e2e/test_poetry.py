"""The seed's text-generation example at test size (examples/poetry/run.sh is the full one): a
character-level Chinese GPT-2 (BERT-style vocab.txt) learns 唐诗三百首 from Debian's fortunes-zh
(scripts/prepare_poetry.py), its held-out perplexity falls well below the unigram baseline, `ms
eval` gives the trainer's last figure, and generation from 落木旧山寺 repeats under a seed.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import shutil
import unittest

from harness import SOURCE_DIR, TorchTestCase, run_ms

TANG300 = "/usr/share/games/fortunes/tang300"
PROMPT = "落木旧山寺"


@unittest.skipUnless(os.path.isfile(TANG300), "Debian's fortunes-zh is not installed")
class Poetry(TorchTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ms-poetry-")
        subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "scripts", "prepare_poetry.py"),
                        cls.dir, "--sources", "tang300", "--layers", "2", "--width", "64",
                        "--heads", "2", "--positions", "96"], check=True, capture_output=True)
        with open(os.path.join(cls.dir, "baseline.json"), encoding="utf-8") as f:
            cls.baseline = json.load(f)
        cls.data = os.path.join(cls.dir, "data")
        cls.work = os.path.join(cls.dir, "work")
        cls.train = run_ms("train", "--model", os.path.join(cls.dir, "model"),
                           "--dataset", f"jsonl:{cls.data}/train.jsonl",
                           "--eval-dataset", f"jsonl:{cls.data}/validation.jsonl",
                           "--work-dir", cls.work, "--max-epochs", "6", "--seed", "42",
                           "--set", "train.lr_scheduler.T_max=6", "--set", "train.optimizer.lr=0.005",
                           "--json", timeout=900)
        cls.output = os.path.join(cls.work, "output")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.assertExit(self.train, 0)

    def evaluations(self):
        (log,) = glob.glob(os.path.join(self.work, "*.log.json"))
        with open(log, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        return [r["evaluation/ppl"] for r in rows if r["mode"] == "eval"]

    def test_held_out_perplexity_falls_well_below_unigram(self):
        ppl = self.evaluations()
        self.assertEqual(len(ppl), 6)
        unigram = self.baseline["unigram_ppl"]
        # The unigram model knows only character frequencies; the decoder must use the context.
        self.assertLess(min(ppl), 0.8 * unigram, (ppl, unigram))
        self.assertLess(ppl[-1], ppl[0], ppl)

    def test_eval_gives_the_last_evaluation(self):
        r = run_ms("eval", "--model", self.output, "--dataset",
                   f"jsonl:{self.data}/validation.jsonl", "--json")
        self.assertExit(r, 0)
        last = self.evaluations()[-1]
        self.assertAlmostEqual(json.loads(r.stdout)["ppl"], last, delta=last * 1e-5)

    def poem(self, *settings):
        args = ["infer", "--model", self.output, "--input", PROMPT, "--set", "max_new_tokens=40"]
        for s in settings:
            args += ["--set", s]
        r = run_ms(*args)
        self.assertExit(r, 0)
        return json.loads(r.stdout)["text"]

    def test_generation_is_deterministic_under_a_seed(self):
        first = self.poem("top_k=20", "seed=7")
        self.assertEqual(self.poem("top_k=20", "seed=7"), first)
        self.assertTrue(first.startswith(PROMPT), first)
        # Characters written as Chinese is: no spaces, no [UNK] or other special tokens.
        self.assertGreater(len(first), len(PROMPT))
        self.assertNotIn(" ", first)
        self.assertNotIn("[", first)
        others = {self.poem("top_k=20", f"seed={s}") for s in (8, 9)}
        self.assertTrue(others - {first}, "every seed wrote the same poem")
        self.assertEqual(self.poem(), self.poem())  # greedy

    def test_stop_at_the_first_line(self):
        line = self.poem("stop=。")
        self.assertNotIn("。", line)
        self.assertTrue(line.startswith(PROMPT), line)
        self.assertTrue(self.poem().startswith(line), line)


if __name__ == "__main__":
    unittest.main()

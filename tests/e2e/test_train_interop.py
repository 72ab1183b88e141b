"""End to end: what `ms train` writes is a model Hugging Face transformers loads as its own.

`ms train` finetunes the tiny BERT classifier (tests/data/infer/tiny/cls, 3 labels) and puts a fresh
2-label head over bare encoders (tests/data/infer/tiny/st_dense, a BERT; .../roberta). Then, in
build/venv-transformers (transformers 4.49 over Debian's torch 1.13) and in build/venv-torch-newest
(the newest transformers and torch; both made by scripts/setup_python_interop.sh, or
$MS_TRANSFORMERS_PYTHON alone), tests/e2e/interop/transformers_reader.py calls AutoModelForSequenceClassification and AutoTokenizer
.from_pretrained on <work_dir>/output/:
- no weight is missing, unexpected or mismatched, and transformers logs no warning;
- config.id2label names the labels `ms infer` gives, and the softmax of the logits equals `ms infer`'s
  scores within 1e-4, for each text alone and for a padded batch;
- each iter_N.pth checkpoint (torch.load) loads with load_state_dict(strict=True); the last one
  gives output/'s scores, an earlier one other scores.
Then output/ goes to a local `ms hub serve` with `ms upload`, and `ms download` + `ms infer` by the
model id give the same scores as the local folder.
"""
import csv
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import (MS_BIN, SOURCE_DIR, JsonLinesWorker, TorchTestCase, component_available,
                     newest_torch_python, require_newest_torch, run_ms, transformers_pythons)
from hub_fixture import HubServer

TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")
READER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop", "transformers_reader.py")

POSITIVE = ["good movie", "very good movie", "the movie is good", "good good movie",
            "a very good movie", "is good", "good", "very good"]
NEGATIVE = ["bad movie", "very bad movie", "the movie is bad", "bad bad movie",
            "a very bad movie", "is bad", "bad", "very bad"]
# Different lengths (so the batch is padded), upper case (the tokenizer lowercases) and a word the
# vocabulary lacks ([UNK]).
TEXTS = ["very good movie", "Bad", "the movie is bad but the actors are good", "a zyzzyva movie"]
TOLERANCE = 1e-4


def recipe(epochs, lr):
    """A short run that still moves the weights well away from the start, so that the scores of
    different texts, and of different checkpoints, differ by far more than the tolerance (the tiny
    random encoders need their own learning rates for that: st_dense's bare encoder gives nearly
    the same embedding to every text until it is trained harder; cls's head collapses at 0.03, roberta's at 0.01)."""
    return {
        "task": "text-classification",
        "preprocessor": {"max_length": 16},
        "train": {
            "max_epochs": epochs,
            "dataloader": {"batch_size_per_gpu": 4, "shuffle": True},
            "optimizer": {"type": "AdamW", "lr": lr},
            "hooks": [{"type": "CheckpointHook", "by_epoch": False, "interval": 8}],
        },
    }


class TransformersLoadsTrainedModels(TorchTestCase):
    def setUp(self):
        super().setUp()
        self.pythons = transformers_pythons()
        if not self.pythons:
            self.skipTest("build/venv-transformers is absent: run scripts/setup_python_interop.sh "
                          "(or set MS_TRANSFORMERS_PYTHON)")
        require_newest_torch(self)
        rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
        with open(self.path("train.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(rows)

    def train(self, model, epochs, lr):
        work = self.path("work-" + model)
        config = self.write(f"recipe-{model}.json", json.dumps(recipe(epochs, lr)))
        r = run_ms("train", "--model", os.path.join(TINY, model), "--config", config,
                   "--dataset", "csv:" + self.path("train.csv"), "--work-dir", work, "--json",
                   timeout=600)
        self.assertExit(r, 0)
        return work

    def ms_scores(self, model, *extra, env=None):
        """`ms infer` of TEXTS in one padded batch: per text, {label: score}."""
        args = ["infer", "--model", model, "--batch-size", str(len(TEXTS)), *extra]
        for t in TEXTS:
            args += ["--input", t]
        r = run_ms(*args, env=env)
        self.assertExit(r, 0)
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        self.assertEqual([l["id"] for l in lines], list(range(len(TEXTS))), r.stdout)
        return [dict(zip(l["labels"], l["scores"])) for l in lines]

    # One reader per Python for the whole class (JsonLinesWorker): importing transformers and
    # torch is 3-4 s of CPU, and the class reads 8 models.
    readers = {}

    @classmethod
    def tearDownClass(cls):
        for reader in cls.readers.values():
            reader.close()
        cls.readers.clear()
        super().tearDownClass()

    def read(self, model_dir, checkpoints=()):
        """What each transformers (the oldest supported, the newest) saw in model_dir."""
        seen_by_each = []
        for python in self.pythons:
            if python not in self.readers:
                self.readers[python] = JsonLinesWorker([python, READER, "--serve"])
            seen = self.readers[python].ask(
                {"model_dir": model_dir, "texts": TEXTS, "checkpoints": list(checkpoints)})
            self.assertNotIn("error", seen, seen.get("error"))
            seen_by_each.append(seen)
        return seen_by_each

    def assertScores(self, probs, id2label, expected, what):
        """transformers' softmax rows (in id order) equal ms's {label: score} within TOLERANCE."""
        self.assertEqual(len(probs), len(expected))
        for i, (row, scores) in enumerate(zip(probs, expected)):
            self.assertEqual(len(row), len(id2label))
            named = {id2label[str(j)]: p for j, p in enumerate(row)}
            self.assertEqual(set(named), set(scores), f"{what}: labels of text {i}")
            for label, score in scores.items():
                self.assertAlmostEqual(named[label], score, delta=TOLERANCE,
                                       msg=f"{what}: text {i} ({TEXTS[i]!r}), label {label}")

    def check_model(self, model, labels, epochs, lr, architecture="BertForSequenceClassification"):
        work = self.train(model, epochs, lr)
        out = os.path.join(work, "output")
        iters = sorted((int(m.group(1)), os.path.join(work, f))
                       for f in os.listdir(work) for m in [re.fullmatch(r"iter_(\d+)\.pth", f)] if m)
        self.assertGreaterEqual(len(iters), 2, os.listdir(work))
        first, last = iters[0][1], iters[-1][1]

        expected = self.ms_scores(out)
        for seen in self.read(out, [first, last]):
            with self.subTest(transformers=seen["transformers"], torch=seen["torch"]):
                self.check_seen(seen, labels, expected, architecture, last)
        return out, expected

    def check_seen(self, seen, labels, expected, architecture, last):
        self.assertEqual(seen["model_class"], architecture)
        # The Rust tokenizer from tokenizer.json: transformers 4.x names it BertTokenizerFast, 5.x
        # BertTokenizer (its slow Python class is gone).
        self.assertIn(seen["tokenizer_class"], ("BertTokenizerFast", "BertTokenizer"))
        self.assertTrue(seen["tokenizer_is_fast"], seen["tokenizer_class"])
        self.assertEqual(seen["loading_info"],
                         {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [],
                          "error_msgs": []})
        self.assertEqual(seen["warnings"], [])
        self.assertEqual(sorted(seen["id2label"].values()), sorted(labels))
        self.assertGreater(len(set(seen["lengths"])), 1, "the batch is not padded")

        self.assertScores(seen["batch"], seen["id2label"], expected, "padded batch")
        self.assertScores(seen["alone"], seen["id2label"], expected, "one text at a time")
        # The texts get clearly different scores (so a mix-up of rows would not pass unnoticed).
        spread = max(max(s[l] for s in expected) - min(s[l] for s in expected) for l in labels)
        self.assertGreater(spread, 100 * TOLERANCE, expected)

        early, final = seen["checkpoints"]
        for c in (early, final):
            self.assertEqual((c["missing"], c["unexpected"]), ([], []), c["path"])
        self.assertScores(final["batch"], seen["id2label"], expected, os.path.basename(last))
        gap = max(abs(a - b) for ra, rb in zip(early["batch"], final["batch"]) for a, b in zip(ra, rb))
        self.assertGreater(gap, 100 * TOLERANCE, "the earlier checkpoint gives the final scores")

    def test_finetuned_classifier(self):
        # The tiny classifier keeps its 3-label head (negative, neutral, positive).
        self.check_model("cls", ["negative", "neutral", "positive"], 3, 0.01)

    def test_bert_tokenizer_saved_by_transformers_5(self):
        # transformers 5 saves a BERT tokenizer as tokenizer.json and tokenizer_config.json alone,
        # without vocab.txt: ms refused such a folder (exit 4, "no WordPiece vocabulary").
        newest = newest_torch_python()
        if newest is None:
            self.skipTest("build/venv-torch-newest is absent")
        model = self.path("saved-by-5")
        shutil.copytree(os.path.join(TINY, "cls"), model)
        saved = self.path("tokenizer-5")
        script = ("import sys, transformers\n"
                  "t = transformers.AutoTokenizer.from_pretrained(sys.argv[1])\n"
                  "t.save_pretrained(sys.argv[2])\n"
                  "print(transformers.__version__)\n")
        r = subprocess.run([newest, "-c", script, model, saved], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        if int(r.stdout.split(".")[0]) < 5:
            self.skipTest("transformers " + r.stdout.strip() + " still writes vocab.txt")
        self.assertNotIn("vocab.txt", os.listdir(saved))
        os.remove(os.path.join(model, "vocab.txt"))
        for name in os.listdir(saved):
            shutil.copy(os.path.join(saved, name), model)
        # The same ids, so the same scores as the folder with vocab.txt.
        self.assertEqual(self.ms_scores(model), self.ms_scores(os.path.join(TINY, "cls")))
        r = run_ms("train", "--model", model, "--config", self.write("recipe.json", json.dumps(recipe(1, 0.01))),
                   "--dataset", "csv:" + self.path("train.csv"), "--work-dir", self.path("work"),
                   timeout=600)
        self.assertExit(r, 0)
        self.assertIn("tokenizer.json", os.listdir(self.path("work", "output")))

    def test_added_tokens_are_matched_as_transformers_matches_them(self):
        # Tokens added to the vocabulary (a special one, normalised ones, one the vocabulary has)
        # were ignored: "[E1]" was split into "[", "e", "##1", "]" without a word.
        script = r"""
import json, os, sys, transformers
t = transformers.AutoTokenizer.from_pretrained(sys.argv[1])
t.add_special_tokens({"additional_special_tokens": ["[E1]"]})
t.add_tokens(["newword", "Movie"])
t.save_pretrained(sys.argv[2])
t = transformers.AutoTokenizer.from_pretrained(sys.argv[2])
print(json.dumps({"files": sorted(os.listdir(sys.argv[2])),
                  "ids": [t(text)["input_ids"] for text in json.loads(sys.argv[3])]}))
"""
        texts = ["x [E1] newword", "NewWord and movies [e1]", "Movie MOVIE", "[CLS] a [MASK] b"]
        for i, python in enumerate(self.pythons):
            saved = self.path(f"added-{i}")
            r = subprocess.run([python, "-c", script, os.path.join(TINY, "cls"), saved, json.dumps(texts)],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            want = json.loads(r.stdout)
            for text, ids in zip(texts, want["ids"]):
                got = run_ms("tokenize", "-m", saved, "-i", text)
                self.assertExit(got, 0)
                self.assertEqual(json.loads(got.stdout)["input_ids"], ids, (python, want["files"], text))

    def test_fresh_head_over_a_bare_encoder(self):
        # The head is made for the dataset's 2 classes; the encoder had no classifier (and its
        # config named BertModel).
        self.check_model("st_dense", ["negative", "positive"], 6, 0.03)

    def test_fresh_head_over_a_roberta_encoder(self):
        # RoBERTa (position ids counted from the padding id + 1 in transformers) is written as
        # RobertaForSequenceClassification; the fixture keeps a BERT WordPiece vocabulary.
        self.check_model("roberta", ["negative", "positive"], 6, 0.003,
                         "RobertaForSequenceClassification")

    def test_upload_download_and_infer_by_id(self):
        if not component_available("hub_server"):
            self.skipTest("this ms has no `ms hub serve` (built without the hub server)")
        out, expected = self.check_model("cls", ["negative", "neutral", "positive"], 3, 0.01)
        root = tempfile.mkdtemp(prefix="ms-hub-root-")
        self.addCleanup(shutil.rmtree, root, True)
        server = HubServer(root)
        self.addCleanup(server.stop)
        token = server.token("alice")
        env = {"MODELSCOPE_CACHE": self.path("cache"),
               "MODELSCOPE_CREDENTIALS_PATH": self.path("credentials"),
               "MODELSCOPE_ENDPOINT": server.endpoint, "MODELSCOPE_API_TOKEN": token,
               "MODELSCOPE_OFFLINE": ""}

        up = run_ms("upload", "alice/tiny-trained", out, "--create", "--json", env=env)
        self.assertExit(up, 0)
        down = run_ms("download", "alice/tiny-trained", "--json", env=env)
        self.assertExit(down, 0)
        folder = self.json_out(down)["local_path"]
        self.assertEqual(sorted(os.listdir(out)), sorted(f for f in os.listdir(folder)
                                                         if not f.startswith(".")))
        for name in os.listdir(out):
            with open(os.path.join(out, name), "rb") as a, open(os.path.join(folder, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)

        by_id = self.ms_scores("alice/tiny-trained", env=env)
        self.assertEqual(by_id, expected)
        # And transformers reads the downloaded copy as it read output/.
        for seen in self.read(folder):
            with self.subTest(transformers=seen["transformers"]):
                self.assertEqual(seen["loading_info"]["missing_keys"], [])
                self.assertScores(seen["batch"], seen["id2label"], expected, "downloaded copy")

    def test_train_export_upload_tag_download_infer(self):
        # The chain a user runs: ms train -> ms export --format safetensors -> ms upload --tag ->
        # ms infer by id at that tag; transformers loads the exported repository as its own.
        if not component_available("hub_server"):
            self.skipTest("this ms has no `ms hub serve` (built without the hub server)")
        out, expected = self.check_model("cls", ["negative", "neutral", "positive"], 3, 0.01)
        repo = self.path("repo")
        r = run_ms("export", "--model", out, "--format", "safetensors", "--output", repo, "--json")
        self.assertExit(r, 0)
        summary = self.json_out(r)
        for name in ("README.md", "config.json", "configuration.json", "model.safetensors",
                     "vocab.txt"):
            self.assertIn(name, summary["files"])
        self.assertEqual(sorted(summary["files"]), sorted(os.listdir(repo)))
        with open(os.path.join(repo, "README.md"), encoding="utf-8") as f:
            self.assertIn("- text-classification", f.read())
        with open(os.path.join(repo, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        self.assertEqual(config["architectures"], ["BertForSequenceClassification"])
        self.assertEqual(config["dtype"], "float32")
        self.assertEqual(config.get("torch_dtype", "float32"), "float32")
        for seen in self.read(repo):
            with self.subTest(transformers=seen["transformers"]):
                self.assertEqual(seen["loading_info"]["missing_keys"], [])
                self.assertEqual(seen["loading_info"]["unexpected_keys"], [])
                self.assertScores(seen["batch"], seen["id2label"], expected, "exported repository")
        self.assertEqual(self.ms_scores(repo), expected)

        # fp16: half the bytes, the same answers within half precision.
        half = self.path("repo-fp16")
        r = run_ms("export", "--model", out, "--format", "safetensors", "--output", half,
                   "--dtype", "fp16")
        self.assertExit(r, 0)
        with open(os.path.join(half, "model.safetensors"), "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        self.assertEqual({v["dtype"] for k, v in header.items() if k != "__metadata__"}, {"F16"})
        for got, want in zip(self.ms_scores(half), expected):
            for label, score in want.items():
                self.assertAlmostEqual(got[label], score, delta=5e-3)

        root = tempfile.mkdtemp(prefix="ms-hub-root-")
        self.addCleanup(shutil.rmtree, root, True)
        server = HubServer(root)
        self.addCleanup(server.stop)
        env = {"MODELSCOPE_CACHE": self.path("cache"),
               "MODELSCOPE_CREDENTIALS_PATH": self.path("credentials"),
               "MODELSCOPE_ENDPOINT": server.endpoint, "MODELSCOPE_API_TOKEN": server.token("alice"),
               "MODELSCOPE_OFFLINE": ""}
        up = run_ms("upload", "alice/tiny-export", repo, "--create", "--tag", "v1", "--json", env=env)
        self.assertExit(up, 0)
        # A later commit on master does not change what the tag names.
        self.write("note.txt", "later")
        self.assertExit(run_ms("upload", "alice/tiny-export", self.path("note.txt"), "note.txt",
                               env=env), 0)
        self.assertEqual(self.ms_scores("alice/tiny-export", "--revision", "v1", env=env), expected)
        down = run_ms("download", "alice/tiny-export", "--revision", "v1", "--json", env=env)
        self.assertExit(down, 0)
        folder = self.json_out(down)["local_path"]
        self.assertNotIn("note.txt", os.listdir(folder))
        for seen in self.read(folder):
            with self.subTest(transformers=seen["transformers"]):
                self.assertScores(seen["batch"], seen["id2label"], expected, "downloaded tag v1")


if __name__ == "__main__":
    unittest.main()

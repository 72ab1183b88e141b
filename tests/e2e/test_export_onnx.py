"""`ms export --format onnx` on small random-weight models (tests/data/infer/tiny, the committed
small CNN, a ResNet-18 made by scripts/make_tiny_vision.py, and the output/ folder of a short
`ms train`): onnxruntime (build/venv-onnxruntime, scripts/setup_python_interop.sh) runs each
exported model on batches of 1 and 7 inputs, short, max-length and padded, and must give what
`ms infer` gives within 1e-4; with --external-data (the weights in model.onnx_data, as a model
over 2 GiB must have them) the same as without. Then the errors: a model without an exporter, an
unwritable or non-empty output folder, an opset ONNX cannot write, bad options; none leaves files.
"""
import json
import math
import os
import random
import shutil
import stat
import subprocess
import unittest

from harness import (MS_BIN, SOURCE_DIR, TorchTestCase, component_available, require_newest_torch, run_ms,
                     torch_python, transformers_pythons, venv_python)

TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")
VISION = os.path.join(SOURCE_DIR, "tests", "data", "infer", "vision")
TOOLS = os.path.join(SOURCE_DIR, "tests", "e2e", "tools")
TOL = 1e-4
# Short and long texts; the last is longer than every tiny model's positions, so it is truncated to
# the maximum length. Batched together they are padded.
TEXTS = ["hello", "the movie is very good", "a b c d e f g", "bad", "我 爱 北京",
         "the [MASK] is good and the actors are great", " ".join(["good movie"] * 60)]


def lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e]


class ExportOnnxTest(TorchTestCase):
    def setUp(self):
        super().setUp()
        if self._testMethodName.startswith("test_without_torch"):
            return
        if not component_available("onnx_export"):
            self.skipTest("this ms is built without ONNX export (-DMS_WITH_ONNX=OFF)")
        self.ort_python = venv_python("venv-onnxruntime", "MS_ONNXRUNTIME_PYTHON")

    # -- helpers ---------------------------------------------------------------------------------

    def export(self, model, name, *args, code=0):
        out = self.path(name)
        r = run_ms("export", "--model", model, "--format", "onnx", "--output", out, "--json", *args,
                   timeout=600)
        self.assertExit(r, code)
        return (out, self.json_out(r)) if code == 0 else r

    def transformers_pythons(self):
        """Pythons with transformers (build/venv-transformers, build/venv-torch-newest)."""
        pythons = transformers_pythons()
        if not pythons:
            self.skipTest("build/venv-transformers is absent: run scripts/setup_python_interop.sh")
        require_newest_torch(self)
        return pythons

    def ort(self, onnx_dir, feeds):
        if not self.ort_python:
            self.skipTest("build/venv-onnxruntime is absent: run scripts/setup_python_interop.sh "
                          "(or set MS_ONNXRUNTIME_PYTHON)")
        if isinstance(feeds, dict):
            path = self.path(f"feeds-{len(os.listdir(self.tmp))}.json")
            with open(path, "w") as f:
                json.dump(feeds, f)
        else:
            path = feeds
        r = subprocess.run([self.ort_python, os.path.join(TOOLS, "onnx_run.py"),
                            os.path.join(onnx_dir, "model.onnx"), path],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        # An initializer no node reads (a constant of a branch the model left out) made
        # onnxruntime warn at every session start.
        self.assertNotIn("Removing initializer", r.stderr)
        return json.loads(r.stdout)

    @staticmethod
    def max_length(model):
        """The length the text pipelines truncate to: config.json's positions, else
        sentence_bert_config.json's max_seq_length, else configuration.json's
        preprocessor.max_length (text_pipelines.cpp)."""
        def read(name):
            path = os.path.join(model, name)
            if not os.path.exists(path):
                return {}
            with open(path) as f:
                return json.load(f)
        length = read("config.json").get("max_position_embeddings", 512)
        length = read("sentence_bert_config.json").get("max_seq_length", length)
        return read("configuration.json").get("preprocessor", {}).get("max_length", length)

    def tokenize(self, model, texts, max_length=None):
        r = run_ms("tokenize", "-m", model, "--max-length", str(max_length or self.max_length(model)),
                   *[a for t in texts for a in ("-i", t)])
        self.assertExit(r, 0)
        return lines(r.stdout)

    def infer(self, model, texts, *args):
        r = run_ms("infer", "-m", model, "-b", "7", *args, *[a for t in texts for a in ("-i", t)],
                   timeout=300)
        self.assertExit(r, 0)
        return lines(r.stdout)

    @staticmethod
    def feeds(encodings, pad_id, length=None):
        """A batch right-padded to its longest row (or `length`)."""
        length = length or max(len(e["input_ids"]) for e in encodings)
        out = {"input_ids": [], "attention_mask": [], "token_type_ids": []}
        for e in encodings:
            n = len(e["input_ids"])
            out["input_ids"].append(e["input_ids"] + [pad_id] * (length - n))
            out["attention_mask"].append([1] * n + [0] * (length - n))
            out["token_type_ids"].append(e["token_type_ids"] + [0] * (length - n))
        return out

    def run_text(self, model, onnx_dir, max_length=None):
        """onnxruntime's outputs for TEXTS: one padded batch of 7, and each text alone. Yields
        (row index, encoding, outputs of that row) for both."""
        with open(os.path.join(model, "config.json")) as f:
            pad = json.load(f).get("pad_token_id", 0) or 0
        max_length = max_length or self.max_length(model)
        encodings = self.tokenize(model, TEXTS, max_length)
        self.assertEqual(len(encodings[-1]["input_ids"]), max_length)  # truncated
        batched = self.ort(onnx_dir, self.feeds(encodings, pad))["outputs"]
        rows = []
        for i, e in enumerate(encodings):
            rows.append((i, e, {k: v[i] for k, v in batched.items()}))
            if i in (0, 5, 6):  # batch 1: short, a mask, max length
                single = self.ort(onnx_dir, self.feeds([e], pad))["outputs"]
                rows.append((i, e, {k: v[0] for k, v in single.items()}))
        return rows

    def assertClose(self, want, have, what):
        self.assertEqual(len(want), len(have), what)
        worst = max(abs(a - b) for a, b in zip(want, have))
        self.assertLessEqual(worst, TOL, f"{what}: max abs diff {worst}")

    # -- text ------------------------------------------------------------------------------------

    def test_text_classification_matches_ms_infer(self):
        model = os.path.join(TINY, "cls")
        out, summary = self.export(model, "cls-onnx")
        self.assertEqual([i["name"] for i in summary["inputs"]],
                         ["input_ids", "attention_mask", "token_type_ids"])
        self.assertEqual(summary["inputs"][0]["shape"], ["batch", "sequence"])
        self.assertEqual([o["name"] for o in summary["outputs"]], ["logits"])
        self.assertEqual(summary["opset"], 14)
        # The folder describes itself: configuration, config and tokenizer files beside the graph.
        for name in ("model.onnx", "configuration.json", "config.json", "vocab.txt",
                     "tokenizer_config.json"):
            self.assertIn(name, summary["files"])
            self.assertTrue(os.path.isfile(os.path.join(out, name)), name)
        # ms infer on the export says what it is and where to run it.
        r = run_ms("infer", "-m", out, "-i", "x")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "holds an ONNX model")
        self.assertIn("onnxruntime", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "model.safetensors")))
        # An ordinary folder, as the umask makes them (not the private temp folder it was built in).
        umask = os.umask(0)
        os.umask(umask)
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o777 & ~umask)
        with open(os.path.join(model, "config.json")) as f:
            label_index = {v: int(k) for k, v in json.load(f)["id2label"].items()}
        got = self.infer(model, TEXTS)
        for i, _, outputs in self.run_text(model, out):
            probs = softmax(outputs["logits"])
            want = [probs[label_index[l]] for l in got[i]["labels"]]
            self.assertClose(want, got[i]["scores"], f"text {i}")

    def test_external_data(self):
        # ONNX's external data, as a model over 2 GiB needs it (one protobuf file cannot hold
        # one): forced here with --external-data on the tiny classifier and on the fp16 GPT-2.
        for name, extra in (("cls", ()), ("gpt2", ("--dtype", "fp16"))):
            with self.subTest(model=name):
                model = os.path.join(TINY, name)
                inside, _ = self.export(model, name + "-inside", *extra)
                out, summary = self.export(model, name + "-outside", "--external-data", "--check",
                                           *extra)
                self.assertIn("model.onnx_data", summary["files"])
                self.assertEqual(sorted(os.listdir(out)), sorted(summary["files"]))
                graph = os.path.getsize(os.path.join(out, "model.onnx"))
                self.assertLess(graph, os.path.getsize(os.path.join(inside, "model.onnx")) / 2)
                self.assertGreater(os.path.getsize(os.path.join(out, "model.onnx_data")), graph)
                ids = self.tokenize(model, TEXTS[:3]) if name == "cls" else None
                feeds = (self.feeds(ids, 0) if ids else
                         {"input_ids": [[5, 9, 2, 7], [3, 3, 8, 1]],
                          "attention_mask": [[1, 1, 1, 1], [0, 1, 1, 1]]})
                want = self.ort(inside, feeds)["outputs"]
                got = self.ort(out, feeds)["outputs"]
                self.assertEqual(want, got)
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", self.path("ts"),
                   "--format", "torchscript", "--external-data")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--external-data is an ONNX option")

    def test_token_classification_matches_ms_infer(self):
        model = os.path.join(TINY, "ner")
        out, _ = self.export(model, "ner-onnx")
        got = self.infer(model, TEXTS)
        for i, e, outputs in self.run_text(model, out):
            n = len(e["input_ids"])
            # Per-token probabilities of the tokens between [CLS] and [SEP].
            best = [max(softmax(row)) for row in outputs["logits"][1:n - 1]]
            self.assertClose(best, got[i]["scores"], f"text {i}")

    def test_fill_mask_matches_ms_infer(self):
        model = os.path.join(TINY, "mlm")
        out, summary = self.export(model, "mlm-onnx", "--check")
        self.assertTrue(summary["checked"])
        with open(os.path.join(model, "vocab.txt"), encoding="utf-8") as f:
            mask_id = [l.rstrip("\n") for l in f].index("[MASK]")
        got = self.infer(model, TEXTS)
        checked = 0
        for i, e, outputs in self.run_text(model, out):
            masks = [p for p, t in enumerate(e["input_ids"]) if t == mask_id]
            self.assertEqual(len(masks), len(got[i].get("predictions", [])), f"text {i}")
            for p, predictions in zip(masks, got[i].get("predictions", [])):
                top = sorted(softmax(outputs["logits"][p]), reverse=True)[:len(predictions)]
                self.assertClose(top, [x["score"] for x in predictions], f"text {i} position {p}")
                checked += 1
        self.assertGreater(checked, 0)

    def check_embeddings(self, name, max_length=None):
        model = os.path.join(TINY, name)
        out, summary = self.export(model, f"{name}-onnx")
        self.assertEqual([o["name"] for o in summary["outputs"]],
                         ["last_hidden_state", "sentence_embedding"])
        args = ["--set", f"preprocessor.max_length={max_length}"] if max_length else []
        got = self.infer(model, TEXTS, *args)
        for i, _, outputs in self.run_text(model, out, max_length):
            self.assertClose(outputs["sentence_embedding"], got[i]["text_embedding"], f"text {i}")

    def test_sentence_embedding_dense_matches_ms_infer(self):
        self.check_embeddings("st_dense")

    def test_sentence_embedding_every_pooling_mode_matches_ms_infer(self):
        # cls, max, mean, mean_sqrt_len, weightedmean and lasttoken, then Dense, Normalize, Dense.
        self.check_embeddings("st_concat")

    def test_roberta_positions_match_ms_infer(self):
        # RoBERTa numbers positions from pad_token_id + 1: one position fewer than config.json's
        # max_position_embeddings is the longest input (the text pipeline's default maximum is
        # one more, so it is set here).
        with open(os.path.join(TINY, "roberta", "config.json")) as f:
            config = json.load(f)
        self.check_embeddings("roberta", config["max_position_embeddings"] - config["pad_token_id"] - 1)

    def test_opsets_and_static_shapes(self):
        model = os.path.join(TINY, "cls")
        want = None
        for opset in ("13", "17"):
            out, summary = self.export(model, f"cls-{opset}", "--opset", opset)
            self.assertEqual(summary["opset"], int(opset))
            logits = self.ort(out, self.feeds(self.tokenize(model, TEXTS[:2]), 0))["outputs"]["logits"]
            if want:
                self.assertClose(sum(want, []), sum(logits, []), f"opset {opset}")
            want = logits
        out, summary = self.export(model, "cls-static", "--static", "2,16")
        self.assertEqual(summary["inputs"][0]["shape"], [2, 16])
        result = self.ort(out, self.feeds(self.tokenize(model, TEXTS[:2]), 0, length=16))
        self.assertEqual(result["inputs"][0]["shape"], [2, 16])
        self.assertClose(sum(want, []), sum(result["outputs"]["logits"], []), "static 2,16")

    def test_trained_output_folder_exports(self):
        rows = [("very good movie", "positive"), ("bad film", "negative"), ("good", "positive"),
                ("awful", "negative")] * 4
        with open(self.path("train.csv"), "w") as f:
            f.write("text,label\n" + "".join(f"{t},{l}\n" for t, l in rows))
        with open(self.path("recipe.json"), "w") as f:
            json.dump({"task": "text-classification", "preprocessor": {"max_length": 16},
                       "train": {"max_epochs": 1, "dataloader": {"batch_size_per_gpu": 4},
                                 "optimizer": {"type": "AdamW", "lr": 1e-3}}}, f)
        r = run_ms("train", "-m", os.path.join(TINY, "cls"), "-c", self.path("recipe.json"),
                   "--dataset", "csv:" + self.path("train.csv"), "-w", self.path("work"), "--json",
                   timeout=600)
        self.assertExit(r, 0)
        model = self.json_out(r)["output_dir"]
        out, _ = self.export(model, "trained-onnx")
        with open(os.path.join(model, "config.json")) as f:
            label_index = {v: int(k) for k, v in json.load(f)["id2label"].items()}
        got = self.infer(model, TEXTS)
        for i, _, outputs in self.run_text(model, out):
            probs = softmax(outputs["logits"])
            self.assertClose([probs[label_index[l]] for l in got[i]["labels"]], got[i]["scores"],
                             f"text {i}")

    # -- images ----------------------------------------------------------------------------------

    def check_images(self, model):
        py = torch_python(("torch", "torchvision", "PIL", "numpy"))
        if py is None:
            self.skipTest("no Python with torch + torchvision + PIL (apt-get install "
                          "python3-torchvision python3-pil)")
        images = self.path("images")
        os.makedirs(images, exist_ok=True)
        # The fixture's images under several names: 7 in one batch, of different sizes.
        sources = ["a.png", "b.png"] + (["c.jpg"] if component_available("jpeg") else [])
        names = []
        for i in range(7):
            source = sources[i % len(sources)]
            names.append(f"{i}{os.path.splitext(source)[1]}")
            with open(os.path.join(VISION, "images", source), "rb") as src, \
                    open(os.path.join(images, names[-1]), "wb") as dst:
                dst.write(src.read())
        pixels = self.path("pixels.npz")
        r = subprocess.run([py, os.path.join(TOOLS, "image_pixels.py"), model, pixels,
                            *[os.path.join(images, n) for n in names]],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        out, summary = self.export(model, "image-onnx")
        self.assertEqual(summary["inputs"][0]["name"], "pixel_values")
        self.assertEqual(summary["inputs"][0]["shape"], ["batch", 3, "height", "width"])
        r = run_ms("infer", "-m", model, "--input-dir", images, "-b", "7", timeout=300)
        got = {g["id"]: g for g in lines(r.stdout)}
        with open(os.path.join(model, "configuration.json")) as f:
            labels = json.load(f).get("model", {}).get("labels")
        logits = self.ort(out, pixels)["outputs"]["logits"]
        self.assertEqual(len(logits), len(names))
        for name, row in zip(names, logits):
            probs = softmax(row)
            index = {(labels[i] if labels else f"LABEL_{i}"): i for i in range(len(probs))}
            have = got[name]
            self.assertClose([probs[index[l]] for l in have["labels"]], have["scores"], name)

    def test_small_cnn_matches_ms_infer(self):
        self.check_images(os.path.join(VISION, "small-cnn"))

    def test_resnet18_matches_ms_infer(self):
        py = torch_python(("torch", "torchvision", "PIL"))
        if py is None:
            self.skipTest("no Python with torch + torchvision + PIL to generate ResNet weights")
        model = self.path("resnet18")
        r = subprocess.run([py, os.path.join(SOURCE_DIR, "scripts", "make_tiny_vision.py"), "--resnet", "18",
                            model], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_images(model)

    # -- GPT-2 -----------------------------------------------------------------------------------

    def test_gpt2_logits_match_transformers(self):
        """text-generation: the decoder without a cache, logits at every position, equal (1e-4) to
        transformers' GPT2LMHeadModel on the same right-padded batch and on each row alone."""
        model = os.path.join(TINY, "gpt2")
        out, summary = self.export(model, "gpt2-onnx", "--check")
        self.assertEqual([i["name"] for i in summary["inputs"]], ["input_ids", "attention_mask"])
        self.assertEqual(summary["outputs"][0]["shape"], ["batch", "sequence", 273])
        rows = [e["input_ids"] for e in self.tokenize(model, ["the cat sat on", "hello", "a b c d e f g"], 24)]
        length = max(map(len, rows))
        feeds = {"input_ids": [r + [0] * (length - len(r)) for r in rows],
                 "attention_mask": [[1] * len(r) + [0] * (length - len(r)) for r in rows]}
        path = self.path("gpt2-feeds.json")
        with open(path, "w") as f:
            json.dump(feeds, f)
        got = self.ort(out, feeds)["outputs"]["logits"]
        alones = [self.ort(out, {"input_ids": [r], "attention_mask": [[1] * len(r)]})["outputs"]["logits"][0]
                  for r in rows]
        # transformers' logits, from the oldest release ms supports and the newest.
        for hf in self.transformers_pythons():
            reference = subprocess.run(
                [hf, "-c", "import json, sys, torch, transformers\n"
                           "from transformers import GPT2LMHeadModel\n"
                           "m = GPT2LMHeadModel.from_pretrained(sys.argv[1]).eval()\n"
                           "f = json.load(open(sys.argv[2]))\n"
                           "with torch.no_grad():\n"
                           "    y = m(input_ids=torch.tensor(f['input_ids']), attention_mask=torch.tensor(f['attention_mask'])).logits\n"
                           "print(transformers.__version__)\n"
                           "print(json.dumps(y.tolist()))", model, path],
                capture_output=True, text=True, timeout=300)
            self.assertEqual(reference.returncode, 0, reference.stderr)
            version, reference_logits = reference.stdout.splitlines()[-2:]
            want = json.loads(reference_logits)
            with self.subTest(transformers=version):
                for b, r in enumerate(rows):
                    for t in range(len(r)):  # attended positions; padding's logits are not defined
                        self.assertClose(got[b][t], want[b][t], f"row {b} position {t}")
                        self.assertClose(alones[b][t], want[b][t], f"row {b} alone, position {t}")
        # float16: next-token probabilities within 5e-3 of float32's.
        half, _ = self.export(model, "gpt2-fp16", "--dtype", "fp16", "--check")
        got16 = self.ort(half, feeds)["outputs"]["logits"]
        for b, r in enumerate(rows):
            for t in range(len(r)):
                worst = max(abs(x - y) for x, y in zip(softmax(got16[b][t]), softmax(want[b][t])))
                self.assertLessEqual(worst, 5e-3, f"fp16 row {b} position {t}")

    def test_gpt2_left_padding_in_fp16(self):
        """Left padding, as generation batches prompts, in fp32 and fp16: the real positions keep
        transformers' logits. A query on padding sees no key; its masked scores (-65504 plus the
        score) are -inf in float16 once the score is below -16, and a runtime whose softmax gives
        NaN for such a row (PyTorch's does; onnxruntime's CPU softmax does not) would spread the
        NaN to the real tokens through that position's keys. The graph lets such a query see
        itself. The tiny GPT-2's keys are set to minus its enlarged queries here, so that a
        padding position's scores, against keys equal to its own, are strongly negative."""
        hf = self.transformers_pythons()[0]  # makes the model and its reference logits
        model = self.path("gpt2-sharp")
        rows = [[5, 17, 40, 33, 2], [8, 21], [3, 3, 9, 90]]
        length = max(map(len, rows))
        left = {"input_ids": [[0] * (length - len(r)) + r for r in rows],
                "attention_mask": [[0] * (length - len(r)) + [1] * len(r) for r in rows]}
        reference = subprocess.run(
            [hf, "-c", "import json, shutil, sys, torch\n"
                       "from transformers import GPT2LMHeadModel\n"
                       "src, dst, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])\n"
                       "m = GPT2LMHeadModel.from_pretrained(src).eval()\n"
                       "e = m.config.n_embd\n"
                       "with torch.no_grad():\n"
                       "    for block in m.transformer.h:\n"
                       "        w, b = block.attn.c_attn.weight, block.attn.c_attn.bias\n"
                       "        w[:, :e] *= 50\n"
                       "        w[:, e:2 * e] = -w[:, :e]\n"
                       "        b[e:2 * e] = -b[:e]\n"
                       "m.save_pretrained(dst)\n"
                       "for f in ('vocab.json', 'merges.txt', 'configuration.json'):\n"
                       "    shutil.copy(f'{src}/{f}', dst)\n"
                       "out = []\n"
                       "with torch.no_grad():\n"
                       "    for r in rows:\n"
                       "        y = m(input_ids=torch.tensor([r]))\n"
                       "        out.append(y.logits[0].tolist())\n"
                       "print(json.dumps(out))", os.path.join(TINY, "gpt2"), model, json.dumps(rows)],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(reference.returncode, 0, reference.stderr)
        want = json.loads(reference.stdout)
        full, _ = self.export(model, "sharp-fp32")
        half, _ = self.export(model, "sharp-fp16", "--dtype", "fp16")
        for graph, tol in ((full, None), (half, 5e-3)):
            got = self.ort(graph, left)["outputs"]["logits"]
            for b, r in enumerate(rows):
                pad = length - len(r)
                for t in range(len(r)):
                    self.assertTrue(all(map(math.isfinite, got[b][pad + t])), f"row {b} position {t}")
                    if tol is None:
                        self.assertClose(got[b][pad + t], want[b][t], f"row {b} position {t}")
                    else:
                        worst = max(abs(x - y) for x, y in
                                    zip(softmax(got[b][pad + t]), softmax(want[b][t])))
                        self.assertLessEqual(worst, tol, f"fp16 row {b} position {t}")

    # -- float16 ---------------------------------------------------------------------------------

    def test_fp16_graphs(self):
        """--dtype fp16: weights and computation in float16, inputs and outputs as in fp32; the
        file is about half the size, and onnxruntime's answers stay within float16's precision
        of `ms infer`'s float32 ones (embeddings: cosine >= 0.999; probabilities within 5e-3)."""
        def size(d):
            return os.path.getsize(os.path.join(d, "model.onnx"))

        for name in ("st_dense", "cls", "ner"):
            model = os.path.join(TINY, name)
            full, _ = self.export(model, f"{name}-fp32")
            half, summary = self.export(model, f"{name}-fp16", "--dtype", "fp16", "--check")
            self.assertLess(size(half), 0.75 * size(full), name)  # tiny: the graph is a third
            self.assertEqual({o["dtype"] for o in summary["outputs"]}, {"float32"})
            got = self.infer(model, TEXTS)
            for i, _, outputs in self.run_text(model, half):
                if name == "st_dense":
                    a, b = outputs["sentence_embedding"], got[i]["text_embedding"]
                    cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(
                        sum(x * x for x in a) * sum(y * y for y in b))
                    self.assertGreaterEqual(cos, 0.999, f"text {i}")
                elif name == "cls":
                    probs = softmax(outputs["logits"])
                    with open(os.path.join(model, "config.json")) as f:
                        id2label = json.load(f)["id2label"]
                    index = {id2label[str(k)]: k for k in range(len(probs))}
                    want = got[i]
                    worst = max(abs(probs[index[l]] - s) for l, s in zip(want["labels"], want["scores"]))
                    self.assertLessEqual(worst, 5e-3, f"text {i}")
                else:
                    # Token rows: the same shape, finite, and close in probability to fp32's.
                    full_rows = dict((j, o) for j, _, o in self.run_text(model, full))
                    for a, b in zip(outputs["logits"], full_rows[i]["logits"]):
                        worst = max(abs(x - y) for x, y in zip(softmax(a), softmax(b)))
                        self.assertLessEqual(worst, 5e-3, f"text {i}")
                    break
        # An image classifier: pixel_values stay float32, cast to float16 inside the graph.
        model = os.path.join(VISION, "small-cnn")
        full, _ = self.export(model, "cnn-fp32")
        half, summary = self.export(model, "cnn-fp16", "--dtype", "fp16", "--check")
        self.assertEqual(summary["inputs"][0]["dtype"], "float32")
        rng = random.Random(7)
        pixels = {"pixel_values": [[[[rng.uniform(-2, 2) for _ in range(20)] for _ in range(20)]
                                    for _ in range(3)] for _ in range(2)]}
        a = self.ort(full, pixels)["outputs"]["logits"]
        b = self.ort(half, pixels)["outputs"]["logits"]
        for x, y in zip(a, b):
            self.assertLessEqual(max(abs(p - q) for p, q in zip(softmax(x), softmax(y))), 5e-3)

    # -- bad input -------------------------------------------------------------------------------

    def assertNothingWritten(self, parent, before):
        self.assertEqual(sorted(os.listdir(parent)), before, "an error left files behind")

    def test_model_without_exporter_names_the_supported_ones(self):
        before = sorted(os.listdir(self.tmp))
        r = self.export(os.path.join(VISION, "torchscript"), "ts-onnx", code=2)
        self.assertOneLineError(r, "no ONNX exporter", "image-classification", "torchscript")
        self.assertIn("small-cnn", r.stderr)
        self.assertIn("sentence-embedding", r.stderr)
        self.assertNothingWritten(self.tmp, before)

    def test_unsupported_opsets_are_refused(self):
        before = sorted(os.listdir(self.tmp))
        for opset in ("12", "99"):
            r = self.export(os.path.join(TINY, "cls"), "opset-onnx", "--opset", opset, code=2)
            self.assertOneLineError(r, f"opset {opset}", "13 to 17")
        # An empty value (a shell variable not set) was the default opset, exit 0.
        r = self.export(os.path.join(TINY, "cls"), "opset-onnx", "--opset", "", code=2)
        self.assertOneLineError(r, "--opset", "empty")
        self.assertNothingWritten(self.tmp, before)

    def test_unwritable_and_non_empty_output_folders(self):
        blocker = self.path("file")
        with open(blocker, "w") as f:
            f.write("x")
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", os.path.join(blocker, "out"))
        self.assertExit(r, 74)
        self.assertOneLineError(r, blocker)
        full = self.path("full")
        os.makedirs(full)
        with open(os.path.join(full, "keep.txt"), "w") as f:
            f.write("mine")
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", full)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "not empty")
        self.assertEqual(os.listdir(full), ["keep.txt"])
        # ".", ".." and "/" name no folder to rename the export into: refused before any work
        # (from an empty folder too, where "." would pass the emptiness check).
        empty = self.path("empty")
        os.makedirs(empty)
        for odd in (".", "..", "./", "sub/..", "/"):
            r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", odd, "--format", "safetensors", cwd=empty)
            self.assertExit(r, 2, odd)
            self.assertOneLineError(r, "names no folder of its own")
        self.assertEqual(os.listdir(empty), [])
        # A link as --output (to an empty folder, or dangling) would fail the final rename only
        # after the whole export: refused first, the link left as it was.
        os.makedirs(self.path("target"))
        # With a trailing slash too ("link/" was followed, and "file/" failed with ENOTDIR: both
        # passed the checks and failed with exit 74 after the export).
        for link, to in (("link", "target"), ("dangling", "nowhere")):
            os.symlink(to, os.path.join(empty, link))
            for output in (link, link + "/"):
                r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", output, "--format", "safetensors",
                           cwd=empty)
                self.assertExit(r, 2, output)
                self.assertOneLineError(r, "is a symbolic link")
            os.remove(os.path.join(empty, link))
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", blocker + "/", "--format", "safetensors")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "exists and is not a folder")
        self.assertEqual(os.listdir(self.path("target")), [])
        os.rmdir(self.path("target"))
        # GPT-2's --static length is bounded by its position table as BERT's is (the graph
        # failed on every input).
        r = run_ms("export", "-m", os.path.join(TINY, "gpt2"), "-o", "g", "--static", "1,25", cwd=empty)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--static sequence length 25", "24 positions")
        self.assertEqual(os.listdir(empty), [])
        # A name too long for the temp folder written beside it (18 bytes longer) is refused
        # first; the longest that fits works.
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", "a" * 238, "--format", "safetensors", cwd=empty)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "238 bytes long; at most 237")
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", "a" * 237, "--format", "safetensors", cwd=empty)
        self.assertExit(r, 0)
        shutil.rmtree(os.path.join(empty, "a" * 237))
        # "out/." is the folder "out".
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", "out/.", "--format", "safetensors", cwd=empty)
        self.assertExit(r, 0)
        self.assertEqual(os.listdir(empty), ["out"])
        self.assertIn("model.safetensors", os.listdir(os.path.join(empty, "out")))
        # An existing empty folder is replaced by the export, which takes its mode (setgid
        # included) and group first (the user's folder lost them), so its files get the group of
        # a setgid folder. A killed fill's hidden temp folder inside it does not make it "not
        # empty", and goes. (A mount point, filled instead, needs mount rights: the
        # tests check it only as root, below.)
        mine = os.path.join(empty, "mine")
        os.makedirs(os.path.join(mine, ".export.ms-export-Dead01"))
        group = 12345 if os.geteuid() == 0 else (os.getgroups() or [os.getgid()])[-1]
        os.chown(mine, -1, group)
        os.chmod(mine, 0o2750)
        before_fill = os.stat(mine)
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", mine, "--format", "safetensors")
        self.assertExit(r, 0)
        after_fill = os.stat(mine)
        self.assertEqual((after_fill.st_mode, after_fill.st_gid), (before_fill.st_mode, before_fill.st_gid))
        self.assertIn("model.safetensors", os.listdir(mine))
        self.assertEqual(os.stat(os.path.join(mine, "model.safetensors")).st_gid, group)
        self.assertFalse([e for e in os.listdir(mine) if e.startswith(".")], os.listdir(mine))
        # A mount point (as root, where a private mount namespace can be made): filled in place.
        if os.geteuid() == 0 and shutil.which("unshare"):
            point = os.path.join(empty, "point")
            os.makedirs(point)
            script = (f"mount -t tmpfs tmpfs {point} && {MS_BIN} export -m {os.path.join(TINY, 'cls')} "
                      f"-o {point} --format safetensors >/dev/null && ls -A {point}")
            r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                               timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("model.safetensors", r.stdout.split())
            self.assertFalse([e for e in r.stdout.split() if e.startswith(".")], r.stdout)
        shutil.rmtree(empty)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["file", "full"])

    def test_bad_format_options(self):
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", self.path("x"), "--dtype", "fp8")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "unknown --dtype 'fp8'")
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", self.path("x"), "--format", "onx")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "unknown export format 'onx'")
        r = run_ms("export", "-m", os.path.join(TINY, "cls"), "-o", self.path("x"), "--static", "1,x")
        self.assertExit(r, 2)
        self.assertFalse(os.path.exists(self.path("x")))


if __name__ == "__main__":
    unittest.main()

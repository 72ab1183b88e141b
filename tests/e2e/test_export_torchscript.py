"""`ms export --format torchscript`: LibTorch's tracer records the C++ model. Image classifiers
(small CNN, and a ResNet-18 written by scripts/make_tiny_vision.py): `ms infer` runs the exported
folder through its TorchScript pipeline (LibTorch's jit::load) with the source model's scores
(within 1e-5), and Python's torch.jit.load (Debian's torch 1.13 and the newest torch, in
build/venv-torch-newest) runs model.pt at other batch sizes and
image sizes than the traced one. BERT-family models with each head `ms infer` runs (classification,
NER, word segmentation, fill-mask, sentence embeddings from BERT, RoBERTa and sentence-transformers
folders): `ms infer` on the export equals it on the source, and Python's torch.jit.load gives the
same outputs at batch 1 and 7 with padded rows of other lengths than the trace's. GPT-2
(input_ids, attention_mask -> logits, no cache): Python's torch.jit.load gives transformers'
logits (tests/data/infer/tiny/gpt2_reference.safetensors) for full, left- and right-padded
batches, and `ms infer` generates from the archive what it generates from the source.
--dtype fp16: the archive's weights are float16 (read back by Python's torch.jit.load), and `ms
infer`, which runs it in float32 on the CPU, stays within fp16 rounding of the source. Bad options
are clear errors, and nothing is left behind.
"""
import json
import math
import os
import subprocess
import unittest

from harness import (SOURCE_DIR, TorchTestCase, component_available, python_torch_version,
                     require_newest_torch, run_ms, torch_python, torch_pythons)

VISION = os.path.join(SOURCE_DIR, "tests", "data", "infer", "vision")
TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")
IMAGES = os.path.join(VISION, "images")
# scripts/gpu-check.sh runs these tests again with MS_INFER_DEVICE=gpu:0: `ms infer` then runs the
# archives (fp16 ones in half precision) and their sources on the GPU.
DEVICE = os.environ.get("MS_INFER_DEVICE", "cpu")

# Runs the archive in Python on random batches; prints the logits and the input sizes it used.
RUNNER = r"""
import json, sys, torch
m = torch.jit.load(sys.argv[1]); m.eval()
torch.manual_seed(0)
out = []
for shape in json.loads(sys.argv[2]):
    x = torch.rand(*shape)
    with torch.no_grad():
        out.append({"shape": shape, "input": x.flatten().tolist(), "logits": m(x).tolist()})
print(json.dumps(out))
"""


# Runs text archives in Python on `ms tokenize` output, padded into batches of the given sizes;
# prints, for each archive (argv: sizes, then archive and ids file pairs), each row's output and
# the inlined graph. One interpreter for every archive (importing torch costs seconds).
TEXT_RUNNER = r"""
import json, sys, torch
sizes = json.loads(sys.argv[1])
results = {}
for archive, ids_file in zip(sys.argv[2::2], sys.argv[3::2]):
    m = torch.jit.load(archive); m.eval()
    rows = [json.loads(l) for l in open(ids_file)]
    out = []
    for size in sizes:
        for start in range(0, len(rows), size):
            batch = rows[start:start + size]
            t = max(len(r["input_ids"]) for r in batch)
            pad = lambda xs: xs + [0] * (t - len(xs))
            ids = torch.tensor([pad(r["input_ids"]) for r in batch])
            mask = torch.tensor([pad([1] * len(r["input_ids"])) for r in batch])
            types = torch.tensor([pad(r["token_type_ids"]) for r in batch])
            with torch.no_grad():
                y = m(ids, mask, types)
            out.append({"size": size, "rows": y.tolist()})
    results[archive] = {"runs": out, "graph": str(m.inlined_graph)}
print(json.dumps(results))
"""

# Runs a GPT-2 archive in Python on transformers' reference batches (full, left- and right-padded);
# prints the largest difference to transformers' logits over the attended positions.
GPT2_RUNNER = r"""
import json, struct, sys, torch
m = torch.jit.load(sys.argv[1]); m.eval()
raw = open(sys.argv[2], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
def get(key):
    h = head[key]; a, b = h["data_offsets"]
    dtype = {"F32": torch.float32, "I64": torch.int64}[h["dtype"]]
    return torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=dtype).reshape(h["shape"])
out = {}
for case in ("full", "left", "right"):
    ids = get(case + ".input_ids")
    mask = get(case + ".attention_mask") if case + ".attention_mask" in head else torch.ones_like(ids)
    with torch.no_grad():
        got = m(ids, mask)
    out[case] = {"dtype": str(got.dtype), "shape": list(got.shape),
                 "diff": (got - get(case + ".logits"))[mask.bool()].abs().max().item()}
print(json.dumps(out))
"""

# Prints the dtypes of each archive's tensor constants (a traced model's weights), by path: one
# interpreter for every archive (importing torch costs seconds).
CONSTANT_DTYPES = r"""
import json, sys, torch
dtypes = {}
for path in sys.argv[1:]:
    m = torch.jit.load(path)
    values = [n.output().toIValue() for n in m.forward.graph.nodes() if n.kind() == "prim::Constant"]
    dtypes[path] = sorted({str(v.dtype) for v in values if isinstance(v, torch.Tensor)})
print(json.dumps(dtypes))
"""

TEXTS = ["hello world", "a b c d e f g h i j k", "short", "the quick brown fox jumps over it",
         "one two", "x y z", "more words in this sentence than the others have here"]


def close(a, b, tol=1e-5):
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= tol
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(close(a[k], b[k], tol) for k in a)
    return a == b


class TorchScriptExport(TorchTestCase):
    def python_torches(self):
        """The Python torches that must run the archives: Debian's 1.13 and the newest."""
        pythons = torch_pythons(("torch",))
        if not pythons:
            self.skipTest("no Python torch to load model.pt")
        require_newest_torch(self)
        return pythons

    def export(self, model, name, *extra, code=0):
        out = self.path(name)
        r = run_ms("export", "--model", model, "--format", "torchscript", "--output", out,
                   "--json", *extra)
        self.assertExit(r, code)
        return (out, self.json_out(r)) if code == 0 else r

    def scores(self, model):
        r = run_ms("infer", "--model", model, "--input-dir", IMAGES, "--device", DEVICE)
        self.assertExit(r, 0)
        return {l["id"]: l for l in map(json.loads, r.stdout.splitlines()) if "scores" in l}

    def check(self, model):
        out, summary = self.export(model, "ts")
        self.assertEqual(summary["outputs"][0]["name"], "logits")
        self.assertEqual(sorted(os.listdir(out)), summary["files"])
        want, got = self.scores(model), self.scores(out)
        self.assertEqual(set(want), set(got))
        # a.png, b.png, and c.jpg where this build decodes JPEG (the GPU machine's does not).
        self.assertGreaterEqual(len(want), 3 if component_available("jpeg") else 2)
        for k in want:
            self.assertEqual(want[k]["labels"], got[k]["labels"], k)
            for a, b in zip(want[k]["scores"], got[k]["scores"]):
                self.assertAlmostEqual(a, b, delta=1e-5, msg=k)
        return out

    def test_small_cnn(self):
        out = self.check(os.path.join(VISION, "small-cnn"))
        shapes = [[1, 3, 16, 16], [5, 3, 16, 16], [2, 3, 24, 20]]
        for py in self.python_torches():
            with self.subTest(torch=python_torch_version(py)):
                r = subprocess.run([py, "-c", RUNNER, os.path.join(out, "model.pt"),
                                    json.dumps(shapes)], capture_output=True, text=True, timeout=300)
                self.assertEqual(r.returncode, 0, r.stderr)
                runs = json.loads(r.stdout)
                self.assertEqual([len(x["logits"]) for x in runs], [1, 5, 2])
                self.assertTrue(all(len(row) == 3 for x in runs for row in x["logits"]))

    def test_resnet18(self):
        py = torch_python(("torch", "torchvision", "PIL"))
        if py is None:
            self.skipTest("no Python with torch + torchvision + PIL to generate ResNet weights")
        model = self.path("resnet18")
        r = subprocess.run([py, os.path.join(SOURCE_DIR, "scripts", "make_tiny_vision.py"),
                            "--resnet", "18", model], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check(model)

    def infer_lines(self, model, texts):
        r = run_ms("infer", "--model", model, "--device", DEVICE, "--input", *texts)
        self.assertExit(r, 0)
        return [json.loads(l) for l in r.stdout.splitlines()]

    def test_text_models_run_in_ms_infer_as_the_source(self):
        mask_texts = ["hello [MASK] world", "a b [MASK] d e f g", "[MASK] is here"]
        for name in ("cls", "bin", "st_dense", "st_concat", "roberta", "ner", "ws", "mlm"):
            with self.subTest(model=name):
                model = os.path.join(TINY, name)
                out, summary = self.export(model, "ts-" + name)
                self.assertEqual([i["name"] for i in summary["inputs"]],
                                 ["input_ids", "attention_mask", "token_type_ids"])
                texts = mask_texts if name == "mlm" else TEXTS
                want, got = self.infer_lines(model, texts), self.infer_lines(out, texts)
                self.assertFalse(any("error" in w for w in want), want)
                self.assertTrue(close(want, got), (want, got))

    def test_a_set_pooling_is_what_the_copied_pooling_config_says(self):
        # The archive pooled as --set model.pooling said, but 1_Pooling/config.json was copied
        # unchanged (CLS), so readers pooling the hidden states by that file got other vectors;
        # and a source without pipeline.type gave "pipeline": {"type": ""}.
        model = os.path.join(TINY, "st_dense")
        with open(os.path.join(model, "1_Pooling", "config.json")) as f:
            self.assertTrue(json.load(f)["pooling_mode_cls_token"])
        out, _ = self.export(model, "ts-mean", "--set", "model.pooling=mean")
        with open(os.path.join(out, "1_Pooling", "config.json")) as f:
            pooling = json.load(f)
        self.assertTrue(pooling["pooling_mode_mean_tokens"])
        self.assertFalse(any(v for k, v in pooling.items()
                             if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"))
        with open(os.path.join(out, "configuration.json")) as f:
            configuration = json.load(f)
        self.assertNotEqual(configuration.get("pipeline", {}).get("type"), "")
        r = run_ms("infer", "--model", model, "--set", "model.pooling=mean", "--input", *TEXTS)
        self.assertExit(r, 0)
        self.assertTrue(close([json.loads(l) for l in r.stdout.splitlines()],
                              self.infer_lines(out, TEXTS)))

    def test_text_model_in_python(self):
        pythons = self.python_torches()
        models = {}  # archive -> (name, source model)
        inputs = []  # archive and ids file pairs, TEXT_RUNNER's arguments
        for name in ("bin", "cls"):
            model = os.path.join(TINY, name)
            out, _ = self.export(model, "py-" + name)
            r = run_ms("tokenize", "--model", model, "--input", *TEXTS)
            self.assertExit(r, 0)
            archive = os.path.join(out, "model.pt")
            models[archive] = (name, model)
            inputs += [archive, self.write(name + "-ids.jsonl", r.stdout)]
        for py in pythons:
            with self.subTest(torch=python_torch_version(py)):
                r = subprocess.run([py, "-c", TEXT_RUNNER, "[1, 7]", *inputs],
                                   capture_output=True, text=True, timeout=300)
                self.assertEqual(r.returncode, 0, r.stderr)
                results = json.loads(r.stdout)
                self.assertEqual(sorted(results), sorted(models))
                for archive, (name, model) in models.items():
                    with self.subTest(model=name):
                        self.check_text_model_in_python(name, model, results[archive])

    def check_text_model_in_python(self, name, model, result):
        # A device recorded while tracing on the CPU would build tensors there wherever
        # the graph runs (on a GPU: "index is on cpu" in the embedding lookup).
        self.assertNotIn('value="cpu"', result["graph"])
        runs = result["runs"]
        one = [row for run in runs if run["size"] == 1 for row in run["rows"]]
        seven = [row for run in runs if run["size"] == 7 for row in run["rows"]]
        self.assertEqual(len(one), len(TEXTS))
        self.assertTrue(close(one, seven), "batch 7 with padding differs from batch 1")
        want = self.infer_lines(model, TEXTS)
        if name == "bin":
            self.assertTrue(close(one, [w["text_embedding"] for w in want]))
        else:
            with open(os.path.join(model, "config.json")) as f:
                labels = json.load(f)["id2label"]
            for row, w in zip(one, want):
                exp = [math.exp(v - max(row)) for v in row]
                probs = {labels[str(i)]: e / sum(exp) for i, e in enumerate(exp)}
                self.assertTrue(close([probs[l] for l in w["labels"]], w["scores"]), (probs, w))

    def test_gpt2(self):
        model = os.path.join(TINY, "gpt2")
        out, summary = self.export(model, "gpt2")
        self.assertEqual([i["name"] for i in summary["inputs"]], ["input_ids", "attention_mask"])
        self.assertEqual(summary["outputs"][0]["shape"], ["batch", "sequence", "vocab"])
        # One batch of prompts of unlike lengths (left padding) and each prompt alone: the archive,
        # which reads the whole sequence at every step, generates what the cached decoder does.
        with open(os.path.join(model, "expected.json")) as f:
            expected = json.load(f)
        for extra in ((), ("--batch-size", "1")):
            r = run_ms("infer", "--model", out, "--input", *expected["prompts"], "--set",
                       "max_new_tokens=%d" % expected["max_new_tokens"], "--device", DEVICE, *extra)
            self.assertExit(r, 0)
            self.assertEqual([json.loads(l)["text"] for l in r.stdout.splitlines()], expected["texts"])
        for py in self.python_torches():
            with self.subTest(torch=python_torch_version(py)):
                r = subprocess.run([py, "-c", GPT2_RUNNER, os.path.join(out, "model.pt"),
                                    os.path.join(TINY, "gpt2_reference.safetensors")],
                                   capture_output=True, text=True, timeout=300)
                self.assertEqual(r.returncode, 0, r.stderr)
                for case, got in json.loads(r.stdout).items():
                    self.assertEqual(got["dtype"], "torch.float32", case)
                    self.assertLessEqual(got["diff"], 1e-4, case)

    def test_fp16(self):
        pythons = self.python_torches()
        archives = []
        for name, model in (("cnn", os.path.join(VISION, "small-cnn")),
                            ("cls", os.path.join(TINY, "cls")),
                            ("st_concat", os.path.join(TINY, "st_concat")),
                            ("gpt2", os.path.join(TINY, "gpt2"))):
            with self.subTest(model=name):
                out, summary = self.export(model, "fp16-" + name, "--dtype", "fp16")
                archives.append(os.path.join(out, "model.pt"))
                self.assertTrue(all(t["dtype"] == "float32" for t in summary["outputs"]), summary)
                with open(os.path.join(out, "configuration.json")) as f:
                    self.assertEqual(json.load(f)["model"]["dtype"], "fp16")
                # `ms infer` runs it in float32 from the fp16 weights: within their rounding.
                if name == "cnn":
                    want, got = self.scores(model), self.scores(out)
                    self.assertEqual(set(want), set(got))
                    for k in want:
                        self.assertTrue(close(dict(zip(want[k]["labels"], want[k]["scores"])),
                                              dict(zip(got[k]["labels"], got[k]["scores"])), 5e-3), k)
                elif name == "gpt2":
                    prompts = ["the cat sat on", "hello"]
                    want, got = self.infer_lines(model, prompts), self.infer_lines(out, prompts)
                    self.assertEqual(want, got)
                else:
                    want, got = self.infer_lines(model, TEXTS), self.infer_lines(out, TEXTS)
                    for w, g in zip(want, got):
                        if "text_embedding" in w:
                            a, b = w["text_embedding"], g["text_embedding"]
                            dot = sum(x * y for x, y in zip(a, b))
                            norms = math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
                            self.assertGreaterEqual(dot / norms, 0.999)
                        else:
                            self.assertTrue(close(dict(zip(w["labels"], w["scores"])),
                                                  dict(zip(g["labels"], g["scores"])), 5e-3), (w, g))
        # Python's torch.jit.load reads float16 weights, and no float32 ones, in every archive.
        self.assertEqual(len(archives), 4)
        for py in pythons:
            with self.subTest(torch=python_torch_version(py)):
                r = subprocess.run([py, "-c", CONSTANT_DTYPES, *archives],
                                   capture_output=True, text=True, timeout=300)
                self.assertEqual(r.returncode, 0, r.stderr)
                dtypes = json.loads(r.stdout)
                self.assertEqual(sorted(dtypes), sorted(archives))
                for archive, found in dtypes.items():
                    self.assertIn("torch.float16", found, archive)
                    self.assertNotIn("torch.float32", found, archive)

    def test_torchscript_input_passes_through(self):
        model = os.path.join(VISION, "torchscript")
        out, summary = self.export(model, "through")
        self.assertEqual(summary["files"], sorted(os.listdir(model)))
        with open(os.path.join(model, "model.pt"), "rb") as a, open(os.path.join(out, "model.pt"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertEqual(self.scores(model), self.scores(out))
        # A text archive exported by ms passes through too.
        text, _ = self.export(os.path.join(TINY, "cls"), "ts-cls")
        again, _ = self.export(text, "ts-cls-again")
        self.assertEqual(self.infer_lines(text, TEXTS), self.infer_lines(again, TEXTS))

    def test_not_built_and_bad_input(self):
        for model, extra, code, fragment in (
                (os.path.join(VISION, "torchscript"), ("--dtype", "fp16"), 2, "--dtype does not apply"),
                (os.path.join(VISION, "small-cnn"), ("--dtype", "int8"), 2, "--dtype"),
                (os.path.join(VISION, "small-cnn"), ("--opset", "13"), 2, "ONNX option"),
                (os.path.join(VISION, "torchscript"), ("--static", "2"), 2, "already a TorchScript")):
            with self.subTest(model=model, extra=extra):
                r = self.export(model, "bad", *extra, code=code)
                self.assertIn(fragment, json.loads(r.stdout)["error"]["message"])
        self.assertEqual(os.listdir(self.tmp), [])


if __name__ == "__main__":
    unittest.main()

"""`ms export --format torchscript` for image classifiers: LibTorch's tracer records the C++ model
(small CNN, and a ResNet-18 written by scripts/make_tiny_vision.py), `ms infer` runs the exported
folder through its TorchScript pipeline (LibTorch's jit::load) with the source model's scores
(within 1e-5), and Python's torch.jit.load (Debian's torch) runs model.pt at other batch sizes and
image sizes than the traced one. Text models and fp16 are clear errors (not built), nothing is
left behind.
"""
import json
import os
import subprocess
import unittest

from harness import SOURCE_DIR, TorchTestCase, run_ms, torch_python

VISION = os.path.join(SOURCE_DIR, "tests", "data", "infer", "vision")
TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")
IMAGES = os.path.join(VISION, "images")

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


class TorchScriptExport(TorchTestCase):
    def export(self, model, name, *extra, code=0):
        out = self.path(name)
        r = run_ms("export", "--model", model, "--format", "torchscript", "--output", out,
                   "--json", *extra)
        self.assertExit(r, code)
        return (out, self.json_out(r)) if code == 0 else r

    def scores(self, model):
        r = run_ms("infer", "--model", model, "--input-dir", IMAGES)
        self.assertExit(r, 0)
        return {l["id"]: l for l in map(json.loads, r.stdout.splitlines()) if "scores" in l}

    def check(self, model):
        out, summary = self.export(model, "ts")
        self.assertEqual(summary["outputs"][0]["name"], "logits")
        self.assertEqual(sorted(os.listdir(out)), summary["files"])
        want, got = self.scores(model), self.scores(out)
        self.assertEqual(set(want), set(got))
        self.assertGreaterEqual(len(want), 3)
        for k in want:
            self.assertEqual(want[k]["labels"], got[k]["labels"], k)
            for a, b in zip(want[k]["scores"], got[k]["scores"]):
                self.assertAlmostEqual(a, b, delta=1e-5, msg=k)
        return out

    def test_small_cnn(self):
        out = self.check(os.path.join(VISION, "small-cnn"))
        py = torch_python(("torch",))
        if py is None:
            self.skipTest("no Python torch to load model.pt")
        shapes = [[1, 3, 16, 16], [5, 3, 16, 16], [2, 3, 24, 20]]
        r = subprocess.run([py, "-c", RUNNER, os.path.join(out, "model.pt"), json.dumps(shapes)],
                           capture_output=True, text=True, timeout=300)
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

    def test_not_built_and_bad_input(self):
        for model, extra, code, fragment in (
                (os.path.join(TINY, "cls"), (), 6, "image-classification models only"),
                (os.path.join(VISION, "small-cnn"), ("--dtype", "fp16"), 6, "fp16"),
                (os.path.join(VISION, "small-cnn"), ("--opset", "13"), 2, "ONNX option"),
                (os.path.join(VISION, "torchscript"), (), 2, "already a TorchScript")):
            with self.subTest(model=model, extra=extra):
                r = self.export(model, "bad", *extra, code=code)
                self.assertIn(fragment, json.loads(r.stdout)["error"]["message"])
        self.assertEqual(os.listdir(self.tmp), [])


if __name__ == "__main__":
    unittest.main()

"""`ms export --format safetensors` writes repositories that Hugging Face transformers loads as its
own (build/venv-transformers: 4.49 over Debian's torch 1.13; build/venv-torch-newest: the newest
transformers and torch): in each, the tiny GPT-2 generates what `ms infer` generates from the export
(transformers' greedy generate() on the exported folder), a sentence-transformers folder keeps its
modules and loads with no missing weight; bad options and folders are clear errors that leave
nothing behind. The train -> export -> upload --tag -> infer-by-id chain is in
test_train_interop.py.
"""
import fcntl
import json
import os
import shutil
import subprocess
import unittest

from harness import SOURCE_DIR, TorchTestCase, require_newest_torch, run_ms, transformers_pythons

TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")

# Loads a folder with transformers' Auto classes and prints what it saw (run in the venv).
READER = r"""
import json, sys
import torch
import transformers
import transformers.generation.utils as generation_utils
# generate() imports torch.distributed.fsdp, which Debian's torch 1.13 cannot under Python 3.11.
generation_utils.is_fsdp_managed_module = lambda module: False
kind, folder, prompts, new = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
cls = {"lm": transformers.AutoModelForCausalLM, "base": transformers.AutoModel}[kind]
model, info = cls.from_pretrained(folder, output_loading_info=True)
# transformers 4.x gives lists, 5.x sets.
out = {"missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
       "class": type(model).__name__, "texts": [], "version": transformers.__version__}
if kind == "lm":
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    for p in prompts:
        ids = tok(p, return_tensors="pt")
        with torch.no_grad():
            g = model.generate(**ids, do_sample=False, max_new_tokens=new,
                               pad_token_id=tok.eos_token_id)
        out["texts"].append(tok.decode(g[0], skip_special_tokens=True,
                                       clean_up_tokenization_spaces=False))
print(json.dumps(out))
"""


class SafetensorsExport(TorchTestCase):
    def setUp(self):
        super().setUp()
        self.pythons = transformers_pythons()
        if not self.pythons:
            self.skipTest("build/venv-transformers is absent: run scripts/setup_python_interop.sh")
        require_newest_torch(self)

    def export(self, model, name, *extra, code=0):
        out = self.path(name)
        r = run_ms("export", "--model", model, "--format", "safetensors", "--output", out, *extra)
        self.assertExit(r, code)
        return out if code == 0 else r

    def read(self, kind, folder, prompts=(), new=0):
        """What each transformers (the oldest supported, the newest) saw in folder."""
        seen_by_each = []
        for python in self.pythons:
            r = subprocess.run([python, "-c", READER, kind, folder, json.dumps(list(prompts)),
                                str(new)], capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            seen_by_each.append(json.loads(r.stdout.strip().splitlines()[-1]))
        return seen_by_each

    def test_gpt2_generates_the_same_in_transformers(self):
        with open(os.path.join(TINY, "gpt2", "expected.json"), encoding="utf-8") as f:
            ref = json.load(f)
        repo = self.export(os.path.join(TINY, "gpt2"), "gpt2")
        with open(os.path.join(repo, "config.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["architectures"], ["GPT2LMHeadModel"])
        for seen in self.read("lm", repo, ref["prompts"], ref["max_new_tokens"]):
            with self.subTest(transformers=seen["version"]):
                self.assertEqual(seen["class"], "GPT2LMHeadModel")
                self.assertEqual(seen["missing"], [])
                self.assertEqual(seen["texts"], ref["texts"])
        r = run_ms("infer", "--model", repo, "--input", *ref["prompts"], "--set",
                   f"max_new_tokens={ref['max_new_tokens']}")
        self.assertExit(r, 0)
        self.assertEqual([json.loads(l)["text"] for l in r.stdout.splitlines()], ref["texts"])

    def test_sentence_transformers_folder_keeps_its_modules(self):
        source = os.path.join(TINY, "st_dense")
        repo = self.export(source, "st")
        files = set(os.listdir(repo))
        self.assertIn("modules.json", files)
        self.assertIn("model.safetensors", files)
        for seen in self.read("base", repo):
            with self.subTest(transformers=seen["version"]):
                self.assertEqual(seen["missing"], [])
        want = run_ms("infer", "--model", source, "--input", "hello world", "good movie")
        got = run_ms("infer", "--model", repo, "--input", "hello world", "good movie")
        self.assertExit(want, 0)
        self.assertExit(got, 0)
        for a, b in zip(want.stdout.splitlines(), got.stdout.splitlines()):
            ea, eb = json.loads(a)["text_embedding"], json.loads(b)["text_embedding"]
            self.assertLess(max(abs(x - y) for x, y in zip(ea, eb)), 1e-6)

    def test_image_classifier_repository_claims_no_transformers_class(self):
        # The small CNN's repository said architectures ["BertModel"], library_name transformers
        # and showed BertModel.from_pretrained, which loads a random BERT from it.
        model = os.path.join(SOURCE_DIR, "tests", "data", "infer", "vision", "small-cnn")
        out = self.export(model, "cnn", "--dtype", "fp16")
        self.assertFalse(os.path.exists(os.path.join(out, "config.json")))
        with open(os.path.join(out, "README.md"), encoding="utf-8") as f:
            card = f.read()
        self.assertIn("- image-classification", card)
        # Its usage line runs: an image classifier reads image files (it showed --input "...",
        # which ms infer refuses for images).
        self.assertIn("ms infer --model OWNER/NAME --input-dir IMAGES/", card)
        self.assertNotIn("transformers", card)
        self.assertNotIn("Bert", card)
        image = os.path.join(SOURCE_DIR, "tests", "data", "infer", "vision", "images")
        want = run_ms("infer", "-m", model, "--input-dir", image)
        got = run_ms("infer", "-m", out, "--input-dir", image)
        self.assertExit(got, 0)
        pairs = [(json.loads(a), json.loads(b))
                 for a, b in zip(want.stdout.splitlines(), got.stdout.splitlines())]
        self.assertTrue(any("labels" in a for a, _ in pairs))
        for a, b in pairs:
            self.assertEqual(a.get("labels", [None])[0], b.get("labels", [None])[0])

    def test_precision_is_written_under_transformers_5s_key(self):
        # transformers 5 reads "dtype": with only "torch_dtype" beside a source's "dtype", an fp16
        # repository loaded as float32.
        source = self.path("source")
        shutil.copytree(os.path.join(TINY, "cls"), source)
        with open(os.path.join(source, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        config.pop("torch_dtype", None)
        config["dtype"] = "float32"
        with open(os.path.join(source, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f)
        with open(os.path.join(self.export(source, "half", "--dtype", "fp16"), "config.json"),
                  encoding="utf-8") as f:
            written = json.load(f)
        self.assertEqual(written["dtype"], "float16")
        self.assertNotIn("torch_dtype", written)

    def test_links_that_lead_nowhere_in_the_model_folder_are_skipped(self):
        # A symlink loop beside the model's files failed the export (exit 74, "check the free
        # space"); ms infer runs such a folder.
        model = self.path("linked")
        shutil.copytree(os.path.join(TINY, "cls"), model)
        os.symlink("loop", os.path.join(model, "loop"))
        os.symlink("nowhere", os.path.join(model, "dangling.txt"))
        r = run_ms("export", "-m", model, "--format", "safetensors", "-o", self.path("out"))
        self.assertExit(r, 0)
        self.assertNotIn("loop", os.listdir(self.path("out")))

    def test_set_overrides_are_the_exported_configuration(self):
        # --set changed the model exported but not the configuration.json copied beside it, so
        # `ms infer` of the repository built the folder's model, not the one asked for.
        model = os.path.join(TINY, "cls")
        repo = self.export(model, "short", "--set", "preprocessor.max_length=4")
        with open(os.path.join(repo, "configuration.json")) as f:
            self.assertEqual(json.load(f)["preprocessor"]["max_length"], 4)
        text = "a very good movie that is good"
        want = run_ms("infer", "--model", model, "--set", "preprocessor.max_length=4", "--input", text)
        got = run_ms("infer", "--model", repo, "--input", text)
        self.assertExit(want, 0)
        self.assertExit(got, 0)
        self.assertEqual(json.loads(want.stdout)["scores"], json.loads(got.stdout)["scores"])
        # The card is titled by the repository's folder, not the source's.
        with open(os.path.join(repo, "README.md")) as f:
            self.assertIn("\n# short\n", f.read())

    def test_a_hugging_face_folders_task_and_set_are_the_exported_configuration(self):
        # A Hugging Face folder has no configuration.json: exported with --task (or --set), the
        # repository had none either, so `ms infer` of it guessed the task again from config.json
        # (a word segmenter ran as NER) and the --set was lost.
        source = self.path("hfws")
        shutil.copytree(os.path.join(TINY, "ws"), source)
        for name in ("configuration.json", "expected.json"):
            os.remove(os.path.join(source, name))
        text = "北京是中国"
        want = run_ms("infer", "-m", source, "--task", "word-segmentation", "--input", text)
        self.assertExit(want, 0)
        repo = self.export(source, "ws-repo", "--task", "word-segmentation")
        got = run_ms("infer", "-m", repo, "--input", text)
        self.assertExit(got, 0)
        self.assertEqual(json.loads(got.stdout)["output"], json.loads(want.stdout)["output"])
        onnx = self.path("ws-onnx")
        self.assertExit(run_ms("export", "-m", source, "--task", "word-segmentation", "-o", onnx), 0)
        with open(os.path.join(onnx, "configuration.json")) as f:
            self.assertEqual(json.load(f)["task"], "word-segmentation")

    def test_a_card_an_earlier_export_wrote_is_written_anew(self):
        # Re-exporting an exported repository copied its card: the old title, format and dtype.
        half = self.export(os.path.join(TINY, "cls"), "cls-half", "--dtype", "fp16")
        full = self.export(half, "cls-full")
        with open(os.path.join(full, "README.md")) as f:
            card = f.read()
        self.assertIn("\n# cls-full\n", card)
        self.assertIn("weights in fp32", card)
        onnx = self.path("cls-onnx")
        self.assertExit(run_ms("export", "-m", half, "-o", onnx), 0)
        self.assertNotIn("README.md", os.listdir(onnx))

    def test_bad_options_leave_nothing(self):
        model = os.path.join(TINY, "cls")
        r = self.export(model, "a", "--opset", "13", code=2)
        self.assertOneLineError(r, "ONNX options")
        r = self.export(model, "b", "--static", "1,8", code=2)
        self.assertOneLineError(r, "ONNX options")
        r = self.export(model, "check", "--check", code=2)  # it was ignored
        self.assertOneLineError(r, "--check", "ONNX option")
        # Another task than the folder's: the repository's files would describe one model and
        # hold another (the weights without the classifier, config.json's class with it).
        r = self.export(model, "task", "--task", "sentence-embedding", code=2)
        self.assertOneLineError(r, "--task sentence-embedding", "holds a text-classification model")
        # sentence-transformers reads the pooling from 1_Pooling/config.json, not --set.
        r = self.export(os.path.join(TINY, "st_dense"), "pool", "--set", "model.pooling=cls", code=2)
        self.assertOneLineError(r, "--set model.pooling", "1_Pooling/config.json")
        r = self.export(model, "c", "--dtype", "bf16", code=2)
        self.assertOneLineError(r, "bf16")
        r = self.export(os.path.join(SOURCE_DIR, "tests", "data", "infer", "vision", "torchscript"), "d", code=2)
        self.assertOneLineError(r, "TorchScript")
        self.assertEqual(sorted(os.listdir(self.tmp)), [])

    def test_a_stopped_exports_folder_is_removed_by_the_next(self):
        # What exports killed on their way to "out" left: a dead one's folder, and one whose
        # writer still runs (it holds the folder's lock), which must stay.
        dead = self.path(".out.ms-export-Ab12Cd")
        running = self.path(".out.ms-export-Zz99Yy")
        for folder in (dead, running):
            os.makedirs(folder)
            self.write(os.path.join(os.path.basename(folder), "model.safetensors"), "half")
        held = os.open(running, os.O_RDONLY)
        try:
            fcntl.flock(held, fcntl.LOCK_EX)
            self.export(os.path.join(TINY, "cls"), "out")
        finally:
            os.close(held)
        self.assertEqual(sorted(os.listdir(self.tmp)), [".out.ms-export-Zz99Yy", "out"])


if __name__ == "__main__":
    unittest.main()

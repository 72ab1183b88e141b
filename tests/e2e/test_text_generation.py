"""`ms infer --task text-generation` on a small random GPT-2 (tests/data/infer/tiny/gpt2, written by
scripts/make_tiny_gpt2.py with transformers): greedy continuations equal transformers' generate()
(expected.json), batched with left padding and one prompt at a time; max_new_tokens through --set;
bad prompts and settings give clear errors.
"""
import json
import os
import shutil
import unittest

from harness import SOURCE_DIR, TorchTestCase, run_ms

MODEL = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny", "gpt2")
# scripts/gpu-check.sh runs these tests again with MS_INFER_DEVICE=gpu:0.
DEVICE = os.environ.get("MS_INFER_DEVICE", "cpu")


def lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class TextGeneration(TorchTestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(MODEL, "expected.json"), encoding="utf-8") as f:
            cls.ref = json.load(f)

    def generate(self, *args, code=0, model=MODEL):
        r = run_ms("infer", "--model", model, "--device", DEVICE, *args)
        self.assertExit(r, code)
        return lines(r.stdout) if code == 0 else r

    def test_greedy_equals_transformers(self):
        n = str(self.ref["max_new_tokens"])
        for batch in ("4", "1"):
            got = self.generate("--input", *self.ref["prompts"], "-b", batch, "--set",
                                f"max_new_tokens={n}")
            self.assertEqual([g["text"] for g in got], self.ref["texts"], f"batch size {batch}")

    def test_task_from_configuration_and_listings(self):
        # configuration.json names the task; the HF layout's architectures would too.
        got = self.generate("--input", "hello", "--set", "max_new_tokens=2")
        self.assertTrue(got[0]["text"].startswith("hello"))
        r = run_ms("list", "models", "--json")
        self.assertExit(r, 0)
        self.assertIn(("text-generation", "gpt2"), {(x["group"], x["type"]) for x in json.loads(r.stdout)})
        r = run_ms("list", "pipelines", "--json")
        self.assertExit(r, 0)
        self.assertIn(("text-generation", "text-generation"),
                      {(x["group"], x["type"]) for x in json.loads(r.stdout)})

    def test_hugging_face_layout(self):
        # No configuration.json: config.json's architectures (GPT2LMHeadModel) name the task.
        d = self.path("hf")
        shutil.copytree(MODEL, d)
        os.remove(os.path.join(d, "configuration.json"))
        got = self.generate("--input", self.ref["prompts"][0], "--set",
                            f"max_new_tokens={self.ref['max_new_tokens']}", model=d)
        self.assertEqual(got[0]["text"], self.ref["texts"][0])

    def test_bad_prompts_are_error_items(self):
        # Empty, and longer than the 24-position context: errors of their own; the rest runs.
        got = self.generate("--input", " ", "x" * 30, "hello", "--set", "max_new_tokens=2")
        self.assertIn("empty", got[0]["error"]["message"])
        self.assertIn("context", got[1]["error"]["message"])
        self.assertTrue(got[2]["text"].startswith("hello"))

    def test_bad_max_new_tokens(self):
        for value in ("0", "-3"):
            r = self.generate("--input", "hello", "--set", f"max_new_tokens={value}", code=3)
            self.assertOneLineError(r, "max_new_tokens")
        r = self.generate("--input", "hello", "--set", "max_new_tokens=many", code=3)
        self.assertOneLineError(r, "max_new_tokens")

    def test_bad_config_is_a_config_error(self):
        for i, (key, value, fragment) in enumerate([("vocab_size", 10**12, "memory"),
                                                    ("n_head", 3, "n_head"),
                                                    ("activation_function", "swish", "swish")]):
            with self.subTest(key=key):
                d = self.path(f"model{i}")
                shutil.copytree(MODEL, d)
                with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
                    config = json.load(f)
                config[key] = value
                with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as f:
                    json.dump(config, f)
                r = run_ms("infer", "--model", d, "--input", "hello")
                self.assertExit(r, 3)
                self.assertOneLineError(r, "config.json", fragment)


if __name__ == "__main__":
    unittest.main()

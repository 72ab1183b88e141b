"""End-to-end: `ms config show` on good and bad configuration files and overrides."""
import json
import os
import unittest

from harness import SOURCE_DIR, MsTestCase, run_ms

GOOD_JSON = """{
  "framework": "pytorch",
  "task": "text-classification",
  "model": {"type": "bert", "num_labels": 2},
  "train": {"max_epochs": 1, "hooks": [{"type": "CheckpointHook", "interval": 1}]}
}
"""


class ConfigShowTest(MsTestCase):
    def test_shipped_examples_parse(self):
        configs = os.path.join(SOURCE_DIR, "configs")
        found = 0
        for dirpath, _, files in os.walk(configs):
            for name in files:
                if name.endswith((".json", ".yaml", ".yml")):
                    found += 1
                    with self.subTest(config=name):
                        r = run_ms("config", "show", os.path.join(dirpath, name), "--json")
                        self.assertExit(r, 0)
                        self.json_out(r)
        self.assertGreater(found, 0, "configs/ has no examples")

    def test_json_and_yaml_output(self):
        p = self.write("configuration.json", GOOD_JSON)
        r = run_ms("config", "show", p, "--json")
        self.assertExit(r, 0)
        self.assertEqual(self.json_out(r), json.loads(GOOD_JSON))
        r = run_ms("config", "show", p)
        self.assertExit(r, 0)
        self.assertIn("task: text-classification", r.stdout)

    def test_folder_means_its_configuration_json(self):
        self.write("model/configuration.json", GOOD_JSON)
        r = run_ms("config", "show", self.path("model"), "--key", "model.type")
        self.assertExit(r, 0)
        self.assertEqual(r.stdout.strip(), "bert")
        os.makedirs(self.path("empty"))
        r = run_ms("config", "show", self.path("empty"))
        self.assertExit(r, 4)
        self.assertOneLineError(r, "no configuration.json")

    def test_overrides(self):
        p = self.write("c.json", GOOD_JSON)
        r = run_ms("config", "show", p, "--json", "--set", "train.max_epochs=3",
                   "--set", 'evaluation.metrics=["accuracy"]', "--cfg-options", "model.type=structbert",
                   "--set", "train.hooks.CheckpointHook.interval=5")
        self.assertExit(r, 0)
        c = self.json_out(r)
        self.assertEqual(c["train"]["max_epochs"], 3)
        self.assertEqual(c["evaluation"]["metrics"], ["accuracy"])
        self.assertEqual(c["model"]["type"], "structbert")
        self.assertEqual(c["train"]["hooks"][0]["interval"], 5)

    def test_bad_overrides_are_usage_errors(self):
        p = self.write("c.json", GOOD_JSON)
        cases = [
            ("train.max_epochs", "expected KEY=VALUE"),
            ("train..lr=1", "empty segment"),
            ("task.name=1", "'task' is \"text-classification\", not an object"),
            ("metrics=[1, 2", "not valid JSON"),
            ("train.hooks.LoggerHook.interval=1", "has no element 'LoggerHook'"),
        ]
        for assignment, message in cases:
            with self.subTest(assignment=assignment):
                r = run_ms("config", "show", p, "--set", assignment)
                self.assertExit(r, 2)
                self.assertOneLineError(r, message)

    def test_missing_key(self):
        p = self.write("c.json", GOOD_JSON)
        r = run_ms("config", "show", p, "--key", "model.num_label")
        self.assertExit(r, 3)
        self.assertOneLineError(r, p, "missing key 'model.num_label'")
        self.assertIn("did you mean 'num_labels'", r.stderr)

    def test_malformed_json_names_file_and_line(self):
        p = self.write("bad.json", '{\n  "task": "x",\n  "model": {"type": "bert",}\n}\n')
        r = run_ms("config", "show", p)
        self.assertExit(r, 3)
        self.assertOneLineError(r, f"{p}:3:", "invalid JSON")

    def test_malformed_yaml_names_file_and_line(self):
        p = self.write("bad.yaml", "train:\n  max_epochs: 3\n   lr: [1, 2\n")
        r = run_ms("config", "show", p)
        self.assertExit(r, 3)
        self.assertOneLineError(r, f"{p}:", "invalid YAML")
        # A key given twice is read as PyYAML (ModelScope's reader) reads it: the last value wins,
        # with a warning (it was refused, exit 3).
        p = self.write("dup.yaml", "task: a\ntask: b\n")
        r = run_ms("config", "show", p, "--json")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout)["task"], "b")
        self.assertIn(f"{p}:2:1: the key 'task' is given again", r.stderr)

    def test_yaml_output_reads_back_to_the_same_tree(self):
        # Strings were quoted only where ms's own reader needed it: PyYAML (ModelScope's reader,
        # YAML 1.1) read keys "no"/"yes" as booleans, "0" as a number, "1:30" as 90 and
        # "2024-01-01" as a date, refused a raw DEL, and ms itself could not read back a key "<<"
        # (a merge) or "--- a" (a document marker).
        doc = {"label2id": {"no": 0, "yes": 1, "On": 2}, "id2label": {"0": "no", "1": "yes"},
               "warmup": "1:30", "date": "2024-01-01", "sep": "a\x7fb", "merge": {"<<": "x"},
               "--- a": 1, "... b": 2, "line": "x\u2028y", "zh": "中文", "name": "bert-base",
               "octal": "010", "hex": "0x1f", "inf": ".inf", "tilde": "~", "empty": ""}
        src = self.write("doc.json", json.dumps(doc))
        r = run_ms("config", "show", src)
        self.assertExit(r, 0)
        self.assertIn('"no": 0', r.stdout)
        self.assertIn("name: bert-base", r.stdout)  # plain names stay plain
        self.assertIn("zh: 中文", r.stdout)
        out = self.write("doc.yaml", r.stdout)
        back = run_ms("config", "show", out, "--json")
        self.assertExit(back, 0)
        self.assertEqual(json.loads(back.stdout), doc)
        try:
            import yaml
        except ImportError:
            return
        self.assertEqual(yaml.safe_load(r.stdout), doc)

    def test_a_loop_of_links_is_no_missing_file(self):
        os.symlink(self.path("l2"), self.path("l1"))
        os.symlink(self.path("l1"), self.path("l2"))
        r = run_ms("config", "show", self.path("l1"))
        self.assertExit(r, 74)
        self.assertOneLineError(r, "cannot be reached", "symbolic links")
        self.assertIn("leads back to itself", r.stderr)
        # A link to nowhere names its target (it said "no such file or folder").
        os.symlink("nowhere.json", self.path("dangling.json"))
        r = run_ms("config", "show", self.path("dangling.json"))
        self.assertExit(r, 4)
        self.assertOneLineError(r, "is a link to 'nowhere.json', which does not exist")

    def test_non_object_top_level(self):
        p = self.write("list.json", "[1, 2, 3]")
        r = run_ms("config", "show", p)
        self.assertExit(r, 3)
        self.assertOneLineError(r, "top level must be an object")

    def test_missing_file_and_unknown_extension(self):
        # Missing whatever its name (one without an extension was an unsupported format, 3).
        for name in ("nope.json", "nope", "nope.toml"):
            r = run_ms("config", "show", self.path(name))
            self.assertExit(r, 4)
            self.assertOneLineError(r, name + ": no such file or folder")
        p = self.write("c.toml", "a = 1")
        r = run_ms("config", "show", p)
        self.assertExit(r, 3)
        self.assertOneLineError(r, "unsupported configuration format '.toml'")

    def test_binary_garbage_is_an_error_not_a_crash(self):
        p = self.write("garbage.json", bytes(range(256)) * 4, mode="wb")
        r = run_ms("config", "show", p)
        self.assertExit(r, 3)
        self.assertOneLineError(r, "garbage.json")
        p = self.write("garbage.yaml", b"\xff\xfe\x00{[:", mode="wb")
        r = run_ms("config", "show", p)
        self.assertIn(r.returncode, (0, 3))
        self.assertNotIn("terminate called", r.stderr)


if __name__ == "__main__":
    unittest.main()

"""End to end: `ms train` and `ms eval` on small real runs.

- A tiny BERT classifier (tests/data/infer/tiny/cls) finetuned on a generated CSV: checkpoints,
  trainer state and logs in ModelScope's layout, TensorBoard event files, output/ that `ms infer`
  and `ms eval` read (eval gives the trainer's own figure), checkpoints that Python's torch.load
  reads (harness.torch_python(): Debian's python3-torch).
- A fresh head over a bare encoder (tests/data/infer/tiny/st_dense) with the dataset's classes.
- Exact resume: a run killed (SIGKILL, MS_TEST_KILL_AFTER_ITER in test builds) and resumed with
  --resume ends with weights bitwise equal to an uninterrupted run's (dropout and shuffling on).
- A second `ms train` on a locked work dir is refused; bad configs and data give clear errors.
- The small CNN config (configs/image-classification-small-cnn) on Fashion-MNIST PNGs built by
  scripts/make_dataset_fixtures.py.
"""
import csv
import fcntl
import glob
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import unittest

from harness import (MS_BIN, SOURCE_DIR, TEST_HOOKS, TorchTestCase, require_newest_torch, run_ms,
                     torch_python, torch_pythons)
from test_tensorboard import tensorboard_python

TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")

POSITIVE = ["good movie", "very good movie", "the movie is good", "good good movie",
            "a very good movie", "is good", "good", "very good"]
NEGATIVE = ["bad movie", "very bad movie", "the movie is bad", "bad bad movie",
            "a very bad movie", "is bad", "bad", "very bad"]


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)


def recipe(**train):
    """A small training recipe: AdamW, by-iteration checkpoints, every logger."""
    config = {
        "task": "text-classification",
        "preprocessor": {"max_length": 16},
        "train": {
            "max_epochs": 8,
            "dataloader": {"batch_size_per_gpu": 4, "shuffle": True},
            "optimizer": {"type": "AdamW", "lr": 0.003,
                          "options": {"grad_clip": {"max_norm": 1.0}}},
            "lr_scheduler": {"type": "StepLR", "step_size": 5, "gamma": 0.95,
                             "options": {"by_epoch": False}},
            "hooks": [
                {"type": "CheckpointHook", "by_epoch": False, "interval": 10},
                {"type": "EvaluationHook", "interval": 1},
                {"type": "TextLoggerHook", "interval": 2},
                {"type": "TensorboardHook", "interval": 2},
                {"type": "IterTimerHook"},
            ],
        },
        "evaluation": {"dataloader": {"batch_size_per_gpu": 8}, "metrics": ["seq-cls-metric"]},
    }
    config["train"].update(train)
    return config


class TrainTextTest(TorchTestCase):
    def setUp(self):
        super().setUp()
        rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
        write_csv(self.path("train.csv"), rows * 2)
        write_csv(self.path("test.csv"), rows)
        self.config = self.path("recipe.json")
        self.write("recipe.json", json.dumps(recipe()))

    def train(self, *extra, work="work", model=None, timeout=600, env=None):
        return run_ms("train", "--model", model or os.path.join(TINY, "cls"), "--config",
                      self.config, "--dataset", "csv:" + self.path("train.csv"),
                      "--eval-dataset", "csv:" + self.path("test.csv"), "--work-dir",
                      self.path(work), "--json", *extra, timeout=timeout, env=env)

    def train_killed(self, kill, *extra, work="cut"):
        """self.train's job with a test build's kill point (kill: {"MS_TEST_KILL_...": "N"}),
        which must end it with SIGKILL."""
        r = self.train(*extra, work=work, env=kill)
        self.assertEqual(r.returncode, -9, r.stderr)

    def test_train_writes_modelscope_layout_and_eval_agrees(self):
        r = self.train()
        self.assertExit(r, 0)
        summary = json.loads(r.stdout)
        work = self.path("work")
        # 32 rows / batch 4 = 8 iterations per epoch, 8 epochs; checkpoints every 10 iterations
        # and the last one.
        self.assertEqual(summary["iters"], 64)
        self.assertEqual(summary["epochs"], 8)
        for i in (10, 20, 60, 64):
            self.assertTrue(os.path.exists(os.path.join(work, f"iter_{i}.pth")), i)
            self.assertTrue(os.path.exists(os.path.join(work, f"iter_{i}_trainer_state.pth")), i)
        with open(os.path.join(work, "latest_checkpoint.json")) as f:
            self.assertEqual(json.load(f)["prefix"], "iter_64")
        # ModelScope's JSON log: train lines every 2 iterations, eval lines after each epoch.
        logs = glob.glob(os.path.join(work, "*.log.json"))
        self.assertEqual(len(logs), 1)
        with open(logs[0]) as f:
            entries = [json.loads(l) for l in f]
        train = [e for e in entries if e["mode"] == "train"]
        evals = [e for e in entries if e["mode"] == "eval"]
        self.assertEqual(len(evals), 8)
        self.assertEqual([e["iter"] for e in train if e["epoch"] == 1], [2, 4, 6, 8])
        for key in ("lr", "loss", "iter_time", "data_load_time"):
            self.assertIn(key, train[0])
        self.assertIn("evaluation/accuracy", evals[-1])
        self.assertEqual(evals[-1]["evaluation/accuracy"], round(summary["metrics"]["accuracy"], 5))
        # ModelScope's text log beside it, <timestamp>.log: the console lines and what the run
        # said at INFO, with time and level, though the console showed warnings only.
        (text_log,) = glob.glob(os.path.join(work, "*.log"))
        self.assertEqual(text_log + ".json", logs[0])
        with open(text_log, encoding="utf-8") as f:
            text_lines = f.read().splitlines()
        self.assertRegex(text_lines[0], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - ms - INFO - ")
        self.assertTrue(any(l.endswith("saving checkpoint iter_10") for l in text_lines), text_lines)
        self.assertNotIn("saving checkpoint", r.stderr)
        console = [l for l in r.stderr.splitlines() if l.startswith("epoch")]
        self.assertEqual(len(console), len(entries))
        self.assertEqual([l.split(" - INFO - ", 1)[1] for l in text_lines
                          if " - INFO - epoch" in l], console)
        # The step schedule takes 5 % off every 5 iterations: iteration 10's line shows the rate
        # after its step, computed as PyTorch computes it (the JSON keeps lr unrounded).
        by_iter = {(e["epoch"], e["iter"]): e for e in train}
        self.assertEqual(by_iter[(2, 2)]["lr"], 0.003 * 0.95 * 0.95)
        self.assertEqual(by_iter[(1, 4)]["lr"], 0.003)
        self.check_tensorboard(os.path.join(work, "tensorboard_output"), summary)
        # The model learnt the task.
        self.assertGreaterEqual(summary["metrics"]["accuracy"], 0.9)
        # output/ is a model folder: ms eval gives the trainer's figure, ms infer runs it.
        out = os.path.join(work, "output")
        with open(os.path.join(out, "config.json")) as f:
            hf = json.load(f)
        self.assertEqual(hf["id2label"], {"0": "negative", "1": "neutral", "2": "positive"})
        e = run_ms("eval", "--model", out, "--dataset", "csv:" + self.path("test.csv"), "--json")
        self.assertExit(e, 0)
        self.assertEqual(json.loads(e.stdout)["accuracy"], summary["metrics"]["accuracy"])
        # eval_result.txt describes output/'s weights: iter_64 is saved at the last step, before
        # the epoch-end evaluation of those weights, which writes it. A one-epoch run has it too.
        with open(os.path.join(out, "eval_result.txt")) as f:
            self.assertEqual(json.load(f)["accuracy"], summary["metrics"]["accuracy"])
        one = self.train("--max-epochs", "1", work="one-epoch")
        self.assertExit(one, 0)
        with open(self.path("one-epoch", "output", "eval_result.txt")) as f:
            self.assertEqual(json.load(f), json.loads(one.stdout)["metrics"])
        i = run_ms("infer", "--model", out, "--input", "very good movie", "--input", "bad movie")
        self.assertExit(i, 0)
        labels = [json.loads(l)["labels"][0] for l in i.stdout.splitlines()]
        self.assertEqual(labels, ["positive", "negative"])
        # ms eval on a checkpoint gives that checkpoint's figure.
        e3 = run_ms("eval", "--model", out, "--dataset", "csv:" + self.path("test.csv"),
                    "--checkpoint", os.path.join(work, "iter_64.pth"), "--json")
        self.assertExit(e3, 0)
        self.assertEqual(json.loads(e3.stdout)["accuracy"], summary["metrics"]["accuracy"])
        # A safetensors file is read as it is; "--metrics ," names no metric.
        e4 = run_ms("eval", "--model", out, "--dataset", "csv:" + self.path("test.csv"),
                    "--checkpoint", os.path.join(out, "model.safetensors"), "--json")
        self.assertExit(e4, 0)
        self.assertEqual(json.loads(e4.stdout)["accuracy"], summary["metrics"]["accuracy"])
        e5 = run_ms("eval", "--model", out, "--dataset", "csv:" + self.path("test.csv"),
                    "--metrics", ",")
        self.assertExit(e5, 2)
        self.assertOneLineError(e5, "--metrics")

    def check_tensorboard(self, log_dir, summary):
        """TensorBoard's own reader (the tensorboard package) sees the logged scalars by step."""
        scalars = self.tensorboard_scalars(log_dir)
        self.assertEqual([s for s, _ in scalars["loss"]], list(range(2, 65, 2)))
        self.assertNotIn("iter_time", scalars)  # skip_keys
        accuracy = scalars["evaluation/accuracy"]
        # Epoch-end values are logged at iter + 1 after the epoch (ModelScope's get_iter): 9, 17, ...
        self.assertEqual([s for s, _ in accuracy], list(range(9, 66, 8)))
        self.assertAlmostEqual(accuracy[-1][1], summary["metrics"]["accuracy"], places=6)

    def tensorboard_scalars(self, log_dir):
        """{tag: [[step, value], ...]} as TensorBoard's EventAccumulator reads the folder."""
        python = tensorboard_python()
        if python is None:
            self.skipTest("build/venv-tensorboard is absent: run scripts/setup_python_interop.sh")
        script = (
            "import json, sys\n"
            "from tensorboard.backend.event_processing import event_accumulator as ea\n"
            "acc = ea.EventAccumulator(sys.argv[1]); acc.Reload()\n"
            "print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)]\n"
            "                  for t in acc.Tags()['scalars']}))\n")
        r = subprocess.run([python, "-c", script, log_dir], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_eval_takes_sliced_splits_checks_metric_names_and_reads_mixed_labels(self):
        cls = os.path.join(TINY, "cls")
        data = "csv:" + self.path("test.csv")
        whole = run_ms("eval", "--model", cls, "--dataset", data, "--json", "--metrics",
                       "accuracy")
        self.assertExit(whole, 0)
        # A slice, as ms train's --split and --eval-split take: the first half of 16 rows.
        half = run_ms("eval", "--model", cls, "--dataset", data, "--split", "train[:50%]",
                      "--json", "--metrics", "loss-metric")
        self.assertExit(half, 0)
        first = self.path("first.csv")
        with open(self.path("test.csv")) as f:
            write_csv(first, list(csv.reader(f))[1:9])
        alone = run_ms("eval", "--model", cls, "--dataset", "csv:" + first, "--json",
                       "--metrics", "loss-metric")
        self.assertEqual(json.loads(half.stdout), json.loads(alone.stdout))
        # A metric name on the command line is a usage error of that option.
        r = run_ms("eval", "--model", cls, "--dataset", data, "--metrics", "accuracyy")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--metrics: 'accuracyy' is not a metric")
        self.assertIn("did you mean 'accuracy'? metrics:", r.stderr)
        # So is one that does not fit the model's task (it blamed configuration.json).
        r = run_ms("eval", "--model", cls, "--dataset", data, "--metrics", "text-gen-metric")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--metrics: text-gen-metric scores generated text", "text-classification")
        self.assertNotIn("configuration.json", r.stderr)
        # JSON lines whose labels mix class names and ids: each row means what it says.
        mixed = self.path("mixed.jsonl")
        with open(mixed, "w") as f:
            f.write(json.dumps({"text": POSITIVE[0], "label": "positive"}) + "\n")
            f.write(json.dumps({"text": NEGATIVE[0], "label": 0}) + "\n")
        by_id = self.path("by_id.jsonl")
        with open(by_id, "w") as f:
            f.write(json.dumps({"text": POSITIVE[0], "label": 2}) + "\n")
            f.write(json.dumps({"text": NEGATIVE[0], "label": 0}) + "\n")
        with open(os.path.join(cls, "config.json")) as f:
            self.assertEqual(json.load(f)["id2label"]["2"], "positive")
        r = run_ms("eval", "--model", cls, "--dataset", "jsonl:" + mixed, "--json")
        self.assertExit(r, 0)
        r2 = run_ms("eval", "--model", cls, "--dataset", "jsonl:" + by_id, "--json")
        self.assertEqual(json.loads(r.stdout), json.loads(r2.stdout))
        # Classes named by numbers (star ratings): a number is the class of that name, as in
        # ModelScope (label2id[str(label)]), whether the column reads as integers (CSV) or as
        # strings (JSON): read as ids, "1" would be the class named "2".
        stars = self.path("stars")
        shutil.copytree(cls, stars)
        with open(os.path.join(stars, "config.json")) as f:
            config = json.load(f)
        config["id2label"] = {"0": "1", "1": "2", "2": "3"}
        config["label2id"] = {"1": 0, "2": 1, "3": 2}
        with open(os.path.join(stars, "config.json"), "w") as f:
            json.dump(config, f)
        as_ints = self.path("stars.csv")
        write_csv(as_ints, [(t, 1) for t in NEGATIVE] + [(t, 3) for t in POSITIVE])
        as_names = self.path("stars.jsonl")
        with open(as_names, "w") as f:
            for label, texts in (("1", NEGATIVE), ("3", POSITIVE)):
                for t in texts:
                    f.write(json.dumps({"text": t, "label": label}) + "\n")
        by_int = run_ms("eval", "--model", stars, "--dataset", "csv:" + as_ints, "--json",
                        "--metrics", "loss-metric")
        by_name = run_ms("eval", "--model", stars, "--dataset", "jsonl:" + as_names, "--json",
                         "--metrics", "loss-metric")
        self.assertExit(by_int, 0)
        self.assertEqual(json.loads(by_int.stdout), json.loads(by_name.stdout))
        # The classes of the numbered model are the plain model's, so its loss is the same.
        plain = run_ms("eval", "--model", cls, "--dataset", "csv:" + self.path("test.csv"), "--json",
                       "--metrics", "loss-metric")
        self.assertAlmostEqual(json.loads(by_int.stdout)["loss"], json.loads(plain.stdout)["loss"], places=5)
        write_csv(as_ints, [(NEGATIVE[0], 0)])
        r = run_ms("eval", "--model", stars, "--dataset", "csv:" + as_ints)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "label 0 is not a class of the model", "named by numbers")

    def test_each_split_finds_its_own_columns(self):
        rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
        # An evaluation split naming its text column `sentence` (a default name) where training
        # read `text`: each split's own column (it read out of bounds: a segfault).
        with open(self.path("sentence.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["sentence", "label"])
            w.writerows(rows)
        r = run_ms("train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                   "--dataset", "csv:" + self.path("train.csv"), "--eval-dataset",
                   "csv:" + self.path("sentence.csv"), "--work-dir", self.path("work"),
                   "--max-epochs", "1", "--json")
        self.assertExit(r, 0)
        self.assertIn("accuracy", json.loads(r.stdout)["metrics"])
        # A folder whose test split has no labels (a hub dataset's usual layout): refused by
        # name, as `ms eval` refuses it.
        os.makedirs(self.path("hub"))
        write_csv(self.path("hub", "train.csv"), rows)
        with open(self.path("hub", "test.csv"), "w", newline="") as f:
            csv.writer(f).writerows([["text"]] + [[t] for t, _ in rows])
        r = run_ms("train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                   "--dataset", self.path("hub"), "--work-dir", self.path("hub_work"),
                   "--max-epochs", "1")
        self.assertExit(r, 2)
        self.assertIn("(split test) has none of the columns label, labels", r.stderr)
        # A text column holding lists: refused naming the row, in training and in inference
        # (its JSON text, brackets and quotes, was learnt and classified as the text).
        with open(self.path("lists.jsonl"), "w") as f:
            for t, label in rows:
                f.write(json.dumps({"text": t.split(), "label": label}) + "\n")
        r = run_ms("train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                   "--dataset", "jsonl:" + self.path("lists.jsonl"), "--work-dir",
                   self.path("lists_work"), "--max-epochs", "1")
        self.assertExit(r, 2)
        self.assertIn("row 1: 'text' is a list, not a text", r.stderr)
        r = run_ms("infer", "-m", os.path.join(TINY, "cls"), "--dataset",
                   "jsonl:" + self.path("lists.jsonl"))
        self.assertNotEqual(r.returncode, 0)
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(len(lines), len(rows))
        self.assertTrue(all("field 'text' is list, not a string" in line["error"]["message"]
                            for line in lines), lines[:2])

    def test_class_label_ids_go_by_their_names(self):
        """Hugging Face's ClassLabel ids are positions in the file's own list of names: a model
        whose classes are named reads them by name (they were taken as its ids: a perfect model
        scored 0, silently)."""
        from hub_fixture import modelscope_pythons
        python = next(iter(reversed(list(modelscope_pythons().values()))), None)
        if python is None:
            self.fail("needs the venv of scripts/setup_python_interop.sh (datasets, pyarrow)")
        r = self.train()
        self.assertExit(r, 0)
        out = self.path("work", "output")
        rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
        # The same rows with the names in another order than the model's (negative, neutral,
        # positive), as datasets writes them (the names in the file's "huggingface" metadata).
        script = (
            "import sys, json, datasets\n"
            "rows = json.loads(sys.argv[2])\n"
            "f = datasets.Features({'text': datasets.Value('string'),"
            " 'label': datasets.ClassLabel(names=['positive', 'neutral', 'negative'])})\n"
            "datasets.Dataset.from_dict({'text': [t for t, _ in rows], 'label': [l for _, l in rows]},"
            " features=f).to_parquet(sys.argv[1])\n")
        subprocess.run([python, "-c", script, self.path("labels.parquet"), json.dumps(rows)],
                       check=True, capture_output=True, timeout=300,
                       env={**os.environ, "HF_DATASETS_CACHE": self.path("hf")})
        by_name = run_ms("eval", "--model", out, "--dataset", "csv:" + self.path("test.csv"), "--json")
        by_class_label = run_ms("eval", "--model", out, "--dataset", self.path("labels.parquet"),
                                "--json")
        self.assertExit(by_name, 0)
        self.assertExit(by_class_label, 0)
        self.assertEqual(json.loads(by_class_label.stdout), json.loads(by_name.stdout))
        self.assertGreaterEqual(json.loads(by_name.stdout)["accuracy"], 0.9)
        # A fresh head takes the ClassLabel's names in their order, as transformers' run_glue.
        r = run_ms("train", "--model", os.path.join(TINY, "st_dense"), "--config", self.config,
                   "--dataset", self.path("labels.parquet"), "--eval-dataset",
                   self.path("labels.parquet"), "--work-dir", self.path("fresh"),
                   "--max-epochs", "1")
        self.assertExit(r, 0)
        with open(self.path("fresh", "output", "config.json")) as f:
            self.assertEqual(json.load(f)["id2label"],
                             {"0": "positive", "1": "neutral", "2": "negative"})

    def test_checkpoints_load_in_python_torch(self):
        python = torch_python()
        if python is None:
            self.skipTest("no Python with torch (Debian python3-torch)")
        self.assertExit(self.train("--max-epochs", "1"), 0)
        work = self.path("work")
        script = (
            "import sys, torch\n"
            "m = torch.load(sys.argv[1])\n"
            "assert 'classifier.weight' in m and m['classifier.weight'].shape == (3, 32), list(m)\n"
            "s = torch.load(sys.argv[2])\n"
            "assert s['meta']['iter'] == 8 and s['meta']['epoch'] == 0, s['meta']\n"
            "assert set(s['optimizer']) == {'state', 'param_groups'}\n"
            "p = torch.nn.Parameter(torch.zeros(1))\n"
            "g = s['optimizer']['param_groups'][0]\n"
            "assert g['lr'] == 0.003 * 0.95 and g['betas'] == (0.9, 0.999), g\n"
            "assert isinstance(s['meta']['rng_state']['cpu'], torch.Tensor)\n"
            "print('ok')\n")
        r = subprocess.run([python, "-c", script, os.path.join(work, "iter_8.pth"),
                            os.path.join(work, "iter_8_trainer_state.pth")],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_python_modelscope_resumes_the_schedule_where_ms_left_it(self):
        # Python ModelScope resumes by loading a checkpoint's lr_scheduler into the schedule it
        # builds from the configuration (under a warmup, the one the warmup wraps); its warmup then
        # goes on from that schedule's _step_count. ms wrote only its own layout: _step_count
        # stayed 1 in Python and the warmup started over (5.4e-4 where ms went on at 1.44e-3).
        pythons = torch_pythons()
        if not pythons:
            self.skipTest("no Python with torch (Debian python3-torch)")
        require_newest_torch(self)
        config = recipe(max_epochs=2, lr_scheduler={
            "type": "LinearLR", "start_factor": 1.0, "end_factor": 0.0, "total_iters": 20,
            "options": {"by_epoch": False,
                        "warmup": {"type": "LinearWarmup", "warmup_iters": 8, "warmup_ratio": 0.2}}})
        config["train"]["hooks"] = [{"type": "CheckpointHook", "by_epoch": False, "interval": 5},
                                    {"type": "TextLoggerHook", "interval": 1}]
        self.write("recipe.json", json.dumps(config))
        self.assertExit(self.train(), 0)
        # ModelScope's LinearWarmup over torch's LinearLR (modelscope/trainers/lrscheduler/warmup),
        # stepped once per iteration: what its checkpoint after 5 iterations holds.
        script = """
import json, sys, torch
class LinearWarmup(torch.optim.lr_scheduler._LRScheduler):
    def __init__(self, base, warmup_iters, warmup_ratio):
        self.base_scheduler, self.warmup_iters, self.warmup_ratio = base, warmup_iters, warmup_ratio
        self._is_init_step = True
        super().__init__(base.optimizer)
    def get_lr(self):
        return self.base_scheduler.get_lr()
    def step(self, epoch=None):
        if self.base_scheduler._step_count > self.warmup_iters:
            return self.base_scheduler.step()
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = lr
        if self._is_init_step:
            self._is_init_step = False
        else:
            self.base_scheduler.step()
        k = self.base_scheduler._step_count - 1
        for group in self.optimizer.param_groups:
            group["lr"] *= 1 - (1 - k / self.warmup_iters) * (1 - self.warmup_ratio)
def schedule():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.003)
    return optimizer, torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, 20)
optimizer, base = schedule()
warmup = LinearWarmup(base, 8, 0.2)
for _ in range(5):
    warmup.step()
python = base.state_dict()
uninterrupted = []
for _ in range(4):
    warmup.step()
    uninterrupted.append(optimizer.param_groups[0]["lr"])
saved = torch.load(sys.argv[1])["lr_scheduler"]
for key in ("base_lrs", "last_epoch", "_step_count", "_last_lr"):
    assert saved[key] == python[key], (key, saved[key], python[key])
# Resumed as ModelScope resumes: the checkpoint into the schedule, then the warmup over it.
optimizer, base = schedule()
base.load_state_dict(saved)
warmup = LinearWarmup(base, 8, 0.2)
resumed = []
for _ in range(4):
    warmup.step()
    resumed.append(optimizer.param_groups[0]["lr"])
print(json.dumps([resumed, uninterrupted]))
"""
        checkpoint = self.path("work", "iter_5_trainer_state.pth")
        with open(glob.glob(self.path("work", "*.log.json"))[0]) as f:
            # One line per iteration (interval 1), in order; "iter" counts within the epoch.
            logged = [e["lr"] for e in map(json.loads, f) if e["mode"] == "train"]
        for python in pythons:
            r = subprocess.run([python, "-c", script, checkpoint], capture_output=True, text=True,
                               timeout=300)
            self.assertEqual(r.returncode, 0, (python, r.stderr))
            resumed, uninterrupted = json.loads(r.stdout)
            # Past iteration 5 the warmup goes on where it was, in Python as in ms.
            self.assertEqual(resumed, uninterrupted, python)
            self.assertEqual([round(lr, 9) for lr in resumed],
                             [round(lr, 9) for lr in logged[5:9]], (python, logged))

    def test_fresh_head_over_a_bare_encoder(self):
        r = self.train("--max-epochs", "1", model=os.path.join(TINY, "st_dense"))
        self.assertExit(r, 0)
        with open(self.path("work", "output", "config.json")) as f:
            hf = json.load(f)
        # The classes come from the data (sorted), since the encoder has none.
        self.assertEqual(hf["id2label"], {"0": "negative", "1": "positive"})
        self.assertEqual(hf["architectures"], ["BertForSequenceClassification"])

    def test_long_texts_are_cut_to_the_positions_roberta_takes(self):
        # The recipe's max_length (128 here) is more than the tiny RoBERTa's 72 positions take
        # (71: its positions start after pad_token_id): rows are cut there, as ms infer cuts them.
        long_rows = [(" ".join(["good movie"] * 60), "positive"),
                     (" ".join(["bad movie"] * 60), "negative")] * 4
        write_csv(self.path("long.csv"), long_rows)
        r = run_ms("train", "--model", os.path.join(TINY, "roberta"), "--config", self.config,
                   "--dataset", "csv:" + self.path("long.csv"), "--eval-dataset",
                   "csv:" + self.path("long.csv"), "--work-dir", self.path("work"),
                   "--set", "preprocessor.max_length=128", "--max-epochs", "1", "--json",
                   timeout=300)
        self.assertExit(r, 0)
        e = run_ms("eval", "--model", self.path("work", "output"), "--dataset",
                   "csv:" + self.path("long.csv"), "--json")
        self.assertExit(e, 0)
        self.assertEqual(json.loads(e.stdout), json.loads(r.stdout)["metrics"])

    def test_output_config_describes_the_trained_head(self):
        # The base's num_labels and problem_type were copied into output/config.json: a 3-label
        # base trained on 2 classes gave an output ms (and transformers) refused to load, and a
        # multi-label problem_type scored a softmax-trained head with sigmoids.
        base = self.path("base")
        shutil.copytree(os.path.join(TINY, "cls"), base)
        with open(os.path.join(base, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        # No label map: the classes come from the data (2), the base says 3.
        config.pop("id2label")
        config.pop("label2id")
        config.update(num_labels=3, problem_type="multi_label_classification")
        with open(os.path.join(base, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f)
        r = run_ms("train", "--model", base, "--config", self.config, "--dataset",
                   "csv:" + self.path("train.csv"), "--eval-dataset", "csv:" + self.path("test.csv"),
                   "--work-dir", self.path("work"), "--max-epochs", "1", "--json", timeout=300)
        self.assertExit(r, 0)
        output = os.path.join(self.path("work"), "output")
        with open(os.path.join(output, "config.json"), encoding="utf-8") as f:
            written = json.load(f)
        self.assertEqual((written["num_labels"], written["problem_type"]),
                         (2, "single_label_classification"))
        r = run_ms("infer", "--model", output, "--input", "a fine film")
        self.assertExit(r, 0)
        scores = json.loads(r.stdout)["scores"]
        self.assertAlmostEqual(sum(scores), 1.0, places=5)

    def test_sliced_splits_hold_out_part_of_one_file(self):
        r = run_ms("train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                   "--dataset", "csv:" + self.path("train.csv"), "--split", "train[:75%]",
                   "--eval-split", "train[75%:]", "--work-dir", self.path("work"),
                   "--max-epochs", "1", "--set", "train.dataloader.batch_size_per_gpu=5",
                   "--json", timeout=300)
        self.assertExit(r, 0)
        sliced_stderr = r.stderr  # held-out rows: no warning about evaluating on trained ones
        summary = json.loads(r.stdout)
        # 24 rows in batches of 5: the rate counts 24 rows, not 5 full batches' 25.
        self.assertAlmostEqual(summary["samples_per_second"] * summary["seconds"], 24, delta=0.1)
        self.assertEqual((summary["train_rows"], summary["eval_rows"]), (24, 8))
        self.assertIn("accuracy", summary["metrics"])
        # An evaluation dataset of several splits, none of them validation or test: the error
        # names the option that picks one (it said --split, which picks the training split).
        os.makedirs(self.path("two"))
        for split in ("first", "second"):
            shutil.copy(self.path("train.csv"), self.path("two", split + ".csv"))
        with open(self.path("two", "two.json"), "w") as f:
            json.dump({"default": {"first": {"meta": "first.csv"},
                                   "second": {"meta": "second.csv"}}}, f)
        r = run_ms("train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                   "--dataset", "csv:" + self.path("train.csv"), "--eval-dataset",
                   "folder:" + self.path("two"), "--work-dir", self.path("work-two"))
        self.assertExit(r, 2)
        self.assertOneLineError(r, "choose one with --eval-split")
        self.assertIn("pass --eval-split NAME", r.stderr)
        # A dataset whose only split is validation trains and evaluates on the same rows: said.
        os.makedirs(self.path("only-validation"))
        shutil.copy(self.path("train.csv"), self.path("only-validation", "validation.csv"))
        r = run_ms("train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                   "--dataset", self.path("only-validation"), "--work-dir", self.path("work-val"),
                   "--max-epochs", "1", "--json", timeout=300)
        self.assertExit(r, 0)
        self.assertIn("training and evaluating on the same rows (split 'validation'", r.stderr)
        self.assertGreater(json.loads(r.stdout)["eval_rows"], 0)
        self.assertNotIn("same rows", sliced_stderr)

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_resume_after_kill_is_bitwise_exact(self):
        whole = self.train(work="whole")
        self.assertExit(whole, 0)
        # Killed after iteration 33 (the last checkpoint is iter_30, in the middle of epoch 4).
        # Both runs say --resume auto: the first finds no checkpoint and starts, the second
        # goes on from iter_30 (one command line for a job and its reruns).
        self.train_killed({"MS_TEST_KILL_AFTER_ITER": "33"}, "--resume", "auto")
        resumed = self.train("--resume", "auto", work="cut")
        self.assertExit(resumed, 0)
        self.assertEqual(json.loads(resumed.stdout)["resumed_from"],
                         self.path("cut", "iter_30"))
        with open(self.path("whole", "output", "model.safetensors"), "rb") as a, \
                open(self.path("cut", "output", "model.safetensors"), "rb") as b:
            self.assertTrue(a.read() == b.read(), "resumed weights differ from the whole run's")
        self.assertEqual(json.loads(resumed.stdout)["metrics"], json.loads(whole.stdout)["metrics"])
        # Another cumulative_iters from iter_30 of a run without accumulation: the first step
        # would sum 2 batches where the count says 4. Refused.
        other = self.train("--resume", "iter_30", "--set",
                           "train.optimizer.options.cumulative_iters=4", work="cut")
        self.assertExit(other, 3)
        self.assertOneLineError(other, "after 30 iterations with cumulative_iters 1")
        # TensorBoard shows each step once: the killed run's steps after iter_30 are superseded by
        # the resumed run's (its file opens with a SessionLog START); they were shown twice.
        if tensorboard_python():
            cut = self.tensorboard_scalars(self.path("cut", "tensorboard_output"))
            full = self.tensorboard_scalars(self.path("whole", "tensorboard_output"))
            self.assertEqual([s for s, _ in cut["loss"]], [s for s, _ in full["loss"]])
            self.assertEqual([s for s, _ in cut["evaluation/accuracy"]],
                             [s for s, _ in full["evaluation/accuracy"]])

    def test_a_signal_ends_a_json_run_with_its_error_document(self):
        # `timeout 1h ms train --json > summary.json`: SIGTERM left stdout empty. Now the run
        # prints an error document naming the signal, and still ends by it (exit 143 in a shell).
        self.write("recipe.json", json.dumps(recipe(max_epochs=1000)))
        argv = [MS_BIN, "train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                "--dataset", "csv:" + self.path("train.csv"), "--eval-dataset",
                "csv:" + self.path("test.csv"), "--work-dir", self.path("long"), "--json"]
        # The same for the launcher of --nproc 2 (its workers stop as it passes the signal on; it
        # said "worker 0 of 2 was killed by signal 15" with exit 143).
        for signo, extra in ((signal.SIGTERM, []), (signal.SIGINT, []),
                             (signal.SIGTERM, ["--nproc", "2"])):
            with self.subTest(signal=signo.name, extra=extra):
                shutil.rmtree(self.path("long"), ignore_errors=True)
                # A signal inherited as ignored stays ignored (a background job's SIGINT): the
                # runner of these tests may be one.
                # stderr to a file: a pipe nobody reads while waiting could fill and stall it.
                err_file = open(self.path("long.err"), "w+")
                self.addCleanup(err_file.close)
                run = subprocess.Popen(argv + extra, stdout=subprocess.PIPE, stderr=err_file,
                                       text=True,
                                       preexec_fn=lambda: signal.signal(signo, signal.SIG_DFL))
                # Once it has a checkpoint it is training (the signals are watched from the start).
                self.assertTrue(self.wait_for(
                    lambda: os.path.exists(self.path("long", "latest_checkpoint.json"))
                    or run.poll() is not None, timeout=600))
                run.send_signal(signo)
                out, _ = run.communicate(timeout=600)
                err_file.seek(0)
                self.assertEqual(run.returncode, -signo, err_file.read())
                error = json.loads(out)["error"]
                self.assertEqual((error["code"], error["exit_code"]),
                                 ("interrupted", 128 + signo), error)
                self.assertIn("--resume auto", error["hint"])
                self.assertEqual(out.count("\n"), 1, out)

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_mixed_precision_bf16_trains_and_resumes_exactly(self):
        # TorchAMPOptimizerHook with dtype bf16 autocasts on the CPU (float16 needs a GPU): the
        # forward pass really runs in bfloat16 (the losses differ from fp32's), training still
        # converges like fp32, and a killed run resumes to the same bytes.
        amp = recipe()
        amp["train"]["optimizer_hook"] = {"type": "TorchAMPOptimizerHook", "dtype": "bf16",
                                          "grad_clip": {"max_norm": 1.0}}
        self.write("amp.json", json.dumps(amp))

        def run(work, *extra, env=None):
            return run_ms("train", "--model", os.path.join(TINY, "cls"), "--config",
                          self.path("amp.json"), "--dataset", "csv:" + self.path("train.csv"),
                          "--eval-dataset", "csv:" + self.path("test.csv"), "--work-dir",
                          self.path(work), "--json", *extra, env=env, timeout=600)

        def losses(work):
            log = glob.glob(os.path.join(self.path(work), "*.log.json"))[0]
            with open(log) as f:
                return [e["loss"] for e in map(json.loads, f) if e["mode"] == "train"]

        whole = run("amp")
        self.assertExit(whole, 0)
        fp32 = self.train(work="fp32")
        self.assertExit(fp32, 0)
        a, b = losses("amp"), losses("fp32")
        self.assertEqual(len(a), len(b))
        self.assertNotEqual(a, b)
        self.assertTrue(all(math.isfinite(x) for x in a))
        self.assertLess(abs(a[-1] - b[-1]), 0.1, (a[-1], b[-1]))
        self.assertLess(a[-1], a[0])
        killed = run("cut", env={"MS_TEST_KILL_AFTER_ITER": "33"})
        self.assertEqual(killed.returncode, -9, killed.stderr)
        resumed = run("cut", "--resume")
        self.assertExit(resumed, 0)
        with open(self.path("amp", "output", "model.safetensors"), "rb") as x, \
                open(self.path("cut", "output", "model.safetensors"), "rb") as y:
            self.assertTrue(x.read() == y.read(), "resumed weights differ from the whole run's")

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_resume_at_an_epoch_end_with_accumulation_and_epoch_schedule(self):
        # iter_40 is the last iteration of epoch 5, saved before that epoch's end (its evaluation
        # and LR step); 40 is not a multiple of cumulative_iters 3, so gradients are pending.
        config = recipe(lr_scheduler={"type": "StepLR", "step_size": 1, "gamma": 0.9,
                                      "options": {"by_epoch": True}})
        config["train"]["optimizer"]["options"]["cumulative_iters"] = 3
        config["train"]["hooks"].append({"type": "BestCkptSaverHook", "metric_key": "accuracy"})
        config["train"]["hooks"].append({"type": "EarlyStopHook", "metric_key": "accuracy",
                                         "patience": 50})
        self.write("recipe.json", json.dumps(config))
        whole = self.train(work="whole")
        self.assertExit(whole, 0)
        self.train_killed({"MS_TEST_KILL_AFTER_ITER": "41"})
        resumed = self.train("--resume", "iter_40", work="cut")
        self.assertExit(resumed, 0)
        with open(self.path("whole", "output", "model.safetensors"), "rb") as a, \
                open(self.path("cut", "output", "model.safetensors"), "rb") as b:
            self.assertTrue(a.read() == b.read(), "resumed weights differ from the whole run's")
        # Epoch 5 was evaluated before the kill, and again by the resumed run (its checkpoint was
        # taken before that evaluation); every epoch was evaluated.
        evals = []
        for log in glob.glob(self.path("cut", "*.log.json")):
            with open(log) as f:
                evals += [e["epoch"] for e in map(json.loads, f) if e["mode"] == "eval"]
        self.assertEqual(sorted(set(evals)), list(range(1, 9)))
        self.assertEqual(evals.count(5), 2)
        # Resuming with another seed would change the data order: refused.
        other = self.train("--resume", "--seed", "7", work="cut")
        self.assertEqual(other.returncode, 2)
        self.assertIn("--seed 42", other.stdout + other.stderr)
        # iter_40's gradients are a third of a step's sum (40 = 3 * 13 + 1): another
        # cumulative_iters would have stepped with them as another share. Refused; from iter_30,
        # a step of both counts, it is a change of the recipe like any other.
        changed = "train.optimizer.options.cumulative_iters=2"
        cut = self.train("--resume", "iter_40", "--set", changed, work="cut")
        self.assertExit(cut, 3)
        self.assertOneLineError(cut, "after 40 iterations with cumulative_iters 3",
                                "not a multiple of both")
        self.assertExit(self.train("--resume", "iter_30", "--set", changed, work="cut"), 0)

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_resume_from_an_epoch_checkpoint_keeps_the_iteration_count(self):
        # An epoch-end checkpoint's meta holds iter + 1 (ModelScope's format) after the counter
        # has passed the epoch: counting on from it would shift every by-iteration interval, here
        # the steps of cumulative_iters 3 over epochs of 8 iterations.
        config = recipe(hooks=[{"type": "CheckpointHook", "interval": 1},
                               {"type": "TextLoggerHook", "interval": 1}])
        config["train"]["max_epochs"] = 4
        config["train"]["optimizer"]["options"]["cumulative_iters"] = 3
        self.write("recipe.json", json.dumps(config))
        whole = self.train(work="whole")
        self.assertExit(whole, 0)
        killed = run_ms("train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                        "--dataset", "csv:" + self.path("train.csv"), "--work-dir",
                        self.path("cut"), env={"MS_TEST_KILL_AFTER_ITER": "18"}, timeout=600)
        self.assertEqual(killed.returncode, -9, killed.stderr)
        resumed = self.train("--resume", work="cut")
        self.assertExit(resumed, 0)
        self.assertEqual(json.loads(resumed.stdout)["resumed_from"], self.path("cut", "epoch_2"))
        self.assertEqual(json.loads(resumed.stdout)["iters"], json.loads(whole.stdout)["iters"])
        with open(self.path("whole", "output", "model.safetensors"), "rb") as a, \
                open(self.path("cut", "output", "model.safetensors"), "rb") as b:
            self.assertTrue(a.read() == b.read(), "resumed weights differ from the whole run's")

    def test_optimizer_and_lr_hooks_listed_in_train_hooks_are_the_chains_own(self):
        # ModelScope's configs may list OptimizerHook (with cumulative_iters, grad_clip) and
        # LrSchedulerHook in train.hooks: that is the one hook of each kind, configured there, not
        # a second one stepping the optimizer (which failed: "backward through the graph a second
        # time") or the schedule (which would decay the rate twice as fast).
        chains = recipe(max_epochs=2)
        chains["train"]["optimizer"]["options"]["cumulative_iters"] = 2
        listed = recipe(max_epochs=2)
        options = listed["train"]["optimizer"].pop("options")
        listed["train"]["lr_scheduler"].pop("options")
        listed["train"]["hooks"] += [
            {"type": "OptimizerHook", "cumulative_iters": 2, **options},
            {"type": "LrSchedulerHook", "by_epoch": False}]
        runs = {}
        for name, config in (("chains", chains), ("listed", listed)):
            self.write(name + ".json", json.dumps(config))
            self.config = self.path(name + ".json")
            r = self.train(work=name)
            self.assertExit(r, 0)
            logs = glob.glob(self.path(name, "*.log.json"))
            with open(logs[0]) as f:
                runs[name] = [(e["iter"], e["lr"]) for e in map(json.loads, f) if e["mode"] == "train"]
        self.assertEqual(runs["listed"], runs["chains"])
        with open(self.path("chains", "output", "model.safetensors"), "rb") as a, \
                open(self.path("listed", "output", "model.safetensors"), "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_locked_work_dir_is_refused(self):
        os.makedirs(self.path("work"))
        with open(self.path("work", ".ms-train.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            lock.write("4242")
            lock.flush()
            r = self.train()
        self.assertExit(r, 2)
        self.assertIn("another ms train (pid 4242) is running", r.stdout + r.stderr)

    def test_a_fresh_start_over_a_finished_run_needs_overwrite(self):
        self.assertExit(self.train("--max-epochs", "1"), 0)
        weights = self.path("work", "output", "model.safetensors")
        with open(weights, "rb") as f:
            kept = f.read()
        with open(self.path("work", "latest_checkpoint.json")) as f:
            pointer = f.read()
        # A rerun that forgot --resume would train over the run and replace its output/.
        r = self.train("--max-epochs", "2")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "holds a run", "replace its output/")
        self.assertIn("--resume (or --resume auto), start over there with --overwrite", r.stderr)
        with open(weights, "rb") as f:
            self.assertEqual(f.read(), kept)
        r = self.train("--overwrite", "--resume")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--overwrite")
        # --overwrite starts over; a start-over killed before its first checkpoint leaves no
        # pointer to the run it replaced (--resume auto then starts afresh, not from that run).
        if TEST_HOOKS:
            r = self.train("--overwrite", env={"MS_TEST_KILL_AFTER_ITER": "3"})
            self.assertNotEqual(r.returncode, 0)
            self.assertFalse(os.path.exists(self.path("work", "latest_checkpoint.json")))
        r = self.train("--overwrite", "--max-epochs", "1", "--seed", "7")
        self.assertExit(r, 0)
        self.assertIsNone(json.loads(r.stdout)["resumed_from"])
        with open(weights, "rb") as f:
            self.assertNotEqual(f.read(), kept)
        with open(self.path("work", "latest_checkpoint.json")) as f:
            self.assertEqual(f.read(), pointer)  # the same last step's name, of the new run

    def test_unwritable_places_are_io_errors_with_a_json_document(self):
        self.write("afile", "")
        for work in ("afile", os.path.join("afile", "sub")):
            r = self.train(work=work)
            self.assertExit(r, 74)
            self.assertOneLineError(r, "--work-dir", "cannot create the folder")
            self.assertEqual(self.json_out(r)["error"]["exit_code"], 74)
        # A hook's own folder (kept where the work dir is the configuration's: --work-dir would
        # replace it, as ModelScope's does).
        logged = recipe(work_dir=self.path("logged"))
        logged["train"]["hooks"][2]["out_dir"] = self.path("afile", "logs")
        self.write("recipe.json", json.dumps(logged))
        r = run_ms("train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                   "--dataset", "csv:" + self.path("train.csv"), "--eval-dataset",
                   "csv:" + self.path("test.csv"), "--json")
        self.assertExit(r, 74)
        self.assertOneLineError(r, "TextLoggerHook.out_dir")

    def test_rates_float32_cannot_hold_or_schedules_send_below_zero(self):
        cases = [
            (recipe(optimizer={"type": "SGD", "lr": 1e39}), ("lr", "float32")),
            (recipe(lr_scheduler={"type": "ExponentialLR", "gamma": -1}), ("gamma", "-1")),
            (recipe(lr_scheduler={"type": "PolynomialLR", "power": -1}), ("power", "-1")),
        ]
        for config, words in cases:
            self.write("recipe.json", json.dumps(config))
            r = self.train(work="rates")
            self.assertExit(r, 3, str(words))
            self.assertOneLineError(r, *words)
            self.assertEqual(self.json_out(r)["error"]["exit_code"], 3)

    def test_nan_weights_are_never_saved(self):
        # AdamW with eps 0 divides 0 by 0 for the embedding rows no token of the batch used: the
        # loss of that step was finite, and the save right after it must not write the NaN.
        config = recipe(optimizer={"type": "AdamW", "lr": 0.003, "eps": 0},
                        hooks=[{"type": "CheckpointHook", "by_epoch": False, "interval": 1}])
        del config["train"]["lr_scheduler"]
        self.write("recipe.json", json.dumps(config))
        r = self.train(work="nan")
        self.assertExit(r, 7)
        self.assertOneLineError(r, "NaN or infinity", "iteration 1", "not saved")
        self.assertFalse(os.path.exists(self.path("nan", "iter_1.pth")))
        self.assertFalse(os.path.exists(self.path("nan", "output")))

    def test_a_finished_early_stopped_run_resumes_as_finished(self):
        # min_delta beyond any accuracy gain: the second evaluation does not improve, and with
        # patience 1 training stops after epoch 2 of 8.
        config = recipe(hooks=[
            {"type": "CheckpointHook", "interval": 1},
            {"type": "EvaluationHook", "interval": 1},
            {"type": "EarlyStopHook", "metric_key": "accuracy", "patience": 1, "min_delta": 10},
        ])
        self.write("recipe.json", json.dumps(config))
        r = self.train(work="early")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout)["epochs"], 2)
        with open(self.path("early", "output", "model.safetensors"), "rb") as f:
            before = f.read()
        again = self.train("--resume", work="early")
        self.assertExit(again, 0)
        self.assertIn("nothing left to train", again.stderr)
        self.assertEqual(json.loads(again.stdout)["epochs"], 2, again.stdout)
        # Its last evaluation too (it was null: a CI gate on a rerun's metrics failed).
        self.assertEqual(json.loads(again.stdout)["metrics"], json.loads(r.stdout)["metrics"])
        self.assertIsNotNone(json.loads(again.stdout)["metrics"])
        with open(self.path("early", "output", "model.safetensors"), "rb") as f:
            self.assertTrue(f.read() == before, "a finished run trained again")
        # A by-iteration checkpoint taken at epoch 2's last iteration, resumed with fewer
        # epochs: the summary said 1 (the checkpoint's epoch index, not the epochs it reached).
        self.write("recipe.json", json.dumps(recipe(max_epochs=2, hooks=[
            {"type": "CheckpointHook", "by_epoch": False, "interval": 1000}])))
        r = self.train(work="steps")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout)["epochs"], 2)
        again = self.train("--resume", "--max-epochs", "1", work="steps")
        self.assertExit(again, 0)
        self.assertIn("the checkpoint was taken in epoch 2", again.stderr)
        self.assertEqual(json.loads(again.stdout)["epochs"], 2, again.stdout)

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_an_evaluation_between_log_lines_shows_only_its_figures(self):
        # 11 iterations logged every 5: the epoch's evaluation comes after iteration 11, which
        # no train line shows. Its line showed the rate unrounded ("lr: 0.00031381059609000004"),
        # where ModelScope's logger leaves out the keys train lines head with.
        self.write("recipe.json", json.dumps(recipe(max_epochs=1, hooks=[
            {"type": "EvaluationHook"}, {"type": "TextLoggerHook", "interval": 5}])))
        write_csv(self.path("train.csv"), [("good movie", "positive"), ("bad movie", "negative")] * 22)
        r = self.train()
        self.assertExit(r, 0)
        console = [l for l in r.stderr.splitlines() if l.startswith("epoch")]
        self.assertEqual([l.split("\t")[0] for l in console],
                         ["epoch [1][5/11]", "epoch [1][10/11]", "epoch(eval) [1][11]"])
        self.assertRegex(console[-1], r"^epoch\(eval\) \[1\]\[11\]\tevaluation/accuracy: \d\.\d{4}, ")
        for key in ("lr:", "iter_time", "data_load_time"):
            self.assertNotIn(key, console[-1])

    def test_an_evaluation_before_any_train_line_shows_the_rate_whole(self):
        # ModelScope's logger rounds floats to 4 digits but for ignore_rounding_keys ("lr"): an
        # evaluation logged before any train line showed "lr: 0.0030".
        self.write("recipe.json", json.dumps(recipe(max_epochs=1, hooks=[
            {"type": "EvaluationHook", "by_epoch": False, "interval": 1},
            {"type": "TextLoggerHook", "interval": 1}])))
        write_csv(self.path("train.csv"), [("good movie", "positive"), ("bad movie", "negative")] * 2)
        r = self.train()
        self.assertExit(r, 0)
        console = [l for l in r.stderr.splitlines() if l.startswith("epoch")]
        self.assertTrue(console[0].startswith("epoch(eval) "), console)
        self.assertIn("\tlr: 0.003, ", console[0])

    def test_one_rule_for_the_text_length_in_train_eval_and_infer(self):
        # ms train and ms eval took preprocessor.max_length 0 (as the tokenizer's own limit) and 3,
        # and wrote an output/ that ms infer refused for it (exit 3).
        for length in ("0", "3"):
            with self.subTest(length=length):
                r = self.train("--set", "preprocessor.max_length=" + length, work="len" + length)
                self.assertExit(r, 3)
                self.assertIn("too small for [CLS] text [SEP]", r.stderr)
                self.assertFalse(os.path.exists(self.path("len" + length, "output")))
                r = run_ms("eval", "--model", os.path.join(TINY, "cls"), "--dataset",
                           "csv:" + self.path("test.csv"), "--set", "preprocessor.max_length=" + length)
                self.assertExit(r, 3)
        r = self.train("--set", "preprocessor.max_length=4", "--max-epochs", "1", work="len4")
        self.assertExit(r, 0)
        r = run_ms("infer", "-m", self.path("len4", "output"), "-i", "a good movie")
        self.assertExit(r, 0)

    def test_a_train_section_that_is_no_object_is_named_as_the_users_key(self):
        # It said "cannot set 'train.work_dir': 'train' has no element 'work_dir'" (ms's own key)
        # with the hint "use the list is empty".
        for value in ("[]", "5"):
            with self.subTest(value=value):
                r = self.train("--set", "train=" + value)
                self.assertExit(r, 3)
                self.assertOneLineError(r, f"train is {value}, not an object of training options")

    def test_listed_hooks_folders_give_way_to_the_work_dir(self):
        # As ModelScope's trainer moves these hooks of train.hooks into their key chains before a
        # work_dir replaces their folders: a CheckpointHook with its own save_dir wrote there, with
        # no latest_checkpoint.json (--resume found nothing) and nothing to stop a rerun
        # overwriting its checkpoints.
        self.write("recipe.json", json.dumps(recipe(max_epochs=1, hooks=[
            {"type": "CheckpointHook", "interval": 1, "save_dir": self.path("ckpts")},
            {"type": "BestCkptSaverHook", "metric_key": "accuracy", "save_dir": self.path("best")},
            {"type": "EvaluationHook"},
            {"type": "TextLoggerHook", "interval": 1, "out_dir": self.path("logs")}])))
        r = self.train()
        self.assertExit(r, 0)
        for elsewhere in ("ckpts", "best", "logs"):
            self.assertFalse(os.path.exists(self.path(elsewhere)), elsewhere)
        self.assertTrue(os.path.isfile(self.path("work", "latest_checkpoint.json")))
        self.assertTrue(glob.glob(self.path("work", "*.log.json")))
        self.assertTrue(glob.glob(self.path("work", "best_*")))
        again = self.train()
        self.assertExit(again, 2)
        self.assertIn("--resume", again.stderr)

    def test_resumes_that_would_not_continue_the_run_are_refused(self):
        # Killed after iteration 13: the last checkpoint is iter_10, inside epoch 2 (8 batches).
        self.train_killed({"MS_TEST_KILL_AFTER_ITER": "13"})
        # What a kill in the middle of a checkpoint write leaves behind.
        leftover = self.write(os.path.join("cut", ".iter_20.pth.tmp.Ab12Cd"), "half")
        # Batch 2 makes epochs of 16 batches: the rest of epoch 2 would be other batches.
        r = self.train("--resume", "--set", "train.dataloader.batch_size_per_gpu=2", work="cut")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "inside an epoch of 8 batches", "have 16")
        self.assertFalse(os.path.exists(leftover), "the killed run's temp file is still there")
        # The same 8 batches in order are other rows than the shuffled ones (and batches of 13
        # and of 14 make 8 of 100 rows alike): the batching itself is compared.
        r = self.train("--resume", "--set", "train.dataloader.shuffle=false", work="cut")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "an epoch of batches of 4, shuffled", "batches of 4, in order")
        r = self.train("--resume", self.path("train.csv"), work="cut")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "train.csv", "not a checkpoint")
        # The same number of rows is not the same data: shuffled, or relabelled.
        rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
        for name, other in (("shuffled.csv", list(reversed(rows * 2))),
                            ("relabelled.csv", [(t, "neutral") for t, _ in rows * 2])):
            write_csv(self.path(name), other)
            r = run_ms("train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                       "--dataset", "csv:" + self.path(name), "--eval-dataset",
                       "csv:" + self.path("test.csv"), "--work-dir", self.path("cut"), "--resume")
            self.assertExit(r, 2, name)
            self.assertOneLineError(r, "inside an epoch of other training data")
        # Another optimizer or schedule than the checkpoint's is the configuration's error.
        for override, words in (("train.optimizer.type=SGD", ("AdamW optimizer", "is SGD")),
                                ('train.lr_scheduler={"type": "ExponentialLR", "gamma": 0.9}',
                                 ("StepLR schedule", "is ExponentialLR"))):
            r = self.train("--resume", "--set", override, work="cut")
            self.assertExit(r, 2, override)
            self.assertOneLineError(r, *words)
        r = self.train("--resume", work="cut")
        self.assertExit(r, 0)
        # A pointer to a checkpoint that is gone: --resume auto does not start over.
        self.write(os.path.join("cut", "latest_checkpoint.json"), '{"prefix": "iter_999"}')
        r = self.train("--resume", "auto", work="cut")
        self.assertExit(r, 4)
        # Named as what it is (it said the work dir had no checkpoint, and that the pointer would
        # name one once saved).
        self.assertOneLineError(r, "latest_checkpoint.json names iter_999, which", "does not hold whole")

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_a_kill_after_new_weights_leaves_no_older_eval_result_beside_them(self):
        # eval_result.txt describes the weights beside it in output/: epoch 1's stayed beside
        # epoch 2's weights when a kill came between the two writes.
        self.write("recipe.json", json.dumps(recipe(max_epochs=2, hooks=[
            {"type": "CheckpointHook", "interval": 1}, {"type": "EvaluationHook", "interval": 1}])))
        self.train_killed({"MS_TEST_KILL_AFTER_OUTPUT_SAVE": "2"})
        output = os.listdir(self.path("cut", "output"))
        self.assertIn("model.safetensors", output)
        self.assertNotIn("eval_result.txt", output)
        resumed = self.train("--resume", "auto", work="cut")
        self.assertExit(resumed, 0)
        self.assertIn("eval_result.txt", os.listdir(self.path("cut", "output")))

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_a_kill_after_an_epochs_last_checkpoint_before_its_evaluation_keeps_eval_result(self):
        # A by-iteration checkpoint at the epoch's last step is named (latest_checkpoint.json)
        # before the epoch's evaluation writes output/eval_result.txt: a kill between the two
        # left output/ without it for good (the resumed run evaluated, and wrote it nowhere).
        iters = math.ceil(len(POSITIVE + NEGATIVE) * 2 / 4)
        self.write("recipe.json", json.dumps(recipe(max_epochs=1, hooks=[
            {"type": "CheckpointHook", "by_epoch": False, "interval": iters},
            {"type": "EvaluationHook", "interval": 1}])))
        whole = self.train(work="whole")
        self.assertExit(whole, 0)
        self.train_killed({"MS_TEST_KILL_AFTER_ITER": str(iters)})
        self.assertNotIn("eval_result.txt", os.listdir(self.path("cut", "output")))
        resumed = self.train("--resume", "auto", work="cut")
        self.assertExit(resumed, 0)
        with open(self.path("whole", "output", "eval_result.txt")) as a, \
                open(self.path("cut", "output", "eval_result.txt")) as b:
            self.assertEqual(a.read(), b.read())

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_a_kill_between_naming_a_checkpoint_and_deleting_the_old_ones_deletes_them_later(self):
        # max_checkpoint_num 2: the third checkpoint is named in latest_checkpoint.json, then the
        # first is deleted. Killed between the two, the first stayed for good (its name was gone
        # from the history the resumed state holds).
        self.write("recipe.json", json.dumps(recipe(max_epochs=1, hooks=[
            {"type": "CheckpointHook", "by_epoch": False, "interval": 1, "max_checkpoint_num": 2},
            {"type": "EvaluationHook", "interval": 1}])))
        whole = self.train(work="whole")
        self.assertExit(whole, 0)
        # Two after-saves actions per checkpoint (name it, delete what it replaces): the fifth
        # names iter_3.
        self.train_killed({"MS_TEST_KILL_AFTER_COMMIT": "5"})
        with open(self.path("cut", "latest_checkpoint.json")) as f:
            self.assertEqual(json.load(f)["prefix"], "iter_3")
        self.assertTrue(os.path.exists(self.path("cut", "iter_1.pth")))
        resumed = self.train("--resume", "auto", work="cut")
        self.assertExit(resumed, 0)
        def checkpoints(work):
            return sorted(f for f in os.listdir(self.path(work)) if f.startswith("iter_"))
        self.assertEqual(checkpoints("cut"), checkpoints("whole"))
        self.assertEqual(len(checkpoints("whole")), 4, checkpoints("whole"))  # 2 x (weights, state)

    def test_output_places_are_names_in_the_work_dir_and_reported_where_written(self):
        # output_sub_dir "final": the model went there, yet the run warned that nothing was
        # saved and its JSON said "output_dir": null.
        config = recipe(max_epochs=1, hooks=[
            {"type": "CheckpointHook", "by_epoch": True, "output_sub_dir": "final"},
            {"type": "EvaluationHook", "interval": 1}])
        self.write("recipe.json", json.dumps(config))
        r = self.train(work="sub")
        self.assertExit(r, 0)
        self.assertEqual(self.json_out(r)["output_dir"], self.path("sub", "final"))
        self.assertNotIn("no checkpoint was saved", r.stderr)
        self.assertTrue(os.path.exists(self.path("sub", "final", "model.safetensors")))
        # A configuration (a hub model's is merged in) wrote beside the work dir, or anywhere.
        for hook in ({"type": "CheckpointHook", "output_sub_dir": "../escaped"},
                     {"type": "CheckpointHook", "output_sub_dir": "/tmp/escaped"},
                     {"type": "BestCkptSaverHook", "metric_key": "accuracy",
                      "save_file_name": "../escaped_best.pth"}):
            self.write("recipe.json", json.dumps(recipe(max_epochs=1, hooks=[
                hook, {"type": "EvaluationHook", "interval": 1}])))
            r = self.train(work="climb")
            self.assertExit(r, 3)
            self.assertOneLineError(r, "is not a name inside the work dir")
            self.assertFalse(os.path.exists(self.path("escaped_best.pth")))
            self.assertFalse(os.path.exists(self.path("escaped")))
        # Two hooks writing one output folder (each replaced the other's model there; a
        # CheckpointHook is there by default), or two best-checkpoint hooks naming their
        # checkpoints alike (each deleted the other's): refused before training.
        best = {"type": "BestCkptSaverHook", "metric_key": "accuracy"}
        for hooks, named in (
                ([best, dict(best, metric_key="f1")], "output_best"),
                ([dict(best, output_sub_dir="output/")], "output"),
                ([dict(best, save_file_name="best.pth"),
                  dict(best, metric_key="f1", output_sub_dir="output_f1",
                       save_file_name="best.pth")], "the checkpoints best in"),
                ([best, dict(best, rule="min", output_sub_dir="output_worst")],
                 "the checkpoints best_epoch<E>_accuracy<value> in"),
                # A fixed name that another hook's names take.
                ([{"type": "CheckpointHook"}, dict(best, save_file_name="epoch_1")],
                 "the checkpoints epoch_1 in"),
                ([{"type": "CheckpointHook"},
                  dict(best, save_file_name="epoch_1_trainer_state")],
                 "the checkpoints epoch_1_trainer_state in"),
                ([best, dict(best, metric_key="f1", output_sub_dir="output_f1",
                             save_file_name="best_epoch1_accuracy0.5")],
                 "the checkpoints best_epoch1_accuracy0.5 in")):
            self.write("recipe.json", json.dumps(recipe(max_epochs=1, hooks=[
                *hooks, {"type": "EvaluationHook", "interval": 1}])))
            r = self.train(work="shared")
            self.assertExit(r, 3)
            self.assertOneLineError(r, "would both write", named)
            self.assertFalse(os.path.exists(self.path("shared", "latest_checkpoint.json")))
        # Through a link to the folder, before the folder is made.
        os.makedirs(self.path("shared"), exist_ok=True)
        os.symlink("output_best", self.path("shared", "alias"))
        self.write("recipe.json", json.dumps(recipe(max_epochs=1, hooks=[
            best, dict(best, metric_key="f1", output_sub_dir="alias"),
            {"type": "EvaluationHook", "interval": 1}])))
        r = self.train(work="shared")
        self.assertExit(r, 3)
        self.assertOneLineError(r, "would both write")
        self.write("recipe.json", json.dumps(recipe(max_epochs=1, hooks=[
            best, dict(best, metric_key="f1", output_sub_dir="output_f1"),
            {"type": "EvaluationHook", "interval": 1}])))
        r = self.train(work="apart")
        self.assertExit(r, 0)
        for folder in ("output_best", "output_f1"):
            self.assertTrue(os.path.exists(self.path("apart", folder, "model.safetensors")))
        # A work dir whose path is not UTF-8: refused at the start (the first checkpoint's JSON
        # failed with an internal error, the run half saved).
        r = run_ms("train", "--model", os.path.join(TINY, "cls"), "--config", self.config,
                   "--dataset", "csv:" + self.path("train.csv"), "--work-dir",
                   os.fsencode(self.path("w")) + b"\xff", timeout=300)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "is not UTF-8 text")

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_a_kill_between_the_checkpoint_and_the_best_checkpoint_resumes_whole(self):
        config = recipe(max_epochs=4, optimizer={"type": "AdamW", "lr": 0.01}, hooks=[
            {"type": "CheckpointHook", "interval": 1},
            {"type": "EvaluationHook", "interval": 1},
            {"type": "BestCkptSaverHook", "metric_key": "accuracy", "restore_best": True},
        ])
        self.write("recipe.json", json.dumps(config))
        whole = self.train(work="whole")
        self.assertExit(whole, 0)
        # Accuracy improves at epochs 1 and 3: the stage-end saves are epoch 1's checkpoint (1)
        # and best (2), epoch 2's checkpoint (3), epoch 3's checkpoint (4) and best (5).
        best = [f for f in os.listdir(self.path("whole")) if f.startswith("best_epoch3_")]
        self.assertTrue(best, os.listdir(self.path("whole")))
        # Killed once epoch 3's checkpoint is written, before its best checkpoint is.
        self.train_killed({"MS_TEST_KILL_AFTER_SAVE_ACTION": "4"})
        self.assertTrue(os.path.exists(self.path("cut", "epoch_3.pth")))
        self.assertFalse(os.path.exists(self.path("cut", best[0])))
        resumed = self.train("--resume", work="cut")
        self.assertExit(resumed, 0)
        def files(work):
            return sorted(f for f in os.listdir(self.path(work)) if f.endswith(".pth"))
        self.assertEqual(files("cut"), files("whole"))
        self.assertEqual(sorted(os.listdir(self.path("cut", "output_best"))),
                         sorted(os.listdir(self.path("whole", "output_best"))))
        for folder in ("output", "output_best"):
            with open(self.path("whole", folder, "model.safetensors"), "rb") as a, \
                    open(self.path("cut", folder, "model.safetensors"), "rb") as b:
                self.assertTrue(a.read() == b.read(), folder)
        # Killed after epoch 3's checkpoint is named, before the best checkpoint it displaced
        # (epoch 1's) is deleted. After-saves actions: per epoch the checkpoint's two (name it,
        # delete what it replaces), then the best checkpoint's one when it saved (epochs 1 and
        # 3): the seventh is epoch 3's second. The resumed state no longer had epoch 1's best
        # among the best, so its files stayed for good.
        self.train_killed({"MS_TEST_KILL_AFTER_COMMIT": "7"}, work="cut2")
        with open(self.path("cut2", "latest_checkpoint.json")) as f:
            self.assertEqual(json.load(f)["prefix"], "epoch_3")
        self.assertTrue([f for f in files("cut2") if f.startswith("best_epoch1_")], files("cut2"))
        resumed = self.train("--resume", work="cut2")
        self.assertExit(resumed, 0)
        self.assertEqual(files("cut2"), files("whole"))

    def test_keys_read_as_modelscopes_trainer_reads_them(self):
        # From an audit against ModelScope 1.40's trainer: each of these ran otherwise, silently.
        def run(name, config, *extra):
            self.write(name + ".json", json.dumps(config))
            return run_ms("train", "--model", os.path.join(TINY, "cls"), "--config",
                          self.path(name + ".json"), "--dataset", "csv:" + self.path("train.csv"),
                          "--eval-dataset", "csv:" + self.path("test.csv"), "--work-dir",
                          self.path(name), "--json", *extra, timeout=600)

        def logged(name):
            log = glob.glob(os.path.join(self.path(name), "*.log.json"))[0]
            with open(log) as f:
                return [e for e in map(json.loads, f) if e["mode"] == "train"]

        # A typed train.lr_scheduler_hook replaces train.lr_scheduler.options, warmup included
        # (StepLR's first steps keep the base rate).
        c = recipe(max_epochs=1, hooks=[{"type": "TextLoggerHook", "interval": 1}])
        c["train"]["lr_scheduler"]["options"]["warmup"] = {"type": "LinearWarmup", "warmup_iters": 4}
        c["train"]["lr_scheduler_hook"] = {"type": "LrSchedulerHook", "by_epoch": False}
        self.assertExit(run("hooked", c), 0)
        self.assertEqual([e["lr"] for e in logged("hooked")][:4], [0.003] * 4)
        # A TorchAMPOptimizerHook in train.optimizer_hook keeps train.optimizer.options
        # (grad_clip: the clipped norm is logged).
        c = recipe(max_epochs=1, optimizer_hook={"type": "TorchAMPOptimizerHook", "dtype": "bf16"})
        self.assertExit(run("amp", c), 0)
        self.assertTrue(all("grad_norm" in e for e in logged("amp")), logged("amp")[0])
        # --work-dir takes the place of the key chains' save_dir and out_dir.
        c = recipe(max_epochs=1, checkpoint={"period": {"save_dir": self.path("elsewhere")}},
                   logging={"out_dir": self.path("elsewhere")})
        self.assertExit(run("placed", c), 0)
        self.assertFalse(os.path.exists(self.path("elsewhere")))
        self.assertTrue(os.path.exists(self.path("placed", "latest_checkpoint.json")))
        # save_file_name "best_model.pth" names best_model.pth (it made best_model.pth.pth).
        c = recipe(max_epochs=1, hooks=[{"type": "EvaluationHook", "interval": 1},
                                        {"type": "BestCkptSaverHook", "metric_key": "accuracy",
                                         "save_file_name": "best_model.pth"}])
        self.assertExit(run("named", c), 0)
        files = os.listdir(self.path("named"))
        self.assertIn("best_model.pth", files)
        self.assertIn("best_model_trainer_state.pth", files)
        # evaluation.val_iters_per_epoch: the first N evaluation batches (8 rows here) only.
        c = recipe(max_epochs=1)
        c["evaluation"]["val_iters_per_epoch"] = 1
        trained = run("valiters", c)
        self.assertExit(trained, 0)
        rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
        write_csv(self.path("first8.csv"), rows[:8])
        first = run_ms("eval", "--model", self.path("valiters", "output"), "--dataset",
                       "csv:" + self.path("first8.csv"), "--json")
        self.assertExit(first, 0)
        self.assertEqual(json.loads(trained.stdout)["metrics"], json.loads(first.stdout))
        # The NLP trainer's dataset.train.labels give the class ids in list order, and a
        # model.label2id is kept consistent with the id2label written beside it.
        c = recipe(max_epochs=1)
        c["dataset"] = {"train": {"labels": ["positive", "negative"]}}
        self.assertExit(run("listed", c), 0)
        with open(self.path("listed", "output", "config.json")) as f:
            self.assertEqual(json.load(f)["id2label"], {"0": "positive", "1": "negative"})
        c = recipe(max_epochs=1)
        c["model"] = {"label2id": {"positive": 0, "negative": 1}}
        self.assertExit(run("mapped", c), 0)
        with open(self.path("mapped", "output", "configuration.json")) as f:
            model = json.load(f)["model"]
        self.assertEqual(model["id2label"], {"0": "positive", "1": "negative"})
        self.assertEqual(model["label2id"], {"positive": 0, "negative": 1})

    def test_sequence_length_is_max_lengths_other_name(self):
        text = "the movie is very good and the actors are very good"
        def scores(*extra):
            r = run_ms("infer", "-m", os.path.join(TINY, "cls"), "-i", text, *extra)
            self.assertExit(r, 0)
            return json.loads(r.stdout)["scores"]
        cut = scores("--set", "preprocessor.max_length=5")
        self.assertNotEqual(cut, scores())
        self.assertEqual(scores("--set", "preprocessor.sequence_length=5"), cut)

    def test_bad_configs_and_data(self):
        def with_recipe(config, *extra, dataset=None):
            self.write("bad.json", json.dumps(config))
            return run_ms("train", "--model", os.path.join(TINY, "cls"), "--config",
                          self.path("bad.json"), "--dataset",
                          dataset or "csv:" + self.path("train.csv"), "--eval-dataset",
                          "csv:" + self.path("test.csv"), "--work-dir", self.path("bad"), *extra,
                          timeout=300)

        hooks = recipe()
        hooks["train"]["hooks"].append({"type": "CheckpointHok"})
        r = with_recipe(hooks)
        self.assertOneLineError(r, "CheckpointHok")
        self.assertIn("CheckpointHook", r.stderr)
        self.assertEqual(r.returncode, 4)
        r = with_recipe(recipe(optimizer={"type": "Adamw", "lr": 0.1}))
        self.assertEqual(r.returncode, 4)
        self.assertIn("AdamW", r.stderr)
        r = with_recipe(recipe(optimizer={"type": "SGD", "lr": 0.1, "momentun": 0.9}))
        self.assertEqual(r.returncode, 3)
        self.assertIn("momentun", r.stderr)
        # A dataloader section that is not one: it trained with the default batch of 32.
        r = with_recipe(recipe(), "--set", "train.dataloader=5")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertOneLineError(r, "train.dataloader is 5, not an object of dataloader options")
        # Keys ms does not read are ModelScope's to ignore, but a typo of one it reads is named
        # (the run trains as configured otherwise), as is a dataloader key it does not read.
        r = with_recipe(recipe(), "--set", "train.max_epoch=3", "--set",
                        "train.dataloader.batchsize=2", "--set", "train.custom_key=1", "--max-epochs", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("train.max_epoch is not read: did you mean train.max_epochs?", r.stderr)
        self.assertIn("train.dataloader.batchsize is not read (ms reads batch_size_per_gpu", r.stderr)
        self.assertNotIn("custom_key", r.stderr)
        shutil.rmtree(self.path("bad"))
        # --set task=T chooses the task as --task does, over the recipe's.
        r = with_recipe(recipe(), "--set", "task=nope")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertOneLineError(r, "unknown task 'nope'")
        # A label map that is malformed was ignored: the classes came from the data, and the
        # model's trained head was dropped for a new one. Each is now refused, naming the key.
        for setting, reason in (
                ('model.id2label={"0":"negative","1":"neutral","2":"positive","5":"x"}',
                 "model.id2label names no class 3"),
                ('model.id2label={"a":"negative","b":"positive"}', 'model.id2label: entry "a"'),
                ('model.id2label="foo"', "model.id2label must be an object"),
                ('model.label2id={"negative":0.5,"positive":1}', 'model.label2id: entry "negative"'),
                ('model.label2id={"negative":0,"positive":0}',
                 "model.label2id gives class id 0 to both 'negative' and 'positive'"),
                ('dataset.train.labels=["positive",3]', "dataset.train.labels must be a list"),
                # -3 was "must be a non-negative integer", 0 "must be positive".
                ("train.dataloader.batch_size_per_gpu=-3", "batch_size_per_gpu must be a positive integer, got -3")):
            r = with_recipe(recipe(), "--set", setting)
            self.assertEqual(r.returncode, 3, (setting, r.stderr))
            self.assertOneLineError(r, reason)
        # Two classes of one name are a model's to have (ImageNet's "crane"): said, not refused.
        r = with_recipe(recipe(), "--set", 'model.id2label={"0":"negative","1":"negative","2":"positive"}',
                        "--max-epochs", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("model.id2label names classes 0 and 1 both 'negative': rows labelled "
                      "'negative' train class 0 only", r.stderr)
        shutil.rmtree(self.path("bad"))
        # A strategy that is neither by_epoch nor by_step was let through beside by_epoch; a
        # contradiction is said (by_epoch decides, as in ModelScope).
        for hook, key in (("CheckpointHook", "save_strategy"), ("EvaluationHook", "eval_strategy")):
            bad = recipe()
            bad["train"]["hooks"] = [{"type": hook, "by_epoch": False, key: "sometimes"}]
            r = with_recipe(bad)
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertOneLineError(r, f'{key} must be "by_epoch" or "by_step", got "sometimes"')
        bad = recipe()
        bad["train"]["lr_scheduler"]["options"] = {"by_epoch": False, "lr_strategy": "bogus"}
        r = with_recipe(bad)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertOneLineError(r, 'lr_strategy must be "by_epoch" or "by_step", got "bogus"')
        # An option's bound is named by the option (it was blamed on the configuration files).
        for epochs in ("2000000000", "99999999999999999999", "0"):
            r = with_recipe(recipe(), "--max-epochs", epochs)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertOneLineError(r, "--max-epochs")
        # ModelScope's sentiment-classification trains as text-classification.
        r = with_recipe(recipe(), "--set", "task=sentiment-classification", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(json.loads(r.stdout)["iters"], 0)
        shutil.rmtree(self.path("bad"))
        # A label id outside the head.
        write_csv(self.path("ids.csv"), [("good movie", 1), ("bad movie", 7)])
        r = with_recipe(recipe(), dataset="csv:" + self.path("ids.csv"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("label 7 is outside", r.stderr)
        self.assertIn("row 2", r.stderr)
        # A label that is no whole number is named by its own row (the column reads as floats).
        write_csv(self.path("floats.csv"), [("good movie", 2), ("bad movie", 0), ("x", 1), ("y", 1.5)])
        r = with_recipe(recipe(), dataset="csv:" + self.path("floats.csv"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertOneLineError(r, "row 4")
        # A seed the trainer state cannot hold (CLI11 read -1 as 2^64 - 1).
        for seed in ("-1", "18446744073709551615"):
            r = with_recipe(recipe(), "--seed", seed)
            self.assertEqual(r.returncode, 2, seed)
            self.assertOneLineError(r, "--seed")
        # No label column.
        with open(self.path("nolabel.csv"), "w") as f:
            f.write("text\ngood movie\n")
        r = with_recipe(recipe(), dataset="csv:" + self.path("nolabel.csv"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("label", r.stderr)
        # A diverging run stops at the first non-finite loss, naming the iteration.
        diverging = recipe(optimizer={"type": "SGD", "lr": 1e30})
        del diverging["train"]["lr_scheduler"]
        r = with_recipe(diverging)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertRegex(r.stderr, r"the loss is (NaN|inf|-inf) at iteration \d+ \(epoch 1, batch \d+\)")
        # Float16 mixed precision needs CUDA: on this CPU run asking for it is an error naming
        # the key that asked, never a silent fp32 run.
        fp16 = recipe()
        fp16["train"]["use_fp16"] = True
        amp_hook = recipe()
        amp_hook["train"]["hooks"].append({"type": "TorchAMPOptimizerHook", "loss_scale": 512})
        amp_optimizer = recipe()
        amp_optimizer["train"]["optimizer_hook"] = {"type": "TorchAMPOptimizerHook"}
        for config, key in ((fp16, "train.use_fp16"), (amp_hook, "TorchAMPOptimizerHook"),
                            (amp_optimizer, "train.optimizer_hook")):
            r = with_recipe(config)
            # 6 where this LibTorch has no CUDA (Debian's), 2 where a GPU could be chosen.
            self.assertIn(r.returncode, (2, 6), r.stderr)
            self.assertOneLineError(r, key, "mixed precision in float16 runs on a GPU")
        bad_dtype = recipe()
        bad_dtype["train"]["optimizer_hook"] = {"type": "TorchAMPOptimizerHook", "dtype": "fp8"}
        apex = recipe()
        apex["train"]["hooks"].append({"type": "ApexAMPOptimizerHook"})
        for config, words in ((bad_dtype, ("dtype", "fp8")), (apex, ("ApexAMPOptimizerHook",))):
            r = with_recipe(config)
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertOneLineError(r, *words)
        self.assertFalse(os.path.exists(os.path.join(self.path("bad"), "output")))


class TrainTokensTest(TorchTestCase):
    def test_ner_head_trains_on_word_lists(self):
        sentences = [
            (["john", "lives", "in", "london"], ["B-PER", "O", "O", "B-LOC"]),
            (["the", "cat", "sat", "in", "paris"], ["O", "O", "O", "O", "B-LOC"]),
            (["john", "and", "the", "dog", "is", "in", "paris", "and", "london"],
             ["B-PER", "O", "O", "O", "O", "O", "B-LOC", "O", "B-LOC"]),
        ]
        with open(self.path("train.jsonl"), "w") as f:
            for words, tags in sentences * 12:
                f.write(json.dumps({"tokens": words, "ner_tags": tags}) + "\n")
        with open(self.path("bad.jsonl"), "w") as f:
            f.write(json.dumps({"tokens": ["john", "lives"], "ner_tags": ["B-PER"]}) + "\n")
        r = run_ms("train", "--model", os.path.join(TINY, "ner"), "--dataset",
                   "jsonl:" + self.path("train.jsonl"), "--eval-dataset",
                   "jsonl:" + self.path("train.jsonl"), "--work-dir", self.path("work"),
                   "--max-epochs", "6", "--set", 'train.optimizer={"type": "AdamW", "lr": 0.01}',
                   "--set", "train.dataloader.batch_size_per_gpu=4", "--set",
                   'train.hooks=[{"type": "EvaluationHook"}]', "--json", timeout=600)
        self.assertExit(r, 0)
        metrics = json.loads(r.stdout)["metrics"]
        # token-cls-metric (the task's default) over entities, with the model's tag names.
        self.assertEqual(set(metrics), {"precision", "recall", "f1", "accuracy"})
        self.assertGreaterEqual(metrics["f1"], 0.9)
        out = self.path("work", "output")
        e = run_ms("eval", "--model", out, "--dataset", "jsonl:" + self.path("train.jsonl"),
                   "--json")
        self.assertExit(e, 0)
        self.assertEqual(json.loads(e.stdout), metrics)
        # Tags as class ids written in text (a JSON string, a CSV cell) are ids as in a JSON list
        # (they were refused as unknown names), and a CSV column of one-word rows typed as
        # integers is read too (it was "must be a list").
        with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
            label2id = {v: int(k) for k, v in json.load(f)["id2label"].items()}
        with open(self.path("ids.jsonl"), "w") as f, open(self.path("ids.csv"), "w") as g:
            g.write("tokens,ner_tags\n")
            for words, tags in sentences:
                ids = " ".join(str(label2id[t]) for t in tags)
                f.write(json.dumps({"tokens": words, "ner_tags": ids}) + "\n")
                g.write(f"{' '.join(words)},{ids}\n")
        for spec in ("jsonl:" + self.path("ids.jsonl"), "csv:" + self.path("ids.csv")):
            e = run_ms("eval", "--model", out, "--dataset", spec, "--json")
            self.assertExit(e, 0)
            self.assertEqual(json.loads(e.stdout), metrics, spec)
        with open(self.path("numbers.csv"), "w") as f:
            f.write(f"tokens,ner_tags\n1999,{label2id['O']}\n2024,{label2id['O']}\n")
        e = run_ms("eval", "--model", out, "--dataset", "csv:" + self.path("numbers.csv"), "--json")
        self.assertExit(e, 0)
        # ModelScope's return_entity_level_metrics: seqeval's report per type, flattened.
        e = run_ms("eval", "--model", out, "--dataset", "jsonl:" + self.path("train.jsonl"), "--json",
                   "--set", 'evaluation.metrics=[{"type": "token-cls-metric", '
                   '"return_entity_level_metrics": true}]')
        self.assertExit(e, 0)
        by_type = json.loads(e.stdout)
        self.assertEqual(set(by_type), set(metrics) | {f"{t}_{k}" for t in ("PER", "LOC")
                                                      for k in ("precision", "recall", "f1", "number")})
        self.assertEqual((by_type["PER_number"], by_type["LOC_number"]), (24, 48))
        # A word that gives no token loses its tag (as in transformers): said, with where.
        with open(self.path("blank.jsonl"), "w") as f:
            f.write(json.dumps({"tokens": ["john", "", "london"], "ner_tags": ["B-PER", "B-LOC", "B-LOC"]}) + "\n")
        e = run_ms("eval", "--model", out, "--dataset", "jsonl:" + self.path("blank.jsonl"))
        self.assertExit(e, 0)
        self.assertIn("1 word(s) give no token", e.stderr)
        self.assertIn("row 1, word 2", e.stderr)
        i = run_ms("infer", "--model", out, "--input", "john lives in paris")
        self.assertExit(i, 0)
        spans = [(o["type"], o["span"]) for o in json.loads(i.stdout)["output"]]
        self.assertEqual(spans, [("PER", "john"), ("LOC", "paris")])
        bad = run_ms("train", "--model", os.path.join(TINY, "ner"), "--dataset",
                     "jsonl:" + self.path("bad.jsonl"), "--work-dir", self.path("bad"))
        self.assertEqual(bad.returncode, 2)
        self.assertIn("2 words but 1 tags", bad.stderr)


class TrainImageTest(TorchTestCase):
    def test_small_cnn_config_trains_on_fashion_mnist(self):
        # --threads 1 leaves a core free on a machine with two or more, so the batches are
        # decoded one ahead on another thread (the path ms takes then).
        if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
            self.skipTest("Debian dataset-fashion-mnist is not installed")
        subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "scripts", "make_dataset_fixtures.py"),
                        self.path("data"), "--per-class", "40", "--test-per-class", "10"],
                       check=True, capture_output=True)
        r = run_ms("train", "--model", os.path.join(SOURCE_DIR, "configs", "image-classification-small-cnn"),
                   "--dataset", "imagefolder:" + self.path("data", "fmnist"), "--work-dir",
                   self.path("work"), "--max-epochs", "2", "--threads", "1", "--set",
                   "train.dataloader.batch_size_per_gpu=16", "--json", timeout=900)
        self.assertExit(r, 0)
        summary = json.loads(r.stdout)
        self.assertEqual(summary["train_rows"], 400)
        self.assertEqual(summary["eval_rows"], 100)
        # 10 classes, 40 images each, 2 epochs: far above chance (0.1).
        self.assertGreater(summary["metrics"]["accuracy"], 0.5)
        out = self.path("work", "output")
        e = run_ms("eval", "--model", out, "--dataset", "imagefolder:" + self.path("data", "fmnist"),
                   "--split", "test", "--json")
        self.assertExit(e, 0)
        self.assertEqual(json.loads(e.stdout)["accuracy"], summary["metrics"]["accuracy"])
        # The test split again, labelled by an HF metadata.csv whose ids are written as floats, as
        # pandas gives a label column with a blank: whole numbers are the ids (they were refused,
        # "not an integer class id"), and a blank label is named as such.
        classes = sorted(os.listdir(self.path("data", "fmnist", "test")))
        rows = [(f"{c}/{name}", i) for i, c in enumerate(classes)
                for name in sorted(os.listdir(self.path("data", "fmnist", "test", c)))]
        meta = self.path("data", "fmnist", "test", "metadata.csv")
        with open(meta, "w") as f:
            f.write("file_name,label\n" + "".join(f"{n},{i}.0\n" for n, i in rows))
        m = run_ms("eval", "--model", out, "--dataset", "imagefolder:" + self.path("data", "fmnist"),
                   "--split", "test", "--json")
        self.assertExit(m, 0)
        self.assertEqual(json.loads(m.stdout)["accuracy"], summary["metrics"]["accuracy"])
        with open(meta, "w") as f:
            f.write("file_name,label\n" + "".join(f"{n},{'' if k == 3 else i}\n"
                                                  for k, (n, i) in enumerate(rows)))
        m = run_ms("eval", "--model", out, "--dataset", "imagefolder:" + self.path("data", "fmnist"),
                   "--split", "test")
        self.assertExit(m, 2)
        self.assertOneLineError(m, "row 4", "the label is empty")
        best = [p for p in glob.glob(self.path("work", "best_epoch*_accuracy*.pth"))
                if not p.endswith("_trainer_state.pth")]
        self.assertEqual(len(best), 1, best)
        self.assertTrue(os.path.exists(self.path("work", "output_best", "model.safetensors")))


    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_training_augmentations_are_seeded_and_resume_exactly(self):
        # preprocessor.train (RandomResizedCrop, RandomHorizontalFlip) was not read: the model
        # trained on preprocessor.val's transforms. Each image's draws come from (seed, epoch,
        # row): two runs give the same weights, and so does a run killed mid-epoch and resumed;
        # evaluation applies preprocessor.val.
        if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
            self.skipTest("Debian dataset-fashion-mnist is not installed")
        subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "scripts", "make_dataset_fixtures.py"),
                        self.path("data"), "--per-class", "3", "--test-per-class", "1"],
                       check=True, capture_output=True)
        with open(os.path.join(SOURCE_DIR, "configs", "image-classification-small-cnn",
                               "configuration.json")) as f:
            config = json.load(f)
        normalize = config["preprocessor"]["val"][-1]
        config["preprocessor"]["train"] = [
            {"type": "RandomResizedCrop", "size": 28, "scale": [0.5, 1.0]},
            {"type": "RandomHorizontalFlip"}, {"type": "ToTensor"}, normalize]
        config["train"]["hooks"] = [{"type": "CheckpointHook", "by_epoch": False, "interval": 3},
                                    {"type": "EvaluationHook", "interval": 1}]
        os.makedirs(self.path("model"))
        with open(self.path("model", "configuration.json"), "w") as f:
            json.dump(config, f)

        def train(work, *extra, env=None):
            return run_ms("train", "--model", self.path("model"), "--dataset",
                          "imagefolder:" + self.path("data", "fmnist"), "--work-dir", self.path(work),
                          "--max-epochs", "2", "--threads", "1", "--set",
                          "train.dataloader.batch_size_per_gpu=8", "--json", *extra, env=env,
                          timeout=600)

        def weights(work):
            with open(self.path(work, "output", "model.safetensors"), "rb") as f:
                return f.read()

        for work in ("a", "b"):
            self.assertExit(train(work), 0)
        self.assertTrue(weights("a") == weights("b"), "two runs with one seed trained differently")
        # 30 rows, batches of 8: 4 iterations an epoch. Killed after iteration 7, resumed from
        # iter_6 (epoch 2, its third batch).
        killed = train("cut", "--resume", "auto", env={"MS_TEST_KILL_AFTER_ITER": "7"})
        self.assertEqual(killed.returncode, -9, killed.stderr)
        resumed = train("cut", "--resume", "auto")
        self.assertExit(resumed, 0)
        self.assertEqual(json.loads(resumed.stdout)["resumed_from"], self.path("cut", "iter_6"))
        self.assertTrue(weights("cut") == weights("a"), "the resumed run trained differently")
        # The augmentations are applied: without them (preprocessor.train as preprocessor.val)
        # the weights differ; another seed draws other crops.
        plain = train("plain", "--set", "preprocessor.train=" + json.dumps(config["preprocessor"]["val"]))
        self.assertExit(plain, 0)
        self.assertFalse(weights("plain") == weights("a"))
        reseeded = train("reseeded", "--seed", "7")
        self.assertExit(reseeded, 0)
        self.assertFalse(weights("reseeded") == weights("a"))
        # Evaluation (ms eval, ms infer) never draws: a random transform in preprocessor.val is
        # a config error naming where it belongs.
        r = run_ms("eval", "--model", self.path("a", "output"), "--dataset",
                   "imagefolder:" + self.path("data", "fmnist"), "--split", "test", "--set",
                   "preprocessor.val=" + json.dumps(config["preprocessor"]["train"]))
        self.assertExit(r, 3)
        self.assertOneLineError(r, "RandomResizedCrop is a random augmentation")

if __name__ == "__main__":
    unittest.main()

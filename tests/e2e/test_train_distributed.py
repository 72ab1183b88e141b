#!/usr/bin/env python3
"""Data-parallel `ms train` over c10d Gloo on 127.0.0.1: `--nproc 2`, the real torchrun
(`python -m torch.distributed.run --no_python`, through tools/torchrun.py, of Debian's torch 1.13
and of the newest torch in build/venv-torch-newest), and workers started by hand with torchrun's
variables.

- 2 ranks with batch B reach the weights of 1 rank with batch 2B (dropout off; SGD with momentum;
  tolerance 1e-6, float32 sums in another order) and log the same losses;
- only rank 0 writes (one log file, one event file), and `--resume` after both ranks are killed
  gives bitwise the weights of an uninterrupted 2-rank run (dropout on: each rank's RNG state is
  in the checkpoint);
- a killed rank makes the other exit 5 naming the failed collective (no hang: Gloo's connection
  drops), `--nproc` passes the failure on (128 + signal); an unreachable master is exit 5 after
  MS_DIST_TIMEOUT; malformed variables are exit 2 naming them; an error every `--nproc`
  worker meets alike is printed once (and --json's error document by rank 0 only); an
  open-file limit too low for the rank count is exit 2 naming `ulimit -n`; one GPU named for
  several workers is exit 2;
- workers that do not belong together are refused at the rendezvous: another service on
  MASTER_PORT (LibTorch 1.x: exit 5 within MS_DIST_TIMEOUT, not an abort or a hang), a rank alone
  (exit 5 naming how many came), a master name that does not resolve, a bad GLOO_SOCKET_IFNAME
  (exit 2), a second worker with a taken RANK (exit 2, the run goes on), and ranks with another
  model or other data (exit 3 on every rank, one message naming the difference);
- `--device gpu` gives each worker the GPU of its local rank: on two GPUs the workers exchange
  over NCCL (scripts/gpu-check.sh runs that on the lent machine); a second worker on one GPU is
  exit 2, a GPU where there is none exit 6.
"""
import csv
import glob
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

from harness import (MS_BIN, SOURCE_DIR, TEST_HOOKS, TorchTestCase, free_port, overwrite_tensor_rows,
                     python_torch_version, require_newest_torch, run_ms, torch_python,
                     torch_pythons)

# torchrun itself (tools/torchrun.py mends Debian's 1.13 parser for Python 3.11).
TORCHRUN = os.path.join(SOURCE_DIR, "tests", "e2e", "tools", "torchrun.py")
TINY_CLS = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny", "cls")
POSITIVE = ["good movie", "very good movie", "the movie is good", "good good movie",
            "a very good movie", "is good", "good", "very good"]
NEGATIVE = ["bad movie", "very bad movie", "the movie is bad", "bad bad movie",
            "a very bad movie", "is bad", "bad", "very bad"]


def recipe(batch, epochs=3, hooks=None):
    return {
        "task": "text-classification",
        "preprocessor": {"max_length": 16},
        "train": {
            "max_epochs": epochs,
            "dataloader": {"batch_size_per_gpu": batch, "shuffle": True},
            "optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9},
            "hooks": hooks or [{"type": "CheckpointHook", "interval": 1},
                               {"type": "EvaluationHook", "interval": 1},
                               {"type": "TextLoggerHook", "interval": 1},
                               {"type": "TensorboardHook", "interval": 1}],
        },
        "evaluation": {"dataloader": {"batch_size_per_gpu": 8}, "metrics": ["seq-cls-metric"]},
    }


def children_of(pid):
    """The pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def state(pid):
    """The state letter of `pid` in /proc (R, S, T for stopped, Z for a zombie), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def alive(pid):
    """Whether `pid` runs (a zombie does not)."""
    return state(pid) not in (None, "Z")


def wait_until(condition, what, limit=300):
    """Waits for condition() (polling); fails naming `what` only after `limit` seconds, a bound
    for a hang, not a timing assertion."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {limit} s for {what}")
        time.sleep(0.2)


def safetensors(path):
    """name -> (shape, raw bytes) of a safetensors file (standard library only)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return {k: (v["shape"], data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def max_abs_diff(a, b):
    worst = 0.0
    for name, (shape, raw) in a.items():
        other = b[name][1]
        count = len(raw) // 4
        xs, ys = struct.unpack(f"<{count}f", raw), struct.unpack(f"<{count}f", other)
        worst = max([worst] + [abs(x - y) for x, y in zip(xs, ys)])
    return worst


def train_losses(work_dir):
    (log,) = glob.glob(os.path.join(work_dir, "*.log.json"))
    with open(log) as f:
        return [json.loads(l)["loss"] for l in f if '"mode": "train"' in l]


class DistributedTrainTest(TorchTestCase):
    def setUp(self):
        super().setUp()
        rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
        for name, data in (("train.csv", rows * 2), ("test.csv", rows)):
            with open(self.path(name), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["text", "label"])
                w.writerows(data)
        # The tiny classifier without dropout: one rank and two then compute the same thing.
        shutil.copytree(TINY_CLS, self.path("nodrop"))
        with open(self.path("nodrop", "config.json")) as f:
            config = json.load(f)
        config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = 0.0
        with open(self.path("nodrop", "config.json"), "w") as f:
            json.dump(config, f)
        for batch in (4, 8):
            self.write(f"r{batch}.json", json.dumps(recipe(batch)))

    def args(self, config, work, model=None):
        return ["train", "--model", model or self.path("nodrop"), "--config", self.path(config),
                "--dataset", "csv:" + self.path("train.csv"), "--eval-dataset",
                "csv:" + self.path("test.csv"), "--work-dir", self.path(work), "--threads", "1",
                "--json"]

    def worker_env(self, rank, port, **extra):
        env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        env.update(extra)
        return env

    def start_worker(self, rank, port, args, cwd=None, **extra):
        env = dict(os.environ)
        env.update(self.worker_env(rank, port, **extra))
        return subprocess.Popen([MS_BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, cwd=cwd)

    def test_two_ranks_match_one_rank_with_twice_the_batch(self):
        one = run_ms(*self.args("r8.json", "one"))
        self.assertExit(one, 0)
        two = run_ms(*self.args("r4.json", "two"), "--nproc", "2")
        self.assertExit(two, 0)
        s1, s2 = json.loads(one.stdout), json.loads(two.stdout)  # rank 0 alone prints
        self.assertEqual((s2["world_size"], s2["iters"]), (2, s1["iters"]))
        self.assertEqual(s2["metrics"], s1["metrics"])
        diff = max_abs_diff(safetensors(self.path("one", "output", "model.safetensors")),
                            safetensors(self.path("two", "output", "model.safetensors")))
        self.assertLess(diff, 1e-6)
        for a, b in zip(train_losses(self.path("one")), train_losses(self.path("two"))):
            self.assertAlmostEqual(a, b, delta=1e-5)
        # Rank 0 alone wrote the logs and the event file.
        self.assertEqual(len(glob.glob(self.path("two", "*.log.json"))), 1)
        self.assertEqual(len(glob.glob(self.path("two", "*.log"))), 1)
        self.assertEqual(len(glob.glob(self.path("two", "tensorboard_output", "events.*"))), 1)

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_all_reduce_overlaps_the_backward_pass(self):
        # 2 KiB buckets (a test build's MS_TEST_DDP_BUCKET_BYTES) cut the tiny model into many,
        # each all-reduced as soon as the backward pass has produced its gradients: the weights
        # still equal one rank with twice the batch, and every bucket went out during backward.
        one = run_ms(*self.args("r8.json", "one"))
        self.assertExit(one, 0)
        two = run_ms(*self.args("r4.json", "two"), "--nproc", "2",
                     env={"MS_TEST_DDP_BUCKET_BYTES": "2048", "MS_LOG_LEVEL": "debug"})
        self.assertExit(two, 0)
        diff = max_abs_diff(safetensors(self.path("one", "output", "model.safetensors")),
                            safetensors(self.path("two", "output", "model.safetensors")))
        self.assertLess(diff, 1e-6)
        counts = [tuple(map(int, m)) for m in re.findall(
            r"gradient all-reduce: (\d+) of (\d+) buckets launched during the backward pass",
            two.stderr)]
        self.assertTrue(counts, two.stderr[-2000:])
        for early, total in counts:
            self.assertGreater(total, 10)
            self.assertEqual(early, total)

    @unittest.skipUnless(os.path.exists("/usr/bin/python3") and
                         torch_python(("torch.distributed.run",)) is not None,
                         "needs Python torch's torchrun (Debian's python3-torch)")
    def test_under_the_real_torchrun_as_under_nproc(self):
        # Debian's torchrun (torch 1.13, whose agent's store speaks LibTorch 1.x's protocol) and
        # the newest torch's (whose store speaks torch 2.x's, which ms's own client speaks when
        # its LibTorch is 1.x).
        require_newest_torch(self)
        nproc = run_ms(*self.args("r4.json", "nproc"), "--nproc", "2")
        self.assertExit(nproc, 0)
        for i, python in enumerate(torch_pythons(("torch.distributed.run",))):
            version = python_torch_version(python)
            # torch 2.x's agent store is libuv's by default, its classic one with USE_LIBUV=0:
            # the first ignores a first message that is no validation, the second hangs up.
            for libuv in ("1", "0") if not version.startswith("1.") else ("1",):
                with self.subTest(torch=version, libuv=libuv):
                    self.check_under_torchrun(python, f"torchrun{i}-{libuv}", {"USE_LIBUV": libuv})

    def check_under_torchrun(self, python, work, env):
        torchrun = subprocess.run(
            [python, TORCHRUN, "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
             "--master_port", str(free_port()), "--no_python", MS_BIN, *self.args("r4.json", work)],
            capture_output=True, text=True, timeout=600, env={**os.environ, **env})
        self.assertEqual(torchrun.returncode, 0, torchrun.stderr)
        self.assertEqual(safetensors(self.path("nproc", "output", "model.safetensors")),
                         safetensors(self.path(work, "output", "model.safetensors")))
        # ms eval under torchrun: rank 0 prints the single-process figure, once.
        evaluated = subprocess.run(
            [python, TORCHRUN, "--nproc_per_node", "2", "--master_port", str(free_port()),
             "--no_python", MS_BIN, "eval", "--model", self.path(work, "output"), "--dataset",
             "csv:" + self.path("test.csv"), "--json"], capture_output=True, text=True,
            timeout=600)
        self.assertEqual(evaluated.returncode, 0, evaluated.stderr)
        alone = run_ms("eval", "--model", self.path(work, "output"), "--dataset",
                       "csv:" + self.path("test.csv"), "--json")
        self.assertEqual(evaluated.stdout.strip().splitlines(), [alone.stdout.strip()])

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_resume_after_both_ranks_are_killed_is_bitwise_exact(self):
        # Dropout on, checkpoints every 3 iterations: the kill after iteration 7 resumes from
        # iter_6, mid-epoch.
        self.write("resume.json", json.dumps(recipe(4, epochs=3, hooks=[
            {"type": "CheckpointHook", "by_epoch": False, "interval": 3},
            {"type": "EvaluationHook", "interval": 1}])))
        whole = run_ms(*self.args("resume.json", "whole", TINY_CLS), "--nproc", "2")
        self.assertExit(whole, 0)
        killed = run_ms(*self.args("resume.json", "cut", TINY_CLS), "--nproc", "2",
                        env={"MS_TEST_KILL_AFTER_ITER": "7"})
        self.assertEqual(killed.returncode, 128 + 9, killed.stderr)
        # Rerun without --resume: rank 0 refuses to start over its checkpoints, every rank says
        # so (once, through the launcher).
        fresh = run_ms(*self.args("resume.json", "cut", TINY_CLS), "--nproc", "2")
        self.assertExit(fresh, 2)
        self.assertEqual(fresh.stderr.count("holds a run"), 1, fresh.stderr)
        # Resumed by workers started by hand, rank 1 with a work dir of its own (as on a machine
        # whose work dir is local), both with --resume auto: rank 0 finds iter_6 and rank 1
        # loads what rank 0 names, rather than deciding for itself that there is nothing to
        # resume. Rank 0 names its work dir relative to its folder, and rank 1 runs in another:
        # the checkpoint's path must reach it absolute.
        port = free_port()
        rank0_args = [*self.args("resume.json", "cut", TINY_CLS), "--resume", "auto"]
        rank0_args[rank0_args.index("--work-dir") + 1] = "cut"
        rank0 = self.start_worker(0, port, rank0_args, cwd=self.tmp)
        os.makedirs(self.path("rank1-folder"))
        rank1 = self.start_worker(1, port, [*self.args("resume.json", "elsewhere", TINY_CLS),
                                            "--resume", "auto"], cwd=self.path("rank1-folder"))
        out0, err0 = rank0.communicate(timeout=600)
        _, err1 = rank1.communicate(timeout=600)
        self.assertEqual((rank0.returncode, rank1.returncode), (0, 0), err0 + err1)
        self.assertEqual(json.loads(out0)["resumed_from"], self.path("cut", "iter_6"))
        self.assertEqual(safetensors(self.path("whole", "output", "model.safetensors")),
                         safetensors(self.path("cut", "output", "model.safetensors")))

    def start_long_run(self, command, work):
        """Starts `command`, a launcher (torchrun or ms train --nproc 2) of a run without end in
        `work`; returns it and its 2 workers once they train (the first checkpoint is written).
        Whatever is left is killed at the end of the test."""
        self.write("long.json", json.dumps(recipe(4, epochs=100000)))
        launcher = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(lambda: launcher.poll() is None and launcher.kill())
        wait_until(lambda: len(children_of(launcher.pid)) == 2, "the launcher to start 2 workers")
        workers = children_of(launcher.pid)
        self.addCleanup(lambda: [os.kill(w, signal.SIGKILL) for w in workers if alive(w)])
        wait_until(lambda: os.path.exists(self.path(work, "latest_checkpoint.json")),
                   "the first checkpoint")
        return launcher, workers

    @unittest.skipUnless(os.path.exists("/usr/bin/python3") and
                         torch_python(("torch.distributed.run",)) is not None,
                         "needs Python torch's torchrun (Debian's python3-torch)")
    def test_workers_stop_when_torchruns_agent_is_killed(self):
        # torchrun's agent stops its workers, unless it is killed with SIGKILL: then they trained
        # on (holding the work dir) until the run ended. They stop now, as after Ctrl-C.
        agent, workers = self.start_long_run(
            [torch_python(("torch.distributed.run",)), TORCHRUN, "--nproc_per_node", "2",
             "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "--no_python",
             MS_BIN, *self.args("long.json", "agentless")], "agentless")
        agent.kill()
        agent.wait()
        wait_until(lambda: not any(map(alive, workers)), "the workers to stop")

    def test_a_stopped_worker_dies_with_a_killed_launcher(self):
        # `ms train --nproc` killed with SIGKILL: the kernel stops its workers, a stopped one
        # (SIGSTOP, which holds a SIGTERM until it is continued) included.
        launcher, workers = self.start_long_run(
            [MS_BIN, *self.args("long.json", "stopped"), "--nproc", "2"], "stopped")
        os.kill(workers[0], signal.SIGSTOP)
        wait_until(lambda: state(workers[0]) == "T", "the worker to stop")
        launcher.kill()
        launcher.wait()
        wait_until(lambda: not any(map(alive, workers)), "the workers to stop")

    @unittest.skipUnless(os.path.exists("/usr/bin/python3") and
                         torch_python(("torch.distributed.run",)) is not None,
                         "needs Python torch's torchrun (Debian's python3-torch)")
    def test_a_stopped_worker_stops_when_torchruns_agent_is_killed(self):
        # A worker stopped (SIGSTOP) runs no thread to notice its agent is gone: it stayed, held
        # the work dir's lock, for good. The agent's death continues it, and it stops.
        agent, workers = self.start_long_run(
            [torch_python(("torch.distributed.run",)), TORCHRUN, "--nproc_per_node", "2",
             "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "--no_python",
             MS_BIN, *self.args("long.json", "stopped-agentless")], "stopped-agentless")
        os.kill(workers[0], signal.SIGSTOP)
        wait_until(lambda: state(workers[0]) == "T", "the worker to stop")
        agent.kill()
        agent.wait()
        wait_until(lambda: not any(map(alive, workers)), "the workers to stop")

    def test_a_launcher_stopped_by_a_signal_says_so(self):
        # SIGTERM to `ms train --nproc` is passed on to the workers, which end by it: the
        # launcher said "worker 0 of 2 was killed by signal 15", as if a worker had failed.
        launcher, _ = self.start_long_run([MS_BIN, *self.args("long.json", "termed"), "--nproc", "2"],
                                          "termed")
        launcher.terminate()
        _, err = launcher.communicate(timeout=600)
        self.assertEqual(launcher.returncode, -signal.SIGTERM, err)
        self.assertIn("ms train: stopped by signal 15 (Terminated), passed on to the workers", err.decode())
        self.assertNotIn("was killed by signal", err.decode())

    def test_a_launcher_started_ignoring_sighup_keeps_ignoring_it(self):
        # Under nohup, one process ignores SIGHUP; `ms train --nproc` forwarded it to its workers
        # and the run ended (exit 129).
        self.write("short.json", json.dumps(recipe(4, epochs=2)))
        launcher = subprocess.Popen([MS_BIN, *self.args("short.json", "nohup"), "--nproc", "2"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
        self.addCleanup(lambda: launcher.poll() is None and launcher.kill())
        wait_until(lambda: len(children_of(launcher.pid)) == 2 or launcher.poll() is not None,
                   "the launcher to start 2 workers")
        for pid in [launcher.pid, *children_of(launcher.pid)]:
            if alive(pid):
                os.kill(pid, signal.SIGHUP)
        _, err = launcher.communicate(timeout=600)
        self.assertEqual(launcher.returncode, 0, err)

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_a_killed_rank_stops_the_other_with_a_clear_error(self):
        self.write("long.json", json.dumps(recipe(4, epochs=1000)))
        port = free_port()
        # Iteration 6 is mid-epoch (a gradient all-reduce is next), 8 ends an epoch (rank 0
        # evaluates and checkpoints next). Each in a work dir of its own: a fresh start over a
        # run's checkpoint is refused.
        for after in ("6", "8"):
            args = self.args("long.json", "work" + after)
            with self.subTest(killed_after=after):
                kill = {"MS_TEST_KILL_AFTER_ITER": after, "MS_TEST_KILL_RANK": "1"}
                rank0 = self.start_worker(0, port, args, **kill)
                rank1 = self.start_worker(1, port, args, **kill)
                _, err1 = rank1.communicate(timeout=600)
                self.assertEqual(rank1.returncode, -9, err1)
                _, err0 = rank0.communicate(timeout=600)  # a hang fails here, not a clock
                self.assertEqual(rank0.returncode, 5, err0)
                self.assertIn("ms: error: rank 0 of 2:", err0)
                self.assertIn("another worker stopped", err0)
                port = free_port()
        # The launcher passes the failure on and names the worker.
        launched = run_ms(*self.args("long.json", "launched"), "--nproc", "2",
                          env={"MS_TEST_KILL_AFTER_ITER": "6", "MS_TEST_KILL_RANK": "1"})
        self.assertEqual(launched.returncode, 128 + 9, launched.stderr)
        self.assertIn("worker 1 of 2 was killed by signal 9", launched.stderr)
        # --json (in self.args): one document, the launcher's, naming the failure that is the
        # run's (rank 0's said "another worker stopped" with exit_code 5, the run exited 137).
        error = json.loads(launched.stdout)["error"]
        self.assertEqual((error["code"], error["exit_code"]), ("worker-failed", 128 + 9), error)
        self.assertIn("worker 1 of 2 was killed by signal 9", error["message"])
        # Rank 0 killed (it prints the document, and printed none): the launcher's document names
        # the failure (stdout was empty).
        launched = run_ms(*self.args("long.json", "launched0"), "--nproc", "2",
                          env={"MS_TEST_KILL_AFTER_ITER": "6", "MS_TEST_KILL_RANK": "0"})
        self.assertEqual(launched.returncode, 128 + 9, launched.stderr)
        error = json.loads(launched.stdout)["error"]
        self.assertEqual((error["code"], error["exit_code"]), ("worker-failed", 128 + 9), error)
        self.assertIn("worker 0 of 2 was killed by signal 9", error["message"])

    def test_unreachable_master_and_bad_variables(self):
        port = free_port()  # nobody listens there
        alone = run_ms(*self.args("r4.json", "work"),
                       env=self.worker_env(1, port, MS_DIST_TIMEOUT="2"))
        self.assertExit(alone, 5)
        self.assertIn(f"127.0.0.1:{port}", alone.stderr)
        self.assertIn("MASTER_ADDR", alone.stderr)
        for bad, name in (({"RANK": "2"}, "RANK=2"), ({"MASTER_PORT": "70000"}, "MASTER_PORT"),
                          ({"WORLD_SIZE": "two"}, "WORLD_SIZE"),
                          ({"MS_DIST_TIMEOUT": "0"}, "MS_DIST_TIMEOUT")):
            with self.subTest(bad=bad):
                env = self.worker_env(0, port)
                env.update(bad)
                result = run_ms(*self.args("r4.json", "work"), env=env)
                self.assertExit(result, 2)
                self.assertIn(name, result.stderr)
        nested = run_ms(*self.args("r4.json", "work"), "--nproc", "2",
                        env=self.worker_env(0, port))
        self.assertExit(nested, 2)
        self.assertIn("WORLD_SIZE", nested.stderr)

    def test_rank_0_on_a_port_in_use_is_one_clear_line(self):
        # LibTorch's own log lines (four of them, from glog) came before ms's error.
        with socket.socket() as taken:
            taken.bind(("", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            r = run_ms(*self.args("r4.json", "work"), env=self.worker_env(0, port, MS_DIST_TIMEOUT="2"))
        self.assertExit(r, 5)
        self.assertOneLineError(r, f"MASTER_PORT {port} is in use on this machine")
        self.assertNotIn("socket.cpp", r.stderr)

    def libtorch_major(self):
        return int(json.loads(run_ms("env", "--json").stdout)["libtorch"]["version"].split(".")[0])

    def test_a_port_that_is_not_a_store_is_a_clear_error(self):
        # MASTER_PORT naming another service: one that greets first (an SSH server) and one that
        # waits for a request it understands (an HTTP server). LibTorch 1.x's client aborts the
        # process on the first (bad_alloc on a thread of its own) and waits forever on the
        # second; ms asks the store first, and gives exit 5 within MS_DIST_TIMEOUT.
        if self.libtorch_major() >= 2:
            self.skipTest("the check is for LibTorch 1.x's store client")
        # The third answers the first query like a store (a count of 3), then falls silent, as a
        # rank 0 whose host freezes would: the worker gives up with exit 5 within the bounds of
        # the timeout (LibTorch's client, where a step of it has no deadline, is ended by ms's
        # watchdog after 7 times the timeout).
        for greeting in (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", None, struct.pack("<q", 3)):
            with self.subTest(greeting=greeting), socket.socket() as server:
                server.bind(("127.0.0.1", 0))
                server.listen(4)
                accepted = []

                def serve():
                    while True:
                        try:
                            conn, _ = server.accept()
                        except OSError:
                            return
                        accepted.append(conn)
                        # The first connection only: ms's own check asks it. LibTorch's client
                        # connects again after it; a greeting there would be read as the reply
                        # to its next request (exit 5 "Stop_waiting response is expected", when
                        # its callback socket happened to take it), not the silence under test.
                        if greeting and len(accepted) == 1:
                            conn.sendall(greeting)

                threading.Thread(target=serve, daemon=True).start()
                port = server.getsockname()[1]
                r = run_ms(*self.args("r4.json", "work"), env=self.worker_env(1, port, MS_DIST_TIMEOUT="2"))
                self.assertExit(r, 5)
                self.assertOneLineError(r, f"127.0.0.1:{port}")
                if greeting is None:
                    self.assertIn("did not answer as a store", r.stderr)
                elif greeting.startswith(b"SSH"):
                    self.assertIn("not a rendezvous store", r.stderr)
                else:
                    # The store's own wait gives up after the timeout; a step of LibTorch's
                    # client that has no deadline would be ended by ms's watchdog instead.
                    self.assertRegex(r.stderr, r"failed: Socket Timeout|did not finish within 14 s "
                                               r"\(7 times MS_DIST_TIMEOUT\)")
                for conn in accepted:
                    conn.close()

    def test_a_rank_alone_names_the_missing_workers(self):
        r = run_ms(*self.args("r4.json", "work"), env=self.worker_env(0, free_port(), MS_DIST_TIMEOUT="2"))
        self.assertExit(r, 5)
        self.assertOneLineError(r, "only 1 of 2 workers reached the rendezvous")
        self.assertIn("rank(s) 1 never came", r.stderr)
        self.assertNotIn("GLOO_SOCKET_IFNAME", r.stderr)
        # Two of three: rank 0 says how many came, then rank 1 (whose own wait is long) sees the
        # store go.
        port = free_port()
        pair = [self.start_worker(r, port, self.args("r4.json", f"work{r}"), WORLD_SIZE="3",
                                  MS_DIST_TIMEOUT=timeout) for r, timeout in ((0, "3"), (1, "300"))]
        errors = [p.communicate(timeout=600)[1] for p in pair]
        self.assertEqual([p.returncode for p in pair], [5, 5], errors)
        self.assertIn("only 2 of 3 workers reached the rendezvous", errors[0])
        self.assertIn("rank(s) 2 never came", errors[0])
        self.assertIn("the rendezvous store at 127.0.0.1", errors[1])  # rank 0 stopped first
        self.assertNotIn("GLOO_SOCKET_IFNAME", "".join(errors))
        # A master name that does not resolve is named too.
        for rank in (0, 1):
            r = run_ms(*self.args("r4.json", "work"),
                       env=self.worker_env(rank, free_port(), MASTER_ADDR="no-such-host.invalid", MS_DIST_TIMEOUT="2"))
            self.assertExit(r, 5)
            self.assertOneLineError(r, "no-such-host.invalid")
        # An interface that does not exist is a usage error naming the variable.
        r = run_ms(*self.args("r4.json", "work"), "--nproc", "2", env={"GLOO_SOCKET_IFNAME": "nosuchif0"})
        self.assertExit(r, 2)
        self.assertOneLineError(r, "GLOO_SOCKET_IFNAME=nosuchif0")
        # A list, as PyTorch takes it (the whole "lo,lo" was looked up as one name, exit 2).
        r = run_ms(*self.args("r4.json", "listed"), "--nproc", "2", env={"GLOO_SOCKET_IFNAME": "lo,lo"})
        self.assertExit(r, 0)
        r = run_ms(*self.args("r4.json", "badlist"), "--nproc", "2", env={"GLOO_SOCKET_IFNAME": "lo,nosuchif0"})
        self.assertExit(r, 2)
        self.assertOneLineError(r, "interface 'nosuchif0'")

    def test_workers_of_different_jobs_are_refused(self):
        # Another model on one rank would send tensors of other sizes (Gloo aborts the process),
        # other labels would train on contradicting targets without a word, other data or another
        # hook schedule would leave a rank waiting for collectives that never come: every rank
        # stops with exit 3 and the same message, naming the first difference.
        def model_with(name, id2label):
            shutil.copytree(self.path("nodrop"), self.path(name))
            with open(self.path(name, "config.json")) as f:
                config = json.load(f)
            config["id2label"] = {str(i): label for i, label in enumerate(id2label)}
            config["label2id"] = {label: i for i, label in enumerate(id2label)}
            with open(self.path(name, "config.json"), "w") as f:
                json.dump(config, f)
            return self.path(name)

        two_labels = model_with("two_labels", ["negative", "positive"])
        swapped = model_with("swapped", ["positive", "neutral", "negative"])
        with open(self.path("short.csv"), "w") as f:
            f.write("text,label\ngood,positive\nbad,negative\n")
        other_data = self.args("r4.json", "work1")
        other_data[other_data.index("csv:" + self.path("train.csv"))] = "csv:" + self.path("short.csv")
        other_eval = self.args("r4.json", "work1")
        other_eval[other_eval.index("csv:" + self.path("test.csv"))] = "csv:" + self.path("short.csv")
        other_hooks = recipe(4)
        other_hooks["train"]["hooks"][1]["interval"] = 2
        self.write("hooks.json", json.dumps(other_hooks))
        labels = "labels = [negative, neutral, positive] on rank 0, labels = "
        cases = (("model", self.args("r4.json", "work1", model=two_labels), labels + "[negative, positive] on rank 1"),
                 ("label order", self.args("r4.json", "work1", model=swapped),
                  labels + "[positive, neutral, negative] on rank 1"),
                 ("data", other_data, "iterations per epoch = 4 on rank 0, iterations per epoch = 1 on rank 1"),
                 ("hooks", self.args("hooks.json", "work1"),
                  "train.hooks[1].interval = 1 on rank 0, train.hooks[1].interval = 2 on rank 1"),
                 # Each rank evaluates a share of the evaluation split: it must be one split.
                 ("evaluation data", other_eval,
                  "evaluation rows = 16 on rank 0, evaluation rows = 2 on rank 1"))
        for name, args1, difference in cases:
            with self.subTest(differs=name):
                port = free_port()
                rank0 = self.start_worker(0, port, self.args("r4.json", "work0"), MS_DIST_TIMEOUT="60")
                rank1 = self.start_worker(1, port, args1, MS_DIST_TIMEOUT="60")
                errors = [p.communicate(timeout=600)[1] for p in (rank0, rank1)]
                for proc, err in zip((rank0, rank1), errors):
                    self.assertEqual(proc.returncode, 3, err)
                    self.assertIn("the workers do not run the same job: " + difference, err)
                self.assertEqual(errors[0].splitlines()[0], errors[1].splitlines()[0])
        # What may differ between machines does: their own work dirs, thread counts, and copies
        # of the model and data at other paths.
        shutil.copytree(self.path("nodrop"), self.path("copy"))
        shutil.copy(self.path("train.csv"), self.path("train-copy.csv"))
        copied = self.args("r4.json", "elsewhere", model=self.path("copy"))
        copied[copied.index("csv:" + self.path("train.csv"))] = "csv:" + self.path("train-copy.csv")
        copied[copied.index("--threads") + 1] = "2"
        port = free_port()
        pair = [self.start_worker(0, port, self.args("r4.json", "work0"), MS_DIST_TIMEOUT="60"),
                self.start_worker(1, port, copied, MS_DIST_TIMEOUT="60")]
        for p in pair:
            _, err = p.communicate(timeout=600)
            self.assertEqual(p.returncode, 0, err)

    def eval_args(self, model, dataset, *extra):
        return ["eval", "--model", model, "--dataset", "csv:" + dataset, "--batch-size", "3",
                "--metrics", "seq-cls-metric,loss-metric", "--threads", "1", "--json", *extra]

    def test_ms_eval_shares_the_batches_out_and_gives_one_process_figure(self):
        trained = run_ms(*self.args("r8.json", "one"), "--max-epochs", "1")
        self.assertExit(trained, 0)
        model = self.path("one", "output")
        # 16 rows in batches of 3: 6 batches, the last of one row.
        alone = run_ms(*self.eval_args(model, self.path("test.csv")))
        self.assertExit(alone, 0)
        figure = json.loads(alone.stdout)
        self.assertEqual(list(figure), ["accuracy", "f1", "macro-f1", "micro-f1", "loss"])
        for nproc in (2, 3, 7):  # 7: a rank without a batch
            with self.subTest(nproc=nproc):
                shared = run_ms(*self.eval_args(model, self.path("test.csv"), "--nproc", str(nproc)),
                                env={"MS_LOG_LEVEL": "debug"})
                self.assertExit(shared, 0)
                # The same figure to the last bit, the keys in the same order, printed once.
                self.assertEqual(shared.stdout, alone.stdout)
                shares = sorted(tuple(map(int, m)) for m in re.findall(
                    r"rank (\d+) evaluates batches (\d+) to (\d+) of 6", shared.stderr))
                self.assertEqual([s[0] for s in shares], list(range(nproc)), shared.stderr[-3000:])
                # Contiguous shares in rank order, together every batch once.
                self.assertEqual([s[1] for s in shares[1:]], [s[2] for s in shares[:-1]])
                self.assertEqual((shares[0][1], shares[-1][2]), (0, 6))
                self.assertLessEqual(max(s[2] - s[1] for s in shares), -(-6 // nproc))

    def test_batchnorm_statistics_of_the_evaluation_are_rank_0s(self):
        # Each rank updates its own BatchNorm running statistics while training; the evaluation
        # (every rank a share) must use rank 0's, the model it saves, as DDP's broadcast_buffers
        # keeps them: the logged figure is then what ms eval gives on output/.
        if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
            self.skipTest("Debian dataset-fashion-mnist is not installed")
        subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "scripts", "make_dataset_fixtures.py"),
                        self.path("img"), "--per-class", "10", "--test-per-class", "5"],
                       check=True, capture_output=True)
        data = "imagefolder:" + self.path("img", "fmnist")
        trained = run_ms("train", "--model", os.path.join(SOURCE_DIR, "configs", "image-classification-small-cnn"),
                         "--dataset", data, "--work-dir", self.path("cnn"), "--max-epochs", "1",
                         "--threads", "1", "--json", "--nproc", "2",
                         "--set", 'evaluation.metrics=["accuracy","loss-metric"]',
                         "--set", "train.dataloader.batch_size_per_gpu=16",
                         "--set", "evaluation.dataloader.batch_size_per_gpu=10")
        self.assertExit(trained, 0)
        logged = json.loads(trained.stdout)["metrics"]
        evaluated = run_ms("eval", "--model", self.path("cnn", "output"), "--dataset", data,
                           "--split", "test", "--metrics", "accuracy,loss-metric",
                           "--batch-size", "10", "--threads", "1", "--json")
        self.assertExit(evaluated, 0)
        self.assertEqual(json.loads(evaluated.stdout), logged)

    def test_an_evaluation_error_on_one_rank_is_every_ranks(self):
        # A word the vocabulary lacks reads as [UNK], whose embedding is made NaN here: only the
        # last row, in rank 1's share, gives NaN logits. Every rank then stops with rank 1's
        # error (exit 7), not rank 0 with exit 5 for a peer that left.
        shutil.copytree(self.path("nodrop"), self.path("nan"))
        with open(self.path("nan", "vocab.txt")) as f:
            unk = f.read().splitlines().index("[UNK]")
        overwrite_tensor_rows(self.path("nan"), "word_embeddings.weight", unk, 1, float("nan"))
        with open(self.path("test.csv")) as f:
            rows = f.read()
        self.write("unk.csv", rows + "qqzzx movie,positive\n")
        alone = run_ms(*self.eval_args(self.path("nan"), self.path("unk.csv")))
        self.assertExit(alone, 7)
        shared = run_ms(*self.eval_args(self.path("nan"), self.path("unk.csv"), "--nproc", "2"))
        self.assertExit(shared, 7)
        error = json.loads(shared.stdout)["error"]  # one document, rank 0's
        self.assertEqual(error["exit_code"], 7)
        self.assertIn("nan", error["message"])
        self.assertIn("rank 1's share of the evaluation", error["message"])
        plain = run_ms(*[a for a in self.eval_args(self.path("nan"), self.path("unk.csv"), "--nproc", "2")
                         if a != "--json"])
        self.assertExit(plain, 7)
        self.assertEqual(plain.stderr.count("ms: error:"), 1, plain.stderr)
        self.assertIn("ms eval: 1 more worker(s) failed with an error printed above", plain.stderr)

    def test_ms_eval_workers_with_other_data_are_refused(self):
        with open(self.path("short.csv"), "w") as f:
            f.write("text,label\ngood,positive\nbad,negative\n")
        port = free_port()
        workers = [self.start_worker(r, port, self.eval_args(TINY_CLS, self.path(data)),
                                     MS_DIST_TIMEOUT="60")
                   for r, data in ((0, "test.csv"), (1, "short.csv"))]
        difference = ("the workers do not run the same job: evaluation rows = 16 on rank 0, "
                      "evaluation rows = 2 on rank 1")
        self.check_refused(workers, difference)
        # Another batch size (6 batches of 3, 4 of 4) or tokenisation of the same rows: shares
        # of other batches would merge into a figure of neither.
        for extra, difference in ((("--batch-size", "4"), "evaluation batch size = 3 on rank 0, "
                                   "evaluation batch size = 4 on rank 1"),
                                  (("--set", "preprocessor.max_length=4"),
                                   "preprocessor.max_length")):
            with self.subTest(differs=extra[0]):
                port = free_port()
                args1 = self.eval_args(TINY_CLS, self.path("test.csv"))
                args1[args1.index("--batch-size"):args1.index("--batch-size") + 2] = []
                args1 += ["--batch-size", "3"] if extra[0] != "--batch-size" else []
                workers = [self.start_worker(0, port, self.eval_args(TINY_CLS, self.path("test.csv")),
                                             MS_DIST_TIMEOUT="60"),
                           self.start_worker(1, port, [*args1, *extra], MS_DIST_TIMEOUT="60")]
                self.check_refused(workers, difference)

    def check_refused(self, workers, difference):
        for rank, p in enumerate(workers):
            out, err = p.communicate(timeout=600)
            self.assertEqual(p.returncode, 3, err)
            if rank == 0:  # --json: rank 0's document is the run's
                self.assertIn(difference, json.loads(out)["error"]["message"])
            else:
                self.assertEqual(out, "")
                self.assertIn(difference, err)

    def test_copies_of_the_model_with_other_tokenizer_files_are_refused(self):
        # The weights, names and shapes are alike, but rank 1's vocab.txt has two words swapped
        # (another revision on another machine): the same rows become other token ids. ms eval
        # printed a wrong figure with exit 0, ms train trained on contradicting inputs.
        shutil.copytree(self.path("nodrop"), self.path("swapped"))
        with open(self.path("swapped", "vocab.txt")) as f:
            vocab = f.read().split("\n")
        i, j = vocab.index("good"), vocab.index("bad")
        vocab[i], vocab[j] = vocab[j], vocab[i]
        with open(self.path("swapped", "vocab.txt"), "w") as f:
            f.write("\n".join(vocab))
        port = free_port()
        workers = [self.start_worker(r, port, self.eval_args(self.path(model), self.path("test.csv")),
                                     MS_DIST_TIMEOUT="60")
                   for r, model in ((0, "nodrop"), (1, "swapped"))]
        self.check_refused(workers, "the workers do not run the same job: the tokenizer file "
                                    "vocab.txt (content hash ")
        # ms train, with another tokenizer file differing: a special_tokens_map.json on rank 1.
        shutil.copytree(self.path("nodrop"), self.path("special"))
        self.write("special/special_tokens_map.json", json.dumps({"unk_token": "[PAD]"}))
        port = free_port()
        pair = [self.start_worker(r, port, self.args("r4.json", f"work{r}", model=self.path(model)),
                                  MS_DIST_TIMEOUT="60")
                for r, model in ((0, "nodrop"), (1, "special"))]
        errors = [p.communicate(timeout=600)[1] for p in pair]
        for proc, err in zip(pair, errors):
            self.assertEqual(proc.returncode, 3, err)
            self.assertIn("the workers do not run the same job: no tokenizer file "
                          "special_tokens_map.json on rank 0, the tokenizer file "
                          "special_tokens_map.json (content hash ", err)

    def test_copies_of_the_model_with_another_config_json_are_refused(self):
        # Same tensors, another network: rank 1's config.json has 2 attention heads and ReLU.
        # Both ranks trained with exit 0 and weights off by ~1e-3.
        shutil.copytree(self.path("nodrop"), self.path("heads2"))
        with open(self.path("heads2", "config.json")) as f:
            config = json.load(f)
        config.update(num_attention_heads=2, hidden_act="relu")
        with open(self.path("heads2", "config.json"), "w") as f:
            json.dump(config, f)
        port = free_port()
        workers = [self.start_worker(r, port, self.args("r4.json", f"work{r}", model=self.path(model)),
                                     MS_DIST_TIMEOUT="60")
                   for r, model in ((0, "nodrop"), (1, "heads2"))]
        self.check_refused(workers, "the model's config.json (content hash ")
        # What save_pretrained or ms export write about where, with what and in which type they
        # saved, and another key order (save_pretrained sorts them), are no difference.
        shutil.copytree(self.path("nodrop"), self.path("resaved"))
        with open(self.path("nodrop", "config.json")) as f:
            config = json.load(f)
        config.update(_name_or_path="/elsewhere/model", transformers_version="9.9.9",
                      torch_dtype="float32", dtype="float32")
        with open(self.path("resaved", "config.json"), "w") as f:
            json.dump(dict(reversed(list(config.items()))), f, indent=4)
        port = free_port()
        pair = [self.start_worker(r, port, self.args("r4.json", f"ok{r}", model=self.path(model)),
                                  MS_DIST_TIMEOUT="60")
                for r, model in ((0, "nodrop"), (1, "resaved"))]
        for proc in pair:
            _, err = proc.communicate(timeout=600)
            self.assertEqual(proc.returncode, 0, err)

    def test_a_checkpoint_after_an_epochs_last_batch_resumes_on_other_worker_counts(self):
        # A by-iteration checkpoint taken at an epoch's last batch (interval 4, 4 batches an
        # epoch on 2 workers) leaves no batch of the epoch: like an epoch's checkpoint, it goes
        # on with any worker count and batch size. It was refused as "inside an epoch".
        # StepLR by epoch halves the rate at each epoch's end: that end skipped or run twice
        # would change the weights.
        def with_schedule(hooks):
            config = recipe(4, hooks=hooks)
            config["train"]["lr_scheduler"] = {"type": "StepLR", "step_size": 1, "gamma": 0.5}
            return json.dumps(config)
        self.write("iter.json", with_schedule([
            {"type": "CheckpointHook", "by_epoch": False, "interval": 4},
            {"type": "EvaluationHook", "interval": 1}]))
        self.write("epoch.json", with_schedule([
            {"type": "CheckpointHook", "interval": 1}, {"type": "EvaluationHook", "interval": 1}]))
        for config, work in (("iter.json", "by-iter"), ("epoch.json", "by-epoch")):
            r = run_ms(*self.args(config, work), "--nproc", "2", "--max-epochs", "2")
            self.assertExit(r, 0)
        with open(self.path("by-iter", "latest_checkpoint.json")) as f:
            self.assertIn("iter_8", f.read())
        # Resumed by one process with batches of 5: 7 batches an epoch, the third epoch as from
        # epoch_2. Its last iteration is 8 + 7 = 15, which the interval does not reach:
        # CheckpointHook's save_last must save it (it waited for 3 x 7 = 21, and output/ held
        # iteration 12's weights, exit 0).
        for config, work in (("iter.json", "by-iter"), ("epoch.json", "by-epoch")):
            r = run_ms(*self.args(config, work), "--resume", "--set",
                       "train.dataloader.batch_size_per_gpu=5")
            self.assertExit(r, 0)
            self.assertEqual(json.loads(r.stdout)["iters"], 8 + 7, r.stdout)
        with open(self.path("by-iter", "latest_checkpoint.json")) as f:
            self.assertIn("iter_15", f.read())
        diff = max_abs_diff(safetensors(self.path("by-iter", "output", "model.safetensors")),
                            safetensors(self.path("by-epoch", "output", "model.safetensors")))
        self.assertLess(diff, 1e-6)

    def test_workers_with_other_world_sizes_are_refused_at_once(self):
        # Whichever has the larger WORLD_SIZE, the worker that comes second is refused as it
        # arrives (exit 2 naming both values) and the other stops at once naming them (exit 5).
        # Rank 0 with the larger one waited for a third worker until MS_DIST_TIMEOUT and never
        # named the mismatch (exit 5 on both).
        for sizes in (("3", "2"), ("2", "3")):
            with self.subTest(world_sizes=sizes):
                port = free_port()
                pair = [self.start_worker(r, port, self.args("r4.json", f"work{r}"), WORLD_SIZE=size,
                                          LOCAL_WORLD_SIZE="1", LOCAL_RANK="0", MS_DIST_TIMEOUT="60")
                        for r, size in enumerate(sizes)]
                errors = [p.communicate(timeout=600)[1] for p in pair]
                codes = [p.returncode for p in pair]
                self.assertEqual(sorted(codes), [2, 5], errors)
                refused = errors[codes.index(2)]
                self.assertIn("and another worker of the run has WORLD_SIZE=", refused)
                for err in errors:
                    self.assertIn("WORLD_SIZE=2", err)
                    self.assertIn("WORLD_SIZE=3", err)
                    self.assertNotIn("reached the rendezvous", err)

    def test_nproc_inside_a_worker_is_refused_with_its_hint(self):
        # Under srun each task would start a job of its own; the hint under torchrun was lost
        # (passed to MS_CHECK as a format argument: "hint": "").
        master = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
        for env, hint in (({"WORLD_SIZE": "2", "RANK": "1", **master}, "drop --nproc under torchrun"),
                          ({"SLURM_PROCID": "1", "SLURM_LOCALID": "1", "SLURM_STEP_NUM_TASKS": "2",
                            **master}, "drop --nproc under srun")):
            with self.subTest(env=env):
                r = run_ms(*self.args("r4.json", "work"), "--nproc", "2", env=env)
                self.assertExit(r, 2)
                self.assertIn(hint, json.loads(r.stdout)["error"]["hint"])
        # A step of one task (srun -n1, an interactive srun --pty shell) is no group of workers:
        # its --nproc starts the node's workers, as srun -n1 torchrun does.
        r = run_ms("eval", "--model", self.path("nodrop"), "--dataset", "csv:" + self.path("test.csv"),
                   "--threads", "1", "--json", "--nproc", "2",
                   env={"SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_STEP_NUM_TASKS": "1"})
        self.assertExit(r, 0)
        self.assertIn("accuracy", r.stdout)

    def test_slurm_tasks_per_node_give_the_local_world_size(self):
        # srun -N 2 -n 2 (one task on each node, no --ntasks-per-node): SLURM_NTASKS_PER_NODE is
        # unset, and the per-node lists say one task here, so one numbered GPU is not shared
        # (the world size was taken for the local one).
        slurm = {"SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_STEP_NUM_TASKS": "2",
                 "SLURM_NTASKS": "2", "SLURM_NNODES": "2", "SLURM_NODEID": "0",
                 "SLURM_TASKS_PER_NODE": "1(x2)", "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "MS_DIST_TIMEOUT": "2"}
        r = run_ms(*self.args("r4.json", "work"), "--device", "gpu:0", env=slurm)
        self.assertNotIn("would share one GPU", r.stderr)
        self.assertNotEqual(r.returncode, 0, r.stderr)  # alone: no GPU here, or no rank 1
        # Two tasks on this node (and one on the next) do share it.
        r = run_ms(*self.args("r4.json", "work"), "--device", "gpu:0",
                   env={**slurm, "SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_TASKS_PER_NODE": "2,1"})
        self.assertExit(r, 2)
        self.assertOneLineError(r, "all 2 workers of this machine would share one GPU")

    def test_a_tmpdir_that_does_not_exist_is_passed_over(self):
        # As Python's tempfile (and so torchrun): the next candidate folder. It was exit 74,
        # "temp_directory_path: No such file or directory".
        r = run_ms(*self.args("r4.json", "work"), "--max-epochs", "1", "--nproc", "2",
                   env={"TMPDIR": self.path("no-such-folder")})
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout)["world_size"], 2)

    def test_nproc_messages(self):
        # Two rows for three workers: the sampler pads, so each gets one (it said "about 0").
        self.write("two.csv", "text,label\ngood movie,positive\nbad movie,negative\n")
        args = ["train", "--model", self.path("nodrop"), "--dataset", "csv:" + self.path("two.csv"),
                "--work-dir", self.path("w"), "--threads", "1", "--max-epochs", "1", "--nproc", "3",
                "--set", "train.dataloader.batch_size_per_gpu=2", "--set", "train.dataloader.drop_last=true"]
        r = run_ms(*args)
        self.assertExit(r, 2)
        self.assertIn("rows: 2, 1 for each of the 3 workers", r.stderr)
        for value in ("abc", "2.0"):
            for command in ("train", "eval"):
                with self.subTest(command=command, nproc=value):
                    r = run_ms(command, "--model", self.path("nodrop"), "--dataset",
                               "csv:" + self.path("two.csv"), "--nproc", value)
                    self.assertExit(r, 2)
                    self.assertIn(f"must be a whole number of at least 1, got '{value}'", r.stderr)

    def test_a_second_worker_with_one_rank_is_refused(self):
        # Rank 0 and rank 1 train; a second rank 1 that comes while they do is exit 2 at once
        # (it would otherwise wait in Gloo's connection mesh), and the run goes on.
        self.write("long.json", json.dumps(recipe(4, epochs=100000, hooks=[{"type": "TextLoggerHook", "interval": 1}])))
        port = free_port()
        pair = [self.start_worker(r, port, self.args("long.json", f"work{r}"), MS_DIST_TIMEOUT="60") for r in (0, 1)]
        try:
            # Training has begun once rank 0 logs an iteration: the store is up, both ranks in.
            logged = self.wait_for(lambda: glob.glob(self.path("work0", "*.log.json"))
                                   and os.path.getsize(glob.glob(self.path("work0", "*.log.json"))[0]) > 0,
                                   timeout=300)
            self.assertTrue(logged, "the pair never started training")
            dup = run_ms(*self.args("long.json", "work2"), env=self.worker_env(1, port, MS_DIST_TIMEOUT="60"))
            self.assertExit(dup, 2)
            self.assertOneLineError(dup, "another worker of this run was started with RANK=1 too")
            self.assertTrue(all(p.poll() is None for p in pair), "the pair stopped")
        finally:
            for p in pair:
                p.kill()
                p.communicate()

    def test_an_error_every_worker_meets_is_printed_once(self):
        # Every rank reads the same config: the missing evaluation data fails all three alike.
        args = [a for a in self.args("r4.json", "work") if a not in
                ("--eval-dataset", "csv:" + self.path("test.csv"))]
        failed = run_ms(*args, "--nproc", "3")
        self.assertExit(failed, 2)
        self.assertEqual(failed.stderr.count("ms: error:"), 1, failed.stderr)
        self.assertIn("no evaluation data", failed.stderr)
        self.assertIn("2 more worker(s) failed with an error printed above", failed.stderr)
        # --json: one document on stdout (rank 0's), not one per worker.
        self.assertEqual(json.loads(failed.stdout)["error"]["exit_code"], 2)

    def test_a_numbered_gpu_for_several_workers_is_a_usage_error(self):
        # Each local worker takes the GPU of its LOCAL_RANK; one card named for all is refused
        # before any device is looked for (so on a machine without a GPU too).
        shared = run_ms(*self.args("r4.json", "work"), "--nproc", "2", "--device", "gpu:0")
        self.assertExit(shared, 2)
        self.assertEqual(shared.stderr.count("ms: error:"), 1, shared.stderr)
        self.assertIn("--device cuda:0 under data parallelism", shared.stderr)
        self.assertIn("pass --device gpu", shared.stderr)

    def test_ranks_on_gpus_exchange_over_nccl(self):
        # One worker per GPU, gradients all-reduced by NCCL: two workers equal one process with
        # twice the batch where the machine has two GPUs (scripts/gpu-check.sh runs this test on
        # the lent machine). Where it has one, the second worker has no card of its own (NCCL
        # cannot put two ranks on one) and the run stops with a clear error instead; where it has
        # none, asking for a GPU is the missing-CUDA error (exit 6), not a fall-back to the CPU.
        # (One worker is one process, as in the CPU tests: no group is formed.)
        gpus = json.loads(run_ms("env", "--json").stdout)["libtorch"]["cuda_device_count"]
        two = run_ms(*self.args("r4.json", "two"), "--device", "gpu", "--nproc", "2",
                     env={"MS_LOG_LEVEL": "info"})
        if gpus == 0:
            self.assertExit(two, 6)
            self.assertIn("CUDA is not available", two.stderr)
            return
        if gpus < 2:
            self.assertExit(two, 2)
            self.assertIn("local rank 1 has no GPU of its own", two.stderr)
            return
        self.assertExit(two, 0)
        self.assertIn("NCCL on cuda:0", two.stderr)
        self.assertIn("NCCL on cuda:1", two.stderr)
        one = run_ms(*self.args("r8.json", "one"), "--device", "gpu")
        self.assertExit(one, 0)
        diff = max_abs_diff(safetensors(self.path("one", "output", "model.safetensors")),
                            safetensors(self.path("two", "output", "model.safetensors")))
        self.assertLess(diff, 1e-5)
        # ms eval shared out over two cards: each card's batches give what one card's do.
        model = self.path("one", "output")
        alone = run_ms(*self.eval_args(model, self.path("test.csv"), "--device", "gpu"))
        shared = run_ms(*self.eval_args(model, self.path("test.csv"), "--device", "gpu",
                                        "--nproc", "2"))
        self.assertExit(alone, 0)
        self.assertExit(shared, 0)
        a, b = json.loads(alone.stdout), json.loads(shared.stdout)
        self.assertEqual(list(a), list(b))
        for key in a:
            self.assertAlmostEqual(a[key], b[key], delta=1e-6)

    @unittest.skipUnless(TEST_HOOKS, "needs an ms built with -DMS_TEST_HOOKS=ON")
    def test_a_group_of_one_equals_one_process(self):
        # MS_TEST_GROUP_OF_ONE=1 (test builds) makes a lone worker join a process group of its
        # own: Gloo on the CPU, NCCL on a GPU (MS_INFER_DEVICE=gpu:0 under scripts/gpu-check.sh,
        # whose machine has one card, and NCCL refuses two ranks on one). Rendezvous, the
        # bucketed all-reduce and the broadcasts then run for real, and must change nothing.
        device = os.environ.get("MS_INFER_DEVICE", "cpu")
        plain = run_ms(*self.args("r4.json", "plain"), "--device", device)
        self.assertExit(plain, 0)
        env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
               "MS_TEST_GROUP_OF_ONE": "1", "MS_LOG_LEVEL": "info"}
        group = run_ms(*self.args("r4.json", "group"), "--device", device, env=env)
        self.assertExit(group, 0)
        self.assertIn("rank 0 of 1 joined", group.stderr)
        if device != "cpu":
            self.assertIn("NCCL on cuda:0", group.stderr)
        s1, s2 = json.loads(plain.stdout), json.loads(group.stdout)
        self.assertEqual((s2["world_size"], s2["iters"]), (1, s1["iters"]))
        self.assertEqual(s2["metrics"], s1["metrics"])
        diff = max_abs_diff(safetensors(self.path("plain", "output", "model.safetensors")),
                            safetensors(self.path("group", "output", "model.safetensors")))
        self.assertLess(diff, 1e-6)
        # ms eval in a group of one: its share is the whole split, its state goes through the
        # exchange and rank 0's weights through the broadcast (NCCL on a GPU): the same figure.
        model = self.path("plain", "output")
        alone = run_ms(*self.eval_args(model, self.path("test.csv"), "--device", device))
        self.assertExit(alone, 0)
        env["MASTER_PORT"] = str(free_port())
        grouped = run_ms(*self.eval_args(model, self.path("test.csv"), "--device", device), env=env)
        self.assertExit(grouped, 0)
        self.assertIn("rank 0 of 1 joined", grouped.stderr)
        self.assertEqual(grouped.stdout, alone.stdout)

    def test_too_few_open_files_is_a_clear_error(self):
        # Rank 0 needs a connection per rank; LibTorch's store thread aborts when it runs out.
        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
        env = dict(os.environ)
        launched = subprocess.run([MS_BIN, *self.args("r4.json", "work"), "--nproc", "30"],
                                  capture_output=True, text=True, env=env, timeout=120,
                                  preexec_fn=low_limit)
        self.assertExit(launched, 2)
        self.assertIn("ulimit -n", launched.stderr)
        port = free_port()
        worker = subprocess.run([MS_BIN, *self.args("r4.json", "work")], capture_output=True,
                                text=True, env={**env, **self.worker_env(0, port, WORLD_SIZE="60")},
                                timeout=120, preexec_fn=low_limit)
        self.assertExit(worker, 2)
        self.assertIn("ulimit -n", worker.stderr)


if __name__ == "__main__":
    unittest.main()

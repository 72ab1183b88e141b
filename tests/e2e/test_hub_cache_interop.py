"""Cache sharing between `ms download` and the official Python `modelscope` client.

modelscope 1.37 and older and ms write one cache ($MODELSCOPE_CACHE/models/<owner>/<name___>, .msc,
.mdl, .mv, ._____temp) and take one lock ($MODELSCOPE_CACHE/.lock/<owner>___<name>), so each must
read, resume and respect what the other left (CacheInteropTest). 1.38 and newer keep
models/<owner>--<name>/snapshots/<revision>/ without an index, and reuse an indexed folder when one
exists (SnapshotCacheInteropTest). The hub is a real `ms hub serve` over TLS (the Python client builds https:// URLs
from MODELSCOPE_DOMAIN). Needs the modelscope venv (scripts/setup_python_interop.sh); skipped
without it.
"""
import fcntl
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import tempfile
import threading
import unittest

from harness import MS_BIN, MsTestCase, run_ms
from hub_fixture import (HubServer, hub_server_available, make_certificate, make_tree, parts_on_disk,
                         python_with_modelscope)

# Runs one call of the Python client; prints {"path": ...} or {"error": ..., "message": ...}.
PYTHON_CALL = r"""
import json, sys
from modelscope.hub.snapshot_download import snapshot_download, dataset_snapshot_download
from modelscope.hub.file_download import model_file_download
call, kwargs = sys.argv[1], json.loads(sys.argv[2])
fn = {"snapshot": snapshot_download, "dataset": dataset_snapshot_download,
      "file": model_file_download}[call]
try:
    print(json.dumps({"path": fn(**kwargs)}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"""


def read_tree(root, skip=(".msc", ".mdl", ".mv", "._____temp")):
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            if name not in skip:
                with open(os.path.join(folder, name), "rb") as f:
                    out[os.path.relpath(os.path.join(folder, name), root)] = f.read()
    return out


def read_index(repo_dir):
    with open(os.path.join(repo_dir, ".msc"), "rb") as f:
        return pickle.load(f)


class CacheFixture(MsTestCase):
    """A TLS hub over the class's storage, and the Python client of the releases in
    `modelscope_range` ([at least, below))."""
    python = None
    modelscope_range = (None, None)

    @classmethod
    def setUpClass(cls):
        if not hub_server_available():
            raise unittest.SkipTest("this ms has no `ms hub serve`")
        cls.version, cls.python = python_with_modelscope(*cls.modelscope_range)
        if not cls.python:
            raise unittest.SkipTest(f"no python with a modelscope release in {cls.modelscope_range} (run "
                                    "scripts/setup_python_interop.sh, or set MS_MODELSCOPE_PYTHON)")
        cls.root = tempfile.mkdtemp(prefix="ms-cache-interop-")
        cls.tls = make_certificate(cls.root)
        if not cls.tls:
            raise unittest.SkipTest("no openssl tool to make a test certificate")
        cls.servers = []
        cls.server = cls.start_server()
        cls.token = cls.server.token("alice")

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.stop()
        shutil.rmtree(cls.root, True)

    @classmethod
    def start_server(cls, faults=None):
        """A server over the class's storage (with injected faults, if any)."""
        server = HubServer(os.path.join(cls.root, "hub"), faults=faults, tls=cls.tls)
        cls.servers.append(server)
        return server

    # --- the two clients ------------------------------------------------------------------------
    def env(self, server=None, **extra):
        server = server or self.server
        env = {"MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_CREDENTIALS_PATH": self.path("cred"),
               "MODELSCOPE_ENDPOINT": server.endpoint, "MODELSCOPE_DOMAIN": f"127.0.0.1:{server.port}",
               "REQUESTS_CA_BUNDLE": self.tls[0], "MODELSCOPE_API_TOKEN": "", "MODELSCOPE_OFFLINE": "",
               "MS_NO_PROGRESS": "1"}
        env.update(extra)
        return env

    def ms(self, *args, env=None, expect=0, timeout=180):
        r = run_ms(*args, env=env or self.env(), timeout=timeout)
        self.assertExit(r, expect)
        return r

    def ms_download(self, repo, *args, env=None):
        return self.json_out(self.ms("download", repo, "--json", *args, env=env))

    def py_command(self, call, env=None, **kwargs):
        full = dict(os.environ)
        full.update(env or self.env())
        return [self.python, "-c", PYTHON_CALL, call, json.dumps(kwargs)], full

    def py(self, call, env=None, **kwargs):
        cmd, full = self.py_command(call, env, **kwargs)
        r = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        return json.loads(r.stdout.strip().splitlines()[-1])

    def upload(self, repo, files, *extra):
        src = make_tree(tempfile.mkdtemp(dir=self.tmp), files)
        self.ms("upload", repo, src, "--token", self.token, *extra)

    def kill_when(self, cmd, env, cond, what):
        """Starts cmd, waits until cond() holds (a download caught by a stalling server), kills it."""
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

        def reached():
            try:
                return cond()
            except OSError:
                return False
        ok = self.wait_for(reached)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.assertTrue(ok, f"{what} never reached the stall")



class CacheInteropTest(CacheFixture):
    """modelscope 1.37 and older: one indexed folder per repo (.msc), one lock, one temp area."""
    modelscope_range = (None, "1.38")

    def test_revisions_interleaved_in_one_cache(self):
        """Python at tag v1, ms at master, Python at v1 again: one version per file, as Python keeps
        it, and each client reads the other's index offline."""
        self.upload("alice/revs", {"a.txt": b"v1", "same.txt": b"same"}, "--create", "--tag", "v1")
        self.upload("alice/revs", {"a.txt": b"v2", "new.txt": b"new"})
        repo = self.path("cache", "models", "alice", "revs")
        self.assertEqual(self.py("snapshot", model_id="alice/revs", revision="v1"), {"path": repo})
        got = self.ms_download("alice/revs")
        self.assertEqual({f["path"]: f["cached"] for f in got["files"]},
                         {"a.txt": False, "new.txt": False, "same.txt": True})
        self.assertEqual(read_tree(repo), {"a.txt": b"v2", "new.txt": b"new", "same.txt": b"same"})
        self.py("snapshot", model_id="alice/revs", revision="v1")
        self.assertEqual(read_tree(repo)["a.txt"], b"v1")
        self.assertEqual(sorted(e["Path"] for e in read_index(repo)), ["a.txt", "new.txt", "same.txt"])
        offline = self.ms_download("alice/revs", "--offline")
        self.assertEqual(sorted(f["path"] for f in offline["files"]), ["a.txt", "new.txt", "same.txt"])
        # Asked offline for another revision than the one last fetched: served, with a warning.
        r = self.ms("download", "alice/revs", "--offline", "--revision", "master")
        self.assertRegex(r.stderr, r"warning: .*revision 'v1', not 'master'")
        self.assertNotIn("warning", self.ms("download", "alice/revs", "--offline", "--revision", "v1").stderr)
        self.assertEqual(self.py("file", model_id="alice/revs", file_path="new.txt", local_files_only=True),
                         {"path": os.path.join(repo, "new.txt")})

    def test_one_lock_and_one_partial_file_for_both_clients(self):
        """Each client waits on the other's lock and resumes the other's partial file."""
        self.require_test_hooks()
        big = os.urandom(6 << 20)
        self.upload("alice/part.ial", {"big.bin": big, "small.txt": b"s"}, "--create")
        stalling = self.start_server("stall=1,stall_seconds=60")
        # Python is caught mid-file; ms, started meanwhile, waits for Python's lock.
        temp = self.path("cache", "models", "._____temp", "alice", "part.ial", "big.bin")
        cmd, env = self.py_command("snapshot", env=self.env(stalling), model_id="alice/part.ial")
        python = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(python.kill)
        self.assertTrue(self.wait_for(lambda: os.path.exists(temp) and os.path.getsize(temp) >= 3 << 20))
        ms = subprocess.Popen([MS_BIN, "download", "alice/part.ial", "-v"], env={**os.environ, **self.env()},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.addCleanup(ms.kill)
        stderr = []
        reader = threading.Thread(target=lambda: stderr.extend(ms.stderr), daemon=True)
        reader.start()
        # ms says it waits, naming Python's lock file, and does wait: Python is stalled for 60 s.
        self.assertTrue(self.wait_for(lambda: "waiting for another download" in "".join(stderr)), "".join(stderr))
        self.assertIsNone(ms.poll(), "ms did not wait for the lock Python holds")
        python.send_signal(signal.SIGKILL)
        python.wait(timeout=10)
        ms.wait(timeout=120)
        reader.join(30)
        ms.stderr.close()
        err = "".join(stderr)
        self.assertEqual(ms.returncode, 0, err)
        self.assertIn("alice___part.ial", err)  # the waiting message names Python's lock file
        self.assertRegex(err, r"big.bin: resuming at byte [1-9]\d* of 6291456")
        repo = self.path("cache", "models", "alice", "part___ial")
        self.assertEqual(read_tree(repo), {"big.bin": big, "small.txt": b"s"})

        # And the reverse: ms is caught mid-file holding the lock; Python finishes from its partial.
        cache2 = self.path("cache2")
        temp2 = os.path.join(cache2, "models", "._____temp", "alice", "part.ial", "big.bin")
        proc = subprocess.Popen([MS_BIN, "download", "alice/part.ial"], env={**os.environ, **self.env(stalling, MODELSCOPE_CACHE=cache2)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(proc.kill)
        self.assertTrue(self.wait_for(lambda: os.path.exists(temp2) and os.path.getsize(temp2) >= 3 << 20))
        fd = os.open(os.path.join(cache2, ".lock", "alice___part.ial"), os.O_RDWR)
        try:
            with self.assertRaises(BlockingIOError, msg="ms does not hold Python's lock file"):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.assertEqual(self.py("snapshot", env=self.env(MODELSCOPE_CACHE=cache2), model_id="alice/part.ial"),
                         {"path": os.path.join(cache2, "models", "alice", "part___ial")})
        self.assertEqual(read_tree(os.path.join(cache2, "models", "alice", "part___ial"))["big.bin"], big)
        self.assertEqual(os.listdir(os.path.dirname(temp2)), [])

    def test_ranged_ms_download_takes_over_python_partial_and_leaves_no_partials(self):
        """Python resumes only a single-stream partial (`<temp>/<path>`); ms's ranged download keeps
        `<path>.ms-partial`. Each must pick up or clear away the other's, not leave it for good."""
        self.require_test_hooks()
        big = os.urandom((64 << 20) + 4096)  # at ms's threshold for a ranged download
        self.upload("alice/ranged", {"big.bin": big}, "--create")
        stalling = self.start_server("stall=1,stall_seconds=60")
        temp_dir = self.path("cache", "models", "._____temp", "alice", "ranged")
        single = os.path.join(temp_dir, "big.bin")
        cmd, env = self.py_command("snapshot", env=self.env(stalling), model_id="alice/ranged")
        self.kill_when(cmd, env, lambda: os.path.getsize(single) >= 16 << 20, "Python")
        r = self.ms("download", "alice/ranged", "-v", env=self.env(MS_DOWNLOAD_PARTS="4"), timeout=300)
        self.assertRegex(r.stderr, r"big.bin: resuming with [1-9]\d* of \d+ bytes")
        self.assertEqual(read_tree(self.path("cache", "models", "alice", "ranged")), {"big.bin": big})
        self.assertEqual(os.listdir(temp_dir), [])

        # ms's ranged download is caught mid-file; Python then fetches the file whole (it does not
        # know ms's form); the next ms run clears the stale ranged partial away.
        cache2 = self.path("cache2")
        temp_dir2 = os.path.join(cache2, "models", "._____temp", "alice", "ranged")
        parts_file = os.path.join(temp_dir2, "big.bin.ms-parts")
        self.kill_when([MS_BIN, "download", "alice/ranged"],
                       self.env(stalling, MODELSCOPE_CACHE=cache2, MS_DOWNLOAD_PARTS="4"),
                       lambda: parts_on_disk(parts_file) > 0, "ms")
        self.py("snapshot", env=self.env(MODELSCOPE_CACHE=cache2), model_id="alice/ranged")
        got = self.ms_download("alice/ranged", env=self.env(MODELSCOPE_CACHE=cache2))
        self.assertTrue(got["files"][0]["cached"])
        self.assertEqual(os.listdir(temp_dir2), [])

    def test_legacy_cache_folder_is_moved_as_python_does(self):
        """modelscope before the models/ split kept `<MODELSCOPE_CACHE>/hub/<owner>/<name___>`
        (by default `~/.cache/modelscope/hub/<owner>/<name___>`); 1.36 moves it to models/ on every
        call, local_files_only included, so ms must find it too."""
        files = {"config.json": b"{}", "sub/w.bin": os.urandom(1000)}
        self.upload("alice/leg.acy", files, "--create")
        self.py("snapshot", model_id="alice/leg.acy")
        current = self.path("cache", "models", "alice", "leg___acy")
        legacy = self.path("cache", "hub", "alice", "leg___acy")
        os.makedirs(os.path.dirname(legacy))
        shutil.move(current, legacy)
        shutil.rmtree(self.path("cache", "models"))

        offline = self.ms_download("alice/leg.acy", "--offline")
        self.assertEqual(offline["local_path"], current)
        self.assertEqual(sorted(f["path"] for f in offline["files"]), sorted(files))
        self.assertFalse(os.path.exists(legacy))

        # Online: the moved folder's index is used, nothing is fetched again (nor planned to be).
        shutil.move(current, legacy)
        dry = self.ms_download("alice/leg.acy", "--dry-run")
        self.assertEqual(dry["files_to_fetch"], 0, dry)
        self.assertTrue(os.path.isdir(legacy))
        online = self.ms_download("alice/leg.acy")
        self.assertTrue(all(f["cached"] for f in online["files"]), online)
        self.assertEqual(read_tree(current), files)

        # MODELSCOPE_CACHE unset: both clients default to ~/.cache/modelscope/hub, whose legacy
        # folder is hub/<owner>/<name___> itself (no second `hub`).
        home = self.path("home")
        default_root = os.path.join(home, ".cache", "modelscope", "hub")
        os.makedirs(os.path.join(default_root, "alice"))
        shutil.copytree(current, os.path.join(default_root, "alice", "leg___acy"), symlinks=True)
        env = {k: v for k, v in {**os.environ, **self.env(), "HOME": home}.items() if k != "MODELSCOPE_CACHE"}
        r = subprocess.run([MS_BIN, "download", "alice/leg.acy", "--offline", "--json"], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertExit(r, 0)
        moved = os.path.join(default_root, "models", "alice", "leg___acy")
        self.assertEqual(self.json_out(r)["local_path"], moved)
        cmd, _ = self.py_command("snapshot", model_id="alice/leg.acy", local_files_only=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(json.loads(r.stdout.strip().splitlines()[-1]), {"path": moved}, r.stderr[-2000:])
        # Owner "models": its legacy place `hub/models/<name>` is the current folder of owner
        # <name>, holding all of that owner's models; it is never moved.
        qwen = os.path.join(default_root, "models", "Qwen")
        shutil.copytree(moved, os.path.join(qwen, "some___model"), symlinks=True)
        r = subprocess.run([MS_BIN, "download", "models/Qwen", "--offline", "--json"], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(os.path.isdir(os.path.join(qwen, "some___model")), r.stderr)
        self.assertFalse(os.path.exists(os.path.join(default_root, "models", "models")), r.stderr)

    def test_offline_names_every_file_missing_from_the_cache(self):
        self.upload("alice/gaps", {"a.txt": b"a", "b.txt": b"b", "c.txt": b"c"}, "--create")
        self.py("snapshot", model_id="alice/gaps")
        repo = self.path("cache", "models", "alice", "gaps")
        os.remove(os.path.join(repo, "b.txt"))  # still recorded in .msc
        r = self.ms("download", "alice/gaps", "--offline", "a.txt", "b.txt", "zz.txt", expect=4)
        self.assertOneLineError(r, "2 of 3", "'b.txt'", "'zz.txt'", "deleted", repo)
        self.assertNotIn("revision", r.stderr)  # offline, no revision was looked at
        # The whole repo offline: what is there, and a warning naming what is not.
        r = self.ms("download", "alice/gaps", "--offline", "--json")
        self.assertEqual(sorted(f["path"] for f in self.json_out(r)["files"]), ["a.txt", "c.txt"])
        self.assertIn("'b.txt'", r.stderr)
        # Python's local_files_only agrees b.txt is not there (and drops it from .msc).
        self.assertEqual(self.py("file", model_id="alice/gaps", file_path="b.txt", local_files_only=True)["error"],
                         "ValueError")
        self.assertEqual(sorted(e["Path"] for e in read_index(repo)), ["a.txt", "c.txt"])


    def test_python_file_download_during_an_ms_run_stays_indexed(self):
        """Python's model_file_download takes no lock and rewrites .msc while an ms run is under
        way; ms's next save must keep that entry, or the file is there but unknown to both."""
        self.require_test_hooks()
        self.upload("alice/conc", {"big.bin": os.urandom(6 << 20), "small.txt": b"s", "other.txt": b"o"},
                    "--create")
        stalling = self.start_server("stall=1,stall_seconds=5")
        ms = subprocess.Popen([MS_BIN, "download", "alice/conc", "big.bin", "small.txt"],
                              env={**os.environ, **self.env(stalling)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        self.addCleanup(ms.kill)
        temp = self.path("cache", "models", "._____temp", "alice", "conc", "big.bin")
        self.assertTrue(self.wait_for(lambda: os.path.exists(temp) and os.path.getsize(temp) >= 3 << 20))
        # ms is held (SIGSTOP) mid-file while Python downloads, so that Python's .msc lands during
        # the ms run however long Python takes; then ms goes on and saves its own entries.
        ms.send_signal(signal.SIGSTOP)
        repo = self.path("cache", "models", "alice", "conc")
        try:
            self.assertEqual(self.py("file", model_id="alice/conc", file_path="other.txt"),
                             {"path": os.path.join(repo, "other.txt")})
        finally:
            ms.send_signal(signal.SIGCONT)
        _, err = ms.communicate(timeout=120)
        self.assertEqual(ms.returncode, 0, err)
        self.assertEqual(sorted(e["Path"] for e in read_index(repo)), ["big.bin", "other.txt", "small.txt"])
        self.ms("download", "alice/conc", "other.txt", "--offline")
        self.assertEqual(self.py("file", model_id="alice/conc", file_path="other.txt", local_files_only=True),
                         {"path": os.path.join(repo, "other.txt")})


    def test_local_dir_gets_the_same_bookkeeping_from_both_clients(self):
        """A --local-dir / local_dir= download leaves .msc, .mv and an empty ._____temp, no .mdl;
        each client then finds the other's files there offline."""
        self.upload("alice/local", {"a.txt": b"a", "sub/b.txt": b"b"}, "--create")
        py_dir, ms_dir = self.path("py-dir"), self.path("ms-dir")
        self.assertEqual(self.py("snapshot", model_id="alice/local", local_dir=py_dir), {"path": py_dir})
        self.ms_download("alice/local", "--local-dir", ms_dir)
        hidden = lambda d: sorted(n for n in os.listdir(d) if n.startswith("."))  # noqa: E731
        self.assertEqual(hidden(py_dir), ["._____temp", ".msc", ".mv"])
        self.assertEqual(hidden(ms_dir), hidden(py_dir))
        offline = self.ms_download("alice/local", "--local-dir", py_dir, "--offline")
        self.assertEqual(sorted(f["path"] for f in offline["files"]), ["a.txt", "sub/b.txt"])
        self.assertEqual(self.py("file", model_id="alice/local", file_path="sub/b.txt", local_dir=ms_dir,
                                 local_files_only=True), {"path": os.path.join(ms_dir, "sub", "b.txt")})


class SnapshotCacheInteropTest(CacheFixture):
    """modelscope 1.38 and newer: models/<owner>--<name>/snapshots/<revision>/ without an index,
    and an indexed folder of the repo reused when there is one."""
    modelscope_range = ("1.38", None)

    def snapshot(self, repo, revision="master", cache=None):
        owner, name = repo.split("/")
        return os.path.join(cache or self.path("cache"), "models", f"{owner}--{name}", "snapshots", revision)

    def test_python_snapshots_are_read_offline_and_not_fetched_again(self):
        self.upload("alice/snap", {"a.txt": b"v1", "keep.bin": os.urandom(70000)}, "--create", "--tag", "v1")
        self.upload("alice/snap", {"a.txt": b"v2", "sub/new.txt": b"new"})
        master, v1 = self.snapshot("alice/snap"), self.snapshot("alice/snap", "v1")
        self.assertEqual(self.py("snapshot", model_id="alice/snap"), {"path": master})
        self.assertEqual(self.py("snapshot", model_id="alice/snap", revision="v1"), {"path": v1})
        # Offline: each revision's folder as Python left it.
        offline = self.ms_download("alice/snap", "--offline")
        self.assertEqual(offline["local_path"], master)
        self.assertEqual(read_tree(master)["a.txt"], b"v2")
        self.assertEqual(sorted(f["path"] for f in offline["files"]),
                         [".gitattributes", "a.txt", "keep.bin", "sub/new.txt"])
        offline = self.ms_download("alice/snap", "--offline", "--revision", "v1")
        self.assertEqual(offline["local_path"], v1)
        self.assertEqual(sorted(f["path"] for f in offline["files"]), [".gitattributes", "a.txt", "keep.bin"])
        # Online: nothing fetched again, and no index or second copy written.
        for revision, folder in (("master", master), ("v1", v1)):
            warm = self.ms_download("alice/snap", "--revision", revision)
            self.assertEqual(warm["local_path"], folder)
            self.assertEqual(warm["bytes_to_fetch"], 0, warm)
        self.assertFalse(os.path.exists(os.path.join(master, ".msc")))
        self.assertFalse(os.path.exists(self.path("cache", "models", "alice", "snap")))
        # A file changed in place (same size) is fetched again: the sha256 decides, as in Python.
        with open(os.path.join(master, "keep.bin"), "r+b") as f:
            f.write(b"\0" * 16)
        again = self.ms_download("alice/snap")
        self.assertEqual([f["path"] for f in again["files"] if not f["cached"]], ["keep.bin"])
        self.assertEqual(read_tree(master)["keep.bin"], read_tree(v1)["keep.bin"])

    def test_ms_finishes_what_a_killed_python_download_left(self):
        # Python 1.38+ writes a file as <path>.incomplete beside where it goes; killed, it leaves
        # them. ms fetched the files but left the .incomplete ones for good (Python's later
        # offline reads listed them).
        big = os.urandom(200000)
        self.upload("alice/cut", {"big.bin": big, "small.txt": b"small"}, "--create")
        master = self.snapshot("alice/cut")
        self.assertEqual(self.py("snapshot", model_id="alice/cut"), {"path": master})
        os.remove(os.path.join(master, "big.bin"))
        os.remove(os.path.join(master, "small.txt"))
        with open(os.path.join(master, "big.bin.incomplete"), "wb") as f:
            f.write(big[:50000])
        with open(os.path.join(master, "small.txt.incomplete"), "wb") as f:
            f.write(b"sm")
        got = self.ms_download("alice/cut")
        self.assertEqual(got["local_path"], master)
        tree = read_tree(master)
        self.assertEqual((tree["big.bin"], tree["small.txt"]), (big, b"small"))
        self.assertEqual([n for n in tree if n.endswith(".incomplete")], [])

    def test_python_revisions_written_into_an_indexed_folder(self):
        # Python 1.38+ reuses an indexed folder and writes another revision's files into it
        # without touching .msc: same names and sizes, other bytes. ms served them as cached.
        self.upload("alice/revs", {"a.txt": b"AAAA-version-1", "w.bin": b"1" * 3000}, "--create",
                    "--tag", "v1")
        self.upload("alice/revs", {"a.txt": b"AAAA-version-2", "w.bin": b"2" * 3000,
                                   "w.bin.incomplete": b"a repo file, not a partial"})
        env = self.env(MODELSCOPE_CACHE=self.path("rev-cache"))
        folder = self.ms_download("alice/revs", env=env)["local_path"]
        self.assertEqual(self.py("snapshot", env=env, model_id="alice/revs", revision="v1"),
                         {"path": folder})
        self.assertEqual(read_tree(folder)["a.txt"], b"AAAA-version-1")
        got = self.ms_download("alice/revs", env=env)
        # (Python's own partial of w.bin overwrote the repo's w.bin.incomplete, so that one is
        # fetched again too.)
        fetched = [f["path"] for f in got["files"] if not f["cached"]]
        self.assertTrue({"a.txt", "w.bin"} <= set(fetched), fetched)
        tree = read_tree(folder)
        self.assertEqual((tree["a.txt"], tree["w.bin"]), (b"AAAA-version-2", b"2" * 3000))
        # A repo file named like Python's partial of another stays (ms removed it as a partial).
        self.assertEqual(tree["w.bin.incomplete"], b"a repo file, not a partial")
        # What Python put there without indexing it is served offline when named.
        env = self.env(MODELSCOPE_CACHE=self.path("part-cache"))
        folder = self.ms_download("alice/revs", "--include", "*.txt", env=env)["local_path"]
        self.py("snapshot", env=env, model_id="alice/revs")
        offline = self.ms_download("alice/revs", "--offline", "w.bin", env=env)
        self.assertEqual([f["path"] for f in offline["files"]], ["w.bin"])

    def test_a_running_python_downloads_partial_is_left_alone(self):
        # ms removes the <path>.incomplete a killed Python download leaves, once the file is
        # whole; one a running Python is writing (it holds its per-file lock) it removed too,
        # and Python failed and started that file again.
        self.upload("alice/busy", {"a.txt": b"whole"}, "--create")
        env = self.env(MODELSCOPE_CACHE=self.path("busy-cache"))
        master = self.snapshot("alice/busy", cache=self.path("busy-cache"))
        self.assertEqual(self.py("snapshot", env=env, model_id="alice/busy"), {"path": master})
        key = "\0".join(("modelscope-hub-download-lock-v2", "file", "model", "alice/busy", "a.txt"))
        lock = self.path("busy-cache", ".lock", f"file_{hashlib.sha256(key.encode()).hexdigest()}.lock")
        self.assertTrue(os.path.isfile(lock), "Python's per-file lock is elsewhere: " +
                        repr(os.listdir(self.path("busy-cache", ".lock"))))
        partial = os.path.join(master, "a.txt.incomplete")
        with open(partial, "wb") as f:
            f.write(b"who")
        with open(lock, "rb") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            self.ms_download("alice/busy", env=env)
            self.assertTrue(os.path.exists(partial), "a partial being written was removed")
        self.ms_download("alice/busy", env=env)
        self.assertFalse(os.path.exists(partial), "a dead download's partial was left")

    def test_dataset_snapshots_are_read_too(self):
        self.upload("alice/data-snap", {"train.csv": b"a,b\n1,2\n"}, "--create", "--dataset")
        folder = os.path.join(self.path("cache"), "datasets", "alice--data-snap", "snapshots", "master")
        self.assertEqual(self.py("dataset", dataset_id="alice/data-snap"), {"path": folder})
        offline = self.ms_download("alice/data-snap", "--dataset", "--offline")
        self.assertEqual(offline["local_path"], folder)
        self.assertIn("train.csv", [f["path"] for f in offline["files"]])
        self.assertEqual(self.ms_download("alice/data-snap", "--dataset")["bytes_to_fetch"], 0)

    def test_ms_downloads_are_found_by_python_without_fetching(self):
        self.upload("alice/ms-first", {"w.bin": os.urandom(50000), "c.json": b"{}"}, "--create")
        cache = self.path("fresh-cache")
        got = self.ms_download("alice/ms-first", env=self.env(MODELSCOPE_CACHE=cache))
        # An empty cache gets the indexed layout, which every modelscope release reads.
        folder = os.path.join(cache, "models", "alice", "ms-first")
        self.assertEqual(got["local_path"], folder)
        before = {n: os.stat(os.path.join(folder, n)).st_ino for n in ("w.bin", "c.json")}
        offline = self.py("snapshot", env=self.env(MODELSCOPE_CACHE=cache), model_id="alice/ms-first",
                          local_files_only=True)
        self.assertEqual(offline, {"path": folder})
        online = self.py("snapshot", env=self.env(MODELSCOPE_CACHE=cache), model_id="alice/ms-first")
        self.assertEqual(online, {"path": folder})
        self.assertEqual({n: os.stat(os.path.join(folder, n)).st_ino for n in before}, before)
        # What Python 1.38+ added there without indexing it (.gitattributes) does not trouble ms.
        self.assertEqual(self.ms_download("alice/ms-first", env=self.env(MODELSCOPE_CACHE=cache))["bytes_to_fetch"], 0)

    def test_new_repos_follow_the_layout_the_cache_uses(self):
        self.upload("alice/py-made", {"a.txt": b"a"}, "--create")
        self.upload("alice/ms-made", {"b.txt": b"b", "sub/c.txt": b"c"}, "--create")
        cache = self.path("py-cache")
        env = self.env(MODELSCOPE_CACHE=cache)
        self.py("snapshot", env=env, model_id="alice/py-made")
        # The cache holds only snapshot folders: Python writes those, so ms does too.
        got = self.ms_download("alice/ms-made", env=env)
        self.assertEqual(got["local_path"], self.snapshot("alice/ms-made", cache=cache))
        self.assertEqual(read_tree(got["local_path"]), {"b.txt": b"b", "sub/c.txt": b"c"})
        self.assertEqual(os.listdir(os.path.join(cache, "models", "alice--ms-made")), ["snapshots"])
        self.assertEqual(self.py("snapshot", env=env, model_id="alice/ms-made", local_files_only=True),
                         {"path": got["local_path"]})
        self.assertEqual(self.py("file", env=env, model_id="alice/ms-made", file_path="sub/c.txt",
                                 local_files_only=True),
                         {"path": os.path.join(got["local_path"], "sub", "c.txt")})
        # MS_CACHE_LAYOUT overrides the choice.
        forced = self.ms_download("alice/ms-made", env=self.env(MODELSCOPE_CACHE=self.path("forced"),
                                                                 MS_CACHE_LAYOUT="snapshots"))
        self.assertEqual(forced["local_path"], self.snapshot("alice/ms-made", cache=self.path("forced")))
        r = self.ms("download", "alice/ms-made", env=self.env(MS_CACHE_LAYOUT="flat"), expect=2)
        self.assertOneLineError(r, "MS_CACHE_LAYOUT", "'flat'")

    def test_offline_without_a_revision_picks_as_python_does(self):
        self.upload("alice/branches", {"a.txt": b"a"}, "--create", "--tag", "t1")
        self.upload("alice/branches", {"a.txt": b"b"}, "--tag", "t2")
        for tag in ("t1", "t2"):
            self.py("snapshot", model_id="alice/branches", revision=tag)
        r = self.ms("download", "alice/branches", "--offline", expect=4)
        self.assertOneLineError(r, "'t1'", "'t2'", "several")
        self.assertIn("--revision", r.stderr)
        got = self.ms_download("alice/branches", "--offline", "--revision", "t1")
        self.assertEqual(read_tree(got["local_path"])["a.txt"], b"a")
        # A local_dir Python 1.38+ filled (no index) is read offline too.
        local = self.path("py-local")
        self.py("snapshot", model_id="alice/branches", revision="t2", local_dir=local)
        self.assertFalse(os.path.exists(os.path.join(local, ".msc")))
        got = self.ms_download("alice/branches", "--local-dir", local, "--offline")
        self.assertEqual(sorted(f["path"] for f in got["files"]), [".gitattributes", "a.txt"])
        # Online into that folder: nothing fetched, and now it is indexed for 1.37 and older.
        got = self.ms_download("alice/branches", "--local-dir", local, "--revision", "t2")
        self.assertEqual(got["bytes_to_fetch"], 0)
        self.assertEqual([e["Path"] for e in read_index(local)], ["a.txt"])


if __name__ == "__main__":
    unittest.main()

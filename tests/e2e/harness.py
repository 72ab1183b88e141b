"""Shared helpers for the end-to-end tests: run the real `ms` binary and check what it did.

Standard library only, so the tests run on any Python 3.9+ without installing anything.
"""
import functools
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

MS_BIN = os.environ.get("MS_BIN") or shutil.which("ms")

# scripts/test.sh (and so CI) sets MS_TESTS_STRICT=1: there every prerequisite is installed, so a
# test that would skip (missing package, venv or build option) fails instead of passing silently.
STRICT = os.environ.get("MS_TESTS_STRICT") == "1"


def _strict_skip_test(self, reason):
    self.fail(f"MS_TESTS_STRICT=1 forbids skipping: {reason}")


def _strict_skip_if(condition, reason):
    def decorate(obj):
        if not condition:
            return obj
        if isinstance(obj, type):
            obj.setUp = lambda self: self.fail(f"MS_TESTS_STRICT=1 forbids skipping: {reason}")
            return obj
        return lambda self, *a, **k: self.fail(f"MS_TESTS_STRICT=1 forbids skipping: {reason}")
    return decorate


if STRICT:
    unittest.TestCase.skipTest = _strict_skip_test
    unittest.skipIf = _strict_skip_if
    unittest.skipUnless = lambda condition, reason: _strict_skip_if(not condition, reason)
# The switches some tests drive (MS_TEST_* variables, `ms hub serve --inject-faults`) exist only in
# an ms built with -DMS_TEST_HOOKS=ON, as scripts/test.sh builds it; CTest then sets
# MS_TEST_HOOKS=1 (set it when running a test script by hand against such a build).
TEST_HOOKS = os.environ.get("MS_TEST_HOOKS") == "1"
SOURCE_DIR = os.environ.get("MS_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_ms(*args, env=None, timeout=120, input=None, cwd=None):
    """Runs `ms ARGS...`; returns the CompletedProcess (text mode). Never raises on a non-zero exit."""
    if not MS_BIN:
        raise RuntimeError("set MS_BIN to the ms binary")
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    # bytes stay bytes: a path that is not UTF-8.
    argv = [a if isinstance(a, bytes) else str(a) for a in args]
    return subprocess.run([MS_BIN, *argv], capture_output=True, text=True, env=full_env,
                          timeout=timeout, input=input, cwd=cwd)


def overwrite_tensor_rows(folder, suffix, first_row, rows, value):
    """Sets `rows` rows from `first_row` of the float32 matrix whose name ends with `suffix` in
    FOLDER/model.safetensors to `value` (a broken or degenerate model, standard library only)."""
    weights = os.path.join(folder, "model.safetensors")
    with open(weights, "rb") as f:
        data = bytearray(f.read())
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    entry = header[next(k for k in header if k.endswith(suffix))]
    width = entry["shape"][1]
    start = 8 + n + entry["data_offsets"][0] + first_row * width * 4
    data[start:start + rows * width * 4] = struct.pack(f"<{rows * width}f", *[value] * (rows * width))
    with open(weights, "wb") as f:
        f.write(data)


def read_to_eof(sock):
    """Everything the peer sends on `sock` until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MsTestCase(unittest.TestCase):
    """Base class: a fresh temporary folder per test and assertions on ms results."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ms-e2e-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, text, mode="w"):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, mode) as f:
            f.write(text)
        return p

    def require_test_hooks(self):
        """Skips (fails under MS_TESTS_STRICT=1) unless this ms has the test-only switches."""
        if not TEST_HOOKS:
            self.skipTest("needs an ms built with -DMS_TEST_HOOKS=ON (scripts/test.sh builds one) "
                          "and MS_TEST_HOOKS=1")

    def wait_for(self, cond, timeout=60):
        """Polls cond() every 50 ms until it holds (True) or `timeout` seconds pass (False)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return True
            time.sleep(0.05)
        return False

    def assertExit(self, result, code, msg=None):
        detail = f"\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        self.assertEqual(result.returncode, code, (msg or "unexpected exit code") + detail)

    def assertOneLineError(self, result, *fragments):
        """The error is one 'ms: error:' line (plus an optional hint) that names each fragment."""
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        errors = [l for l in lines if l.startswith("ms: error:")]
        self.assertEqual(len(errors), 1, f"expected one error line, got:\n{result.stderr}")
        for fragment in fragments:
            self.assertIn(fragment, errors[0], f"error line lacks {fragment!r}:\n{result.stderr}")
        self.assertNotIn("terminate called", result.stderr)

    def json_out(self, result):
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as e:
            self.fail(f"stdout is not JSON ({e}):\n{result.stdout}")


_ENV = None


def venv_python(name, override_env):
    """The python of build/<name> (a venv scripts/setup_python_interop.sh makes) next to MS_BIN's
    build, else in the source tree's build; $<override_env> names another. None when absent."""
    if os.environ.get(override_env):
        return os.environ[override_env]
    builds = [os.path.join(SOURCE_DIR, "build")]
    if MS_BIN:
        builds.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(MS_BIN))))
    for build in builds:
        python = os.path.join(build, name, "bin", "python")
        if os.path.exists(python):
            return python
    return None


def newest_torch_python():
    """The python of build/venv-torch-newest (scripts/setup_python_interop.sh): the newest torch and
    transformers, which users run ($MS_NEWEST_TORCH_PYTHON names another). None when absent."""
    return venv_python("venv-torch-newest", "MS_NEWEST_TORCH_PYTHON")


def require_newest_torch(testcase):
    """Under MS_TESTS_STRICT=1 (CI), fails `testcase` when build/venv-torch-newest is absent: the
    interop tests must meet the newest torch and transformers there, not only the oldest."""
    if STRICT and newest_torch_python() is None:
        testcase.fail("MS_TESTS_STRICT=1: build/venv-torch-newest is absent (run "
                      "scripts/setup_python_interop.sh)")


def transformers_pythons():
    """The Pythons with Hugging Face transformers that the interop tests load ms's files in, oldest
    first: build/venv-transformers (transformers 4.49 over Debian's torch 1.13) and
    build/venv-torch-newest (the newest transformers over the newest torch); only
    $MS_TRANSFORMERS_PYTHON when it is set. Empty when none is there."""
    if os.environ.get("MS_TRANSFORMERS_PYTHON"):
        return [os.environ["MS_TRANSFORMERS_PYTHON"]]
    return [p for p in (venv_python("venv-transformers", "MS_TRANSFORMERS_PYTHON"),
                        newest_torch_python()) if p]


def torch_pythons(modules=("torch",)):
    """torch_python(modules) and the newest torch's python (when it imports `modules`): the
    Pythons that must read what ms writes for torch (checkpoints, TorchScript archives), the
    oldest torch ms supports and the newest. Only $MS_TORCH_PYTHON when it is set."""
    first = torch_python(modules)
    if os.environ.get("MS_TORCH_PYTHON"):
        return [first] if first else []
    newest = newest_torch_python()
    if newest and not python_imports(newest, tuple(modules)):
        newest = None
    return [p for p in (first, newest) if p]


@functools.lru_cache(maxsize=None)
def python_imports(python, modules):
    """Whether `python` imports every module of the tuple `modules`. Asked once per test process:
    each answer starts an interpreter that imports torch (2-3 s)."""
    check = "import " + ", ".join(modules)
    return subprocess.run([python, "-c", check], capture_output=True).returncode == 0


@functools.lru_cache(maxsize=None)
def python_torch_version(python):
    """`torch.__version__` of a Python (for subTest labels), asked once per test process."""
    r = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                       capture_output=True, text=True)
    return r.stdout.strip() or python


class JsonLinesWorker:
    """A long-lived peer process that answers each JSON line written to its stdin with one JSON
    line on its stdout: a transformers or torch peer imports its libraries once for a test class
    instead of once per check (3-4 s of CPU each). Its stderr goes to a file, quoted when it fails."""

    def __init__(self, argv):
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, text=True)

    def _stderr_tail(self):
        self._stderr.seek(0)
        return self._stderr.read()[-3000:]

    def ask(self, request, timeout=300):
        """The answer to `request` (a JSON value); AssertionError naming the worker's stderr when
        it exits or says nothing within `timeout` seconds."""
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # it exited: readline() below says so
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        if not ready:
            self._proc.kill()
            raise AssertionError(f"{self._proc.args[:2]}: no answer in {timeout} s; stderr:\n"
                                 f"{self._stderr_tail()}")
        line = self._proc.stdout.readline()
        if not line:
            raise AssertionError(f"{self._proc.args[:2]} exited ({self._proc.wait()}); stderr:\n"
                                 f"{self._stderr_tail()}")
        return json.loads(line)

    def exited(self):
        """Whether the worker process has ended."""
        return self._proc.poll() is not None

    def close(self):
        """Ends the worker (end of its input), killed if it does not exit within a minute."""
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()


def ms_env():
    """`ms env --json` of the binary under test, read once per test process."""
    global _ENV
    if _ENV is None:
        _ENV = json.loads(run_ms("env", "--json").stdout)
    return _ENV


def component_available(name):
    """Whether this ms was built with an optional part: hub_server, zip, jpeg or png."""
    return bool(ms_env().get("components", {}).get(name))


def torch_available():
    """Whether this ms has its torch layer (a -DMS_WITH_TORCH=OFF build has not)."""
    return bool(ms_env()["libtorch"].get("available"))


def torch_python(modules=("torch",)):
    """A Python that imports `modules` (fixture generators, references): $MS_TORCH_PYTHON, else
    Debian's /usr/bin/python3 (python3-torch, python3-torchvision and python3-pil, which
    scripts/setup.sh installs), else this Python; None if none can."""
    for exe in (os.environ.get("MS_TORCH_PYTHON"), "/usr/bin/python3", sys.executable):
        if exe and os.path.exists(exe) and python_imports(exe, tuple(modules)):
            return exe
    return None


class TorchTestCase(MsTestCase):
    """Tests of commands that need LibTorch: skipped on a build without it, except the tests
    named test_without_torch_*, which check how such a build fails."""

    def setUp(self):
        super().setUp()
        if not torch_available() and not self._testMethodName.startswith("test_without_torch"):
            self.skipTest("this ms is built without LibTorch")

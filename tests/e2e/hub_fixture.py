"""A real `ms hub serve` on 127.0.0.1 for end-to-end tests of the hub client (standard library only)."""
import functools
import glob
import os
import shutil
import subprocess
import tempfile
import unittest

import hubserver
from harness import MS_BIN, SOURCE_DIR, MsTestCase, component_available


def hub_server_available():
    """Whether this ms was built with `ms hub serve`."""
    return component_available("hub_server")


class HubServer(hubserver.HubServer):
    """hubserver.HubServer, started at construction, with fault injection and TLS as arguments."""

    def __init__(self, root, faults=None, extra_env=None, tls=None):
        extra = ["--host", "127.0.0.1"]
        if tls:
            extra += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        if faults:
            extra += ["--inject-faults", faults]
        super().__init__(root, *extra)
        self.start(env=extra_env)


def make_tree(root, files):
    """Writes {relative path: bytes} under root; returns root."""
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return root


class SharedHubTestCase(MsTestCase):
    """One `ms hub serve` for the whole class (alice's token in `token`, bob's in `other_token`);
    each test gets its own cache and credentials folders through env(). `extra_env` adds to it."""

    server = None
    extra_env = {}

    @classmethod
    def setUpClass(cls):
        if not hub_server_available():
            raise unittest.SkipTest("this ms has no `ms hub serve` (built without the hub server)")
        cls.server_root = tempfile.mkdtemp(prefix="ms-hub-root-")
        cls.server = HubServer(cls.server_root)
        cls.token = cls.server.token("alice")
        cls.other_token = cls.server.token("bob")

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.stop()
        shutil.rmtree(cls.server_root, True)

    def env(self, **extra):
        env = {
            "MODELSCOPE_CACHE": self.path("cache"),
            "MODELSCOPE_CREDENTIALS_PATH": self.path("credentials"),
            "MODELSCOPE_ENDPOINT": self.server.endpoint,
            "MODELSCOPE_API_TOKEN": "",
            "MODELSCOPE_OFFLINE": "",
            **self.extra_env,
        }
        env.update(extra)
        return env


def parts_on_disk(state_file):
    """Bytes a ranged download has recorded as written (the records after the header line of
    `<temp>.ms-parts`)."""
    with open(state_file) as f:
        lines = f.read().splitlines()[1:]
    return sum(int(l) for l in lines if l.strip().isdigit())


def find_blob(root, sha256):
    """Path of the blob with this sha256 under the server's storage root."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".sha256-checkpoints"):  # the blob's checkpoints, beside it
                continue
            if sha256 in name or sha256 in os.path.join(folder, name).replace(os.sep, ""):
                return os.path.join(folder, name)
    return None


@functools.lru_cache(maxsize=None)
def modelscope_pythons():
    """{version: python} of every Python `modelscope` to test against, oldest first:
    $MS_MODELSCOPE_PYTHON (one python, its version asked), else the venvs that
    scripts/setup_python_interop.sh (run by scripts/test.sh) makes in the build folder,
    build/venv-modelscope-<version>."""
    candidates = []
    if os.environ.get("MS_MODELSCOPE_PYTHON"):
        candidates.append(os.environ["MS_MODELSCOPE_PYTHON"])
    else:
        builds = [os.path.join(SOURCE_DIR, "build")]
        if MS_BIN:
            builds.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(MS_BIN))))
        for build in builds:
            for venv in sorted(glob.glob(os.path.join(build, "venv-modelscope-*"))):
                if os.path.isdir(venv):
                    candidates.append(os.path.join(venv, "bin", "python"))
    found = {}
    for c in candidates:
        if not os.path.exists(c):
            continue
        r = subprocess.run([c, "-c", "import modelscope; print(modelscope.__version__)"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            found.setdefault(r.stdout.strip().splitlines()[-1], c)
    return dict(sorted(found.items(), key=lambda kv: version_key(kv[0])))


def version_key(version):
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def python_with_modelscope(at_least=None, below=None):
    """(version, python) of the newest tested `modelscope` in [at_least, below), or (None, None)."""
    best = (None, None)
    for version, python in modelscope_pythons().items():
        if at_least and version_key(version) < version_key(at_least):
            continue
        if below and version_key(version) >= version_key(below):
            continue
        best = (version, python)
    return best


def make_certificate(folder):
    """A self-signed certificate for 127.0.0.1 (cert, key), or None without the openssl tool."""
    if not shutil.which("openssl"):
        return None
    cert, key = os.path.join(folder, "hub.pem"), os.path.join(folder, "hub.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, timeout=60)
    return (cert, key) if r.returncode == 0 else None

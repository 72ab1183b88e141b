"""A real `ms hub serve` on 127.0.0.1 for end-to-end tests of the hub client (standard library only)."""
import os
import shutil
import subprocess
import tempfile
import unittest

import hubserver
from harness import MsTestCase, component_available


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


def find_blob(root, sha256):
    """Path of the blob with this sha256 under the server's storage root."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".sha256-checkpoints"):  # the blob's checkpoints, beside it
                continue
            if sha256 in name or sha256 in os.path.join(folder, name).replace(os.sep, ""):
                return os.path.join(folder, name)
    return None


def python_with_modelscope():
    """A python that can `import modelscope` (a venv named by MS_MODELSCOPE_PYTHON, or the usual venvs)."""
    candidates = [os.environ.get("MS_MODELSCOPE_PYTHON")]
    source = os.environ.get("MS_SOURCE_DIR", "")
    for venv in ("build/venv-modelscope", ".venv-modelscope"):
        candidates.append(os.path.join(source, venv, "bin", "python"))
    candidates.append(os.path.expanduser("~/.cache/ms-venv-modelscope136/bin/python"))
    for c in candidates:
        if c and os.path.exists(c):
            r = subprocess.run([c, "-c", "import modelscope"], capture_output=True, timeout=120)
            if r.returncode == 0:
                return c
    return None


def make_certificate(folder):
    """A self-signed certificate for 127.0.0.1 (cert, key), or None without the openssl tool."""
    if not shutil.which("openssl"):
        return None
    cert, key = os.path.join(folder, "hub.pem"), os.path.join(folder, "hub.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, timeout=60)
    return (cert, key) if r.returncode == 0 else None

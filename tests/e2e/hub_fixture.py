"""A real `ms hub serve` on 127.0.0.1 for end-to-end tests of the hub client (standard library only)."""
import os
import shutil
import subprocess

import hubserver
from harness import component_available


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


def find_blob(root, sha256):
    """Path of the blob with this sha256 under the server's storage root."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
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

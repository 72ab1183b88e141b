"""A real `ms hub serve` on 127.0.0.1 for end-to-end tests of the hub client (standard library only)."""
import json
import os
import shutil
import subprocess
import time

from harness import MS_BIN, run_ms


def hub_server_available():
    """Whether this ms was built with `ms hub serve`."""
    result = run_ms("hub", "serve", "--help")
    return result.returncode == 0


class HubServer:
    """`ms hub serve --root ROOT --port 0`, stopped by stop(). Bounded: start waits at most 20 s."""

    def __init__(self, root, faults=None, extra_env=None, tls=None):
        self.root = root
        args = [MS_BIN, "hub", "serve", "--root", root, "--host", "127.0.0.1", "--port", "0", "--json"]
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        if faults:
            args += ["--inject-faults", faults]
        env = dict(os.environ)
        env.update(extra_env or {})
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 20
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line.strip() or self.proc.poll() is not None:
                break
        if not line.strip():
            self.stop()
            raise RuntimeError("ms hub serve did not start: " + (self.proc.stderr.read() or ""))
        self.endpoint = json.loads(line)["endpoint"]

    def token(self, user):
        result = run_ms("hub", "token", "create", user, "--root", self.root, "--json")
        if result.returncode != 0:
            raise RuntimeError("token create failed: " + result.stderr)
        return json.loads(result.stdout)["token"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


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

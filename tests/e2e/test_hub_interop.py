"""Interop: the official Python `modelscope` package uploads to and downloads from `ms hub serve`.

Needs the venv made by scripts/setup_python_interop.sh (modelscope pinned there); skipped with a
message when it is absent. The server runs with TLS (a self-signed certificate made by openssl)
because the Python client always builds https:// URLs from MODELSCOPE_DOMAIN.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MS_BIN, SOURCE_DIR, MsTestCase  # noqa: E402
from hubserver import HubServer  # noqa: E402

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop", "modelscope_client.py")


def modelscope_python():
    candidates = [os.environ.get("MS_MODELSCOPE_PYTHON")]
    if MS_BIN:
        candidates.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(MS_BIN))),
                                       "venv-modelscope", "bin", "python"))
    candidates.append(os.path.join(SOURCE_DIR, "build", "venv-modelscope", "bin", "python"))
    for c in candidates:
        if c and os.path.exists(c):
            return c
    return None


class ModelscopeInteropTest(MsTestCase):
    def setUp(self):
        super().setUp()
        self.python = modelscope_python()
        if not self.python:
            self.skipTest("the modelscope venv is absent: run scripts/setup_python_interop.sh "
                          "(or set MS_MODELSCOPE_PYTHON)")
        if not shutil.which("openssl"):
            self.skipTest("openssl is needed to make a self-signed certificate")

    def test_upload_and_download_with_python_modelscope(self):
        cert, key = self.path("cert.pem"), self.path("key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True, timeout=60)
        root = self.path("root")
        token = HubServer(root).token("alice")
        server = HubServer(root, "--tls-cert", cert, "--tls-key", key).start()
        self.addCleanup(server.stop)
        self.assertTrue(server.endpoint.startswith("https://127.0.0.1:"))

        work = self.path("work")
        files = {"configuration.json": b'{"framework": "pytorch"}', "empty.txt": b"",
                 "sub/dir/notes.v1.md": b"# notes\n", "sub/ünïcode.txt": "ünï\n".encode(),
                 "weights/model.safetensors": os.urandom(2 * 1024 * 1024 + 3)}
        for rel, data in files.items():
            p = os.path.join(work, "src", rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
        expected = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}

        def run(mode):
            env = dict(os.environ, MODELSCOPE_DOMAIN=f"127.0.0.1:{server.port}", REQUESTS_CA_BUNDLE=cert,
                       MODELSCOPE_CREDENTIALS_PATH=os.path.join(work, "cred-" + mode),
                       MODELSCOPE_CACHE=os.path.join(work, "mscache"))
            env.pop("MODELSCOPE_API_TOKEN", None)
            r = subprocess.run([self.python, CLIENT, mode, token, work], capture_output=True, text=True,
                               env=env, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr[-4000:])
            return json.loads(r.stdout.strip().splitlines()[-1])

        result = run("main")
        self.assertTrue(result["login"])
        self.assertEqual(result["listed_models"], ["interop-model"])
        self.assertEqual(result["model_files"], {**expected, "extra/single.txt": hashlib.sha256(b"single file\n").hexdigest()})
        self.assertEqual(result["dataset_files"], expected)
        self.assertEqual(result["private_files"], {"secret.txt": hashlib.sha256(b"secret\n").hexdigest()})
        self.assertEqual(run("anonymous")["private_without_token"], "HTTPError")

        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()

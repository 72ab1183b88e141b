"""Runs a real `ms hub serve` on 127.0.0.1 for end-to-end tests, and talks to it (stdlib only)."""
import base64
import hashlib
import http.client
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse

from harness import MS_BIN, run_ms


class HubServer:
    """`ms hub serve --port 0` on a root folder; start() waits for the 'listening on' line."""

    def __init__(self, root, *extra):
        self.root = root
        self.extra = [str(e) for e in extra]
        self.proc = None
        self.endpoint = None

    def start(self, timeout=20, env=None):
        env = {**os.environ, **(env or {})}
        # stderr goes to a file next to the root: a pipe nobody reads could fill up and block.
        self.stderr = open(self.root.rstrip("/") + ".stderr", "a")
        # The stop signals as a terminal's job has them (tests stop it with SIGTERM and SIGHUP):
        # a run under nohup, or in a script's background, would pass SIGHUP / SIGINT on ignored.
        def default_signals():
            for signo in (signal.SIGHUP, signal.SIGINT):
                signal.signal(signo, signal.SIG_DFL)
        self.proc = subprocess.Popen([MS_BIN, "hub", "serve", "--root", self.root, "--port", "0", *self.extra],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env,
                                     preexec_fn=default_signals)
        line = [None]

        def read():
            line[0] = self.proc.stdout.readline()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if not line[0] or "listening on" not in line[0]:
            self.proc.kill()
            self.proc.communicate(timeout=10)
            self._close()
            with open(self.stderr.name) as f:
                raise RuntimeError(f"ms hub serve did not start: {line[0]!r} {f.read()}")
        self.endpoint = line[0].strip().rsplit(" ", 1)[-1]
        parsed = urllib.parse.urlparse(self.endpoint)
        self.host, self.port = parsed.hostname, parsed.port
        return self

    def log(self):
        """What the servers on this root have written to stderr so far (e.g. injected faults)."""
        with open(self.stderr.name, errors="replace") as f:
            return f.read()

    def _close(self):
        for f in (self.proc.stdout, self.stderr):
            if f and not f.closed:
                f.close()

    def stop(self, timeout=15, signo=signal.SIGTERM):
        """SIGTERM (or signo), then the exit code (the test expects 0; None when it had to be
        killed)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signo)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self._close()
                return None
        self._close()
        return self.proc.returncode

    def token(self, user):
        r = run_ms("hub", "token", "create", user, "--root", self.root)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return r.stdout.strip()

    # --- HTTP -----------------------------------------------------------------------------------
    def request(self, method, path, body=None, token=None, cookie=True, headers=None, timeout=30):
        """Returns (status, headers dict (lower-case keys), body bytes)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if token:
            if cookie:
                h["Cookie"] = f"m_session_id={token}"
            else:
                h["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def api(self, method, path, body=None, token=None, **kw):
        """Like request(), with the JSON envelope parsed: (status, envelope)."""
        status, _, data = self.request(method, path, body, token, **kw)
        return status, json.loads(data) if data else None

    # --- helpers for common flows ---------------------------------------------------------------
    def create_model(self, token, owner, name, visibility=5):
        return self.api("POST", "/api/v1/models",
                        {"Path": owner, "Name": name, "Visibility": visibility, "ChineseName": None}, token)

    def upload_blob(self, token, repo, data, kind="models"):
        sha = hashlib.sha256(data).hexdigest()
        status, env = self.api("POST", f"/api/v1/repos/{kind}/{repo}/info/lfs/objects/batch",
                               {"operation": "upload", "objects": [{"oid": sha, "size": len(data)}]}, token)
        assert status == 200, env
        obj = env["Data"]["objects"][0]
        if "actions" in obj:
            href = urllib.parse.urlparse(obj["actions"]["upload"]["href"])
            status, _, body = self.request("PUT", href.path + "?" + href.query, data, token)
            assert status == 200, body
        return sha

    def commit(self, token, repo, files=(), lfs=(), deletes=(), revision="master", kind="models",
               message="test commit"):
        """files: {path: bytes} inline; lfs: {path: bytes} uploaded as blobs first."""
        actions = []
        for path, data in dict(files).items():
            actions.append({"action": "create", "path": path, "type": "normal", "size": len(data),
                            "sha256": "", "content": base64.b64encode(data).decode(), "encoding": "base64"})
        for path, data in dict(lfs).items():
            sha = self.upload_blob(token, repo, data, kind)
            actions.append({"action": "create", "path": path, "type": "lfs", "size": len(data),
                            "sha256": sha, "content": "", "encoding": ""})
        for path in deletes:
            actions.append({"action": "delete", "path": path})
        return self.api("POST", f"/api/v1/repos/{kind}/{repo}/commit/{revision}",
                        {"commit_message": message, "actions": actions}, token)

    def files(self, repo, revision="master", token=None, kind="models", recursive=True, root=None):
        q = {"Revision": revision, "Recursive": "True" if recursive else "False"}
        if root is not None:
            q["Root"] = root
        status, env = self.api("GET", f"/api/v1/{kind}/{repo}/repo/files?" + urllib.parse.urlencode(q),
                               token=token)
        return status, env

    def download(self, repo, path, revision="master", token=None, kind="models", headers=None):
        q = urllib.parse.urlencode({"Revision": revision, "FilePath": path})
        return self.request("GET", f"/api/v1/{kind}/{repo}/repo?{q}", token=token, headers=headers)

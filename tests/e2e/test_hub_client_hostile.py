"""`ms download` against a misbehaving hub (a stdlib mock on 127.0.0.1): unsafe listed paths,
ignored Range requests, cut connections, invalid JSON and oversized bodies. Bounded: each case
is a handful of requests with short timeouts."""
import hashlib
import http.server
import json
import os
import threading
import urllib.parse

from harness import MsTestCase, run_ms

CONTENT = os.urandom(3 << 20)


class MockHub(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "ok"
        self.listed_path = "w.bin"
        self.gets = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address):
        pass  # the client hanging up on a refused transfer is expected here

    def stop(self):
        self.shutdown()
        self.server_close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, data, raw=None):
        body = raw if raw is not None else json.dumps({"Code": 200, "Success": True, "Data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        hub = self.server
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path.endswith("/repo/files"):
            if hub.mode == "garbage_json":
                return self.send_json(None, raw=b"<html>not json")
            size = len(CONTENT)
            if hub.mode == "big_listing":
                # 60 small files whose entries carry 25 KB of commit message: a 1.5 MB listing.
                return self.send_json({"Files": [
                    {"Path": f"many/f{i:03d}.txt", "Type": "blob", "Size": 3, "Revision": "c1",
                     "Sha256": hashlib.sha256(b"abc").hexdigest(), "CommitMessage": "m" * 25000}
                    for i in range(60)]})
            return self.send_json({"Files": [{"Path": hub.listed_path, "Name": "w.bin", "Type": "blob", "Size": size,
                                              "Sha256": hashlib.sha256(CONTENT).hexdigest(), "Revision": "c1"}]})
        if url.path.endswith("/revisions"):
            return self.send_json({"RevisionMap": {"Branches": [{"Revision": "master", "CreatedAt": 1}], "Tags": []}})
        if url.path.endswith("/repo") and "FilePath" in query:
            hub.gets += 1
            if hub.mode == "big_listing":
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"abc")
                return
            rng = self.headers.get("Range")
            start = 0
            if rng and hub.mode not in ("ignore_range",):
                start = int(rng.split("=")[1].split("-")[0])
            body = CONTENT[start:]
            if hub.mode == "oversized":
                body = CONTENT + b"extra bytes"
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if hub.mode in ("ignore_range", "cut_then_ok") and hub.gets == 1:
                # Cut the first transfer half way, so the client asks for a Range next.
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


class HostileHubTest(MsTestCase):
    def setUp(self):
        super().setUp()
        self.hub = MockHub()
        self.addCleanup(self.hub.stop)

    def download(self, *extra):
        env = {"MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_ENDPOINT": self.hub.endpoint,
               "MODELSCOPE_API_TOKEN": "", "MODELSCOPE_CREDENTIALS_PATH": self.path("cred"),
               "MS_HUB_RETRIES": "3", "MS_HUB_STALL_TIMEOUT": "5", "MODELSCOPE_OFFLINE": ""}
        return run_ms("download", "o/n", "--max-workers", "1", *extra, env=env, timeout=120)

    def cached(self):
        return os.path.join(self.path("cache"), "models", "o", "n", "w.bin")

    def test_sane_mock_downloads(self):
        self.assertExit(self.download(), 0)
        with open(self.cached(), "rb") as f:
            self.assertEqual(f.read(), CONTENT)

    def test_cut_connection_resumes_with_range(self):
        self.hub.mode = "cut_then_ok"
        self.assertExit(self.download(), 0)
        with open(self.cached(), "rb") as f:
            self.assertEqual(f.read(), CONTENT)
        self.assertEqual(self.hub.gets, 2)

    def test_unsafe_listed_paths_are_refused(self):
        for bad in ("../../escape.bin", "/etc/evil", "a/../../b", "a\\b"):
            with self.subTest(path=bad):
                self.hub.listed_path = bad
                r = self.download()
                self.assertExit(r, 7)
                self.assertOneLineError(r, "unsafe")
                self.assertFalse(os.path.exists(self.path("escape.bin")))
                self.assertFalse(os.path.exists(os.path.join(self.path("cache"), "escape.bin")))
        self.assertEqual(self.hub.gets, 0)

    def test_ignored_range_never_corrupts_the_cache(self):
        self.hub.mode = "ignore_range"
        r = self.download()
        self.assertExit(r, 5)
        self.assertOneLineError(r, "Range")
        self.assertFalse(os.path.exists(self.cached()))
        # The partial file kept for resuming holds only correct bytes: a sane hub completes it.
        self.hub.mode = "ok"
        self.assertExit(self.download(), 0)
        with open(self.cached(), "rb") as f:
            self.assertEqual(f.read(), CONTENT)

    def test_oversized_body_is_refused(self):
        self.hub.mode = "oversized"
        r = self.download()
        self.assertNotEqual(r.returncode, 0)
        self.assertOneLineError(r)
        self.assertFalse(os.path.exists(self.cached()))

    def test_listing_over_a_megabyte(self):
        self.hub.mode = "big_listing"
        r = self.download("--json")
        self.assertExit(r, 0)
        self.assertEqual(len(json.loads(r.stdout)["files"]), 60)
        self.assertEqual(len(os.listdir(os.path.join(self.path("cache"), "models", "o", "n", "many"))), 60)

    def test_invalid_json_is_a_network_error(self):
        self.hub.mode = "garbage_json"
        r = self.download()
        self.assertExit(r, 5)
        self.assertOneLineError(r, "invalid JSON")


if __name__ == "__main__":
    import unittest
    unittest.main()

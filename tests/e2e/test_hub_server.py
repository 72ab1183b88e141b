"""End-to-end tests of `ms hub serve`: the ModelScope HTTP API against a real server on 127.0.0.1."""
import gzip
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MS_BIN, MsTestCase, read_to_eof, run_ms  # noqa: E402
from hubserver import HubServer  # noqa: E402


class HubServerTest(MsTestCase):
    def setUp(self):
        super().setUp()
        self.root = self.path("root")
        self.server = HubServer(self.root)
        self.alice = self.server.token("alice")
        self.bob = self.server.token("bob")
        self.server.start()
        self.addCleanup(self.server.stop)

    def make_repo(self, name="m", visibility=5):
        status, env = self.server.create_model(self.alice, "alice", name, visibility)
        self.assertEqual(status, 200, env)
        return f"alice/{name}"

    # --- repos, revisions, tags ---------------------------------------------------------------
    def test_create_info_revisions_tags(self):
        repo = self.make_repo()
        status, env = self.server.api("GET", f"/api/v1/models/{repo}")
        self.assertEqual(status, 200)
        self.assertEqual(set(env), {"Code", "Data", "Message", "RequestId", "Success"})
        self.assertTrue(env["Success"])
        self.assertEqual(env["Data"]["Name"], "m")
        self.assertEqual(env["Data"]["Visibility"], 5)
        status, env = self.server.create_model(self.alice, "alice", "m")
        self.assertEqual(status, 409, env)
        self.assertFalse(env["Success"])
        # Visibility must be a known code.
        status, env = self.server.create_model(self.alice, "alice", "bad", visibility=2)
        self.assertEqual(status, 400, env)

        self.assertEqual(self.server.commit(self.alice, repo, {"a.txt": b"one"})[0], 200)
        status, env = self.server.api("POST", f"/api/v1/models/{repo}/repo/tag",
                                      {"TagName": "v1", "Ref": "master"}, self.alice)
        self.assertEqual(status, 200, env)
        for reserved in ("master", "main", "v1"):
            status, env = self.server.api("POST", f"/api/v1/models/{repo}/repo/tag",
                                          {"TagName": reserved, "Ref": "master"}, self.alice)
            self.assertEqual(status, 400, (reserved, env))
        status, env = self.server.api("POST", f"/api/v1/models/{repo}/repo/tag",
                                      {"TagName": "v2", "Ref": "nope"}, self.alice)
        self.assertEqual(status, 400, env)
        # Refs are also served over git, so their names follow git's rules: 'v1 rc' used to be
        # accepted and reached `git clone` as a tag 'v1 rc' advertised, read as 'v1'.
        for bad in ("v1 rc", "a~1", "b^2", "c:d", "e..f", "g@{1}", "h.lock", ".hidden", "x/.y",
                    "end.", "q?", "s*", "[t", "u\tv"):
            status, env = self.server.api("POST", f"/api/v1/models/{repo}/repo/tag",
                                          {"TagName": bad, "Ref": "master"}, self.alice)
            self.assertEqual(status, 400, (bad, env))
            if "/" not in bad:  # the commit route takes one path segment
                status, env = self.server.commit(self.alice, repo, {"b.txt": b"b"},
                                                 revision=urllib.parse.quote(bad, safe=""))
                self.assertEqual(status, 400, (bad, env))
        other = self.make_repo("refs")
        status, env = self.server.api("POST", f"/api/v1/models/{other}/repo/tag",
                                      {"TagName": "release/v1.0-rc_1", "Ref": "master"}, self.alice)
        self.assertEqual(status, 200, env)
        self.assertEqual(self.server.commit(self.alice, repo, {"a.txt": b"two"})[0], 200)
        status, env = self.server.api("GET", f"/api/v1/models/{repo}/revisions")
        self.assertEqual(status, 200)
        rmap = env["Data"]["RevisionMap"]
        self.assertEqual([b["Revision"] for b in rmap["Branches"]], ["master"])
        self.assertEqual([t["Revision"] for t in rmap["Tags"]], ["v1"])
        self.assertIsInstance(rmap["Tags"][0]["CreatedAt"], int)
        # The tag still serves the old content; master the new one.
        self.assertEqual(self.server.download(repo, "a.txt", "v1")[2], b"one")
        self.assertEqual(self.server.download(repo, "a.txt", "master")[2], b"two")
        status, _, _ = self.server.download(repo, "a.txt", "nope")
        self.assertEqual(status, 404)
        # Commit history, newest first, paged.
        status, env = self.server.api("GET", f"/api/v1/models/{repo}/commits?Ref=master&PageNumber=1&PageSize=2")
        self.assertEqual(status, 200)
        self.assertEqual(env["TotalCount"], 3)
        self.assertEqual(len(env["Data"]["Commit"]), 2)
        self.assertEqual(env["Data"]["Commit"][0]["Message"], "test commit")
        status, env = self.server.api("GET", f"/api/v1/models/{repo}/commits?Ref=master&PageNumber=2&PageSize=2")
        self.assertEqual(env["Data"]["Commit"][0]["Title"], "Initial commit")
        # Unknown repo.
        self.assertEqual(self.server.api("GET", "/api/v1/models/alice/none")[0], 404)

    def test_concurrent_creates_of_one_repo(self):
        results = []

        def create():
            results.append(self.server.create_model(self.alice, "alice", "contested")[0])

        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # One wins; every other sees the 409 a create after it would get.
        self.assertEqual(sorted(results), [200] + [409] * 7)

    def test_list_models(self):
        self.make_repo("pub1")
        self.make_repo("priv", visibility=1)
        self.make_repo("pub2")
        status, env = self.server.api("PUT", "/api/v1/models/", {"Path": "alice", "PageNumber": 1, "PageSize": 10})
        self.assertEqual(status, 200, env)
        self.assertEqual([m["Name"] for m in env["Data"]["Models"]], ["pub1", "pub2"])
        self.assertEqual(env["Data"]["TotalCount"], 2)
        status, env = self.server.api("PUT", "/api/v1/models/", {"Path": "alice", "PageNumber": 2, "PageSize": 2},
                                      self.alice)
        self.assertEqual(([m["Name"] for m in env["Data"]["Models"]], env["Data"]["TotalCount"]), (["pub2"], 3))
        status, env = self.server.api("PUT", "/api/v1/models/", {"Path": "alice", "PageSize": 0})
        self.assertEqual(status, 400, env)

    def test_login(self):
        status, headers, body = self.server.request("POST", "/api/v1/login", json.dumps({"AccessToken": self.alice}))
        self.assertEqual(status, 200, body)
        env = json.loads(body)
        self.assertEqual(env["Data"]["Username"], "alice")
        self.assertTrue(env["Data"]["AccessToken"])
        self.assertIn("m_session_id=" + self.alice, headers.get("set-cookie", ""))
        status, env = self.server.api("POST", "/api/v1/login", {"AccessToken": "ms-wrong"})
        self.assertEqual(status, 401)
        self.assertFalse(env["Success"])
        status, env = self.server.api("POST", "/api/v1/login", None, headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400)

    # --- upload flow and listing ----------------------------------------------------------------
    def test_commit_inline_lfs_dedup_and_listing(self):
        repo = self.make_repo()
        big = os.urandom(3 * 1024 * 1024 + 7)
        sha = hashlib.sha256(big).hexdigest()
        status, env = self.server.commit(self.alice, repo, files={"config.json": b"{}", "empty.txt": b"",
                                                                  "dir/ünï code.txt": b"x"},
                                         lfs={"weights/model.bin": big})
        self.assertEqual(status, 200, env)
        self.assertEqual(len(env["Data"]["oid"]), 40)
        # The server now has the blob: the batch check asks for no upload.
        status, env = self.server.api("POST", f"/api/v1/repos/models/{repo}/info/lfs/objects/batch",
                                      {"operation": "upload", "objects": [{"oid": sha, "size": len(big)},
                                                                          {"oid": "0" * 64, "size": 3}]}, self.alice)
        self.assertEqual(status, 200, env)
        objs = {o["oid"]: o for o in env["Data"]["objects"]}
        self.assertNotIn("actions", objs[sha])
        self.assertIn("href", objs["0" * 64]["actions"]["upload"])

        status, env = self.server.files(repo)
        self.assertEqual(status, 200)
        entries = {f["Path"]: f for f in env["Data"]["Files"]}
        self.assertIn(".gitattributes", entries)
        for key in ("Path", "Name", "Type", "Size", "Sha256", "Revision", "IsLFS", "CommittedDate",
                    "CommitMessage", "CommitterName", "Mode", "InCheck"):
            self.assertIn(key, entries["weights/model.bin"], key)
        w = entries["weights/model.bin"]
        self.assertEqual((w["Type"], w["Size"], w["Sha256"], w["IsLFS"], w["Name"]),
                         ("blob", len(big), sha, True, "model.bin"))
        self.assertEqual(entries["config.json"]["IsLFS"], False)
        self.assertEqual(entries["empty.txt"]["Size"], 0)
        self.assertEqual(entries["empty.txt"]["Sha256"], hashlib.sha256(b"").hexdigest())
        self.assertEqual(entries["weights"]["Type"], "tree")
        self.assertIn("dir/ünï code.txt", entries)
        # Non-recursive and Root-filtered listings.
        _, env = self.server.files(repo, recursive=False)
        self.assertEqual(sorted(f["Path"] for f in env["Data"]["Files"]),
                         [".gitattributes", "config.json", "dir", "empty.txt", "weights"])
        _, env = self.server.files(repo, root="weights")
        self.assertEqual([f["Path"] for f in env["Data"]["Files"]], ["weights/model.bin"])
        # Content round trip, and the per-file Revision is a commit that serves it.
        status, _, body = self.server.download(repo, "weights/model.bin", w["Revision"])
        self.assertEqual((status, hashlib.sha256(body).hexdigest()), (200, sha))
        status, _, body = self.server.download(repo, "dir/ünï code.txt")
        self.assertEqual((status, body), (200, b"x"))
        status, headers, body = self.server.download(repo, "empty.txt")
        self.assertEqual((status, body), (200, b""))
        # Delete a file and a folder.
        status, env = self.server.commit(self.alice, repo, deletes=["config.json", "weights"])
        self.assertEqual(status, 200, env)
        _, env = self.server.files(repo)
        self.assertEqual(sorted(f["Path"] for f in env["Data"]["Files"] if f["Type"] == "blob"),
                         [".gitattributes", "dir/ünï code.txt", "empty.txt"])
        status, env = self.server.commit(self.alice, repo, deletes=["config.json"])
        self.assertEqual(status, 400, env)
        # A file cannot also be a folder.
        status, env = self.server.commit(self.alice, repo, {"empty.txt/x": b"1"})
        self.assertEqual(status, 400, env)

    def test_lfs_commit_without_blob_and_bad_blobs(self):
        repo = self.make_repo()
        missing = hashlib.sha256(b"never uploaded").hexdigest()
        status, env = self.server.api("POST", f"/api/v1/repos/models/{repo}/commit/master", {
            "commit_message": "x",
            "actions": [{"action": "create", "path": "w.bin", "type": "lfs", "size": 14, "sha256": missing}]},
            self.alice)
        self.assertEqual(status, 400, env)
        self.assertIn(missing, env["Message"])
        # A blob whose bytes do not hash to the URL's sha256 is rejected and not stored.
        data = b"these bytes are not what the sha says"
        wrong = hashlib.sha256(b"other").hexdigest()
        path = f"/api/v1/repos/models/{repo}/info/lfs/objects/{wrong}"
        status, _, body = self.server.request("PUT", path, data, self.alice)
        self.assertEqual(status, 400, body)
        self.assertIn("mismatch", json.loads(body)["Message"])
        self.assertFalse(os.path.exists(os.path.join(self.root, "blobs", wrong[:2], wrong)))
        self.assertEqual(os.listdir(os.path.join(self.root, "tmp")), [])
        # Declared size differs from the body.
        right = hashlib.sha256(data).hexdigest()
        status, _, body = self.server.request(
            "PUT", f"/api/v1/repos/models/{repo}/info/lfs/objects/{right}?size={len(data) + 1}", data, self.alice)
        self.assertEqual(status, 400, body)
        # Committing with a size that differs from the stored blob fails too.
        self.server.upload_blob(self.alice, repo, data)
        status, env = self.server.api("POST", f"/api/v1/repos/models/{repo}/commit/master", {
            "actions": [{"action": "create", "path": "w.bin", "type": "lfs", "size": 1, "sha256": right}]},
            self.alice)
        self.assertEqual(status, 400, env)
        # Malformed bodies.
        for body in (b"not json", b"[]", json.dumps({"actions": "x"}).encode(),
                     json.dumps({"actions": [{"action": "create", "path": 5}]}).encode(),
                     json.dumps({"actions": [{"action": "rename", "path": "a"}]}).encode(),
                     json.dumps({"actions": [{"action": "create", "path": "a", "content": "!!!"}]}).encode()):
            status, _, out = self.server.request("POST", f"/api/v1/repos/models/{repo}/commit/master", body,
                                                 self.alice)
            self.assertEqual(status, 400, (body, out))

    def test_inline_content_must_be_strict_base64(self):
        repo = self.make_repo()
        commit_path = f"/api/v1/repos/models/{repo}/commit/master"

        def commit(content):
            return self.server.api("POST", commit_path, {"actions": [
                {"action": "create", "path": "b.txt", "type": "normal", "content": content,
                 "encoding": "base64"}]}, self.alice)

        # Padding in the middle, or where no data precedes it, used to be decoded into bytes
        # nobody sent ("YQ==YQ==" was stored as "a\0\0a").
        for garbage in ("YQ==YQ==", "=YQ=", "Y===", "YQ", "YQ=", "!!!!", "YW\u00e9j", "YWJj\u0000==="):
            status, env = commit(garbage)
            self.assertEqual(status, 400, (garbage, env))
            self.assertIn("not valid base64", env["Message"])
        _, env = self.server.files(repo, token=self.alice)
        self.assertNotIn("b.txt", [f["Path"] for f in env["Data"]["Files"]])
        for text, data in (("", b""), ("YQ==", b"a"), ("YWI=", b"ab"), ("YWJj", b"abc"),
                           ("YWJj\nZGVm\r\n", b"abcdef"), ("/+/+", bytes([0xff, 0xef, 0xfe]))):
            status, env = commit(text)
            self.assertEqual(status, 200, (text, env))
            self.assertEqual(self.server.download(repo, "b.txt")[2], data, text)

    def test_interrupted_blob_upload_leaves_nothing(self):
        repo = self.make_repo()
        data = os.urandom(100000)
        sha = hashlib.sha256(data).hexdigest()
        with socket.create_connection((self.server.host, self.server.port), timeout=10) as s:
            s.sendall((f"PUT /api/v1/repos/models/{repo}/info/lfs/objects/{sha} HTTP/1.1\r\n"
                       f"Host: 127.0.0.1\r\nCookie: m_session_id={self.alice}\r\n"
                       f"Content-Length: {len(data)}\r\n\r\n").encode() + data[:30000])
        blob = os.path.join(self.root, "blobs", sha[:2], sha)
        # The server drops the partial upload once it sees the connection closed.
        self.wait_for(lambda: not os.listdir(os.path.join(self.root, "tmp")))
        self.assertEqual(os.listdir(os.path.join(self.root, "tmp")), [])
        self.assertFalse(os.path.exists(blob))
        # The batch check still asks for the blob, and a full upload then works.
        self.assertEqual(self.server.upload_blob(self.alice, repo, data), sha)
        self.assertTrue(os.path.exists(blob))

    # --- Range ----------------------------------------------------------------------------------
    def test_range_downloads(self):
        repo = self.make_repo()
        data = bytes(range(256)) * 40
        self.server.commit(self.alice, repo, lfs={"f.bin": data})
        cases = {"bytes=0-9": (0, 9), "bytes=100-": (100, len(data) - 1), "bytes=-16": (len(data) - 16, len(data) - 1),
                 "bytes=10-99999999": (10, len(data) - 1), f"bytes={len(data) - 1}-": (len(data) - 1, len(data) - 1)}
        for rng, (a, b) in cases.items():
            status, headers, body = self.server.download(repo, "f.bin", headers={"Range": rng})
            self.assertEqual(status, 206, rng)
            self.assertEqual(body, data[a:b + 1], rng)
            self.assertEqual(headers["content-range"], f"bytes {a}-{b}/{len(data)}", rng)
        for rng in (f"bytes={len(data)}-", "bytes=50-10", "bytes=-0", "bytes=abc", "bytes=1-2-3"):
            status, headers, body = self.server.download(repo, "f.bin", headers={"Range": rng})
            self.assertEqual(status, 416, (rng, body[:200]))
        status, headers, body = self.server.download(repo, "f.bin")
        self.assertEqual((status, body, headers.get("accept-ranges")), (200, data, "bytes"))
        # If-Range: the range only for the version the client has (its ETag); another version, a
        # weak validator or a date gets the whole file (RFC 9110 section 13.1.5). A range past a
        # version that changed would have joined two versions' bytes.
        etag = headers["etag"]
        status, headers, body = self.server.download(repo, "f.bin",
                                                     headers={"Range": "bytes=10-19", "If-Range": etag})
        self.assertEqual((status, body), (206, data[10:20]))
        for validator in ('"not-the-etag"', "W/" + etag, "Tue, 01 Dec 2026 10:00:00 GMT"):
            status, headers, body = self.server.download(repo, "f.bin",
                                                         headers={"Range": "bytes=10-19", "If-Range": validator})
            self.assertEqual((status, body), (200, data), validator)
            self.assertNotIn("content-range", headers, validator)

    def test_header_fields_rfc_9112_has_a_server_refuse(self):
        # White space before a field's colon ("Host : x" came through as a field "Host ", which a
        # proxy in front may read otherwise), and an HTTP/1.1 request without exactly one Host.
        def status_of(request):
            with socket.create_connection((self.server.host, self.server.port), timeout=30) as s:
                s.sendall(request)
                return int(s.recv(4096).split(b" ", 2)[1])
        path = b"/api/v1/models/nobody/nothing"
        for request in (b"GET %s HTTP/1.1\r\nHost : x\r\n\r\n",
                        b"GET %s HTTP/1.1\r\nHost: x\r\nX-Odd\t: y\r\n\r\n",
                        b"GET %s HTTP/1.1\r\n\r\n",
                        b"GET %s HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"):
            self.assertEqual(status_of(request % path), 400, request)
        # HTTP/1.0 needs no Host, and an empty one is allowed; a well-formed request gets the
        # route's own answer.
        for request in (b"GET %s HTTP/1.0\r\n\r\n", b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET %s HTTP/1.1\r\nHost:\r\n\r\n"):
            self.assertEqual(status_of(request % path), 404, request)

    def test_the_shared_front_reads_requests_as_rfc_9110_and_9112_say(self):
        # The HTTP front ms serve shares (see test_serve.py for each case's story): a NUL, bare CR
        # or bare LF in a header field is 400 and closes (Content-Length: 0<NUL>... smuggled its
        # "body" as a second request); Connection options are case-insensitive tokens of a list;
        # empty lines before a request line are ignored; a long request line's 414 names the limit.
        def exchange(data):
            with socket.create_connection((self.server.host, self.server.port), timeout=30) as s:
                s.sendall(data)
                return read_to_eof(s)
        path = b"/api/v1/models/nobody/nothing"
        second = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path
        for headers in (b"Content-Length: 0\x00%d\r\n" % len(second), b"X-Note: a\rb\r\n",
                        b"X-Note: a\nContent-Length: %d\r\n" % len(second)):
            data = exchange(b"POST %s HTTP/1.1\r\nHost: x\r\n" % path + headers + b"\r\n" + second)
            self.assertTrue(data.startswith(b"HTTP/1.1 400 "), (headers, data[:300]))
            self.assertEqual(data.count(b"HTTP/1.1 "), 1, (headers, data))
            self.assertIn(b"NUL, or a CR or LF", data)
        for value in (b"Close", b"keep-alive, CLOSE"):
            data = exchange(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: %s\r\n\r\n" % (path, value) + second)
            self.assertEqual(data.count(b"HTTP/1.1 404 "), 1, (value, data))
            self.assertIn(b"\r\nConnection: close\r\n", data)
        data = exchange(b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET %s HTTP/1.0\r\n\r\n"
                        % (path, path))
        self.assertEqual(data.count(b"HTTP/1.1 404 "), 2, data)
        data = exchange(b"\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
        self.assertTrue(data.startswith(b"HTTP/1.1 404 "), data[:300])
        data = exchange(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 414 "), data[:300])
        self.assertIn(b"8190 bytes", data)
        # A request line that never ends is not read on (httplib grew its buffer to take it:
        # 200 MiB of line, 200 MiB of memory): 414 once it passes the limit, and the close.
        with socket.create_connection((self.server.host, self.server.port), timeout=30) as s:
            s.sendall(b"GET /" + b"a" * 20000)
            data = read_to_eof(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 414 "), data[:300])
        # httplib percent-decodes values: a framing header's value holding a % is refused
        # ("%31%37" was a Content-Length of 17, which a proxy in front reads otherwise).
        for headers in (b"Content-Length: %%31%%37\r\n", b"Transfer-Encoding: %%63hunked\r\n"):
            data = exchange(b"POST %s HTTP/1.1\r\nHost: x\r\n" % path + (headers % ()) + b"\r\n"
                            + b"a" * 17 + second)
            self.assertTrue(data.startswith(b"HTTP/1.1 400 "), (headers, data[:300]))
            self.assertEqual(data.count(b"HTTP/1.1 "), 1, (headers, data))

    def test_a_nul_byte_in_a_json_body_is_400(self):
        # The JSON parser read a NUL as the end of the text: the body was taken for its JSON
        # before the NUL, whatever followed.
        body = json.dumps({"Path": "alice", "Name": "nul", "Visibility": 5}).encode() + b"\x00xyz{{{"
        status, _, data = self.server.request("POST", "/api/v1/models", body, self.alice,
                                              headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400, data)
        self.assertIn(b"NUL", data)
        self.assertEqual(self.server.api("GET", "/api/v1/models/alice/nul")[0], 404)

    def test_absolute_form_targets_name_their_path(self):
        # A client configured to use the server as a proxy sends the whole URL as the target
        # (RFC 9112 section 3.2.2: a server must accept it); every such request was 404.
        repo = self.make_repo("absolute")
        for target in (f"http://{self.server.host}:{self.server.port}/api/v1/models/{repo}",
                       f"HTTP://elsewhere/api/v1/models/{repo}?Revision=master"):
            with self.subTest(target=target):
                with socket.create_connection((self.server.host, self.server.port), timeout=30) as s:
                    s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                    data = read_to_eof(s)
                self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:300])
                self.assertIn(b'"Name":"absolute"', data.replace(b" ", b""))
        # The routes that read the raw target too (a file by its resolve URL).
        self.assertEqual(self.server.commit(self.alice, repo, {"c.json": b"{}"})[0], 200)
        with socket.create_connection((self.server.host, self.server.port), timeout=30) as s:
            s.sendall(f"GET http://{self.server.host}:{self.server.port}/models/{repo}/resolve/master/c.json "
                      "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = read_to_eof(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:300])
        self.assertTrue(data.endswith(b"\r\n\r\n{}"), data[-100:])

    def test_http_1_0_answers_say_connection_close(self):
        # An HTTP/1.0 request not asking for Keep-Alive has its connection closed after the
        # answer, which said "Keep-Alive: timeout=5, max=10000" and no Connection header.
        with socket.create_connection((self.server.host, self.server.port), timeout=30) as s:
            s.sendall(b"GET /api/v1/models/nobody/nothing HTTP/1.0\r\n\r\n")
            data = read_to_eof(s)
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower().split("\r\n")
        self.assertTrue(head[0].startswith("http/1.1 404 "), head)
        self.assertIn("connection: close", head)
        self.assertFalse([line for line in head if line.startswith("keep-alive:")], head)

    def test_content_codings_it_cannot_decode_are_415(self):
        # httplib passes an unknown coding through as it came, and reads a list holding "br" as
        # brotli alone: such bodies reached the JSON routes and blob uploads undecoded.
        body = gzip.compress(b'{"Name": "x"}')
        for headers in ([("Content-Encoding", "gzip, br")], [("Content-Encoding", "gzip"), ("Content-Encoding", "br")],
                        [("Content-Encoding", "zstd")]):
            with self.subTest(headers=headers):
                with socket.create_connection((self.server.host, self.server.port), timeout=30) as s:
                    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
                    s.sendall(f"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                              f"{lines}\r\n".encode() + body)
                    data = read_to_eof(s)
                self.assertTrue(data.startswith(b"HTTP/1.1 415 "), data[:200])
                self.assertIn(b"is not supported", data)

    def test_compressed_bodies_are_limited_as_decoded(self):
        # The body limits were checked on the coded length, and httplib decodes the body of a JSON
        # route into memory with no limit of its own: 2 KiB of gzip sent without a token became
        # 2 MiB there (a few MiB of it, gigabytes). The same limits now hold for the decoded body.
        padded = b" " * (2 << 20) + json.dumps({"Path": "alice", "Name": "gz", "Visibility": 5}).encode()
        body = gzip.compress(padded)
        self.assertLess(len(body), 8 << 10)
        status, headers, data = self.server.request(
            "POST", "/api/v1/models", body, headers={"Content-Encoding": "gzip"})
        self.assertEqual(status, 413, data)
        self.assertIn(b"decodes to over 1048576 bytes", data)
        self.assertEqual(headers.get("connection"), "close")
        # With a token the JSON limit (1 GiB) holds, and the same body is read and acted on.
        status, _, data = self.server.request(
            "POST", "/api/v1/models", body, token=self.alice, headers={"Content-Encoding": "gzip"})
        self.assertEqual(status, 200, data)
        self.assertEqual(self.server.api("GET", "/api/v1/models/alice/gz")[0], 200)

    # --- security -------------------------------------------------------------------------------
    def test_private_repo_visibility(self):
        repo = self.make_repo("secret", visibility=1)
        self.assertEqual(self.server.commit(self.alice, repo, {"s.txt": b"s"})[0], 200)
        paths = [f"/api/v1/models/{repo}", f"/api/v1/models/{repo}/revisions",
                 f"/api/v1/models/{repo}/repo/files?Recursive=True",
                 f"/api/v1/models/{repo}/repo?Revision=master&FilePath=s.txt",
                 f"/api/v1/models/{repo}/commits"]
        for path in paths:
            for token in (None, "ms-wrong", self.bob):
                status, _, body = self.server.request("GET", path, token=token)
                self.assertEqual(status, 404, (path, token, body))
            for cookie in (True, False):
                status, _, body = self.server.request("GET", path, token=self.alice, cookie=cookie)
                self.assertEqual(status, 200, (path, cookie, body))
        # The auth scheme is case-insensitive (RFC 9110), and extra spaces are no part of a token.
        for scheme in ("bearer", "BEARER", "Bearer "):
            status, _, body = self.server.request("GET", paths[0],
                                                  headers={"Authorization": f"{scheme} {self.alice}"})
            self.assertEqual(status, 200, (scheme, body))
        # Missing and private look the same.
        _, _, body_missing = self.server.request("GET", "/api/v1/models/alice/nothing")
        self.assertEqual(json.loads(body_missing)["Code"], 404)

    def test_settings_update_and_openapi_dataset_listing(self):
        repo = self.make_repo()
        # Model settings by owner/name; only the owner may change them.
        status, env = self.server.api("PUT", f"/api/v1/models/{repo}", {"Visibility": 1}, self.bob)
        self.assertEqual(status, 403, env)
        status, env = self.server.api("PUT", f"/api/v1/models/{repo}",
                                      {"Visibility": 1, "Description": "d", "ModelFramework": "Pytorch"},
                                      self.alice)
        self.assertEqual(status, 200, env)
        self.assertEqual((env["Data"]["Visibility"], env["Data"]["Description"]), (1, "d"))
        self.assertEqual(self.server.api("GET", f"/api/v1/models/{repo}")[0], 404)  # now private
        status, env = self.server.api("PUT", f"/api/v1/models/{repo}", {"Visibility": 7}, self.alice)
        self.assertEqual(status, 400, env)
        # Datasets by their numeric hub id, as HubApi.set_repo_visibility sends it.
        status, env = self.server.api("POST", "/api/v1/datasets?Name=d&Owner=alice&Visibility=5",
                                      None, self.alice)
        self.assertEqual(status, 200, env)
        hub_id = env["Data"]["Id"]
        status, env = self.server.api("PUT", f"/api/v1/datasets/{hub_id}", {"Visibility": 1}, self.alice)
        self.assertEqual((status, env["Data"]["Visibility"]), (200, 1), env)
        self.assertEqual(self.server.api("PUT", "/api/v1/datasets/999999", {"Visibility": 5}, self.alice)[0],
                         404)
        # The id of alice's now private dataset answers bob as a missing id does: no name leaks.
        status, env = self.server.api("PUT", f"/api/v1/datasets/{hub_id}", {"Visibility": 5}, self.bob)
        self.assertEqual(status, 404, env)
        self.assertNotIn("alice", json.dumps(env))
        # OpenAPI listing: {success, data: {datasets, total_count, page_number, page_size}}; private
        # datasets only for their owner (Authorization: Bearer).
        status, env = self.server.api("GET", "/openapi/v1/datasets?author=alice&page_size=5")
        self.assertEqual((status, env["success"], env["data"]["total_count"]), (200, True, 0), env)
        status, env = self.server.api("GET", "/openapi/v1/datasets?author=alice&search=d", token=self.alice,
                                      cookie=False)
        self.assertEqual([d["id"] for d in env["data"]["datasets"]], ["alice/d"], env)
        self.assertEqual((env["data"]["page_number"], env["data"]["page_size"]), (1, 10))
        status, env = self.server.api("GET", "/openapi/v1/datasets?page_size=0")
        self.assertEqual((status, env["success"]), (400, False), env)

    def test_openapi_users_me(self):
        # The caller's profile in the OpenAPI envelope, by Bearer header or session cookie.
        for cookie in (False, True):
            status, env = self.server.api("GET", "/openapi/v1/users/me", token=self.alice, cookie=cookie)
            self.assertEqual((status, env["success"]), (200, True), env)
            self.assertEqual({k: env["data"][k] for k in ("id", "username", "name", "avatar_url")},
                             {"id": "alice", "username": "alice", "name": "alice", "avatar_url": ""})
            self.assertIsInstance(env["data"]["email"], str)
        for token in (None, "ms-wrong"):
            status, env = self.server.api("GET", "/openapi/v1/users/me", token=token, cookie=False)
            self.assertEqual(status, 401, (token, env))
            self.assertEqual(set(env), {"success", "data", "message"})
            self.assertFalse(env["success"])
            self.assertTrue(env["message"])

    def test_openapi_models_list_and_get(self):
        self.make_repo("pub1")
        self.make_repo("priv", visibility=1)
        self.make_repo("pub2")
        self.assertEqual(self.server.create_model(self.bob, "bob", "other")[0], 200)

        def names(query, token=None):
            status, env = self.server.api("GET", "/openapi/v1/models?" + query, token=token)
            self.assertEqual((status, env["success"]), (200, True), (query, env))
            return [m["id"] for m in env["data"]["models"]], env["data"]

        # The owner's private repo is listed for its owner only.
        self.assertEqual(names("owner=alice")[0], ["alice/pub1", "alice/pub2"])
        self.assertEqual(names("owner=alice", self.bob)[0], ["alice/pub1", "alice/pub2"])
        ids, data = names("owner=alice&page_size=2&page_number=1", self.alice)
        self.assertEqual(ids, ["alice/pub1", "alice/priv"])
        self.assertEqual((data["total_count"], data["page_number"], data["page_size"]), (3, 1, 2))
        ids, data = names("owner=alice&page_size=2&page_number=2", self.alice)
        self.assertEqual((ids, data["total_count"], data["page_number"]), (["alice/pub2"], 3, 2))
        # Without an owner: everyone's visible models; search, sort and filter.* are accepted.
        self.assertEqual(names("")[0], ["alice/pub1", "alice/pub2", "bob/other"])
        self.assertEqual(names("search=pub&sort=downloads&filter.task=text-classification")[0],
                         ["alice/pub1", "alice/pub2"])
        for bad in ("page_size=0", "page_number=-1", "page_size=x"):
            status, env = self.server.api("GET", "/openapi/v1/models?" + bad)
            self.assertEqual((status, env["success"]), (400, False), (bad, env))
        item = names("owner=alice", self.alice)[1]["models"][1]
        self.assertEqual({k: item[k] for k in ("id", "name", "owner", "visibility", "private", "tasks")},
                         {"id": "alice/priv", "name": "priv", "owner": "alice", "visibility": 1,
                          "private": True, "tasks": []})
        for key in ("display_name", "description", "license", "downloads", "likes", "created_at",
                    "last_modified"):
            self.assertIn(key, item)
        # One model: 200 for those who may see it, 404 (OpenAPI envelope) for others and missing ones.
        status, env = self.server.api("GET", "/openapi/v1/models/alice/pub1")
        self.assertEqual((status, env["data"]["id"], env["data"]["private"]), (200, "alice/pub1", False))
        status, env = self.server.api("GET", "/openapi/v1/models/alice/priv", token=self.alice)
        self.assertEqual((status, env["data"]["visibility"]), (200, 1), env)
        for path, token in (("alice/priv", None), ("alice/priv", self.bob), ("alice/none", self.alice)):
            status, env = self.server.api("GET", "/openapi/v1/models/" + path, token=token)
            self.assertEqual((status, env["success"]), (404, False), (path, env))
            self.assertIn("does not exist", env["message"])
        # A dataset is not a model.
        self.assertEqual(self.server.api("POST", "/api/v1/datasets?Name=d&Owner=alice", None, self.alice)[0], 200)
        self.assertEqual(self.server.api("GET", "/openapi/v1/models/alice/d")[0], 404)

    def test_openapi_datasets_owner_and_get(self):
        for name, visibility in (("d1", 5), ("d2", 1)):
            status, env = self.server.api("POST", f"/api/v1/datasets?Name={name}&Owner=alice&Visibility={visibility}",
                                          None, self.alice)
            self.assertEqual(status, 200, env)
        self.assertEqual(self.server.api("POST", "/api/v1/datasets?Name=e&Owner=bob", None, self.bob)[0], 200)

        def ids(query, token=None):
            status, env = self.server.api("GET", "/openapi/v1/datasets?" + query, token=token)
            self.assertEqual(status, 200, env)
            return [d["id"] for d in env["data"]["datasets"]]

        # The 1.40 client sends owner, older ones author; owner wins when both come.
        self.assertEqual(ids("owner=alice"), ["alice/d1"])
        self.assertEqual(ids("owner=alice", self.alice), ["alice/d1", "alice/d2"])
        self.assertEqual(ids("author=bob"), ["bob/e"])
        self.assertEqual(ids("owner=bob&author=alice"), ["bob/e"])
        status, env = self.server.api("GET", "/openapi/v1/datasets/alice/d1")
        self.assertEqual((status, env["data"]["id"], env["data"]["visibility"]), (200, "alice/d1", 5), env)
        self.assertEqual(self.server.api("GET", "/openapi/v1/datasets/alice/d2", token=self.alice)[0], 200)
        for path, token in (("alice/d2", None), ("alice/d2", self.bob), ("alice/none", None)):
            status, env = self.server.api("GET", "/openapi/v1/datasets/" + path, token=token)
            self.assertEqual((status, env["success"]), (404, False), (path, env))

    def test_resolve_routes(self):
        repo = self.make_repo("r")
        big = bytes(range(256)) * 40
        files = {"a b/ünï.txt": "ünï text".encode(), "config.json": b"{}"}
        self.assertEqual(self.server.commit(self.alice, repo, files, lfs={"w.bin": big})[0], 200)
        status, env = self.server.api("POST", f"/api/v1/models/{repo}/repo/tag",
                                      {"TagName": "release/v1", "Ref": "master"}, self.alice)
        self.assertEqual(status, 200, env)
        self.assertEqual(self.server.commit(self.alice, repo, {"config.json": b"{\"v\": 2}"})[0], 200)
        status, env = self.server.api("GET", f"/api/v1/models/{repo}/revisions")
        commits = {r["Revision"]: r["CommitId"] for r in env["Data"]["RevisionMap"]["Branches"] +
                   env["Data"]["RevisionMap"]["Tags"]}
        quoted = urllib.parse.quote("a b/ünï.txt")
        # The model forms /models/O/N/resolve and Hugging Face's /O/N/resolve serve the same bytes.
        for prefix in (f"/models/{repo}", f"/{repo}"):
            status, headers, body = self.server.request("GET", f"{prefix}/resolve/master/{quoted}")
            self.assertEqual((status, body), (200, files["a b/ünï.txt"]), prefix)
            self.assertEqual(headers["etag"], '"%s"' % hashlib.sha256(files["a b/ünï.txt"]).hexdigest())
            self.assertEqual(headers["x-repo-commit"], commits["master"])
            status, headers, body = self.server.request("HEAD", f"{prefix}/resolve/master/w.bin")
            self.assertEqual((status, body, headers["content-length"]), (200, b"", str(len(big))), prefix)
            self.assertEqual(headers["etag"], '"%s"' % hashlib.sha256(big).hexdigest())
        # A revision with a slash arrives quoted (huggingface_hub quotes it with no safe characters).
        status, headers, body = self.server.request("GET", f"/{repo}/resolve/release%2Fv1/config.json")
        self.assertEqual((status, body, headers["x-repo-commit"]), (200, b"{}", commits["release/v1"]))
        self.assertEqual(self.server.request("GET", f"/{repo}/resolve/master/config.json")[2], b'{"v": 2}')
        # huggingface_hub's default revision "main" is the default branch here.
        status, headers, body = self.server.request("GET", f"/{repo}/resolve/main/config.json")
        self.assertEqual((status, body, headers["x-repo-commit"]), (200, b'{"v": 2}', commits["master"]))
        # Range: 206 with Content-Range, 416 naming the size.
        status, headers, body = self.server.request("GET", f"/{repo}/resolve/master/w.bin",
                                                    headers={"Range": "bytes=10-19"})
        self.assertEqual((status, body, headers["content-range"]), (206, big[10:20], f"bytes 10-19/{len(big)}"))
        status, headers, _ = self.server.request("GET", f"/{repo}/resolve/master/w.bin",
                                                 headers={"Range": f"bytes={len(big)}-"})
        self.assertEqual((status, headers["content-range"]), (416, f"bytes */{len(big)}"))
        # Missing files, revisions and repos: 404 with the ModelScope envelope; unsafe paths: 400.
        for path in (f"/{repo}/resolve/master/nope.txt", f"/{repo}/resolve/nope/config.json",
                     "/alice/none/resolve/master/config.json", f"/datasets/{repo}/resolve/master/config.json"):
            status, _, body = self.server.request("GET", path)
            self.assertEqual((status, json.loads(body)["Success"]), (404, False), path)
            self.assertEqual(self.server.request("HEAD", path)[0], 404, path)
        status, _, body = self.server.request("GET", f"/{repo}/resolve/master/..%2F..%2Fmeta.sqlite3")
        self.assertEqual(status, 400, body)
        # Datasets, and privacy: the owner by cookie or Bearer, nobody else.
        status, env = self.server.api("POST", "/api/v1/datasets?Name=pd&Owner=alice&Visibility=1", None, self.alice)
        self.assertEqual(status, 200, env)
        self.assertEqual(self.server.commit(self.alice, "alice/pd", {"train.csv": b"a,b\n1,2\n"},
                                            kind="datasets")[0], 200)
        path = "/datasets/alice/pd/resolve/master/train.csv"
        for cookie in (True, False):
            status, _, body = self.server.request("GET", path, token=self.alice, cookie=cookie)
            self.assertEqual((status, body), (200, b"a,b\n1,2\n"), cookie)
        for token in (None, self.bob, "ms-wrong"):
            self.assertEqual(self.server.request("GET", path, token=token)[0], 404, token)

    def test_unsupported_services_say_so(self):
        for method, path in [("GET", "/api/v1/datasets/alice/d/ststoken?Revision=master"),
                             ("GET", "/api/v1/datasets/alice/d/oss/tree/?MaxLimit=-1"),
                             ("POST", "/api/v1/models/aigc"), ("GET", "/api/v1/deployer/endpoint")]:
            status, env = self.server.api(method, path, {} if method == "POST" else None, self.alice)
            self.assertEqual(status, 501, (path, env))
            self.assertIn("is not supported by ms hub serve", env["Message"])

    @unittest.skipUnless(shutil.which("git"), "git is not installed")
    def test_git_clone_is_read_only(self):
        repo = self.make_repo()
        big = os.urandom(1 << 20)
        self.assertEqual(self.server.commit(self.alice, repo, {"a.txt": b"a\n", "sub/deep/x.md": b"x",
                                                                "sub-file.txt": b"y", "sub.txt": b"z"},
                                            lfs={"sub/w.bin": big})[0], 200)
        self.assertEqual(self.server.api("POST", f"/api/v1/models/{repo}/repo/tag",
                                         {"TagName": "v1", "Ref": "master"}, self.alice)[0], 200)
        self.assertEqual(self.server.commit(self.alice, repo, {"dev.txt": b"d"}, revision="dev")[0], 200)
        secret = self.make_repo("secret", visibility=1)
        self.assertEqual(self.server.commit(self.alice, secret, {"s.txt": b"s"})[0], 200)
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_LFS_SKIP_SMUDGE="1", GIT_CONFIG_NOSYSTEM="1",
                   HOME=self.path("home"))
        os.makedirs(env["HOME"], exist_ok=True)

        def git(*args, cwd=None):
            return subprocess.run(["git", *args], capture_output=True, text=True, env=env, cwd=cwd,
                                  timeout=60)

        clone = self.path("clone")
        r = git("clone", f"{self.server.endpoint}/{repo}.git", clone)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(git("fsck", "--full", cwd=clone).returncode, 0)
        with open(os.path.join(clone, "a.txt"), "rb") as f:
            self.assertEqual(f.read(), b"a\n")
        with open(os.path.join(clone, "sub", "w.bin")) as f:  # LFS files are git-lfs pointers
            self.assertEqual(f.read(), "version https://git-lfs.github.com/spec/v1\noid sha256:"
                             f"{hashlib.sha256(big).hexdigest()}\nsize {len(big)}\n")
        refs = git("ls-remote", f"{self.server.endpoint}/{repo}.git").stdout
        self.assertEqual(sorted(line.split("\t")[1] for line in refs.splitlines()),
                         ["HEAD", "refs/heads/dev", "refs/heads/master", "refs/tags/v1"])
        r = git("clone", "--branch", "dev", f"{self.server.endpoint}/{repo}.git", self.path("dev"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.path("dev"), "dev.txt")))
        # git-lfs batch API: downloads of this repo's LFS files; uploads refused with a message.
        oid = hashlib.sha256(big).hexdigest()
        status, _, body = self.server.request(
            "POST", f"/{repo}.git/info/lfs/objects/batch",
            {"operation": "download", "objects": [{"oid": oid, "size": len(big)}, {"oid": "0" * 64, "size": 1}]})
        self.assertEqual(status, 200, body)
        found, missing = json.loads(body)["objects"]
        self.assertEqual(missing["error"]["code"], 404)
        href = urllib.parse.urlparse(found["actions"]["download"]["href"])
        self.assertEqual(href.path, f"/{repo}.git/info/lfs/objects/{oid}")
        status, _, data = self.server.request("GET", href.path)
        self.assertEqual((status, hashlib.sha256(data).hexdigest()), (200, oid))
        status, _, body = self.server.request("POST", f"/{repo}.git/info/lfs/objects/batch",
                                              {"operation": "upload", "objects": []}, self.alice)
        self.assertEqual(status, 403)
        self.assertIn("does not accept git pushes", json.loads(body)["message"])
        if shutil.which("git-lfs"):  # with git-lfs, a clone checks out the real LFS content
            self.assertEqual(git("lfs", "install", "--skip-repo").returncode, 0)
            env.pop("GIT_LFS_SKIP_SMUDGE")
            r = git("clone", f"{self.server.endpoint}/{repo}.git", self.path("lfs"))
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(self.path("lfs"), "sub", "w.bin"), "rb") as f:
                self.assertEqual(f.read(), big)
            env["GIT_LFS_SKIP_SMUDGE"] = "1"
        # Private repos: invisible without a token, cloned with the token as the URL's password.
        r = git("clone", f"{self.server.endpoint}/{secret}.git", self.path("s1"))
        self.assertNotEqual(r.returncode, 0)
        authed = self.server.endpoint.replace("http://", f"http://oauth2:{self.alice}@")
        r = git("clone", f"{authed}/{secret}.git", self.path("s2"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.path("s2"), "s.txt")))
        # A blob of a private repo cannot be fetched through a public repo by its sha256.
        secret_blob = os.urandom(1000)
        self.assertEqual(self.server.commit(self.alice, secret, lfs={"b.bin": secret_blob})[0], 200)
        status, _, _ = self.server.request(
            "GET", f"/{repo}.git/info/lfs/objects/{hashlib.sha256(secret_blob).hexdigest()}")
        self.assertEqual(status, 404)
        status, _, _ = self.server.request(
            "GET", f"/{secret}.git/info/lfs/objects/{hashlib.sha256(secret_blob).hexdigest()}")
        self.assertEqual(status, 401)
        # Pushing is refused with a message saying what to use instead.
        with open(os.path.join(clone, "new.txt"), "w") as f:
            f.write("n")
        git("add", "new.txt", cwd=clone)
        git("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "n", cwd=clone)
        r = git("push", cwd=clone)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("does not accept git pushes", r.stderr)
        # A missing repo looks like a private one to an anonymous caller (both get the challenge),
        # so the answer does not tell which private repos exist; a signed-in caller gets 404.
        self.assertEqual(self.server.api("GET", "/alice/absent.git/info/refs")[0], 401)
        self.assertEqual(self.server.api("GET", "/alice/absent.git/info/refs", None, self.bob)[0], 404)
        # Datasets live under /datasets/.
        self.assertEqual(self.server.api("POST", "/api/v1/datasets?Name=d&Owner=alice", None, self.alice)[0], 200)
        self.assertEqual(self.server.commit(self.alice, "alice/d", {"t.csv": b"a,b\n"}, kind="datasets")[0], 200)
        r = git("clone", f"{self.server.endpoint}/datasets/alice/d.git", self.path("d"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.path("d"), "t.csv")))

    def test_a_sha256_alone_does_not_copy_a_private_file(self):
        secret = os.urandom(300000)
        sha = hashlib.sha256(secret).hexdigest()
        repo = self.make_repo("vault", visibility=1)
        self.assertEqual(self.server.commit(self.alice, repo, lfs={"w.bin": secret})[0], 200)
        status, env = self.server.create_model(self.bob, "bob", "thief")
        self.assertEqual(status, 200, env)
        lfs_action = {"action": "create", "path": "stolen.bin", "type": "lfs", "size": len(secret), "sha256": sha}
        # The batch answer does not reveal that the server has the blob ...
        status, env = self.server.api("POST", "/api/v1/repos/models/bob/thief/info/lfs/objects/batch",
                                      {"operation": "upload", "objects": [{"oid": sha, "size": len(secret)}]}, self.bob)
        self.assertEqual(status, 200, env)
        self.assertIn("actions", env["Data"]["objects"][0])
        # ... and a commit naming it is refused in the words used for a blob never uploaded.
        status, env = self.server.api("POST", "/api/v1/repos/models/bob/thief/commit/master",
                                      {"actions": [lfs_action]}, self.bob)
        self.assertEqual(status, 400, env)
        self.assertIn("has not been uploaded", env["Message"])
        self.assertEqual(self.server.download("bob/thief", "stolen.bin")[0], 404)
        # Sending the bytes proves possession; then the commit goes through.
        self.assertEqual(self.server.upload_blob(self.bob, "bob/thief", secret), sha)
        status, env = self.server.api("POST", "/api/v1/repos/models/bob/thief/commit/master",
                                      {"actions": [lfs_action]}, self.bob)
        self.assertEqual(status, 200, env)
        # The owner's other repos still share the blob without a new upload.
        self.make_repo("copy")
        status, env = self.server.api("POST", "/api/v1/repos/models/alice/copy/info/lfs/objects/batch",
                                      {"operation": "upload", "objects": [{"oid": sha, "size": len(secret)}]}, self.alice)
        self.assertNotIn("actions", env["Data"]["objects"][0])

    def test_store_from_before_repo_blobs_is_migrated(self):
        repo = self.make_repo()
        big = os.urandom(100000)
        sha = hashlib.sha256(big).hexdigest()
        self.server.commit(self.alice, repo, lfs={"b.bin": big})
        self.assertEqual(self.server.stop(), 0)
        import sqlite3
        # A store from before repo_blobs (no table, user_version 0), then one whose backfill was
        # cut short (the table exists, empty, user_version still 0): both are backfilled.
        for step, sql in enumerate(("DROP TABLE repo_blobs", "DELETE FROM repo_blobs")):
            db = sqlite3.connect(os.path.join(self.root, "meta.sqlite3"))
            db.execute(sql)
            db.execute("PRAGMA user_version = 0")
            db.commit()
            db.close()
            again = HubServer(self.root).start()
            # The blob committed before is the repo's again: a commit may name it without an upload.
            status, env = again.api("POST", f"/api/v1/repos/models/{repo}/commit/master", {"actions": [
                {"action": "create", "path": f"again{step}.bin", "type": "lfs", "size": len(big), "sha256": sha}]},
                self.alice)
            self.assertEqual(status, 200, (sql, env))
            self.assertEqual(again.download(repo, f"again{step}.bin")[2], big)
            self.assertEqual(again.stop(), 0)

    def test_write_auth(self):
        repo = self.make_repo()
        for token, expected in ((None, 401), ("ms-wrong", 401), (self.bob, 403)):
            status, env = self.server.commit(token, repo, {"a.txt": b"a"}) if token else \
                self.server.api("POST", f"/api/v1/repos/models/{repo}/commit/master", {"actions": []})
            self.assertEqual(status, expected, (token, env))
            status, env = self.server.api("POST", f"/api/v1/repos/models/{repo}/info/lfs/objects/batch",
                                          {"operation": "upload", "objects": []}, token)
            self.assertEqual(status, expected, env)
        # Creating under someone else's name.
        status, env = self.server.create_model(self.bob, "alice", "x")
        self.assertEqual(status, 403, env)
        status, env = self.server.create_model(None, "alice", "x")
        self.assertEqual(status, 401, env)
        status, env = self.server.create_model(self.alice, "alice", "../x")
        self.assertEqual(status, 400, env)

    def test_traversal_paths_rejected(self):
        repo = self.make_repo()
        for bad in ("../x", "/etc/passwd", "a/../../x", "a\\b", "a\x00b", "./a", "a//b", ""):
            status, env = self.server.commit(self.alice, repo, {bad: b"x"})
            self.assertEqual(status, 400, (bad, env))
        for bad in ("../x", "/etc/passwd", "a\\b", "..%2Fx"):
            q = urllib.parse.urlencode({"Revision": "master", "FilePath": bad})
            status, _, body = self.server.request("GET", f"/api/v1/models/{repo}/repo?{q}")
            self.assertIn(status, (400, 404), (bad, body))
            if bad != "..%2Fx":
                self.assertEqual(status, 400, (bad, body))
        _, env = self.server.files(repo)
        self.assertEqual([f["Path"] for f in env["Data"]["Files"]], [".gitattributes"])

    def test_git_folders_and_invisible_characters_rejected(self):
        # A ".git/config" in a repo lands in the downloader's work tree (core.fsmonitor runs a
        # command on `git status`); bidi controls show a name other than the one written.
        repo = self.make_repo()
        for bad in (".git/config", ".GIT/config", "sub/.Git/hooks/pre-commit", ".git", ".git./x", "git~1/config",
                    "evil\u202etxt.exe", "a\u2067b", "a\u200fb", "c1\u0085x", "\u00a0/\u2066x"):
            status, env = self.server.commit(self.alice, repo, {bad: b"x"})
            self.assertEqual(status, 400, (bad, env))
            self.assertIn("invalid path", env["Message"], bad)
        status, env = self.server.commit(self.alice, repo, {".git/config": b"x"})
        self.assertIn("git's own folder", env["Message"])
        # .gitattributes (ModelScope's own), .gitignore and names merely containing "git" are fine.
        status, env = self.server.commit(self.alice, repo, {".gitattributes": b"*.bin filter=lfs\n",
                                                             ".gitignore": b"x", "my.git/a": b"a", "a/.github/b": b"b"})
        self.assertEqual(status, 200, env)
        # Repo (and owner) names: ".git" would be git's own folder in a clone URL or a checkout.
        for name in (".git", ".GIT"):
            status, env = self.server.create_model(self.alice, "alice", name)
            self.assertEqual(status, 400, (name, env))
        _, env = self.server.files(repo)
        self.assertEqual(sorted(f["Path"] for f in env["Data"]["Files"] if f["Type"] == "blob"),
                         [".gitattributes", ".gitignore", "a/.github/b", "my.git/a"])

    def test_names_differing_only_by_normalisation_rejected(self):
        # macOS merges canonically equivalent names; a repo with both would lose one there.
        repo = self.make_repo()
        self.assertEqual(self.server.commit(self.alice, repo, {"caf\u00e9/a.txt": b"nfc"})[0], 200)
        status, env = self.server.commit(self.alice, repo, {"cafe\u0301/a.txt": b"nfd"})
        self.assertEqual(status, 400, env)
        self.assertIn("normalisation", env["Message"])
        # Both in one commit, and with combining marks in another order (canonical ordering).
        status, env = self.server.commit(self.alice, repo, {"x\u00f1.txt": b"1", "xn\u0303.txt": b"2"})
        self.assertEqual(status, 400, env)
        status, env = self.server.commit(self.alice, repo, {"q\u0323\u0307": b"1", "q\u0307\u0323": b"2"})
        self.assertEqual(status, 400, env)
        # Updating the same name, and replacing the old spelling in one commit, are fine.
        self.assertEqual(self.server.commit(self.alice, repo, {"caf\u00e9/a.txt": b"nfc2"})[0], 200)
        status, env = self.server.commit(self.alice, repo, {"cafe\u0301/a.txt": b"nfd"}, deletes=["caf\u00e9/a.txt"])
        self.assertEqual(status, 200, env)
        _, env = self.server.files(repo)
        self.assertEqual(sorted(f["Path"] for f in env["Data"]["Files"] if f["Type"] == "blob"),
                         [".gitattributes", "cafe\u0301/a.txt"])

    def test_parameters_that_are_not_utf8_are_client_errors(self):
        # Error messages echo the parameter; bytes that are not UTF-8 used to make the JSON
        # envelope itself fail, answered as a 500 internal error.
        repo = self.make_repo()
        for path, expected in ((f"/api/v1/models/{repo}/repo?Revision=master&FilePath=%ff", 404),
                               (f"/api/v1/models/{repo}/repo?Revision=%ff&FilePath=a", 404),
                               ("/api/v1/models/alice/%ff", 404),
                               ("/api/v1/models/alice/%ff/repo/files?Revision=master", 404)):
            status, _, body = self.server.request("GET", path)
            self.assertEqual(status, expected, (path, body))
            self.assertFalse(json.loads(body)["Success"])
        status, _, body = self.server.request("POST", f"/api/v1/repos/models/{repo}/commit/master",
                                              b"\xff\xfe", self.alice)
        self.assertEqual(status, 400, body)

    def test_a_failure_of_the_hub_itself_is_a_500_without_its_details(self):
        # The hub's own failures (a full disk, an unwritable store) showed clients its paths and
        # SQL; they get the request id, and the log has the cause under it.
        repo = self.make_repo()
        tmp = os.path.join(self.root, "tmp")
        shutil.rmtree(tmp)
        with open(tmp, "w") as f:  # every upload's temporary file now fails
            f.write("not a folder")
        data = b"blob bytes" * 100
        sha = hashlib.sha256(data).hexdigest()
        status, env = self.server.api("POST", f"/api/v1/repos/models/{repo}/info/lfs/objects/batch",
                                      {"operation": "upload", "objects": [{"oid": sha, "size": len(data)}]},
                                      self.alice)
        href = urllib.parse.urlparse(env["Data"]["objects"][0]["actions"]["upload"]["href"])
        status, _, body = self.server.request("PUT", href.path + "?" + href.query, data, self.alice)
        self.assertEqual(status, 500, body)
        env = json.loads(body)
        self.assertNotIn(self.root, env["Message"])
        self.assertIn(env["RequestId"], env["Message"])
        self.assertIn(f"(request {env['RequestId']}): ", self.server.log())
        self.assertIn(tmp, self.server.log())
        # A damaged file of the store is the hub's failure too (it was a 400 naming the file).
        os.remove(tmp)
        os.mkdir(tmp)
        self.assertEqual(self.server.commit(self.alice, repo, {"a.txt": b"a"})[0], 200)
        for dirpath, _, names in os.walk(os.path.join(self.root, "trees")):
            for name in names:
                with open(os.path.join(dirpath, name), "r+") as f:
                    f.truncate(5)
        status, env = self.server.files(repo)
        self.assertEqual(status, 500, env)
        self.assertNotIn(self.root, env["Message"])
        self.assertIn(f"(request {env['RequestId']}): hub store: tree file", self.server.log())

    def test_body_limits(self):
        # Chunked bodies on JSON routes are refused; so are declared sizes over the limit.
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
        conn.putrequest("POST", "/api/v1/models")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(b"2\r\n{}\r\n0\r\n\r\n")
        self.assertEqual(conn.getresponse().status, 411)
        conn.close()
        # In any case: "Chunked" went past the check, and an anonymous body of any size into
        # memory. The answer comes before any of it is sent.
        for coding in ("Chunked", "CHUNKED"):
            with socket.create_connection((self.server.host, self.server.port), timeout=30) as s:
                s.sendall(f"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {coding}\r\n"
                          f"\r\n".encode())
                self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 411 "), coding)
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
        conn.putrequest("POST", "/api/v1/models")
        conn.putheader("Content-Length", str(1 << 40))
        conn.endheaders()
        self.assertEqual(conn.getresponse().status, 413)
        conn.close()

    def test_big_bodies_need_a_token_before_they_are_read(self):
        # httplib buffers a body before the route checks the token: 32 anonymous 1 GiB commits
        # held 32 GiB. Without a valid token a big body is refused from its headers alone.
        repo = self.make_repo()
        for token in (None, "ms-wrong"):
            conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
            conn.putrequest("POST", f"/api/v1/repos/models/{repo}/commit/master")
            conn.putheader("Content-Length", str(200 << 20))
            if token:
                conn.putheader("Cookie", f"m_session_id={token}")
            conn.endheaders()  # and no body at all: the answer must not wait for it
            response = conn.getresponse()
            self.assertEqual(response.status, 401, token)
            self.assertIn("access token", json.loads(response.read())["Message"])
            conn.close()
        # With a token, a body over the anonymous limit goes through.
        big = os.urandom(3 << 20)
        status, env = self.server.commit(self.alice, repo, {"big.txt": big})
        self.assertEqual(status, 200, env)
        self.assertEqual(self.server.download(repo, "big.txt")[2], big)

    def test_expect_100_continue_hears_a_refusal_before_the_body(self):
        # httplib answered "100 Continue" before any check, so a client (curl asks for large
        # uploads) sent its whole body only to be refused. The refusal now comes instead.
        repo = self.make_repo()

        def ask(path, length, token=None, method="POST"):
            """The status and lower-cased header lines of the first answer to headers alone."""
            with socket.create_connection((self.server.host, self.server.port), timeout=30) as s:
                s.sendall((f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                           + (f"Cookie: m_session_id={token}\r\n" if token else "")
                           + f"Content-Length: {length}\r\n\r\n").encode())
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            return int(lines[0].split()[1]), [line.lower() for line in lines[1:]]

        commit = f"/api/v1/repos/models/{repo}/commit/master"
        status, headers = ask(commit, 200 << 20)
        self.assertEqual(status, 401, headers)
        self.assertIn("connection: close", headers)
        status, headers = ask(commit, 1 << 40, token=self.alice)
        self.assertEqual(status, 413, headers)
        self.assertIn("connection: close", headers)
        blob = f"/api/v1/repos/models/{repo}/info/lfs/objects/{'0' * 64}"
        self.assertEqual(ask(blob, 1 << 50, token=self.alice, method="PUT")[0], 413)
        # A refused blob upload left unread closes its connection: its bytes were run as a next
        # request (a smuggled one).
        smuggled = f"GET /api/v1/models/{repo} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        with socket.create_connection((self.server.host, self.server.port), timeout=30) as s:
            s.sendall(f"PUT {blob} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}\r\n\r\n"
                      .encode() + smuggled)
            answers = b""
            while True:
                data = s.recv(65536)
                if not data:
                    break
                answers += data
        self.assertEqual(answers.count(b"HTTP/1.1 "), 1, answers)
        self.assertIn(b"Connection: close", answers)
        # A request the server takes is told to go on.
        self.assertEqual(ask(commit, 100, token=self.alice)[0], 100)
        self.assertEqual(self.server.commit(self.alice, repo, {"a.txt": b"a"})[0], 200)

    # --- datasets -------------------------------------------------------------------------------
    def test_dataset_flow(self):
        boundary = "----msboundary"
        fields = {"Name": "ds", "ChineseName": "", "Owner": "alice", "License": "MIT", "Visibility": "5",
                  "Description": "d"}
        body = "".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                       for k, v in fields.items()) + f"--{boundary}--\r\n"
        status, _, out = self.server.request("POST", "/api/v1/datasets", body.encode(), self.alice,
                                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        self.assertEqual(status, 200, out)
        status, env = self.server.api("GET", "/api/v1/datasets/alice/ds")
        self.assertEqual(status, 200)
        ds_id = env["Data"]["Id"]
        self.assertIsInstance(ds_id, int)
        files = {f"data/part{i}.csv": f"row,{i}\n".encode() for i in range(5)}
        status, env = self.server.commit(self.alice, "alice/ds", files=files, kind="datasets")
        self.assertEqual(status, 200, env)
        seen = []
        for page in range(1, 10):
            q = urllib.parse.urlencode({"Revision": "master", "Root": "/", "Recursive": "True",
                                        "PageNumber": page, "PageSize": 2})
            status, env = self.server.api("GET", f"/api/v1/datasets/{ds_id}/repo/tree?{q}")
            self.assertEqual(status, 200, env)
            got = env["Data"]["Files"]
            seen += [f["Path"] for f in got if f["Type"] == "blob"]
            if len(got) < 2:
                break
        self.assertEqual(sorted(seen), sorted([".gitattributes", *files]))
        # A page number whose offset wraps around 2^64 is past the end, not the first page again.
        q = urllib.parse.urlencode({"Revision": "master", "Root": "/", "Recursive": "True",
                                    "PageNumber": 2 ** 63 + 1, "PageSize": 2})
        status, env = self.server.api("GET", f"/api/v1/datasets/{ds_id}/repo/tree?{q}")
        self.assertEqual((status, env["Data"]["Files"]), (200, []))
        q = urllib.parse.urlencode({"Source": "SDK", "Revision": "master", "FilePath": "data/part3.csv", "View": "False"})
        status, _, body = self.server.request("GET", f"/api/v1/datasets/alice/ds/repo?{q}")
        self.assertEqual((status, body), (200, b"row,3\n"))
        self.assertEqual(self.server.api("GET", "/api/v1/datasets/999999/repo/tree?Revision=master")[0], 404)
        # modelscope 1.40 addresses the tree by owner/name: the same pages.
        q = urllib.parse.urlencode({"Revision": "master", "Recursive": "True", "PageNumber": 1, "PageSize": 200})
        by_id = self.server.api("GET", f"/api/v1/datasets/{ds_id}/repo/tree?{q}")
        by_name = self.server.api("GET", f"/api/v1/datasets/alice/ds/repo/tree?{q}")
        self.assertEqual((by_name[0], by_name[1]["Data"]), (200, by_id[1]["Data"]))
        self.assertEqual(self.server.api("GET", f"/api/v1/datasets/alice/none/repo/tree?{q}")[0], 404)
        status, env = self.server.api("PUT", f"/api/v1/datasets/{ds_id}", {"Visibility": 1}, self.alice)
        self.assertEqual(status, 200, env)
        self.assertEqual(self.server.api("GET", f"/api/v1/datasets/alice/ds/repo/tree?{q}", token=self.bob)[0], 404)
        self.assertEqual(self.server.api("GET", f"/api/v1/datasets/alice/ds/repo/tree?{q}", token=self.alice)[0], 200)
        # By id, a private dataset answers like a missing id: its name does not leak.
        status, env = self.server.api("GET", f"/api/v1/datasets/{ds_id}/repo/tree?{q}", token=self.bob)
        self.assertEqual(status, 404)
        self.assertNotIn("alice", env["Message"])
        self.assertEqual(self.server.api("GET", f"/api/v1/datasets/{ds_id}/repo/tree?{q}", token=self.alice)[0], 200)

    # --- concurrency, faults, lifecycle ---------------------------------------------------------
    def test_concurrent_uploads_and_downloads(self):
        repo = self.make_repo()
        base = os.urandom(512 * 1024)
        self.server.commit(self.alice, repo, lfs={"base.bin": base})
        errors = []

        def uploader(i):
            try:
                status, env = self.server.commit(self.alice, repo, files={f"u/{i}.txt": str(i).encode()},
                                                 lfs={f"w/{i}.bin": os.urandom(64 * 1024 + i)})
                if status != 200:
                    errors.append(env)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        def downloader():
            try:
                for _ in range(5):
                    status, _, body = self.server.download(repo, "base.bin")
                    if status != 200 or body != base:
                        errors.append(f"download {status} {len(body)}")
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=uploader, args=(i,)) for i in range(8)]
        threads += [threading.Thread(target=downloader) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        _, env = self.server.files(repo)
        paths = {f["Path"] for f in env["Data"]["Files"]}
        for i in range(8):
            self.assertIn(f"u/{i}.txt", paths)
            self.assertIn(f"w/{i}.bin", paths)
        _, env = self.server.api("GET", f"/api/v1/models/{repo}/commits?PageSize=100")
        self.assertEqual(env["TotalCount"], 10)

    def test_shutdown_and_restart_keep_data(self):
        repo = self.make_repo()
        big = os.urandom(200000)
        self.server.commit(self.alice, repo, files={"a.txt": b"a"}, lfs={"b.bin": big})
        # 0: it stopped on SIGTERM by itself (stop() kills it, and answers None, if it hangs).
        self.assertEqual(self.server.stop(), 0)
        again = HubServer(self.root).start()
        self.addCleanup(again.stop)
        self.assertEqual(again.download(repo, "b.bin")[2], big)
        self.assertEqual(again.download(repo, "a.txt")[2], b"a")
        self.assertEqual(again.commit(self.alice, repo, {"c.txt": b"c"})[0], 200)
        # SIGHUP (its terminal closed) stops it as cleanly (it was killed by the signal).
        self.assertEqual(again.stop(signo=signal.SIGHUP), 0)

    def test_a_download_in_flight_finishes_after_sigterm(self):
        # hub.md: requests in flight get a minute to finish. httplib's stop() ended a streamed
        # file download midway (curl: exit 18, a partial file). A connection made meanwhile is
        # answered 503 "shutting down" rather than refused or dropped.
        repo = self.make_repo()
        big = os.urandom(32 * 1024 * 1024)  # well past the socket buffers of both ends
        self.assertEqual(self.server.commit(self.alice, repo, lfs={"big.bin": big})[0], 200)
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=60)
        self.addCleanup(conn.close)
        conn.request("GET", f"/api/v1/models/{repo}/repo?Revision=master&FilePath=big.bin")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        first = resp.read(1024 * 1024)
        self.server.proc.send_signal(signal.SIGTERM)
        # The signal is handled on the server's own time: ask until the answer is the stop's.
        for _ in range(3000):
            status, env = self.server.api("GET", f"/api/v1/models/{repo}")
            if status == 503:
                break
            self.assertEqual(status, 200)
        self.assertEqual(status, 503)
        self.assertIn("shutting down", env["Message"])
        self.assertEqual(first + resp.read(), big)
        self.assertEqual(self.server.stop(), 0)

    def test_a_second_signal_stops_at_once(self):
        # As ms serve: Ctrl-C twice does not wait out the minute a download in flight has (the
        # second signal was ignored, and the first one said nothing without -v).
        repo = self.make_repo()
        big = os.urandom(32 * 1024 * 1024)
        self.assertEqual(self.server.commit(self.alice, repo, lfs={"big.bin": big})[0], 200)
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=60)
        self.addCleanup(conn.close)
        conn.request("GET", f"/api/v1/models/{repo}/repo?Revision=master&FilePath=big.bin")
        self.assertEqual(conn.getresponse().status, 200)  # then left unread: the stop waits
        self.server.proc.send_signal(signal.SIGINT)
        self.assertTrue(self.wait_for(lambda: "stopping (requests in flight" in self.server.log()),
                        self.server.log())
        self.assertIn("ms hub serve: Interrupt: stopping", self.server.log())
        self.server.proc.send_signal(signal.SIGINT)
        self.assertEqual(self.server.proc.wait(30), 128 + signal.SIGINT)
        self.assertIn("again: stopping at once", self.server.log())

    def test_corrupt_blob_is_served_as_stored(self):
        repo = self.make_repo()
        data = b"good bytes " * 100
        self.server.commit(self.alice, repo, lfs={"f.bin": data})
        sha = hashlib.sha256(data).hexdigest()
        blob = os.path.join(self.root, "blobs", sha[:2], sha)
        with open(blob, "r+b") as f:
            f.write(b"BAD!")
        status, _, body = self.server.download(repo, "f.bin")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"BAD!" + data[4:])
        _, env = self.server.files(repo)
        self.assertEqual({f["Path"]: f["Sha256"] for f in env["Data"]["Files"]}["f.bin"], sha)


class FaultInjectionTest(MsTestCase):
    def start(self, spec):
        self.require_test_hooks()
        root = self.path("root")
        token = HubServer(root).token("alice")
        server = HubServer(root, "--inject-faults", spec).start()
        self.addCleanup(server.stop)
        server.create_model(token, "alice", "m")
        self.data = os.urandom(256 * 1024)
        self.assertEqual(server.commit(token, "alice/m", lfs={"f.bin": self.data})[0], 200)
        return server

    def fetch(self, server):
        """(status, bytes received, error) for one file-content GET."""
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        try:
            conn.request("GET", "/api/v1/models/alice/m/repo?Revision=master&FilePath=f.bin")
            resp = conn.getresponse()
            try:
                return resp.status, resp.read(), None
            except http.client.IncompleteRead as e:
                return resp.status, e.partial, e
        except (ConnectionError, http.client.HTTPException) as e:
            return None, b"", e
        finally:
            conn.close()

    def test_status500_every_third(self):
        server = self.start("status500=3")
        statuses = [self.fetch(server)[0] for _ in range(6)]
        self.assertEqual(statuses, [200, 200, 500, 200, 200, 500])

    def test_reset_every_second(self):
        server = self.start("reset=2")
        status, body, error = self.fetch(server)
        self.assertEqual((status, body, error), (200, self.data, None))
        status, body, error = self.fetch(server)
        self.assertIsNotNone(error)
        self.assertLess(len(body), len(self.data))
        self.assertEqual(self.fetch(server)[1], self.data)
        # Listing and other API calls are not counted.
        self.assertEqual(server.files("alice/m")[0], 200)

    def test_stall(self):
        # The first half of the body comes at once; the server then logs the stall at the midpoint
        # before it sends the rest (the client side of a stall, a retry after
        # MS_HUB_STALL_TIMEOUT, is tested in test_hub_client.py).
        server = self.start("stall=1,stall_seconds=1")
        half = len(self.data) // 2
        conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
        try:
            conn.request("GET", "/api/v1/models/alice/m/repo?Revision=master&FilePath=f.bin")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            first = resp.read(half)
            self.assertEqual(first, self.data[:half])
            self.assertTrue(self.wait_for(lambda: f"stalls at byte {half} " in server.log()),
                            server.log())
            self.assertEqual(first + resp.read(), self.data)
        finally:
            conn.close()
        # Only the stalled GET logs a stall.
        self.assertEqual(server.log().count("injected fault:"), 1)

    def test_fault_injection_is_not_in_the_help(self):
        # A test-only switch: absent from a product build, hidden in a test build.
        r = run_ms("hub", "serve", "--help")
        self.assertExit(r, 0)
        self.assertIn("--threads", r.stdout)
        self.assertNotIn("inject", r.stdout.lower())

    def test_bad_fault_spec(self):
        self.require_test_hooks()
        r = run_ms("hub", "serve", "--root", self.path("r"), "--inject-faults", "bogus=1")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "bogus=1")
        r = run_ms("hub", "serve", "--root", self.path("r"), "--inject-faults", "reset=x")
        self.assertExit(r, 2)


class ServeCliTest(MsTestCase):
    def test_a_read_only_root_is_refused_at_start(self):
        # A hub stopped by SIGKILL leaves SQLite's WAL files; on a read-only mount SQLite then
        # opened the database read-only without a word, and every upload was a 500.
        mounted = self.path("ro")
        root = os.path.join(mounted, "hub")
        os.makedirs(mounted)
        server = HubServer(root).start()
        server.proc.kill()
        server.proc.wait(30)
        server._close()
        self.assertTrue(os.path.exists(os.path.join(root, "meta.sqlite3-wal")), os.listdir(root))
        # A read-only bind mount in a namespace of this test's own (no root needed).
        script = (f"mount --bind {mounted} {mounted} && mount -o remount,bind,ro {mounted} && "
                  f"exec {MS_BIN} hub serve --root {root} --port 0")
        try:
            r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                               capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            self.skipTest("no unshare")
        if "mount:" in r.stderr:
            self.skipTest("this machine allows no mount namespace: " + r.stderr)
        self.assertExit(r, 74)
        self.assertOneLineError(r, "not writable")

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            r = run_ms("hub", "serve", "--root", self.path("r"), "--port", port, timeout=30)
            self.assertExit(r, 74)
            self.assertOneLineError(r, str(port))
        r = run_ms("hub", "serve", "--root", self.path("r"), "--tls-cert", self.path("none.pem"),
                   "--tls-key", self.path("none.key"))
        self.assertExit(r, 4)
        bad = self.write("bad.pem", "not a certificate")
        r = run_ms("hub", "serve", "--root", self.path("r"), "--tls-cert", bad, "--tls-key", bad)
        self.assertExit(r, 3)
        r = run_ms("hub", "serve", "--root", self.path("r"), "--tls-cert", bad)
        self.assertExit(r, 2)

    def test_token_create(self):
        r = run_ms("hub", "token", "create", "carol", "--root", self.path("r"), "--json")
        self.assertExit(r, 0)
        out = self.json_out(r)
        self.assertEqual(out["user"], "carol")
        self.assertTrue(out["token"].startswith("ms-"))
        r = run_ms("hub", "token", "create", "../evil", "--root", self.path("r"))
        self.assertExit(r, 2)
        self.assertOneLineError(r, "../evil")

    def test_a_ready_line_stdout_cannot_take_is_a_warning_not_a_failed_exit(self):
        # `ms hub serve > /dev/full` exited 74 after a clean stop, as if results were lost.
        from harness import free_port
        port = free_port()
        stderr = self.path("full.stderr")
        with open("/dev/full", "w") as full, open(stderr, "w") as err:
            p = subprocess.Popen([MS_BIN, "hub", "serve", "--root", self.path("r"), "--port", str(port)],
                                 stdout=full, stderr=err)
        self.addCleanup(lambda: p.poll() is None and p.kill())

        def written():
            with open(stderr) as f:
                return f.read()
        self.assertTrue(self.wait_for(lambda: "warning" in written() or p.poll() is not None))
        p.send_signal(signal.SIGTERM)
        code = p.wait(30)
        log = written()
        self.assertEqual(code, 0, log)
        self.assertIn("ms hub serve: warning: its ready line could not be written", log)

    def test_host_takes_the_bracketed_ipv6_form(self):
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("no ::1 on this machine")
        p = subprocess.Popen([MS_BIN, "hub", "serve", "--root", self.path("r6"), "--host", "[::1]", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            self.assertTrue(line, p.stderr.read() if p.poll() is not None else "")
            self.assertTrue(json.loads(line)["endpoint"].startswith("http://[::1]:"), line)
        finally:
            p.terminate()
            code = p.wait(15)
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(code, 0)

    def test_json_ready_line(self):
        import subprocess
        from harness import MS_BIN
        p = subprocess.Popen([MS_BIN, "hub", "serve", "--root", self.path("r"), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            self.assertTrue(json.loads(line)["endpoint"].startswith("http://127.0.0.1:"))
        finally:
            p.terminate()
            code = p.wait(15)
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(code, 0)


if __name__ == "__main__":
    unittest.main()

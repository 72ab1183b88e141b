"""`ms download` against a misbehaving hub (a stdlib mock on 127.0.0.1): unsafe listed paths,
ignored Range requests, cut connections, invalid JSON, oversized bodies, rate limiting (429) and
redirects to another host. Bounded: each case is a handful of requests with short timeouts."""
import hashlib
import http.server
import json
import os
import shutil
import socket
import struct
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
        self.content = CONTENT
        self.gets = 0
        self.listings = 0
        self.cookies = []  # (Host header, Cookie header) of every request
        self.repo_created = False
        self.puts = []  # Host headers of blob PUTs
        self.put_cookies = []
        self.entry_changes = None  # a list of dicts: the listing holds w.bin once per dict, changed by it
        self.listed_shas = None  # the Sha256 of w.bin in the 1st, 2nd, ... listing (the last one repeats)
        self.commits = 0
        self.resets = 0  # blob PUTs cut part way ("put_reset")
        self.put_bodies = []
        self.sockets_to_reset = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def shutdown_request(self, request):
        if request in self.sockets_to_reset:
            # Closed with no FIN first and a zero linger: the peer gets a TCP reset.
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return self.close_request(request)
        super().shutdown_request(request)

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

    def paging_ignored(self, url):
        # A dataset hub that answers every PageNumber with the same full page of 100 files.
        hub = self.server
        if url.path == "/api/v1/datasets/o/d":
            return self.send_json({"Id": 7})
        if url.path == "/api/v1/datasets/7/repo/tree":
            hub.listings += 1
            sha = hashlib.sha256(b"x").hexdigest()
            return self.send_json({"Files": [{"Path": f"f{i:03d}.txt", "Type": "blob", "Size": 1, "Sha256": sha,
                                              "Revision": "c1"} for i in range(100)]})
        hub.gets += 1
        self.send_response(200)
        self.send_header("Content-Length", "1")
        self.end_headers()
        self.wfile.write(b"x")

    def folders_first(self, url, query):
        # A recursive dataset listing whose first full page holds only folders (100 class
        # folders sort before the files); the files come on page 2.
        hub = self.server
        if url.path == "/api/v1/datasets/o/d":
            return self.send_json({"Id": 7})
        if url.path == "/api/v1/datasets/7/repo/tree":
            hub.listings += 1
            page = int(query.get("PageNumber", ["1"])[0])
            sha = hashlib.sha256(b"x").hexdigest()
            if page == 1:
                return self.send_json({"Files": [{"Path": f"class{i:03d}", "Type": "tree", "Size": 0}
                                                 for i in range(100)]})
            files = [{"Path": f"class{i:03d}/a.txt", "Type": "blob", "Size": 1, "Sha256": sha, "Revision": "c1"}
                     for i in range(3)] if page == 2 else []
            return self.send_json({"Files": files})
        hub.gets += 1
        self.send_response(200)
        self.send_header("Content-Length", "1")
        self.end_headers()
        self.wfile.write(b"x")

    def send_busy(self):
        self.send_response(429)
        self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        hub = self.server
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        hub.cookies.append((self.headers.get("Host"), self.headers.get("Cookie")))
        if hub.mode == "paging_ignored":
            return self.paging_ignored(url)
        if hub.mode == "folders_first":
            return self.folders_first(url, query)
        if url.path.endswith("/repo/files"):
            hub.listings += 1
            if hub.mode == "busy" and hub.listings == 1:
                return self.send_busy()
            if hub.mode == "garbage_json":
                return self.send_json(None, raw=b"<html>not json")
            if hub.mode == "deep_json":
                # A file entry nested 200,000 deep: printing it in the error overflowed the stack.
                deep = b"[" * 200000 + b"]" * 200000
                return self.send_json(None, raw=b'{"Code": 200, "Data": {"Files": [{"Path": ' + deep + b'}]}}')
            size = len(hub.content)
            if hub.mode == "big_listing":
                # 60 small files whose entries carry 25 KB of commit message: a 1.5 MB listing.
                return self.send_json({"Files": [
                    {"Path": f"many/f{i:03d}.txt", "Type": "blob", "Size": 3, "Revision": "c1",
                     "Sha256": hashlib.sha256(b"abc").hexdigest(), "CommitMessage": "m" * 25000}
                    for i in range(60)]})
            sha = hashlib.sha256(hub.content).hexdigest()
            if hub.listed_shas:
                sha = hub.listed_shas[min(hub.listings, len(hub.listed_shas)) - 1]
            entry = {"Path": hub.listed_path, "Name": "w.bin", "Type": "blob", "Size": size,
                     "Sha256": sha, "Revision": "c1"}
            return self.send_json({"Files": [dict(entry, **change) for change in hub.entry_changes or [{}]]})
        if url.path.endswith("/revisions"):
            return self.send_json({"RevisionMap": {"Branches": [{"Revision": "master", "CreatedAt": 1}], "Tags": []}})
        if hub.mode in ("redirect", "redirect_forbidden") and url.path.endswith("/repo") and \
                self.headers.get("Host", "").startswith("127."):
            # As the real hub sends downloads to a CDN: another host, which must not get the token.
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{hub.server_address[1]}/cdn/w.bin")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if hub.mode == "redirect_forbidden" and url.path == "/cdn/w.bin":
            # The storage host refuses the link (expired, or a proxy's rule).
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if (url.path.endswith("/repo") and "FilePath" in query) or url.path == "/cdn/w.bin":
            hub.gets += 1
            if hub.mode == "busy" and hub.gets == 1:
                return self.send_busy()
            if hub.mode == "big_listing":
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"abc")
                return
            rng = self.headers.get("Range")
            start = 0
            end = len(hub.content)
            whole = hub.mode in ("ignore_range", "oversized_whole")  # Range ignored: 200, whole file
            if rng and not whole:
                first, last = rng.split("=")[1].split("-")
                start, end = int(first), (int(last) + 1 if last else len(hub.content))
            body = hub.content[start:end]
            if hub.mode in ("oversized", "oversized_whole"):
                body = hub.content + b"extra bytes"
            self.send_response(206 if rng and not whole else 200)
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
        if url.path == "/api/v1/models/o/n" and hub.mode in ("lfs_elsewhere", "put_reset"):
            return self.send_json({"Id": 1, "Name": "n"})
        if url.path == "/api/v1/models/o/n" and hub.mode == "create_race":
            if not hub.repo_created:
                return self.send_status(404, "model o/n does not exist")
            return self.send_json({"Id": 1, "Name": "n"})
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_status(self, status, message):
        body = json.dumps({"Code": status, "Success": False, "Message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        hub = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if hub.mode == "put_reset" and hub.resets == 0:
            # The hub dies before answering the first blob PUT, on a connection the client
            # reused: a reset and no answer, which curl meets by sending the request again.
            hub.resets += 1
            hub.sockets_to_reset.append(self.connection)
            self.close_connection = True
            return
        hub.put_bodies.append(body)
        hub.puts.append(self.headers.get("Host"))
        hub.put_cookies.append(self.headers.get("Cookie"))
        self.send_json(None)

    def do_POST(self):
        hub = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/api/v1/models":
            # Another client created the repo between this client's check and its create.
            hub.repo_created = True
            return self.send_status(409, "model o/n already exists")
        if self.path.endswith("/info/lfs/objects/batch"):
            # The upload goes to another host the hub names (as ModelScope's object store).
            host = "localhost" if hub.mode == "lfs_elsewhere" else "127.0.0.1"
            href = f"http://{host}:{hub.server_address[1]}/upload/blob"
            return self.send_json({"objects": [{"oid": o["oid"], "size": o["size"], "actions": {"upload": {"href": href}}}
                                               for o in json.loads(body)["objects"]]})
        if self.path.startswith("/api/v1/repos/models/o/n/commit/"):
            hub.commits += 1
            return self.send_json({"oid": "c2"})
        self.send_status(404, "no such API")


class HostileHubTest(MsTestCase):
    def setUp(self):
        super().setUp()
        self.hub = MockHub()
        self.addCleanup(self.hub.stop)

    def download(self, *extra, env=None):
        env = {**(env or {}), "MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_ENDPOINT": self.hub.endpoint,
               "MODELSCOPE_API_TOKEN": "", "MODELSCOPE_CREDENTIALS_PATH": self.path("cred"),
               "MS_HUB_RETRIES": "3", "MS_HUB_STALL_TIMEOUT": "5", "MODELSCOPE_OFFLINE": ""}
        workers = [] if "--max-workers" in extra else ["--max-workers", "1"]
        return run_ms("download", "o/n", *workers, *extra, env=env, timeout=120)

    def cached(self):
        return os.path.join(self.path("cache"), "models", "o", "n", "w.bin")

    def test_sane_mock_downloads(self):
        self.assertExit(self.download(), 0)
        with open(self.cached(), "rb") as f:
            self.assertEqual(f.read(), CONTENT)

    def test_mismatch_says_whether_the_file_changed_on_the_hub_or_is_corrupt(self):
        # The listing promised other bytes than every try delivered. The same promise in a second
        # listing means the hub serves corrupt data: exit 7 after the tries, nothing cached.
        # A listing that names other bytes means a commit came in during the download: the
        # download lists again and fetches that commit's version; only a hub whose listing
        # keeps changing, pass after pass, is exit 7 again.
        old_sha = hashlib.sha256(b"the version listed first").hexdigest()
        new_sha = hashlib.sha256(CONTENT).hexdigest()
        moving = [hashlib.sha256(b"version %d" % n).hexdigest() for n in range(20)]
        for listed, expected in (([old_sha], "corrupt data"),
                                 (moving, "changed on the hub during the download")):
            with self.subTest(listed=len(listed)):
                self.hub.listings = 0
                self.hub.listed_shas = listed
                shutil.rmtree(self.path("cache"), True)
                r = self.download()
                self.assertExit(r, 7)
                self.assertOneLineError(r, "w.bin")
                self.assertIn(expected, r.stderr)
                self.assertFalse(os.path.exists(self.path("cache", "models", "o", "n", "w.bin")))
        self.hub.listings = 0
        self.hub.listed_shas = [old_sha, new_sha]
        shutil.rmtree(self.path("cache"), True)
        r = self.download()
        self.assertExit(r, 0)
        self.assertIn("changed during the download (a new commit)", r.stderr)
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

    def test_git_folder_and_invisible_characters_are_refused_before_writing(self):
        # A listed ".git/config" written into a --local-dir that is a git work tree would run a
        # core.fsmonitor command on the next `git status`; bidi controls show another name than
        # the one written. Exit 7, naming the path, and nothing written.
        local = self.path("work")
        os.makedirs(os.path.join(local, ".git"))
        for bad, named in ((".git/config", ".git"), (".GIT/config", ".GIT"), ("sub/.Git/hooks/post-checkout", ".Git"),
                           (".git./config", ".git."), ("git~1/config", "git~1"), (".g\u200cit/config", "names git"),
                           ("evil\u202etxt.exe", "U+202E"), ("a\u2066b", "U+2066"), ("c1\u0085x", "control")):
            with self.subTest(path=bad):
                self.hub.listed_path = bad
                r = self.download("--local-dir", local)
                self.assertExit(r, 7)
                self.assertOneLineError(r, "unsafe", named)
                self.assertEqual(sorted(os.listdir(local)), [".git"])
                self.assertEqual(os.listdir(os.path.join(local, ".git")), [])
        self.assertEqual(self.hub.gets, 0)
        # Names that merely contain "git" are ordinary files (model listings leave out
        # .gitattributes and .gitignore, as Python's modelscope does).
        for good in (".github/ci.yml", "x.git/config"):
            self.hub.listed_path = good
            self.assertExit(self.download("--local-dir", local), 0)
            with open(os.path.join(local, good), "rb") as f:
                self.assertEqual(f.read(), CONTENT)

    def test_names_differing_only_by_normalisation_are_refused(self):
        # "caf\u00e9" and "cafe\u0301" are one file on macOS: the second would replace the first.
        self.hub.entry_changes = [{"Path": "caf\u00e9.txt"}, {"Path": "cafe\u0301.txt"}]
        r = self.download("--local-dir", self.path("local"))
        self.assertExit(r, 7)
        self.assertOneLineError(r, "normalisation")
        self.assertFalse(os.path.exists(self.path("local", "caf\u00e9.txt")))
        self.assertEqual(self.hub.gets, 0)

    def test_ignored_range_still_resumes(self):
        # A hub that answers every Range request with the whole file (200): the resumed transfer
        # drops the bytes the client has, so the download completes and the cache is correct,
        # rather than the partial file failing every later run.
        self.hub.mode = "ignore_range"
        r = self.download()
        self.assertExit(r, 0)
        self.assertIn("ignored the Range request", r.stderr)
        with open(self.cached(), "rb") as f:
            self.assertEqual(f.read(), CONTENT)
        self.assertEqual(self.hub.gets, 2)

    def test_ignored_range_with_ranged_parts(self):
        # Each part of a parted download takes its slice out of the whole-file answers; part 0
        # used to fail with 'sent more than asked for'. Parts start at 64 MiB files.
        self.hub.mode = "ignore_range"
        self.hub.content = os.urandom(65 << 20)
        r = self.download("--max-workers", "4", env={"MS_DOWNLOAD_PARTS": "4"})
        self.assertExit(r, 0)
        self.assertGreaterEqual(self.hub.gets, 4)
        with open(self.cached(), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).digest(), hashlib.sha256(self.hub.content).digest())

    def test_rate_limited_requests_are_retried_after_retry_after(self):
        self.hub.mode = "busy"
        r = self.download()
        self.assertExit(r, 0)
        with open(self.cached(), "rb") as f:
            self.assertEqual(f.read(), CONTENT)
        self.assertEqual((self.hub.listings, self.hub.gets), (2, 2))

    def test_token_is_not_sent_to_the_host_a_download_redirects_to(self):
        self.hub.mode = "redirect"
        self.assertExit(self.download("--token", "SECRET-TOKEN"), 0)
        with open(self.cached(), "rb") as f:
            self.assertEqual(f.read(), CONTENT)
        hub_host = f"127.0.0.1:{self.hub.server_address[1]}"
        to_hub = [c for host, c in self.hub.cookies if host == hub_host]
        elsewhere = [c for host, c in self.hub.cookies if host != hub_host]
        self.assertTrue(to_hub and all(c and "m_session_id=SECRET-TOKEN" in c for c in to_hub))
        self.assertTrue(elsewhere, "the download did not follow the redirect")
        self.assertTrue(all(c is None or "SECRET-TOKEN" not in c for c in elsewhere), elsewhere)

    def test_a_403_from_the_host_a_download_redirects_to_is_not_the_hubs_word(self):
        # It read as the hub refusing the token's user ("the token is valid, but its user lacks
        # permission", exit 2), though that host never got the token.
        self.hub.mode = "redirect_forbidden"
        r = self.download("--token", "SECRET-TOKEN")
        self.assertExit(r, 5)
        self.assertIn("HTTP 403 from http://localhost:", r.stderr)
        self.assertNotIn("lacks permission", r.stderr)

    def test_upload_create_loses_a_race_to_another_client(self):
        self.hub.mode = "create_race"
        src = self.path("src")
        os.makedirs(src)
        with open(os.path.join(src, "a.txt"), "w") as f:
            f.write("a")
        env = {"MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_CREDENTIALS_PATH": self.path("cred"),
               "MODELSCOPE_API_TOKEN": "", "MS_HUB_RETRIES": "2"}
        r = run_ms("upload", "o/n", src, "--create", "--endpoint", self.hub.endpoint, "--token", "t",
                   env=env, timeout=60)
        self.assertExit(r, 0)
        self.assertEqual(self.hub.commits, 1)

    def test_bad_sizes_and_types_in_the_listing_are_refused(self):
        # A size of 2**64-1 made a parted download loop for ever building parts of 0 bytes; a
        # non-string Path or null Revision ended in 'internal error' (exit 70).
        for change in ({"Size": -1}, {"Size": 2 ** 64 - 1}, {"Size": 1e30}, {"Size": 2.5}, {"Size": "3145728"},
                       {"Path": 5}, {"Sha256": ["x"]}):
            with self.subTest(change=change):
                self.hub.entry_changes = [change]
                r = self.download("--max-workers", "4", env={"MS_DOWNLOAD_PARTS": "4"})
                self.assertExit(r, 7)
                self.assertOneLineError(r, "bad file entry")
                self.assertFalse(os.path.exists(self.cached()))
        self.assertEqual(self.hub.gets, 0)

    def test_lenient_listing_details(self):
        # A path listed twice (a paged listing read while the repo changed), an upper-case
        # digest and a null Revision still give the one right file.
        sha = hashlib.sha256(CONTENT).hexdigest()
        self.hub.entry_changes = [{"Sha256": sha.upper(), "Revision": None}, {}]
        r = self.download("--max-workers", "4")
        self.assertExit(r, 0)
        self.assertIn("more than once", r.stderr)
        with open(self.cached(), "rb") as f:
            self.assertEqual(f.read(), CONTENT)
        self.assertEqual(self.hub.gets, 1)

    def test_dataset_hub_ignoring_page_numbers(self):
        # Each page was asked for up to the 100000-page cap, the same 100 files every time.
        self.hub.mode = "paging_ignored"
        env = {"MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_CREDENTIALS_PATH": self.path("cred"),
               "MODELSCOPE_API_TOKEN": "", "MODELSCOPE_OFFLINE": ""}
        r = run_ms("download", "o/d", "--dataset", "--endpoint", self.hub.endpoint, env=env, timeout=60)
        self.assertExit(r, 0)
        self.assertEqual(self.hub.listings, 2)
        self.assertEqual(self.hub.gets, 100)
        self.assertEqual(len([l for l in r.stderr.splitlines() if "more than once" in l]), 1)

    def test_dataset_listing_with_a_page_of_folders_only(self):
        # A full page of folders is progress, not the end: the files on page 2 must come too.
        self.hub.mode = "folders_first"
        env = {"MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_CREDENTIALS_PATH": self.path("cred"),
               "MODELSCOPE_API_TOKEN": "", "MODELSCOPE_OFFLINE": ""}
        r = run_ms("download", "o/d", "--dataset", "--endpoint", self.hub.endpoint, "--local-dir", self.path("d"),
                   env=env, timeout=60)
        self.assertExit(r, 0)
        self.assertEqual(self.hub.gets, 3)
        for i in range(3):
            with open(self.path("d", f"class{i:03d}", "a.txt"), "rb") as f:
                self.assertEqual(f.read(), b"x")

    def test_upload_href_on_another_host_gets_the_token(self):
        # The cookie is scoped to the hub's host, but a blob PUT goes where the hub's batch
        # answer says, with the token, as Python's client sends it.
        self.hub.mode = "lfs_elsewhere"
        src = self.path("src")
        os.makedirs(src)
        with open(os.path.join(src, "w.bin"), "wb") as f:
            f.write(os.urandom(4096))
        env = {"MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_CREDENTIALS_PATH": self.path("cred"),
               "MODELSCOPE_API_TOKEN": "", "MS_HUB_RETRIES": "2"}
        r = run_ms("upload", "o/n", src, "--endpoint", self.hub.endpoint, "--token", "SECRET-TOKEN",
                   env=env, timeout=60)
        self.assertExit(r, 0)
        self.assertEqual(self.hub.puts, [f"localhost:{self.hub.server_address[1]}"])
        self.assertEqual(self.hub.put_cookies, ["m_session_id=SECRET-TOKEN"])

    def test_blob_put_cut_on_a_reused_connection_is_sent_again(self):
        # curl sends a request again when a reused connection turns out dead; a streamed body
        # must then start over, which failed the upload (exit 5, "necessary data rewind wasn't
        # possible") where a retry would have worked.
        self.hub.mode = "put_reset"
        src = self.path("src")
        os.makedirs(src)
        content = os.urandom(4 << 20)
        with open(os.path.join(src, "w.bin"), "wb") as f:
            f.write(content)
        # One try: the resend must be curl's own, on a fresh connection (ms's retry would hide it).
        env = {"MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_CREDENTIALS_PATH": self.path("cred"),
               "MODELSCOPE_API_TOKEN": "", "MS_HUB_RETRIES": "1"}
        r = run_ms("upload", "o/n", src, "--endpoint", self.hub.endpoint, "--token", "T", env=env, timeout=60)
        self.assertExit(r, 0)
        self.assertEqual(self.hub.resets, 1)
        self.assertEqual(self.hub.put_bodies, [content])  # the whole file, from its first byte
        self.assertEqual(self.hub.commits, 1)

    def test_oversized_body_is_refused(self):
        # As a 206 for the range asked, and as a whole-file 200 longer than the listed size.
        for mode in ("oversized", "oversized_whole"):
            with self.subTest(mode=mode):
                shutil.rmtree(self.path("cache"), ignore_errors=True)  # no partial file from before
                self.hub.mode = mode
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

    def test_deeply_nested_answer_is_a_network_error_not_a_crash(self):
        self.hub.mode = "deep_json"
        r = self.download()
        self.assertExit(r, 5)
        self.assertOneLineError(r, "invalid JSON", "nested deeper than 1000")

    def test_invalid_json_is_a_network_error(self):
        self.hub.mode = "garbage_json"
        r = self.download()
        self.assertExit(r, 5)
        self.assertOneLineError(r, "invalid JSON")


if __name__ == "__main__":
    import unittest
    unittest.main()

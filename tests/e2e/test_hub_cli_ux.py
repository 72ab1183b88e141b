"""End-to-end tests of what a script or CI job meets on the hub commands' command line: --help
that documents options, env vars and exit codes; one-line errors with documented exit codes;
--json on stdout for success and failure; progress only on a terminal."""
import json
import os
import pickle
import shlex
import shutil
import socket
import subprocess
import unittest

from harness import MS_BIN, run_ms
from hub_fixture import HubServer, SharedHubTestCase, make_tree

HUB_COMMANDS = [
    ("download",),
    ("upload",),
    ("login",),
    ("hub", "serve"),
    ("hub", "token", "create"),
]


class HelpTest(SharedHubTestCase):
    def test_each_hub_command_help_has_examples_and_exit_codes(self):
        for command in HUB_COMMANDS:
            with self.subTest(command=command):
                r = run_ms(*command, "--help", timeout=30)
                self.assertExit(r, 0)
                self.assertIn("Examples:", r.stdout)
                self.assertIn("Exit codes:", r.stdout)

    def test_download_help_names_the_environment_it_reads(self):
        r = run_ms("download", "--help", timeout=30)
        self.assertExit(r, 0)
        for name in ("MODELSCOPE_CACHE", "MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN",
                     "MODELSCOPE_API_TOKEN", "MODELSCOPE_OFFLINE", "MS_HUB_RETRIES", "--json"):
            self.assertIn(name, r.stdout)

    def test_top_level_help_points_to_examples_and_json(self):
        r = run_ms("--help", timeout=30)
        self.assertExit(r, 0)
        self.assertIn("Examples:", r.stdout)
        self.assertIn("--json", r.stdout)


class UsageErrorsTest(SharedHubTestCase):
    """Command-line mistakes: one 'ms: error:' line, a hint naming the help to read, exit 2."""

    def test_usage_errors_are_one_line_with_a_hint(self):
        cases = [
            (("download", "alice/m", "--bogus"), "--bogus", "ms download --help"),
            (("download",), "repo", "ms download --help"),
            (("download", "a/b/c"), "a/b/c", None),
            (("download", "../x"), "../x", None),
            (("download", "a/m", "--local-dir", "x", "--cache-dir", "y"), "--cache-dir",
             "ms download --help"),
            (("hub", "serve"), "--root", "ms hub serve --help"),
            (("hub", "token", "create", "--root", "x"), "USER", "ms hub token create --help"),
            (("donwload", "a/m"), "donwload", "did you mean 'download'"),
        ]
        for args, named, hint in cases:
            with self.subTest(args=args):
                r = run_ms(*args, env=self.env(), timeout=30)
                self.assertExit(r, 2)
                self.assertOneLineError(r, named)
                if hint:
                    self.assertIn(hint, r.stderr)
                self.assertEqual(r.stdout, "")


class HubCliErrorsTest(SharedHubTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        src = make_tree(cls.server_root + "-src", {"config.json": b"{}", "weights.bin": b"w" * 5000})
        r = run_ms("upload", "alice/ux", src, "--create", "--token", cls.token,
                   env={"MODELSCOPE_ENDPOINT": cls.server.endpoint}, timeout=120)
        shutil.rmtree(src, True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)

    def ms(self, *args, env=None, timeout=60):
        return run_ms(*args, env=env or self.env(), timeout=timeout)

    def test_endpoint_that_is_not_http_is_a_usage_error_naming_its_source(self):
        r = self.ms("download", "alice/ux", "--endpoint", "ftp://x")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--endpoint", "ftp://x")
        r = self.ms("download", "alice/ux", env=self.env(MODELSCOPE_ENDPOINT="ftp://x"))
        self.assertExit(r, 2)
        self.assertOneLineError(r, "MODELSCOPE_ENDPOINT", "ftp://x")
        r = self.ms("upload", "alice/ux", self.tmp, "--endpoint", "https://:80")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--endpoint")
        # A path, query or user name would be glued into every URL; port 0 or beyond 65535,
        # and "http://" with nothing after it, name no hub.
        for bad in ("http://", "http://127.0.0.1:0", "http://127.0.0.1:99999",
                    "http://127.0.0.1:8080/path", "http://127.0.0.1:8080?x"):
            r = self.ms("download", "alice/ux", env=self.env(MODELSCOPE_ENDPOINT=bad))
            self.assertExit(r, 2, bad)
            self.assertOneLineError(r, "MODELSCOPE_ENDPOINT", "not a hub address")
        r = self.ms("download", "alice/ux", env=self.env(MODELSCOPE_ENDPOINT="http://u:secret@h:1"))
        self.assertExit(r, 2)
        self.assertNotIn("secret", r.stderr)

    def test_include_that_matches_nothing_is_not_found(self):
        r = self.ms("download", "alice/ux", "--token", self.token, "--include", "*.safetensors")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "*.safetensors")
        self.assertIn("config.json", r.stderr)  # the hint shows what the repo has

    def test_json_failure_is_a_json_document_on_stdout(self):
        r = self.ms("download", "alice/no-such-repo", "--token", self.token, "--json")
        self.assertExit(r, 4)
        error = self.json_out(r)["error"]
        self.assertEqual(error["code"], "not-found")
        self.assertEqual(error["exit_code"], 4)
        self.assertIn("alice/no-such-repo", error["message"])
        self.assertOneLineError(r, "alice/no-such-repo")  # stderr still has the human line

        r = self.ms("upload", "alice/ux", self.path("missing"), "--token", self.token, "--json")
        self.assertExit(r, 4)
        self.assertEqual(self.json_out(r)["error"]["code"], "not-found")
        self.assertOneLineError(r, self.path("missing"))

        r = self.ms("login", "--token", "not-a-token", "--json")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(self.json_out(r)["error"]["exit_code"], r.returncode)

    def test_bytes_that_are_not_utf8_never_abort_a_json_report(self):
        # nlohmann's dump() throws on invalid UTF-8: an error report must show U+FFFD instead.
        # (Bytes, not text: the human line on stderr carries the raw byte.)
        for args, word in ((["download", b"alice/\xff"], "alice/\ufffd"),
                           (["login", "--token", b"tok\xffen"], "token")):
            r = subprocess.run([MS_BIN, *args, "--json"], capture_output=True, env=self.env(),
                               timeout=60)
            self.assertEqual(r.returncode, 2, r.stderr)
            error = json.loads(r.stdout.decode("utf-8"))["error"]
            self.assertEqual(error["exit_code"], 2)
            self.assertIn(word, error["message"])

    def test_refs_that_would_make_a_revision_ambiguous_are_refused(self):
        src = make_tree(self.path("src"), {"a.txt": b"one"})
        self.assertExit(self.ms("upload", "alice/refs", src, "--create", "--token", self.token), 0)
        self.assertExit(self.ms("upload", "alice/refs", src, "--revision", "dev",
                                "--token", self.token), 0)
        # A branch inside an existing one, and one around it: git cannot hold both.
        for name in ("dev/x", "master/y"):
            r = self.ms("upload", "alice/refs", src, "--revision", name, "--token", self.token)
            self.assertExit(r, 2)
            self.assertIn("cannot sit beside", r.stderr)
        # A branch named like a commit would hide that commit from downloads by id.
        r = self.ms("upload", "alice/refs", src, "--revision", "0" * 40, "--token", self.token)
        self.assertExit(r, 2)
        self.assertIn("40 hex digits", r.stderr)

    def test_a_tag_the_hub_would_refuse_stops_the_upload_before_its_commit(self):
        # The tag is made after the commit: a name the hub refuses left the files committed to
        # master behind an exit 2 that says nothing changed.
        src = make_tree(self.path("src"), {"a.txt": b"one"})
        self.assertExit(self.ms("upload", "alice/tags", src, "--create", "--tag", "v1", "--token", self.token), 0)
        self.assertExit(self.ms("upload", "alice/tags", src, "--revision", "dev", "--token", self.token), 0)
        changed = make_tree(self.path("changed"), {"a.txt": b"two"})
        cases = [("v1", "has that tag already"), ("dev", "has a branch of that name"),
                 ("dev/x", "the branch 'dev'"), ("v1/rc", "the tag 'v1'"), ("bad..tag", "git's ref rules"),
                 ("x.lock", "git's ref rules"), ("a" * 40, "40 hex digits"), ("main", "reserved"),
                 ("t" * 129, "at most 128 bytes")]
        for tag, reason in cases:
            with self.subTest(tag=tag):
                r = self.ms("upload", "alice/tags", changed, "--tag", tag, "--token", self.token)
                self.assertExit(r, 2)
                self.assertOneLineError(r, reason, "nothing was uploaded")
        # A branch the upload itself would make is beside the tag too.
        for revision, tag in (("v2", "v2"), ("rel", "rel/1")):
            r = self.ms("upload", "alice/tags", changed, "--revision", revision, "--tag", tag, "--token", self.token)
            self.assertExit(r, 2)
            self.assertOneLineError(r, f"commits to the branch '{revision}'", "nothing was uploaded")
        r = self.ms("download", "alice/tags", "a.txt", "--local-dir", self.path("out"), "--token", self.token)
        self.assertExit(r, 0)
        with open(self.path("out", "a.txt"), "rb") as f:
            self.assertEqual(f.read(), b"one")

    def test_repo_ids_that_would_share_a_cache_folder(self):
        # "a/x.y" and "a/x___y" are both cached in models/a/x___y, and "a/b--c" and "a--b/c" in
        # models/a--b--c: a download of one served the other's files. The hub refuses to make
        # the second kind of id; the client refuses a cache folder whose .mdl names another repo.
        src = make_tree(self.path("src"), {"f.txt": b"mine"})
        for repo in ("alice/x___y", "alice/x_.y", "alice/x._y"):
            r = self.ms("upload", repo, src, "--create", "--token", self.token)
            self.assertExit(r, 2)
            self.assertOneLineError(r, "could share its cache folder")
        self.assertExit(self.ms("upload", "alice/x.y", src, "--create", "--token", self.token), 0)
        out = json.loads(self.ms("download", "alice/x.y", "--token", self.token, "--json").stdout)
        folder = out["local_path"]
        self.assertEqual(os.path.basename(folder), "x___y")
        # ms's .mdl records the id as given ("alice/x.y"), so a download of "alice/x___y" (from
        # a hub that lets such a repo be) is refused here, online or not, before any request.
        for offline in ([], ["--offline"]):
            r = self.ms("download", "alice/x___y", *offline, "--token", self.token)
            self.assertExit(r, 7)
            self.assertOneLineError(r, "holds the repo alice/x.y")
            self.assertIn("--local-dir", r.stderr)
        with open(os.path.join(folder, "f.txt"), "rb") as f:
            self.assertEqual(f.read(), b"mine")
        # Python's modelscope records the folder's form, which either id could have written.
        with open(os.path.join(folder, ".mdl"), "wb") as f:
            pickle.dump({"id": "alice/x___y"}, f, protocol=4)
        self.assertExit(self.ms("download", "alice/x.y", "--offline"), 0)

    def test_what_the_hub_refuses_is_a_usage_error_naming_the_reason(self):
        # A refusal (HTTP 400) is not a network fault: trying again cannot help, so it is exit 2
        # with the hub's reason (it was exit 5, "network", as if worth a retry).
        src = make_tree(self.path("src"), {"a.txt": b"one", "dir/f.txt": b"f"})
        self.assertExit(self.ms("upload", "alice/refuse", src, "--create", "--tag", "v1",
                                "--token", self.token), 0)
        one = self.write("one.txt", "x")
        cases = [
            # a file under a path that is a file in the repo
            (["upload", "alice/refuse", one, "a.txt/inner"], "'a.txt' is a file"),
            # a file where the repo has a folder: the message names the folder's file
            (["upload", "alice/refuse", one, "dir"], "'dir' is a folder in the repo"),
            # commits go to branches, not tags
            (["upload", "alice/refuse", one, "--revision", "v1"], "is a tag"),
            (["upload", "alice/refuse", one, "--revision", "a..b"], "a..b"),
        ]
        for args, reason in cases:
            with self.subTest(args=args):
                r = self.ms(*args, "--token", self.token, "--json")
                self.assertExit(r, 2)
                error = json.loads(r.stdout)["error"]
                self.assertEqual((error["code"], error["exit_code"]), ("usage", 2), error)
                self.assertIn("the hub refused it", error["message"])
                self.assertIn(reason, error["message"])
                self.assertIn("change that and run again", error["hint"])

    def test_errors_name_the_thing_and_the_fix(self):
        r = self.ms("download", "alice/ux", "nofile.txt", "--token", self.token)
        self.assertExit(r, 4)
        self.assertOneLineError(r, "nofile.txt")
        self.assertIn("hint: the repo has 2 file(s)", r.stderr)

        a_file = self.write("a-file", "x")
        r = self.ms("download", "alice/ux", "--token", self.token, "--local-dir", a_file + "/sub")
        self.assertExit(r, 74)
        self.assertOneLineError(r, a_file, "cannot be made", "is a file, not a folder")
        self.assertIn("--local-dir", r.stderr)

        # https:// to a plain-http hub: the hint says to use http://
        https = self.server.endpoint.replace("http://", "https://")
        r = self.ms("download", "alice/ux", "--endpoint", https,
                    env=self.env(MS_HUB_RETRIES="1"))
        self.assertExit(r, 5)
        self.assertOneLineError(r, https)
        self.assertIn("http://HOST:PORT", r.stderr)

    def test_a_permission_refusal_says_the_token_is_valid(self):
        # A 403 (the hub knows the token, its user may not do this) was exit 5, "network", with a
        # hint calling the token invalid: logging in again cannot help, changing the repo can.
        src = make_tree(self.path("src"), {"a.txt": b"a"})
        r = self.ms("upload", "alice/not-bobs", src, "--create", "--token", self.other_token,
                    "--json")
        self.assertExit(r, 2)
        error = self.json_out(r)["error"]
        self.assertEqual((error["code"], error["exit_code"]), ("usage", 2), error)
        self.assertIn("HTTP 403", error["message"])
        self.assertIn("user bob may not create repos under alice", error["message"])
        self.assertIn("the token is valid", error["hint"])
        self.assertIn("alice/not-bobs", error["hint"])
        self.assertNotIn("invalid", error["hint"])
        self.assertOneLineError(r, "HTTP 403")

    def test_a_cache_or_local_dir_that_is_a_file_is_named_as_such(self):
        # It was "FILE/.lock: cannot create folder: Not a directory".
        a_file = self.write("a-file", "x")
        for args, env, named in (
                (["--cache-dir", a_file], {}, "the cache folder"),
                ([], {"MODELSCOPE_CACHE": a_file}, "the cache folder"),
                (["--local-dir", a_file], {}, "the --local-dir folder")):
            with self.subTest(args=args, env=env):
                r = self.ms("download", "alice/ux", "--token", self.token, *args,
                            env=self.env(**env))
                self.assertExit(r, 74)
                self.assertOneLineError(r, f"{named} {a_file} is a file, not a folder")
                self.assertNotIn(".lock", r.stderr)
        # A folder below that file is named with the file in its way (it named FILE/cache/.lock).
        below = os.path.join(a_file, "cache")
        r = self.ms("download", "alice/ux", "--token", self.token, env=self.env(MODELSCOPE_CACHE=below))
        self.assertExit(r, 74)
        self.assertOneLineError(r, f"the cache folder {below} cannot be made: {a_file} is a file")
        self.assertNotIn(".lock", r.stderr)

    def test_a_read_only_local_dir_is_named_not_the_cache(self):
        # It said "cannot write to the cache folder", and its hint offered another cache.
        mounted = self.path("ro")
        os.makedirs(os.path.join(mounted, "ld"))
        cache = self.path("cache")
        os.makedirs(cache)
        env = {**os.environ, **self.env()}
        # A read-only bind mount in a mount namespace of this test's own (no root needed).
        script = (f"mount --bind {mounted} {mounted} && mount -o remount,bind,ro {mounted} && "
                  f"exec {shlex.quote(MS_BIN)} download alice/ux --token {self.token} "
                  f"--local-dir {mounted}/ld")
        try:
            r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                               capture_output=True, text=True, env=env, timeout=60)
        except FileNotFoundError:
            self.skipTest("no unshare")
        if "mount:" in r.stderr or "unshare:" in r.stderr:
            self.skipTest("this machine allows no mount namespace: " + r.stderr)
        self.assertExit(r, 74)
        self.assertOneLineError(r, f"{mounted}/ld: cannot write to the --local-dir folder")
        self.assertIn("choose a --local-dir", r.stderr)
        self.assertNotIn("cache", r.stderr)

    def test_login_reads_the_token_from_the_environment(self):
        r = self.ms("login", env=self.env(MODELSCOPE_API_TOKEN=""))
        self.assertExit(r, 2)
        self.assertOneLineError(r, "token")
        self.assertIn("MODELSCOPE_API_TOKEN", r.stderr)
        r = self.ms("login", "--json", env=self.env(MODELSCOPE_API_TOKEN=self.token))
        self.assertExit(r, 0)
        self.assertEqual(self.json_out(r)["username"], "alice")
        self.assertTrue(os.path.exists(self.path("credentials", "cookies")))


class ServeErrorsTest(SharedHubTestCase):
    def serve(self, *args):
        try:
            return run_ms("hub", "serve", *args, timeout=20)
        except subprocess.TimeoutExpired:
            self.fail(f"ms hub serve {' '.join(args)} kept running instead of failing")

    def test_a_port_in_use_is_refused(self):
        # httplib's default SO_REUSEPORT let a second hub share the port of a running one.
        r = self.serve("--root", self.path("second"), "--port", str(self.server.port))
        self.assertExit(r, 74)
        self.assertOneLineError(r, f"127.0.0.1:{self.server.port}")

    def test_a_root_that_is_a_file_is_named(self):
        a_file = self.write("a-file", "x")
        r = self.serve("--root", a_file)
        self.assertExit(r, 74)
        self.assertOneLineError(r, a_file, "not a folder")
        r = run_ms("hub", "token", "create", "bob", "--root", a_file, "--json", timeout=20)
        self.assertExit(r, 74)
        self.assertEqual(self.json_out(r)["error"]["exit_code"], 74)

    def test_token_create_for_a_bad_name_leaves_no_hub_behind(self):
        r = run_ms("hub", "token", "create", "../x", "--root", self.path("fresh"), timeout=20)
        self.assertExit(r, 2)
        self.assertFalse(os.path.exists(self.path("fresh")))

    def test_token_create_warns_when_root_holds_no_hub(self):
        # A mistyped --root would otherwise mint a token no running hub knows, silently.
        r = run_ms("hub", "token", "create", "bob", "--root", self.path("typo"), timeout=20)
        self.assertExit(r, 0)
        self.assertIn("held no hub yet", r.stderr)
        self.assertTrue(r.stdout.strip().startswith("ms-"))
        r = run_ms("hub", "token", "create", "bob", "--root", self.server_root, timeout=20)
        self.assertExit(r, 0)
        self.assertEqual(r.stderr, "")

    def test_tls_files_missing_or_garbage(self):
        garbage = self.write("garbage.pem", "not a certificate")
        r = self.serve("--root", self.path("r"), "--tls-cert", garbage, "--tls-key", garbage)
        self.assertExit(r, 3)
        self.assertOneLineError(r, garbage)
        r = self.serve("--root", self.path("r"), "--tls-cert", self.path("none.pem"), "--tls-key",
                       garbage)
        self.assertExit(r, 4)
        self.assertOneLineError(r, self.path("none.pem"))
        r = self.serve("--root", self.path("r"), "--tls-cert", garbage)
        self.assertExit(r, 2)


class ProgressTest(SharedHubTestCase):
    """The bar and the per-file lines go to a terminal's stderr, never to a pipe."""

    def test_progress_on_a_terminal_only(self):
        src = make_tree(self.path("src"), {"a.bin": b"a" * 100000, "b/c.txt": b"c"})
        r = run_ms("upload", "alice/progress", src, "--create", "--token", self.token,
                   env=self.env(), timeout=120)
        self.assertExit(r, 0)

        env = self.env(MS_NO_PROGRESS="", MODELSCOPE_CACHE=self.path("piped"))
        r = run_ms("download", "alice/progress", "--token", self.token, env=env, timeout=120)
        self.assertExit(r, 0)
        self.assertEqual(r.stderr, "")  # a pipe gets no bar and no per-file lines

        if not shutil.which("script"):
            self.skipTest("no `script` tool to give ms a terminal")
        env = {**os.environ, **self.env(MS_NO_PROGRESS="", MODELSCOPE_CACHE=self.path("tty"))}
        command = " ".join(shlex.quote(a) for a in
                           [MS_BIN, "download", "alice/progress", "--token", self.token])
        r = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True,
                           text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("a.bin", r.stdout)    # per-file line
        self.assertIn("b/c.txt", r.stdout)
        self.assertIn("2 files", r.stdout)  # the total bar's label

    def test_a_failed_download_does_not_look_finished_on_a_terminal(self):
        if not shutil.which("script"):
            self.skipTest("no `script` tool to give ms a terminal")
        # A hub that fails every file download (uploads work).
        faulty = HubServer(self.path("faulty-root"), faults="status500=1")
        self.addCleanup(faulty.stop)
        token = faulty.token("alice")
        env = self.env(MODELSCOPE_ENDPOINT=faulty.endpoint, MS_HUB_RETRIES="1")
        src = make_tree(self.path("src"), {"a.bin": b"a" * 100000})
        r = run_ms("upload", "alice/failing", src, "--create", "--token", token, env=env,
                   timeout=120)
        self.assertExit(r, 0)
        command = " ".join(shlex.quote(a) for a in
                           [MS_BIN, "download", "alice/failing", "--token", token])
        r = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True,
                           text=True, env={**os.environ, **env, "MS_NO_PROGRESS": ""},
                           timeout=120)
        self.assertEqual(r.returncode, 5, r.stdout + r.stderr)
        self.assertIn("(stopped)", r.stdout)  # the bar's last line says it did not finish
        self.assertIn("ms: error:", r.stdout)

if __name__ == "__main__":
    unittest.main()

"""End-to-end tests of `ms download`, `ms upload` and `ms login` against a real `ms hub serve`."""
import fcntl
import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
import unittest
import urllib.request

from harness import MS_BIN, MsTestCase, run_ms
from hub_fixture import (HubServer, SharedHubTestCase, find_blob, hub_server_available, make_certificate, make_tree,
                         parts_on_disk, modelscope_pythons, version_key)

ROUND_TRIP_FILES = {
    "config.json": b'{"framework": "pytorch", "task": "text-classification"}',
    "README.md": b"# a model\n",
    "empty.txt": b"",
    "v1.2.3.notes.txt": b"names with dots",
    "nested/deep/er/weights.bin": os.urandom(300 * 1024),
    "nested/big.dat": os.urandom((2 << 20) + 17),
    "名字/数据.txt": "你好，世界".encode("utf-8"),
    ".hidden": b"dotfile",
}


def read_tree(root, skip=(".msc", ".mdl", ".mv", "._____temp")):
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            if name in skip:
                continue
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


class HubClientTest(SharedHubTestCase):
    def ms(self, *args, env=None, timeout=180):
        return run_ms(*args, env=env or self.env(), timeout=timeout)

    def upload(self, repo, folder, *extra, token=None, expect=0):
        r = self.ms("upload", repo, folder, "--token", token or self.token, "--json", *extra)
        self.assertExit(r, expect)
        return self.json_out(r) if expect == 0 else r

    def download(self, repo, *extra, env=None, expect=0):
        r = self.ms("download", repo, "--json", *extra, env=env)
        self.assertExit(r, expect)
        return self.json_out(r) if expect == 0 else r

    # --- round trip ---------------------------------------------------------------------------
    def test_round_trip_bytes_cache_layout_and_warm_rerun(self):
        src = make_tree(self.path("src"), ROUND_TRIP_FILES)
        up = self.upload("alice/round.trip", src, "--create", "--commit-message", "first")
        self.assertEqual(up["files"], len(ROUND_TRIP_FILES))
        self.assertEqual(up["files_committed"], len(ROUND_TRIP_FILES))

        # MS_HASH_THREAD=1: the second-thread hashing path, which only files of 8 MiB and more take.
        out = self.download("alice/round.trip", "--token", self.token, env=self.env(MS_HASH_THREAD="1"))
        repo_dir = self.path("cache", "models", "alice", "round___trip")
        self.assertEqual(out["local_path"], repo_dir)
        self.assertEqual(read_tree(repo_dir), ROUND_TRIP_FILES)
        self.assertTrue(os.path.islink(self.path("cache", "models", "alice", "round.trip")))
        with open(os.path.join(repo_dir, ".msc"), "rb") as f:
            index = pickle.load(f)
        self.assertEqual(sorted(e["Path"] for e in index), sorted(ROUND_TRIP_FILES))
        self.assertTrue(all(isinstance(e["Revision"], str) and e["Revision"] for e in index))
        with open(os.path.join(repo_dir, ".mdl"), "rb") as f:
            self.assertEqual(pickle.load(f), {"id": "alice/round.trip"})
        with open(os.path.join(repo_dir, ".mv")) as f:
            self.assertRegex(f.read(), r"^Revision:master,CreatedAt:\d+$")
        temp = self.path("cache", "models", "._____temp", "alice", "round.trip")
        self.assertFalse(os.path.exists(temp) and [f for _, _, fs in os.walk(temp) for f in fs], "temp files left")

        warm = self.download("alice/round.trip", "--token", self.token)
        self.assertTrue(all(f["cached"] for f in warm["files"]))
        self.assertEqual(warm["bytes_to_fetch"], 0)

        # A second upload of the same folder sends nothing.
        again = self.upload("alice/round.trip", src)
        self.assertEqual(again["files_committed"], 0)
        self.assertEqual(again["blobs_uploaded"], 0)
        self.assertEqual(again["bytes_uploaded"], 0)

        # Plain output is the folder only; --local-dir puts the files there.
        r = self.ms("download", "alice/round.trip", "--token", self.token, "--local-dir", self.path("local"))
        self.assertExit(r, 0)
        self.assertEqual(r.stdout.strip(), self.path("local"))
        self.assertEqual(read_tree(self.path("local")), ROUND_TRIP_FILES)
        r = self.ms("download", "alice/round.trip", "--token", self.token, "--cache-dir", self.path("cd"))
        self.assertExit(r, 0)
        self.assertEqual(r.stdout.strip(), self.path("cd", "alice", "round___trip"))
        # Named as the folder it is: "./local/" was printed as "TMP/./local/".
        r = run_ms("download", "alice/round.trip", "--token", self.token, "--local-dir", "./local/",
                   env=self.env(), cwd=self.tmp)
        self.assertExit(r, 0)
        self.assertEqual(r.stdout.strip(), os.path.realpath(self.path("local")))

    def test_upload_resumes_without_sending_anything_twice(self):
        files = {"a.bin": os.urandom(300000), "b.bin": os.urandom(400000), "c.txt": b"small", "d/e.txt": b"e"}
        src = make_tree(self.path("src"), files)
        # An upload that stopped after a.bin and c.txt (as an interrupted run leaves it) ...
        first = self.upload("alice/resumable", src, "--create", "--include", "a.bin", "c.txt")
        self.assertEqual((first["files_committed"], first["blobs_uploaded"]), (2, 1))
        # ... then the whole folder: only b.bin's blob and the two new files go out.
        second = self.upload("alice/resumable", src)
        self.assertEqual(second["files_skipped"], 2)
        self.assertEqual(second["files_committed"], 2)
        self.assertEqual(second["blobs_uploaded"], 1)
        self.assertEqual(second["bytes_uploaded"], 400000 + 1)
        # A blob the hub already has (same content elsewhere) is not sent either.
        copy = make_tree(self.path("copy"), {"same.bin": files["b.bin"]})
        third = self.upload("alice/resumable", copy)
        self.assertEqual((third["blobs_uploaded"], third["blobs_present"], third["bytes_uploaded"]), (0, 1, 0))
        self.download("alice/resumable", "--token", self.token, "--local-dir", self.path("back"))
        expected = dict(files, **{"same.bin": files["b.bin"]})
        self.assertEqual(read_tree(self.path("back")), expected)

    def test_upload_without_a_token_says_not_logged_in_even_when_nothing_is_new(self):
        files = {"a.bin": os.urandom(200000), "c.txt": b"small"}
        src = make_tree(self.path("src"), files)
        self.upload("alice/no.token", src, "--create")
        # The same files again (all on the hub already), then one new file: both are refused
        # alike, instead of the first exiting 0 as if it had been allowed to write.
        newer = make_tree(self.path("newer"), dict(files, **{"new.txt": b"new"}))
        for folder in (src, newer):
            with self.subTest(folder=os.path.basename(folder)):
                r = self.ms("upload", "alice/no.token", folder,
                            env=self.env(MODELSCOPE_API_TOKEN="", MODELSCOPE_CREDENTIALS_PATH=self.path("nocred")))
                self.assertExit(r, 5)
                self.assertOneLineError(r, "not logged in", "alice/no.token")
                self.assertIn("ms login", r.stderr)

    def test_path_in_repo_for_a_file_and_a_folder(self):
        src = make_tree(self.path("src"), {"eval.json": b"{}", "sub/w.txt": b"w"})
        one = os.path.join(src, "eval.json")
        self.upload("alice/placed", src, "deep/er", "--create")
        self.upload("alice/placed", one, "results/renamed.json")
        self.upload("alice/placed", one, "into/")
        # '.', './' and '/' name the root for a file as for a folder; a file given '/' used to
        # fail with "unsafe repo path '/eval.json'", and '.' was refused for both.
        for root in (".", "./", "/"):
            self.upload("alice/placed", one, root)
            self.upload("alice/placed", src, root)
        self.upload("alice/placed", one, "./dotted/x.json")
        status, envelope = self.server.files("alice/placed", token=self.token)
        self.assertEqual(status, 200, envelope)
        self.assertEqual(sorted(f["Path"] for f in envelope["Data"]["Files"] if f["Type"] == "blob"),
                         [".gitattributes", "deep/er/eval.json", "deep/er/sub/w.txt", "dotted/x.json",
                          "eval.json", "into/eval.json", "results/renamed.json", "sub/w.txt"])
        for bad in ("../x", "/abs.json", "a//b", "a/./b"):
            r = self.upload("alice/placed", one, bad, expect=2)
            self.assertOneLineError(r, "unsafe repo path")

    def test_dataset_round_trip(self):
        src = make_tree(self.path("src"), {"train.csv": b"a,b\n1,2\n", "sub/test.jsonl": b'{"x": 1}\n'})
        self.upload("alice/ds1", src, "--dataset", "--create")
        out = self.download("alice/ds1", "--dataset", "--token", self.token)
        self.assertEqual(out["local_path"], self.path("cache", "datasets", "alice", "ds1"))
        tree = read_tree(out["local_path"])
        # Dataset downloads keep the hub's .gitattributes, as Python's dataset_snapshot_download does.
        self.assertIn(".gitattributes", tree)
        del tree[".gitattributes"]
        self.assertEqual(tree, {"train.csv": b"a,b\n1,2\n", "sub/test.jsonl": b'{"x": 1}\n'})
        with open(os.path.join(out["local_path"], ".mv")) as f:
            self.assertEqual(f.read(), "master")
        # One file, to a path of its own in the repo.
        single = self.write("notes.md", "# notes\n")
        self.upload("alice/ds1", single, "docs/NOTES.md", "--dataset")
        out = self.download("alice/ds1", "docs/NOTES.md", "--dataset", "--token", self.token)
        self.assertEqual([f["path"] for f in out["files"]], ["docs/NOTES.md"])
        with open(os.path.join(out["local_path"], "docs", "NOTES.md")) as f:
            self.assertEqual(f.read(), "# notes\n")

    # --- revisions, patterns, dry run ---------------------------------------------------------
    def test_revisions_and_tags(self):
        src = make_tree(self.path("src"), {"a.txt": b"version 1", "config.json": b"{}"})
        self.upload("alice/revs", src, "--create", "--tag", "v1.0")
        make_tree(src, {"a.txt": b"version 2", "new.txt": b"only in master"})
        self.upload("alice/revs", src, "--tag", "v2.0")
        old = self.download("alice/revs", "--token", self.token, "--revision", "v1.0", "--local-dir", self.path("v1"))
        self.assertEqual(read_tree(self.path("v1")), {"a.txt": b"version 1", "config.json": b"{}"})
        self.assertEqual(old["revision"], "v1.0")
        self.download("alice/revs", "--token", self.token, "--local-dir", self.path("head"))
        self.assertEqual(read_tree(self.path("head"))["a.txt"], b"version 2")
        self.assertIn("new.txt", read_tree(self.path("head")))
        # The same cache folder moving from v1.0 to master re-fetches only what changed.
        self.download("alice/revs", "--token", self.token, "--revision", "v1.0")
        moved = self.download("alice/revs", "--token", self.token)
        cached = {f["path"]: f["cached"] for f in moved["files"]}
        self.assertEqual(cached, {"a.txt": False, "config.json": True, "new.txt": False})
        # A tag that exists is refused before anything goes up (the files were committed, then
        # the command failed as a network error); an empty --tag was ignored.
        make_tree(src, {"late.txt": b"never sent"})
        r = self.upload("alice/revs", src, "--tag", "v2.0", expect=2)
        self.assertOneLineError(r, "--tag v2.0: alice/revs has that tag already; nothing was uploaded")
        r = self.upload("alice/revs", src, "--tag", "", expect=2)
        self.assertOneLineError(r, "--tag is empty")
        _, envelope = self.server.files("alice/revs")
        self.assertNotIn("late.txt", [f["Path"] for f in envelope["Data"]["Files"]])
        r = self.download("alice/revs", "--token", self.token, "--revision", "v9.9", expect=4)
        self.assertOneLineError(r, "v9.9")
        r = self.download("alice/no-such-repo", "--token", self.token, expect=4)
        self.assertOneLineError(r, "alice/no-such-repo")

    def test_git_bookkeeping_files_skipped_for_models_kept_for_datasets(self):
        # As Python's modelscope: model downloads skip .gitignore / .gitattributes in any folder
        # (HubApi.get_model_files drops them by name); dataset downloads keep them.
        files = {"w.txt": b"w", "sub/.gitignore": b"*.tmp\n", "sub/.gitattributes": b"* -text\n",
                 ".gitignore": b"x\n"}
        self.upload("alice/gitfiles", make_tree(self.path("src"), files), "--create")
        self.download("alice/gitfiles", "--token", self.token, "--local-dir", self.path("model"))
        got = read_tree(self.path("model"))
        self.assertEqual(sorted(got), ["w.txt"])
        self.upload("alice/gitfiles-data", self.path("src"), "--dataset", "--create")
        self.download("alice/gitfiles-data", "--dataset", "--token", self.token, "--local-dir", self.path("data"))
        got = read_tree(self.path("data"))
        for rel, data in files.items():
            self.assertEqual(got.get(rel), data, rel)
        # Named exactly, one is fetched (Python's `modelscope download REPO FILE` fetches it); a
        # glob that matches only them says why it selects nothing (it said "no file matching",
        # and counted the repo's files without them).
        out = self.download("alice/gitfiles", "sub/.gitignore", "--token", self.token,
                            "--local-dir", self.path("named"))
        self.assertEqual([f["path"] for f in out["files"]], ["sub/.gitignore"])
        self.assertEqual(read_tree(self.path("named")), {"sub/.gitignore": b"*.tmp\n"})
        r = self.download("alice/gitfiles", "sub/.git*", "--token", self.token, "--dry-run", expect=4)
        self.assertOneLineError(r, "'sub/.git*' matches only git's own files", "leave out")

    def test_a_repeated_upload_of_git_files_commits_nothing(self):
        # The upload's check for files the hub holds listed the repo without .gitignore and
        # .gitattributes, so every rerun committed them again (and --tag tagged that commit).
        src = make_tree(self.path("src"), {"a.txt": b"a", ".gitattributes": b"*.x -text\n",
                                           "sub/.gitignore": b"tmp\n"})
        first = self.upload("alice/git-rerun", src, "--create")
        self.assertEqual(first["files_committed"], 3, first)
        again = self.upload("alice/git-rerun", src, "--tag", "v1")
        self.assertEqual((again["files_committed"], again["files_skipped"]), (0, 3), again)

    def test_a_named_file_is_that_path_and_filters_that_drop_it_say_so(self):
        src = make_tree(self.path("src"), {"[a].txt": b"1", "a.txt": b"2", "b.json": b"{}"})
        self.upload("alice/names-vs-globs", src, "--create")
        # A path the repo lists is that file, though it reads as a glob too.
        out = self.download("alice/names-vs-globs", "[a].txt", "--token", self.token, "--dry-run")
        self.assertEqual([f["path"] for f in out["files"]], ["[a].txt"])
        out = self.download("alice/names-vs-globs", "[ab].txt", "--token", self.token, "--dry-run")
        self.assertEqual([f["path"] for f in out["files"]], ["a.txt"])
        # A named file that --exclude/--include leaves out is there: it said "no file matching
        # 'a.txt'", with the hint "did you mean 'a.txt'?".
        r = self.download("alice/names-vs-globs", "a.txt", "--exclude", "a.txt", "--token",
                          self.token, "--dry-run", expect=4)
        self.assertOneLineError(r, "every file matching 'a.txt'", "left out by --include/--exclude")
        self.assertNotIn("did you mean", r.stderr)
        r = self.download("alice/names-vs-globs", "a.txt", "--include", "*.json", "--token",
                          self.token, "--dry-run", expect=4)
        self.assertOneLineError(r, "left out by --include/--exclude")

    def test_a_404_with_a_token_the_hub_refuses_says_so(self):
        # A hub reads a token it does not accept as none, so a private repo is a 404: that was
        # "not found" (and, for an upload, "pass --create"), which following only made a 401.
        src = make_tree(self.path("src"), {"s.txt": b"s"})
        self.upload("alice/token-check", src, "--create", "--private")
        bad = "ms-" + "0" * 40
        r = self.download("alice/token-check", "--token", bad, expect=5)
        self.assertOneLineError(r, "alice/token-check", "does not accept the access token")
        self.assertIn("ms login", r.stderr)
        r = self.upload("alice/token-check", src, token=bad, expect=5)
        self.assertOneLineError(r, "does not accept the access token")
        self.assertNotIn("--create", r.stderr)
        # A good token of a user who may not see it: still a 404, naming whose the token is.
        r = self.download("alice/token-check", "--token", self.other_token, expect=4)
        self.assertOneLineError(r, "alice/token-check")
        self.assertIn("this token is bob's", r.stderr)

    def test_include_exclude_files_and_dry_run(self):
        files = {"config.json": b"{}", "a.bin": b"1" * 1000, "sub/b.bin": b"2" * 2000, "sub/c.json": b"[]"}
        self.upload("alice/patterns", make_tree(self.path("src"), files), "--create")
        dry = self.download("alice/patterns", "--token", self.token, "--dry-run")
        self.assertEqual(dry["files_to_fetch"], 4)
        self.assertEqual(dry["bytes_to_fetch"], sum(len(v) for v in files.values()))
        self.assertFalse(os.path.exists(self.path("cache", "models", "alice", "patterns")))
        got = self.download("alice/patterns", "--token", self.token, "--include", "*.json")
        self.assertEqual(sorted(f["path"] for f in got["files"]), ["config.json", "sub/c.json"])
        dry = self.download("alice/patterns", "--token", self.token, "--dry-run")
        self.assertEqual(dry["files_to_fetch"], 2)
        self.assertEqual(dry["bytes_to_fetch"], 3000)
        self.assertEqual(dry["bytes_cached"], 4)
        r = self.ms("download", "alice/patterns", "--token", self.token, "--dry-run")
        self.assertExit(r, 0)
        self.assertIn("Will download 2 file(s) (out of 4)", r.stdout)
        got = self.download("alice/patterns", "--token", self.token, "--exclude", "sub/", "--local-dir", self.path("ex"))
        self.assertEqual(sorted(read_tree(self.path("ex"))), ["a.bin", "config.json"])
        got = self.download("alice/patterns", "sub/b.bin", "--token", self.token, "--local-dir", self.path("one"))
        self.assertEqual(read_tree(self.path("one")), {"sub/b.bin": b"2" * 2000})
        r = self.download("alice/patterns", "missing.txt", "--token", self.token, expect=4)
        self.assertOneLineError(r, "missing.txt")

    def test_repo_files_named_like_the_cache_bookkeeping_are_skipped(self):
        # A repo may hold '.msc', '.mdl', '.mv' or a '._____temp/' folder. Stored as they are,
        # they overwrote the index (warning 'not a modelscope pickle', a stray .msc.corrupted)
        # or sat in a --local-dir's temp area, and were then reported cached with other bytes.
        odd = {".msc": b"repo msc", ".mdl": b"repo mdl", ".mv": b"repo mv",
               "._____temp/x.txt": b"temp", "sub/.msc": b"nested is fine", "a.txt": b"a"}
        self.server.create_model(self.token, "alice", "bookkeeping")
        status, envelope = self.server.commit(self.token, "alice/bookkeeping", files=odd)
        self.assertEqual(status, 200, envelope)
        for where in (["--local-dir", self.path("local")], []):
            r = self.ms("download", "alice/bookkeeping", "--json", "--token", self.token, *where)
            self.assertExit(r, 0)
            skipped = [".mdl", ".msc", ".mv"] + (["._____temp/x.txt"] if where else [])
            warning = [l for l in r.stderr.splitlines() if "skipping" in l]
            self.assertEqual(len(warning), 1, r.stderr)
            self.assertEqual(sorted(re.findall(r"'([^']+)'", warning[0])), sorted(skipped))
            self.assertNotIn("not a modelscope pickle", r.stderr)
            got = self.json_out(r)
            stored = {"sub/.msc", "a.txt"} | ({"._____temp/x.txt"} if not where else set())
            self.assertEqual({f["path"] for f in got["files"]}, stored)
            folder = got["local_path"]
            self.assertFalse(os.path.exists(os.path.join(folder, ".msc.corrupted")))
            with open(os.path.join(folder, ".msc"), "rb") as f:
                self.assertEqual(sorted(e["Path"] for e in pickle.load(f)), sorted(stored))
            for name in stored:
                with open(os.path.join(folder, name), "rb") as f:
                    self.assertEqual(f.read(), odd[name], name)
            again = self.download("alice/bookkeeping", "--token", self.token, "--dry-run", *where)
            self.assertEqual(again["files_to_fetch"], 0)
        # Named on the command line, such a file is an error: the command cannot do what it says.
        r = self.ms("download", "alice/bookkeeping", ".msc", "a.txt", "--token", self.token,
                    "--local-dir", self.path("named"))
        self.assertExit(r, 2)
        self.assertOneLineError(r, "'.msc' cannot be stored")
        self.assertFalse(os.path.exists(self.path("named", "a.txt")))

    def test_upload_leaves_out_git_cache_and_a_downloads_bookkeeping(self):
        # A worktree's or submodule's .git is a file: it failed the whole upload ("unsafe repo
        # path '.git'"). .cache files are left out too, as ModelScope's DEFAULT_IGNORE_PATTERNS
        # leave them, and a folder a download filled (--local-dir) goes up without that
        # download's .msc, .mv and .mdl (a nested one is the repo's own file).
        self.server.create_model(self.token, "alice", "src")
        self.server.commit(self.token, "alice/src", files={"a.txt": b"a", "sub/b.txt": b"b"})
        r = self.ms("download", "alice/src", "--token", self.token, "--local-dir", self.path("work"))
        self.assertExit(r, 0)
        self.assertTrue(os.path.isfile(self.path("work", ".msc")))
        for name, data in ((".git", b"gitdir: /elsewhere\n"), ("sub/.git", b"gitdir: /x\n"),
                           (".cache", b"c"), ("sub/.cache", b"c"), ("sub/.msc", b"kept")):
            with open(self.path("work", name), "wb") as f:
                f.write(data)
        r = self.ms("upload", "alice/copy", self.path("work"), "--create", "--token", self.token)
        self.assertExit(r, 0)
        _, envelope = self.server.files("alice/copy")
        self.assertEqual(sorted(f["Path"] for f in envelope["Data"]["Files"]
                                if f["Type"] == "blob" and f["Path"] != ".gitattributes"),
                         ["a.txt", "sub/.msc", "sub/b.txt"])

    # --- auth ---------------------------------------------------------------------------------
    def test_private_repo_token_and_login(self):
        self.upload("alice/secret", make_tree(self.path("src"), {"w.bin": b"private bytes"}), "--create", "--private")
        # Again into the private repo: fine. Into a public one that exists: refused, nothing sent
        # (its visibility stayed public and the "private" files went up silently).
        self.upload("alice/secret", self.path("src"), "--create", "--private")
        self.upload("alice/public", make_tree(self.path("pub"), {"a.txt": b"a"}), "--create")
        r = self.upload("alice/public", make_tree(self.path("more"), {"key.txt": b"secret"}),
                        "--create", "--private", expect=2)
        self.assertOneLineError(r, "alice/public exists already and is not private")
        _, envelope = self.server.files("alice/public")
        self.assertNotIn("key.txt", [f["Path"] for f in envelope["Data"]["Files"]])
        r = self.download("alice/secret", expect=4)
        self.assertOneLineError(r, "alice/secret")
        r = self.download("alice/secret", "--token", self.other_token, expect=4)
        self.download("alice/secret", "--token", self.token)

        r = self.ms("login", "--token", "not-a-token")
        self.assertNotEqual(r.returncode, 0)
        self.assertOneLineError(r, "login")
        r = self.ms("login", "--token", "  \n")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "needs an access token")
        # A token pasted with spaces or read from a file with its line end: stripped, as Python's
        # HubApi.login does (the stored login below must work).
        r = self.ms("login", "--token", f" {self.token}\n", "--json")
        self.assertExit(r, 0)
        self.assertEqual(self.json_out(r)["username"], "alice")
        cred = self.path("credentials")
        for name in ("git_token", "user", "session", "cookies"):
            mode = stat.S_IMODE(os.stat(os.path.join(cred, name)).st_mode)
            self.assertEqual(mode, 0o600, name)
        with open(os.path.join(cred, "user")) as f:
            self.assertTrue(f.read().startswith("alice:"))
        # The stored credentials are used when no token is given.
        self.download("alice/secret", "--local-dir", self.path("after-login"))
        self.assertEqual(read_tree(self.path("after-login")), {"w.bin": b"private bytes"})
        # Upload without a token fails with an auth hint, not a crash.
        r = self.ms("upload", "alice/secret", self.path("src"), env=self.env(MODELSCOPE_CREDENTIALS_PATH=self.path("none")))
        self.assertNotEqual(r.returncode, 0)
        self.assertOneLineError(r)

    def test_corrupt_stored_login_warns_and_login_replaces_it(self):
        self.upload("alice/secret2", make_tree(self.path("src"), {"w.bin": b"private"}), "--create", "--private")
        cred = self.path("credentials")
        os.makedirs(cred)
        for garbage in (b"", b"not a pickle", b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f", os.urandom(512)):
            with open(os.path.join(cred, "cookies"), "wb") as f:
                f.write(garbage)
            # Other commands warn (an empty file is simply no login) and carry on without a login.
            r = self.download("alice/secret2", expect=4)
            self.assertOneLineError(r, "alice/secret2")
            if garbage:
                self.assertIn("cannot read the stored login", r.stderr)
            r = self.ms("upload", "alice/secret2", self.path("src"))
            self.assertNotEqual(r.returncode, 0)
            self.assertOneLineError(r)
        # `ms login` replaces the corrupt jar instead of reading it.
        r = self.ms("login", "--token", self.token)
        self.assertExit(r, 0)
        self.assertNotIn("warning", r.stderr)
        with open(os.path.join(cred, "cookies"), "rb") as f:
            self.assertNotEqual(f.read(), garbage)
        self.download("alice/secret2", "--local-dir", self.path("ok"))
        self.assertEqual(read_tree(self.path("ok")), {"w.bin": b"private"})
        # A cookies path that is a folder is an I/O error with one line, not a crash.
        shutil.rmtree(cred)
        os.makedirs(os.path.join(cred, "cookies", "x"))
        r = self.ms("login", "--token", self.token)
        self.assertNotEqual(r.returncode, 0)
        self.assertOneLineError(r, "cookies")

    def plant_temp_files(self, folder, dead, live):
        """Writes the temp files a killed atomic write leaves (`dead`: unlocked, as a dead
        writer's are) and ones a live writer holds (`live`: flock'd until the test ends)."""
        os.makedirs(folder, exist_ok=True)
        for name in dead + live:
            fd = os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b"half a file: ms-secret-token")
            if name in live:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self.addCleanup(os.close, fd)
            else:
                os.close(fd)

    def test_what_killed_writes_left_in_a_cache_folder_goes(self):
        # A download killed between writing .msc's temp copy and renaming it left
        # ..msc.tmp.XXXXXX in the model's folder for good. The folder's next download removes
        # those of dead writers (whose flock can be taken), not a live writer's, nor a repo file.
        self.upload("alice/leftover-temps", make_tree(self.path("src"), {"a.txt": b"a"}), "--create")
        repo_dir = self.download("alice/leftover-temps")["local_path"]
        dead = ["..msc.tmp.Ab12Cd", "..mv.tmp.Zz99Yy", "..mdl.tmp.000000"]
        live = ["..msc.tmp.LiveQ1"]
        self.plant_temp_files(repo_dir, dead, live + [".other.tmp.Keep01"])
        self.download("alice/leftover-temps")  # a warm run: it writes no .msc
        left = sorted(n for n in os.listdir(repo_dir) if ".tmp." in n)
        self.assertEqual(left, sorted(live + [".other.tmp.Keep01"]))
        # The next write of .msc itself clears them too (a new file makes it write the index).
        self.plant_temp_files(repo_dir, ["..msc.tmp.Dead77"], [])
        self.upload("alice/leftover-temps", make_tree(self.path("src2"), {"b.txt": b"b"}))
        self.download("alice/leftover-temps")
        self.assertFalse(os.path.exists(os.path.join(repo_dir, "..msc.tmp.Dead77")))
        self.assertTrue(os.path.exists(os.path.join(repo_dir, "..msc.tmp.LiveQ1")))

    def test_what_a_killed_login_left_goes_at_the_next_login(self):
        # A login killed mid-write left .git_token.tmp.XXXXXX (0600, the token in it) and
        # .user.tmp.XXXXXX in the credentials folder for good.
        cred = self.path("credentials")
        self.assertExit(self.ms("login", "--token", self.token), 0)
        # session is not written again when it exists: its leftovers go all the same.
        dead = [".git_token.tmp.Ab12Cd", ".user.tmp.Qq11Ww", ".session.tmp.Ss22Tt",
                ".cookies.tmp.Cc33Dd"]
        live = [".user.tmp.LiveW2"]
        self.plant_temp_files(cred, dead, live)
        self.assertExit(self.ms("login", "--token", self.token), 0)
        self.assertEqual(sorted(n for n in os.listdir(cred) if ".tmp." in n), live)

    # --- offline ------------------------------------------------------------------------------
    def test_offline_makes_no_network_calls(self):
        self.upload("alice/offline", make_tree(self.path("src"), {"a.txt": b"x", "b/c.txt": b"y"}), "--create")
        self.download("alice/offline", "--token", self.token)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            listener.setblocking(False)
            dead = f"http://127.0.0.1:{listener.getsockname()[1]}"
            for args, env in ((["--offline"], self.env(MODELSCOPE_ENDPOINT=dead)),
                              ([], self.env(MODELSCOPE_ENDPOINT=dead, MODELSCOPE_OFFLINE="1"))):
                out = self.download("alice/offline", *args, env=env)
                self.assertEqual(sorted(f["path"] for f in out["files"]), ["a.txt", "b/c.txt"])
            r = self.download("alice/not-cached", "--offline", env=self.env(MODELSCOPE_ENDPOINT=dead), expect=4)
            self.assertOneLineError(r, "alice/not-cached")
            # The library reads MODELSCOPE_OFFLINE, so a model id given to `ms infer` (resolved
            # without LibTorch) stays off the network too.
            r = self.ms("infer", "--model", "alice/not-cached", "--input", "x",
                        env=self.env(MODELSCOPE_ENDPOINT=dead, MODELSCOPE_OFFLINE="1"))
            self.assertExit(r, 4)
            self.assertOneLineError(r, "alice/not-cached")
            # A partial file left by an interrupted download: offline there is no listing to
            # say the copy is short of it, so ms says so (once online it would be finished).
            partial = self.path("cache", "models", "._____temp", "alice", "offline", "b", "d.bin")
            os.makedirs(os.path.dirname(partial))
            with open(partial, "wb") as f:
                f.write(b"half")
            r = self.ms("download", "alice/offline", "--offline", "--json",
                        env=self.env(MODELSCOPE_ENDPOINT=dead))
            self.assertExit(r, 0)
            self.assertIn("interrupted download left 1 partial file(s)", r.stderr)
            self.assertIn("b/d.bin", r.stderr)
            # A partial of a file the folder has (another client finished it) is no gap.
            os.remove(partial)
            # Both forms: a single stream's (Python's too) PATH, a ranged download's PATH.ms-partial.
            for name in ("c.txt", "c.txt.ms-partial"):
                stale = self.path("cache", "models", "._____temp", "alice", "offline", "b", name)
                with open(stale, "wb") as f:
                    f.write(b"ha")
                r = self.ms("download", "alice/offline", "--offline", env=self.env(MODELSCOPE_ENDPOINT=dead))
                self.assertExit(r, 0)
                self.assertNotIn("partial", r.stderr)
                os.remove(stale)
            with self.assertRaises(BlockingIOError):
                listener.accept()

    # --- integrity ----------------------------------------------------------------------------
    def test_corrupt_blob_on_server_exits_7_and_caches_nothing(self):
        payload = os.urandom(200 * 1024)
        self.upload("alice/corrupt", make_tree(self.path("src"), {"w.bin": payload, "ok.txt": b"fine"}), "--create")
        blob = find_blob(self.server_root, hashlib.sha256(payload).hexdigest())
        self.assertIsNotNone(blob, "blob not found under the server root")
        os.chmod(blob, 0o644)
        with open(blob, "r+b") as f:
            f.seek(1000)
            f.write(b"\0" * 64)
        r = self.download("alice/corrupt", "--token", self.token, expect=7)
        self.assertOneLineError(r, "w.bin", "sha256")
        # The same through the hashing thread.
        r = self.download("alice/corrupt", "--token", self.token, expect=7, env=self.env(MS_HASH_THREAD="1"))
        self.assertOneLineError(r, "w.bin", "sha256")
        repo_dir = self.path("cache", "models", "alice", "corrupt")
        self.assertFalse(os.path.exists(os.path.join(repo_dir, "w.bin")))
        if os.path.exists(os.path.join(repo_dir, ".msc")):
            with open(os.path.join(repo_dir, ".msc"), "rb") as f:
                self.assertNotIn("w.bin", [e["Path"] for e in pickle.load(f)])
        temp = self.path("cache", "models", "._____temp", "alice", "corrupt", "w.bin")
        self.assertFalse(os.path.exists(temp), "a corrupt partial file was kept")

    def test_hash_thread_from_memory_and_read_back_from_the_file(self):
        # 6 MiB + 5 bytes: six full 1 MiB blocks and a short last one. The hashing thread takes a
        # block from its ring while it is there and reads it back from the file once the receiving
        # thread has reused the slot. MS_TEST_HASH_READ_BACK=1 holds the hashing thread until the
        # slot was reused (or the stream ended), so each path's count is known: with a ring of one
        # slot every block but the last is read back, with the default ring of 8 none is.
        self.require_test_hooks()
        payload = os.urandom((6 << 20) + 5)
        self.upload("alice/hashring", make_tree(self.path("src"), {"w.bin": payload}), "--create")
        for ring, hold, counts in (("1", "1", (1, 6)), ("8", "1", (7, 0)), ("8", "", None)):
            dest = self.path(f"ring{ring}-{hold}")
            r = self.ms("download", "alice/hashring", "--token", self.token, "-v", "--local-dir", dest,
                        env=self.env(MS_HASH_THREAD="1", MS_TEST_HASH_RING=ring, MS_TEST_HASH_READ_BACK=hold))
            self.assertExit(r, 0)
            with open(os.path.join(dest, "w.bin"), "rb") as f:
                self.assertEqual(f.read(), payload)
            m = re.search(r"hashed (\d+) block\(s\) from memory, (\d+) read back", r.stderr)
            self.assertIsNotNone(m, r.stderr[-2000:])
            got = (int(m.group(1)), int(m.group(2)))
            if counts:
                self.assertEqual(got, counts, f"ring {ring}")
            else:  # as scheduled: each block one way or the other
                self.assertEqual(sum(got), 7)
        # A flipped byte in a late block is caught on either path.
        blob = find_blob(self.server_root, hashlib.sha256(payload).hexdigest())
        os.chmod(blob, 0o644)
        with open(blob, "r+b") as f:
            f.seek((5 << 20) + 100)
            f.write(bytes([payload[(5 << 20) + 100] ^ 0xFF]))
        for ring in ("1", "8"):
            r = self.download("alice/hashring", "--token", self.token, "--local-dir", self.path(f"bad{ring}"),
                              expect=7, env=self.env(MS_HASH_THREAD="1", MS_TEST_HASH_RING=ring,
                                                     MS_TEST_HASH_READ_BACK="1"))
            self.assertOneLineError(r, "w.bin", "sha256")
            self.assertFalse(os.path.exists(self.path(f"bad{ring}", "w.bin")))

    def test_sha256_checkpoints_hash_a_big_file_on_several_threads(self):
        # 128 MiB + 5 bytes: the hub records the SHA-256 state at 64 and 128 MiB when the blob is
        # uploaded and sends the states with the file; the client hashes the three intervals on
        # threads of their own, each from its state, and checks that each ends in the next.
        self.require_test_hooks()
        payload = os.urandom((128 << 20) + 5)
        sha = hashlib.sha256(payload).hexdigest()
        self.upload("alice/checkpoints", make_tree(self.path("src"), {"w.bin": payload}), "--create")
        blob = find_blob(self.server_root, sha)
        sidecar = blob + ".sha256-checkpoints"
        with open(sidecar) as f:
            recorded = f.read()
        fields = recorded.split()
        self.assertEqual(fields[0], str(64 << 20))
        self.assertEqual(len(fields), 3)

        def read_text(path):
            try:
                with open(path) as f:
                    return f.read()
            except FileNotFoundError:
                return None

        def fetch(name, expect=0, **env):
            r = self.ms("download", "alice/checkpoints", "--token", self.token, "-v",
                        "--local-dir", self.path(name), env=self.env(**env))
            self.assertExit(r, expect)
            if expect == 0:
                with open(self.path(name, "w.bin"), "rb") as f:
                    self.assertTrue(f.read() == payload, "downloaded bytes differ")
            return r

        r = fetch("lanes3", MS_HASH_LANES="3")
        self.assertIn("3 intervals on 3 threads", r.stderr)
        # Held until each block's slot is reused: all 129 blocks but the last are read back.
        r = fetch("ring1", MS_HASH_LANES="2", MS_TEST_HASH_RING="1", MS_TEST_HASH_READ_BACK="1")
        self.assertIn("hashed 1 block(s) from memory, 128 read back from the file, 3 intervals on 2 threads",
                      r.stderr)
        # One core to spare: one chain, as before.
        r = fetch("lanes1", MS_HASH_LANES="1")
        self.assertNotIn("intervals on", r.stderr)
        # Ranged parts: each interval is hashed as its bytes land, with no pass left for the end.
        r = fetch("parts", MS_HASH_LANES="2", MS_DOWNLOAD_PARTS="5")
        self.assertIn("hashing 3 intervals on 2 threads", r.stderr)
        r = fetch("parts1", MS_HASH_LANES="1", MS_DOWNLOAD_PARTS="5")
        self.assertNotIn("intervals on", r.stderr)

        # Only clients that ask get the states (the header is about 1 KiB).
        url = (f"{self.server.endpoint}/api/v1/models/alice/checkpoints/repo?Revision=master"
               f"&FilePath=w.bin")
        for want, expected in ((False, None), (True, recorded)):
            headers = {"Authorization": f"Bearer {self.token}", "Range": "bytes=0-0"}
            if want:
                headers["X-Ms-Want-Sha256-Checkpoints"] = "1"
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
                self.assertEqual(resp.headers.get("X-Ms-Sha256-Checkpoints"), expected)

        # A wrong state with right data: the file is hashed once more in one chain, from disk,
        # and kept; no second transfer.
        wrong = recorded.replace(fields[2], fields[2][:-1] + ("0" if fields[2][-1] != "0" else "1"))
        with open(sidecar, "w") as f:
            f.write(wrong)
        for name, parts in (("wrongstate", "1"), ("wrongparts", "5")):
            r = fetch(name, MS_HASH_LANES="3", MS_DOWNLOAD_PARTS=parts)
            self.assertIn(f"bytes {64 << 20}-{(128 << 20) - 1} do not end in the hub's sha256 "
                          "checkpoint; hashing the whole file in one chain", r.stderr)
            self.assertNotIn("try 1/3", r.stderr)
            self.assertNotIn("fetching it again", r.stderr)

        # Checkpoints that do not parse are ignored, and taken again from the blob in the background,
        # as for blobs stored before checkpoints; ranged requests ask for them too.
        server_log = self.server_root.rstrip("/") + ".stderr"
        for name, parts, broken in (("garbage", "1", "64 nonsense"), ("missing", "5", None)):
            if broken is None:
                os.remove(sidecar)
            else:
                with open(sidecar, "w") as f:
                    f.write(broken)
            r = fetch(name, MS_HASH_LANES="3", MS_DOWNLOAD_PARTS=parts)
            self.assertNotIn("intervals on", r.stderr)
            self.assertNotIn("try 1/3", r.stderr)
            self.assertTrue(self.wait_for(lambda: read_text(sidecar) == recorded, timeout=60),
                            f"{name}: checkpoints not taken again")
        r = fetch("backfilled", MS_HASH_LANES="3")
        self.assertIn("3 intervals on 3 threads", r.stderr)

        # A flipped byte in the second interval: named on the first try, exit 7 after the rest.
        os.chmod(blob, 0o644)
        with open(blob, "r+b") as f:
            f.seek((100 << 20))
            f.write(bytes([payload[100 << 20] ^ 0xFF]))
        for name, parts in (("corrupt", "1"), ("corruptparts", "5")):
            r = fetch(name, expect=7, MS_HASH_LANES="3", MS_DOWNLOAD_PARTS=parts)
            self.assertIn(f"bytes {64 << 20}-{(128 << 20) - 1} do not end", r.stderr)
            self.assertIn("sha256 mismatch after 3 tries", r.stderr)
            self.assertFalse(os.path.exists(self.path(name, "w.bin")))
        # A corrupt blob gets no checkpoints from its bytes; the hub says why in its log.
        os.remove(sidecar)
        fetch("corruptwhole", expect=7, MS_HASH_LANES="3")
        self.assertTrue(self.wait_for(lambda: f"blob {sha} hashes to" in read_text(server_log), timeout=60))
        self.assertFalse(os.path.exists(sidecar))

    # --- concurrency --------------------------------------------------------------------------
    def test_two_concurrent_downloads_leave_a_consistent_cache(self):
        files = {f"f{i:02d}.txt": os.urandom(20000 + i) for i in range(40)}
        files["big.bin"] = os.urandom(3 << 20)
        self.upload("alice/concurrent", make_tree(self.path("src"), files), "--create")
        env = dict(os.environ)
        env.update(self.env())
        procs = [subprocess.Popen([MS_BIN, "download", "alice/concurrent", "--token", self.token],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(2)]
        for p in procs:
            _out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
        repo_dir = self.path("cache", "models", "alice", "concurrent")
        self.assertEqual(read_tree(repo_dir), files)
        with open(os.path.join(repo_dir, ".msc"), "rb") as f:
            paths = [e["Path"] for e in pickle.load(f)]
        self.assertEqual(sorted(paths), sorted(files))

    def test_shared_cache_modes_and_a_user_who_cannot_write_it(self):
        files = {"w.bin": os.urandom(5000), "sub/c.json": b"{}"}
        self.upload("alice/shared", make_tree(self.path("src"), files), "--create")
        self.upload("alice/other", make_tree(self.path("src2"), {"x.txt": b"x"}), "--create")
        env = {**os.environ, **self.env()}
        # Under umask 0 (a cache a group shares) files and the lock are made 0666, as open(2) and
        # Python make them: they were 0644 at most, and another user's run failed on the lock.
        r = subprocess.run([MS_BIN, "download", "alice/shared"], env=env, capture_output=True,
                           text=True, timeout=120, preexec_fn=lambda: os.umask(0))
        self.assertEqual(r.returncode, 0, r.stderr)
        repo_dir = self.path("cache", "models", "alice", "shared")
        for made in (os.path.join(repo_dir, "w.bin"), os.path.join(repo_dir, "sub", "c.json"),
                     os.path.join(repo_dir, ".msc"), self.path("cache", ".lock", "alice___shared")):
            self.assertEqual(stat.S_IMODE(os.stat(made).st_mode), 0o666, made)
        # A user who may read the cache but not write it (another user's cache, read-only
        # media): everything in place is a success, as in Python; anything to fetch is exit 74.
        os.chmod(self.tmp, 0o755)
        for folder, dirs, names in os.walk(self.path("cache")):
            os.chmod(folder, 0o755)
            for name in names:
                os.chmod(os.path.join(folder, name), 0o644)
        # A file newer than the index (Python 1.38+ wrote it) is checked by its sha256 and served,
        # though the index cannot be written to record it.
        msc_time = os.stat(os.path.join(repo_dir, ".msc")).st_mtime
        os.utime(os.path.join(repo_dir, "w.bin"), (msc_time + 5, msc_time + 5))
        if os.geteuid() == 0:
            reader = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        else:
            reader = []
            for folder, _dirs, _names in os.walk(self.path("cache")):
                os.chmod(folder, 0o555)
            self.addCleanup(lambda: [os.chmod(f, 0o755) for f, _d, _n in os.walk(self.path("cache"))])
        r = subprocess.run(reader + [MS_BIN, "download", "alice/shared", "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(all(f["cached"] for f in json.loads(r.stdout)["files"]))
        r = subprocess.run(reader + [MS_BIN, "download", "alice/other"], env=env,
                           capture_output=True, text=True, timeout=120)
        self.assertExit(r, 74)
        self.assertOneLineError(r, "Permission denied")
        self.assertIn("1 of 1 file(s) of alice/other are not in the cache", r.stderr)
        # Nothing was written by the reader.
        self.assertEqual(os.stat(os.path.join(repo_dir, ".msc")).st_mtime, msc_time)

    def test_empty_repo_is_found_offline_once_downloaded(self):
        # A repo holding nothing but the hub's .gitattributes (which ms leaves out): downloaded,
        # it got no index, so --offline said it was not in the cache (Python returns the folder).
        status, envelope = self.server.create_model(self.token, "alice", "void")
        self.assertEqual(status, 200, envelope)
        online = self.download("alice/void")
        self.assertEqual(online["files"], [])
        offline = self.download("alice/void", "--offline")
        self.assertEqual(offline["local_path"], online["local_path"])
        self.assertEqual(offline["files"], [])

    def test_an_indexed_file_rewritten_after_the_index_is_checked_again(self):
        # modelscope 1.38+ writes another revision's files into an indexed folder without
        # updating .msc: same names, same sizes, other bytes. ms took the index's word for them.
        self.upload("alice/rewritten", make_tree(self.path("src"), {"a.txt": b"AAAA-version-2"}),
                    "--create")
        repo_dir = self.download("alice/rewritten")["local_path"]
        index_time = os.stat(os.path.join(repo_dir, ".msc")).st_mtime
        with open(os.path.join(repo_dir, "a.txt"), "wb") as f:
            f.write(b"AAAA-version-1")
        os.utime(os.path.join(repo_dir, "a.txt"), (index_time + 2, index_time + 2))
        again = self.download("alice/rewritten")
        self.assertEqual([f["path"] for f in again["files"] if not f["cached"]], ["a.txt"])
        self.assertEqual(read_tree(repo_dir), {"a.txt": b"AAAA-version-2"})
        # A file the index names at another size is not taken either.
        with open(os.path.join(repo_dir, "a.txt"), "wb") as f:
            f.write(b"x")
        os.utime(os.path.join(repo_dir, "a.txt"), (index_time, index_time))
        again = self.download("alice/rewritten")
        self.assertEqual([f["path"] for f in again["files"] if not f["cached"]], ["a.txt"])
        self.assertEqual(read_tree(repo_dir), {"a.txt": b"AAAA-version-2"})

    # --- path safety --------------------------------------------------------------------------
    def test_traversal_paths_rejected(self):
        src = make_tree(self.path("src"), {"a.txt": b"a"})
        r = self.upload("alice/trav", src, "../evil", "--create", expect=2)
        self.assertOneLineError(r, "../evil")
        with open(self.path("outside.txt"), "w") as f:
            f.write("secret")
        os.symlink(self.path("outside.txt"), os.path.join(src, "link"))
        r = self.upload("alice/trav", src, "--create", expect=2)
        self.assertOneLineError(r, "link")
        os.remove(os.path.join(src, "link"))
        r = self.download("alice/trav", "../../etc/passwd", "--token", self.token, expect=2)
        self.assertOneLineError(r, "../../etc/passwd")
        # The server refuses such a path in a commit too.
        self.upload("alice/trav", src, "--create")
        body = json.dumps({"commit_message": "x", "actions": [
            {"action": "create", "path": "../evil.txt", "type": "normal", "size": 1, "sha256": "",
             "content": "eA==", "encoding": "base64"}]}).encode()
        req = urllib.request.Request(self.server.endpoint + "/api/v1/repos/models/alice/trav/commit/master",
                                     data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Cookie": "m_session_id=" + self.token})
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(ctx.exception.code, 400)

    # --- no LibTorch --------------------------------------------------------------------------
    def test_hub_commands_do_not_load_libtorch(self):
        self.upload("alice/notorch", make_tree(self.path("src"), {"a.txt": b"x"}), "--create")
        for args in (["download", "alice/notorch", "--token", self.token],
                     ["download", "alice/notorch", "--offline"],
                     ["upload", "alice/notorch", self.path("src"), "--token", self.token],
                     ["login", "--token", self.token]):
            r = self.ms(*args, env=self.env(LD_DEBUG="libs"))
            self.assertExit(r, 0, " ".join(args))
            loaded = [l for l in r.stderr.splitlines() if "calling init:" in l]
            self.assertTrue(loaded, "LD_DEBUG=libs printed nothing")
            self.assertFalse([l for l in loaded if "libtorch" in l or "libms_torch" in l or "libc10" in l], args)

    # --- Python interop -----------------------------------------------------------------------
    def each_modelscope(self):
        """(version, python, snapshots) for each tested Python modelscope; `snapshots`: the
        release caches in models/OWNER--NAME/snapshots/REV and keeps its login in
        $MODELSCOPE_CREDENTIALS_PATH/credentials (1.38 and newer)."""
        pythons = modelscope_pythons()
        if not pythons:
            self.skipTest("no python with the modelscope package (run scripts/setup_python_interop.sh, "
                          "or set MS_MODELSCOPE_PYTHON)")
        return [(version, python, version_key(version) >= (1, 38)) for version, python in pythons.items()]

    def test_python_modelscope_reads_ms_cache_and_ms_reads_python_cache(self):
        for version, python, snapshots in self.each_modelscope():
            with self.subTest(modelscope=version):
                self.python_and_ms_share_a_cache(version, python, snapshots)

    def python_and_ms_share_a_cache(self, version, python, snapshots):
        files = {"config.json": b'{"a": 1}', "sub/w.bin": os.urandom(50000), "x.y.txt": b"dots"}
        repo = f"alice/inter.op-{version}"
        self.upload(repo, make_tree(self.path("src", version), files), "--create")
        cache = self.path("cache", version)
        self.download(repo, "--token", self.token, env=self.env(MODELSCOPE_CACHE=cache))
        script = ("import os, sys\n"
                  "from modelscope.hub.snapshot_download import snapshot_download\n"
                  "p = snapshot_download(sys.argv[1], local_files_only=True)\n"
                  "print(p)\n")
        env = dict(os.environ)
        env.update(self.env(MODELSCOPE_CACHE=cache))
        r = subprocess.run([python, "-c", script, repo], capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(read_tree(r.stdout.strip().splitlines()[-1]), files)

        # Python downloads into a fresh cache; ms finds it offline.
        py_cache = self.path("py-cache", version)
        script = ("import sys\n"
                  "from modelscope.hub.snapshot_download import snapshot_download\n"
                  "print(snapshot_download(sys.argv[1], endpoint=sys.argv[2], token=sys.argv[3]))\n")
        env["MODELSCOPE_CACHE"] = py_cache
        r = subprocess.run([python, "-c", script, repo, self.server.endpoint, self.token],
                           capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = self.download(repo, "--offline", env=self.env(MODELSCOPE_CACHE=py_cache))
        name = repo.split("/")[1]
        if snapshots:
            where = os.path.join(py_cache, "models", f"alice--{name}", "snapshots", "master")
        else:
            where = os.path.join(py_cache, "models", "alice", name.replace(".", "___"))
        self.assertEqual(out["local_path"], where)
        # Offline, a snapshot folder is what it holds: 1.38+ also fetched the .gitattributes that
        # 1.37 and ms leave out of a model.
        self.assertEqual(sorted(f["path"] for f in out["files"]),
                         sorted(list(files) + ([".gitattributes"] if snapshots else [])))
        # And ms finds nothing to fetch online either: it reads the folder Python wrote.
        warm = self.download(repo, "--token", self.token, env=self.env(MODELSCOPE_CACHE=py_cache))
        self.assertEqual(warm["local_path"], where)
        self.assertTrue(all(f["cached"] for f in warm["files"]), warm)

        # `modelscope login` in Python (a pickled cookie jar) lets ms read a private repo.
        private = f"alice/py-login-{version}"
        self.upload(private, make_tree(self.path("priv", version), {"p.txt": b"private"}), "--create",
                    "--private")
        script = ("import sys\n"
                  "from modelscope.hub.api import HubApi\n"
                  "HubApi(endpoint=sys.argv[1]).login(sys.argv[2])\n")
        py_cred = self.path("py-credentials", version)
        env["MODELSCOPE_CREDENTIALS_PATH"] = py_cred
        r = subprocess.run([python, "-c", script, self.server.endpoint, self.token], capture_output=True, text=True,
                           env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        jar = os.path.join(py_cred, "credentials", "cookies") if snapshots else os.path.join(py_cred, "cookies")
        self.assertTrue(os.path.exists(jar), jar)
        out = self.download(private, "--local-dir", self.path("py-login", version),
                            env=self.env(MODELSCOPE_CREDENTIALS_PATH=py_cred))
        self.assertEqual(read_tree(self.path("py-login", version)), {"p.txt": b"private"})

    def test_python_modelscope_uses_the_login_ms_stored(self):
        for version, python, snapshots in self.each_modelscope():
            with self.subTest(modelscope=version):
                self.python_uses_ms_login(version, python, snapshots)

    def python_uses_ms_login(self, version, python, snapshots):
        files = {"p.txt": b"private to alice", "d/w.bin": os.urandom(3000)}
        repo = f"alice/ms-login-{version}"
        self.upload(repo, make_tree(self.path("priv", version), files), "--create", "--private")
        ms_cred = self.path("ms-credentials", version)
        r = self.ms("login", "--token", self.token, "--endpoint", self.server.endpoint,
                    env=self.env(MODELSCOPE_CREDENTIALS_PATH=ms_cred))
        self.assertExit(r, 0)
        for folder in (ms_cred, os.path.join(ms_cred, "credentials")):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(folder, "cookies")).st_mode), 0o600)

        # Python reads ms's jar as its own login (no token anywhere) and downloads the private
        # repo; then its own HubApi.login (another credentials folder) stores the same cookie.
        read_jar = ("import json, sys\n"
                    "from modelscope.hub.api import ModelScopeConfig\n"
                    "from modelscope.hub.snapshot_download import snapshot_download\n"
                    "endpoint, repo = sys.argv[1:]\n"
                    "jar = ModelScopeConfig.get_cookies()\n"
                    "out = {'type': type(jar).__module__ + '.' + type(jar).__name__,\n"
                    "       'm_session_id': jar['m_session_id'], 'count': len(jar),\n"
                    "       'cookie': dict(vars(next(iter(jar))))}\n"
                    "out['path'] = snapshot_download(repo, endpoint=endpoint)\n"
                    "print(json.dumps(out))\n")
        login = ("import sys\n"
                 "from modelscope.hub.api import HubApi\n"
                 "HubApi(endpoint=sys.argv[1]).login(sys.argv[2])\n")
        env = dict(os.environ)
        env.update(self.env(MODELSCOPE_CREDENTIALS_PATH=ms_cred, MODELSCOPE_CACHE=self.path("py-cache", version)))
        # 1.38+ takes a set but empty MODELSCOPE_API_TOKEN for "no token", stored login or not.
        env.pop("MODELSCOPE_API_TOKEN")
        r = subprocess.run([python, "-c", read_jar, self.server.endpoint, repo], capture_output=True, text=True,
                           env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(out["type"], "requests.cookies.RequestsCookieJar")
        self.assertEqual(out["m_session_id"], self.token)
        self.assertEqual(out["count"], 1)
        got = read_tree(out["path"])
        if snapshots:
            got.pop(".gitattributes")  # 1.38+ fetches it for models too
        self.assertEqual(got, files)
        py_cred = self.path("py-credentials-own", version)
        env["MODELSCOPE_CREDENTIALS_PATH"] = py_cred
        r = subprocess.run([python, "-c", login, self.server.endpoint, self.token], capture_output=True, text=True,
                           env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([python, "-c", read_jar, self.server.endpoint, repo], capture_output=True, text=True,
                           env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        py_cookie = json.loads(r.stdout.strip().splitlines()[-1])["cookie"]
        ms_cookie = out["cookie"]
        ms_expires, py_expires = ms_cookie.pop("expires"), py_cookie.pop("expires")
        self.assertEqual(ms_cookie, py_cookie)
        self.assertLess(abs(ms_expires - py_expires), 600)
        self.assertGreater(ms_expires, time.time() + 29 * 86400)

        # A logout in Python ends the login for ms too, though 1.38+ clears only its own folder.
        if snapshots:
            logout = "from modelscope.hub.api import HubApi\nHubApi().logout()\n"
            env["MODELSCOPE_CREDENTIALS_PATH"] = ms_cred
            r = subprocess.run([python, "-c", logout], capture_output=True, text=True, env=env, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.exists(os.path.join(ms_cred, "cookies")))  # 1.37's copy stays
            self.download(repo, "--local-dir", self.path("after-logout", version), expect=4,
                          env=self.env(MODELSCOPE_CREDENTIALS_PATH=ms_cred))

        # Without that login, the same download fails in Python.
        script = ("import sys\n"
                  "from modelscope.hub.snapshot_download import snapshot_download\n"
                  "snapshot_download(sys.argv[2], endpoint=sys.argv[1])\n")
        env.update(self.env(MODELSCOPE_CREDENTIALS_PATH=self.path("no-credentials", version),
                            MODELSCOPE_CACHE=self.path("py-cache-2", version)))
        env.pop("MODELSCOPE_API_TOKEN")
        r = subprocess.run([python, "-c", script, self.server.endpoint, repo], capture_output=True,
                           text=True, env=env, timeout=300)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        for base, _dirs, names in os.walk(self.path("py-cache-2", version)):
            self.assertNotIn("p.txt", names, base)


class HubFaultTest(MsTestCase):
    """Downloads against a server that injects 500s, resets and stalls; kill -9 then resume."""

    def setUp(self):
        super().setUp()
        if not hub_server_available():
            self.skipTest("this ms has no `ms hub serve`")
        self.root = self.path("server-root")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()

    def start(self, faults=None, tls=None):
        if faults:
            self.require_test_hooks()
        s = HubServer(self.root, faults=faults, tls=tls)
        self.servers.append(s)
        return s

    def env(self, server, **extra):
        env = {"MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_CREDENTIALS_PATH": self.path("cred"),
               "MODELSCOPE_ENDPOINT": server.endpoint, "MODELSCOPE_API_TOKEN": "", "MODELSCOPE_OFFLINE": ""}
        env.update(extra)
        return env

    def test_injected_500s_resets_and_stalls_complete(self):
        server = self.start("status500=3,reset=5,stall=7,stall_seconds=3")
        token = server.token("alice")
        files = {f"small/{i:03d}.txt": os.urandom(1000 + i * 37) for i in range(30)}
        files["huge.bin"] = os.urandom(70 << 20)
        files["mid.bin"] = os.urandom(5 << 20)
        src = make_tree(self.path("src"), files)
        r = run_ms("upload", "alice/faulty", src, "--create", "--token", token, env=self.env(server), timeout=300)
        self.assertExit(r, 0)
        r = run_ms("download", "alice/faulty", "--token", token, "--json", "-v",
                   env=self.env(server, MS_HUB_STALL_TIMEOUT="1", MS_DOWNLOAD_PARTS="5", MS_HASH_THREAD="1"),
                   timeout=300)
        self.assertExit(r, 0)
        self.assertIn("HTTP 500; retrying", r.stderr)
        self.assertIn("resuming at byte", r.stderr)
        self.assertEqual(read_tree(self.path("cache", "models", "alice", "faulty")), files)
        # One stream per file, hashed on the second thread: resets and stalls resume mid-file.
        r = run_ms("download", "alice/faulty", "--token", token, "-v", "--local-dir", self.path("one"),
                   env=self.env(server, MS_HUB_STALL_TIMEOUT="1", MS_DOWNLOAD_PARTS="1", MS_HASH_THREAD="1"),
                   timeout=300)
        self.assertExit(r, 0)
        self.assertIn("resuming at byte", r.stderr)
        self.assertEqual(read_tree(self.path("one")), files)

    def test_https_hub_with_a_private_ca(self):
        tls = make_certificate(self.tmp)
        if not tls:
            self.skipTest("no openssl tool to make a test certificate")
        server = self.start(tls=tls)
        self.assertTrue(server.endpoint.startswith("https://"), server.endpoint)
        token = server.token("alice")
        files = {"a.txt": b"over TLS", "w.bin": os.urandom(100000)}
        env = self.env(server, REQUESTS_CA_BUNDLE=tls[0])
        r = run_ms("upload", "alice/tls", make_tree(self.path("src"), files), "--create", "--token", token, env=env)
        self.assertExit(r, 0)
        r = run_ms("download", "alice/tls", "--token", token, env=env)
        self.assertExit(r, 0)
        self.assertEqual(read_tree(r.stdout.strip()), files)
        r = run_ms("download", "alice/tls", "--token", token, "--local-dir", self.path("x"),
                   env=self.env(server, REQUESTS_CA_BUNDLE="", CURL_CA_BUNDLE="", SSL_CERT_FILE=""))
        self.assertExit(r, 5)
        self.assertOneLineError(r, server.endpoint)
        self.assertIn("REQUESTS_CA_BUNDLE", r.stderr)

    def test_kill_9_mid_file_then_resume(self):
        server = self.start()
        token = server.token("alice")
        files = {"model.bin": os.urandom(8 << 20), "huge.bin": os.urandom(80 << 20)}
        r = run_ms("upload", "alice/resume", make_tree(self.path("src"), files), "--create", "--token", token,
                   env=self.env(server), timeout=300)
        self.assertExit(r, 0)
        server.stop()
        # Every content GET stalls at its midpoint for 60 s: the download is caught mid-file. It is
        # killed once the hub has logged the stall of every stream (one for model.bin, one per
        # ranged part of huge.bin) and the client has what came before on disk.
        stalling = self.start("stall=1,stall_seconds=60")
        temp = self.path("cache", "models", "._____temp", "alice", "resume")
        env = dict(os.environ)
        env.update(self.env(stalling, MS_DOWNLOAD_PARTS="5"))
        for name, args, streams, probe in (
                ("model.bin", ["model.bin", "--max-workers", "1"], 1,
                 lambda: os.path.getsize(os.path.join(temp, "model.bin")) >= 4 << 20),
                ("huge.bin", ["huge.bin"], 5, lambda: parts_on_disk(os.path.join(temp, "huge.bin.ms-parts")) > 0)):
            stalls_before = stalling.log().count("injected fault:")
            proc = subprocess.Popen([MS_BIN, "download", "alice/resume", "--token", token, *args],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

            def reached():
                try:
                    return (stalling.log().count("injected fault:") - stalls_before >= streams
                            and probe())
                except OSError:
                    return False
            ok = self.wait_for(reached)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            self.assertTrue(ok, f"{name}: the download never reached the stall")
        self.assertFalse(os.path.exists(self.path("cache", "models", "alice", "resume", "huge.bin")))
        stalling.stop()
        server = self.start()
        r = run_ms("download", "alice/resume", "--token", token, "-v", env=self.env(server, MS_DOWNLOAD_PARTS="5"),
                   timeout=300)
        self.assertExit(r, 0)
        self.assertIn("model.bin: resuming at byte", r.stderr)
        self.assertRegex(r.stderr, r"huge.bin: resuming with [1-9]\d* of \d+ bytes")
        self.assertEqual(read_tree(self.path("cache", "models", "alice", "resume")), files)
        self.assertEqual(os.listdir(temp), [])


if __name__ == "__main__":
    unittest.main()

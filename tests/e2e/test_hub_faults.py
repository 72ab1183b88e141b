"""Faults around `ms upload` and `ms download` against a real `ms hub serve` on 127.0.0.1: odd
upload sources (FIFOs, devices, unsafe names, broken symlinks), processes killed part way, and
concurrent clients. Bounded: small files, every subprocess with a timeout."""
import fcntl
import hashlib
import json
import os
import pickle
import shutil
import signal
import socket
import sqlite3
import subprocess
import unittest

from harness import MS_BIN, run_ms
from hub_fixture import HubServer, SharedHubTestCase, make_tree


class HubFaultsTest(SharedHubTestCase):
    extra_env = {"MS_HUB_RETRIES": "2"}

    def ms(self, *args, timeout=60):
        return run_ms(*args, env=self.env(), timeout=timeout)

    def upload(self, repo, source, *extra, timeout=60):
        return self.ms("upload", repo, source, "--token", self.token, "--create", *extra, timeout=timeout)

    def listing(self, repo):
        status, envelope = self.server.files(repo, token=self.token)
        self.assertEqual(status, 200, envelope)
        return {f["Path"]: f for f in envelope["Data"]["Files"] if f["Type"] == "blob"}

    # --- upload sources -----------------------------------------------------------------------
    def test_fifo_and_device_sources_are_refused_not_read(self):
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        for source in (fifo, "/dev/zero"):
            with self.subTest(source=source):
                # Without the check the upload blocks on the FIFO or hashes /dev/zero for ever.
                r = self.upload("alice/fifo", source, timeout=20)
                self.assertExit(r, 2)
                self.assertOneLineError(r, "not a regular file")

    def test_fifo_inside_a_folder_is_skipped(self):
        src = make_tree(self.path("src"), {"a.txt": b"a"})
        os.mkfifo(os.path.join(src, "pipe"))
        r = self.upload("alice/fifo-folder", src, timeout=20)
        self.assertExit(r, 0)
        self.assertEqual(sorted(self.listing("alice/fifo-folder")), [".gitattributes", "a.txt"])
        self.assertIn("pipe: skipped, not a regular file", r.stderr)

    def test_what_a_killed_write_or_export_left_is_not_published(self):
        # A killed `ms export -o repo/onnx` leaves repo/.onnx.ms-export-XXXXXX with a partial
        # model; a killed download or save leaves .NAME.tmp.XXXXXX: uploading repo sent them.
        src = make_tree(self.path("src"), {"a.txt": b"a", "..msc.tmp.Q1w2E3": b"half",
                                           ".onnx.ms-export-cTqk5J/.model.onnx.tmp.tVEfzM": b"part",
                                           ".onnx.ms-export-cTqk5J/config.json": b"{}"})
        r = self.upload("alice/leftovers", src, timeout=20)
        self.assertExit(r, 0)
        self.assertEqual(sorted(self.listing("alice/leftovers")), [".gitattributes", "a.txt"])
        self.assertEqual(r.stderr.count("unfinished write"), 2, r.stderr)
        # A user's own file of such a name goes when --include names it.
        r = self.upload("alice/leftovers", src, "--include", "a.txt", "..msc.tmp.*", timeout=20)
        self.assertExit(r, 0)
        self.assertIn("..msc.tmp.Q1w2E3", self.listing("alice/leftovers"))

    def test_upload_with_a_cache_it_cannot_write(self):
        # The resume state (MODELSCOPE_CACHE/.upload/<hash>.json) could not be saved: exit 74,
        # after --create had made the repo, which stayed empty. An upload needs no cache (Python's
        # uploads with a read-only one): it goes on and says once that the state is not saved.
        blocker = self.write("a-file", "x")  # a cache below a file: unwritable, without mounts
        src = make_tree(self.path("src"), {"a.txt": b"hello", "w.bin": os.urandom(5000)})
        r = run_ms("upload", "alice/cacheless", src, "--create", "--token", self.token, "--json",
                   env=self.env(MODELSCOPE_CACHE=os.path.join(blocker, "cache")), timeout=60)
        self.assertExit(r, 0)
        self.assertEqual(self.json_out(r)["files_committed"], 2)
        self.assertEqual(r.stderr.count("cannot save the upload's resume state"), 1, r.stderr)
        self.assertEqual(sorted(self.listing("alice/cacheless")), [".gitattributes", "a.txt", "w.bin"])

    def test_names_and_messages_that_are_not_utf8_are_usage_errors(self):
        # The hub takes both in JSON, which carries UTF-8 only: they failed in the commit (exit 70).
        src = make_tree(self.path("src"), {"a.txt": b"a"})
        def upload(*extra):
            return subprocess.run([MS_BIN, "upload", "alice/utf8", src, "--token", self.token,
                                   "--create", *extra], capture_output=True, env=self.env(),
                                  timeout=60)
        r = upload("--commit-message", b"bad\xffmessage")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"--commit-message is not UTF-8", r.stderr)
        for option in ("--tag", "--revision"):
            r = upload(option, b"v\xff")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(b"branch and tag names are UTF-8", r.stderr)
        with open(os.path.join(os.fsencode(src), b"f\xfe.txt"), "wb") as f:
            f.write(b"x")
        r = upload()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"'f\\xfe.txt' is not UTF-8", r.stderr)
        # One file of such a name, or such a PATH_IN_REPO: exit 70 after --create made the repo.
        bad_file = os.path.join(os.fsencode(src), b"f\xfe.txt")
        ok_file = os.path.join(src, "a.txt")
        for args in ([bad_file], [ok_file, b"sub/g\xfe.txt"], [ok_file, b"d\xfe/"]):
            r = subprocess.run([MS_BIN, "upload", "alice/utf8single", *args, "--token", self.token,
                                "--create"], capture_output=True, env=self.env(), timeout=60)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(b"is not UTF-8", r.stderr)
        self.assertEqual(self.server.api("GET", "/api/v1/models/alice/utf8single", token=self.token)[0], 404)
        self.assertEqual(upload("--exclude", "f*").returncode, 0)

    def test_excluded_files_need_not_be_valid_repo_paths(self):
        src = make_tree(self.path("src"), {"ok.txt": b"ok", "bad\nname.txt": b"x", "d\\x/y.txt": b"y"})
        r = self.upload("alice/names", src)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "unsafe repo path", "\\x0a")  # the newline shown escaped
        self.assertIn("--exclude", r.stderr)
        # What the hint offers works: the excluded names are never checked.
        r = self.upload("alice/names", src, "--exclude", "bad*", "d?x/*")
        self.assertExit(r, 0)
        self.assertEqual(sorted(self.listing("alice/names")), [".gitattributes", "ok.txt"])

    def test_symlinks_loops_dangling_and_outside(self):
        src = make_tree(self.path("src"), {"real/f.txt": b"f", "top.txt": b"t"})
        os.symlink("top.txt", os.path.join(src, "link.txt"))         # file inside: uploaded
        os.symlink("real", os.path.join(src, "linkdir"))             # folder inside: skipped
        os.symlink("missing", os.path.join(src, "dangling"))         # dangling inside: skipped
        r = self.upload("alice/links", src)
        self.assertExit(r, 0)
        self.assertEqual(sorted(self.listing("alice/links")),
                         [".gitattributes", "link.txt", "real/f.txt", "top.txt"])
        self.assertIn("dangling: skipped, not a regular file", r.stderr)
        os.symlink("loop2", os.path.join(src, "loop1"))
        os.symlink("loop1", os.path.join(src, "loop2"))
        r = self.upload("alice/links", src)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "loop1", "cannot resolve the symlink")
        self.assertExit(self.upload("alice/links", src, "--exclude", "loop*"), 0)
        os.symlink(self.path(), os.path.join(src, "outside"))
        r = self.upload("alice/links", src, "--exclude", "loop*")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "outside the folder")
        self.assertExit(self.upload("alice/links", src, "--exclude", "loop*", "outside"), 0)


    # --- interrupted and repeated uploads ------------------------------------------------------
    def test_rerun_without_the_upload_state_sends_nothing_twice(self):
        # The state of an earlier run can be gone: another machine, a cleared cache, or a run
        # killed after the hub applied its commit but before the state was saved.
        files = {"w.bin": os.urandom(300000), "a.txt": b"a", "d/b.txt": b"b"}
        src = make_tree(self.path("src"), files)
        first = self.json_out(self.upload("alice/stateless", src, "--json"))
        self.assertEqual(first["files_committed"], 3)
        shutil.rmtree(self.path("cache", ".upload"))
        again = self.json_out(self.upload("alice/stateless", src, "--json"))
        self.assertEqual((again["files_committed"], again["files_skipped"], again["bytes_uploaded"],
                          again["blobs_uploaded"], again["commits"]), (0, 3, 0, 0, []))
        # A changed file still goes out, alone.
        with open(os.path.join(src, "a.txt"), "wb") as f:
            f.write(b"changed")
        shutil.rmtree(self.path("cache", ".upload"))
        changed = self.json_out(self.upload("alice/stateless", src, "--json"))
        self.assertEqual((changed["files_committed"], changed["bytes_uploaded"]), (1, len(b"changed")))
        # A new branch is created even when its files equal master's.
        branch = self.json_out(self.upload("alice/stateless", src, "--json", "--revision", "dev"))
        self.assertEqual(branch["files_committed"], 3)
        r = self.ms("download", "alice/stateless", "--revision", "dev", "--token", self.token,
                    "--local-dir", self.path("dev"))
        self.assertExit(r, 0)

    def test_rewritten_file_with_its_old_size_and_mtime_is_uploaded(self):
        # tar, cp -p and reproducible builds (SOURCE_DATE_EPOCH) give new content the old size
        # and mtime; the upload state must not call such a file unchanged.
        src = make_tree(self.path("src"), {"w.bin": b"A" * 200000, "a.txt": b"old!"})
        stamp = 1_600_000_000 * 10 ** 9
        for name in ("w.bin", "a.txt"):
            os.utime(os.path.join(src, name), ns=(stamp, stamp))
        self.assertExit(self.upload("alice/stamped", src), 0)
        new = {"w.bin": b"B" * 200000, "a.txt": b"new!"}
        ctimes = {name: os.stat(os.path.join(src, name)).st_ctime_ns for name in new}
        for name, data in new.items():
            path = os.path.join(src, name)
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, ns=(stamp, stamp))

        def ctimes_moved():
            # The kernel stamps ctime from a clock that may tick coarsely (once a jiffy): touch again
            # (the old mtime stays) until each rewrite has a ctime of its own.
            moved = True
            for name in new:
                path = os.path.join(src, name)
                os.utime(path, ns=(stamp, stamp))
                moved = moved and os.stat(path).st_ctime_ns != ctimes[name]
            return moved
        self.assertTrue(self.wait_for(ctimes_moved))
        again = self.json_out(self.upload("alice/stamped", src, "--json"))
        self.assertEqual(again["files_committed"], 2)
        for name, data in new.items():
            self.assertEqual(self.server.download("alice/stamped", name, token=self.token)[2], data)

    def test_upload_state_does_not_stand_in_for_the_hub(self):
        # The state says what an earlier run sent; the hub may have lost it since (a file
        # deleted or overwritten there), or this run may go to another hub with a repo of the
        # same name. Each re-run used to report the files 'unchanged' and send nothing.
        files = {"w.bin": os.urandom(200000), "a.txt": b"mine"}
        src = make_tree(self.path("src"), files)
        self.assertExit(self.upload("alice/drifted", src), 0)
        status, envelope = self.server.commit(self.token, "alice/drifted", files={"a.txt": b"theirs"},
                                              deletes=["w.bin"])
        self.assertEqual(status, 200, envelope)
        again = self.json_out(self.upload("alice/drifted", src, "--json"))
        self.assertEqual((again["files_committed"], again["files_skipped"]), (2, 0))
        for name, data in files.items():
            self.assertEqual(self.server.download("alice/drifted", name, token=self.token)[2], data)
        # Another hub, same repo name, same state file.
        other_root = self.path("other-hub")
        other = HubServer(other_root)
        self.addCleanup(other.stop)
        r = run_ms("upload", "alice/drifted", src, "--create", "--json", "--token", other.token("alice"),
                   env=self.env(MODELSCOPE_ENDPOINT=other.endpoint), timeout=60)
        self.assertExit(r, 0)
        self.assertEqual(self.json_out(r)["files_committed"], 2)
        status, envelope = other.files("alice/drifted")
        self.assertEqual(status, 200, envelope)
        self.assertEqual(sorted(f["Path"] for f in envelope["Data"]["Files"] if f["Path"] in files),
                         sorted(files))

    def stopped_at(self, proc, stage):
        """Waits until `proc`, run with MS_TEST_UPLOAD_STOP=stage, has stopped itself there."""
        state = {}

        def stopped():
            pid, status = os.waitpid(proc.pid, os.WNOHANG | os.WUNTRACED)
            if pid:
                state["status"] = status
            return pid != 0
        self.assertTrue(self.wait_for(stopped), f"the upload neither stopped at '{stage}' nor ended")
        self.assertTrue(os.WIFSTOPPED(state["status"]),
                        f"the upload ended (status {state['status']}) instead of stopping at '{stage}'")

    def test_upload_killed_at_each_stage_then_rerun(self):
        # Each run stops itself at one stage (MS_TEST_UPLOAD_STOP) and is killed there: after
        # hashing, half way through the first blob, after the blobs, after the first commit but
        # before the state records it.
        self.require_test_hooks()
        files = {f"big{i}.bin": os.urandom(3 << 20) for i in range(3)}
        files.update({f"d/s{i:02d}.txt": os.urandom(1000 + i) for i in range(40)})
        src = make_tree(self.path("src"), files)
        args = ["upload", "alice/killed", src, "--create", "--token", self.token, "--max-workers", "2"]
        for stage in ("hashed", "blob-half", "blobs", "commit"):
            p = self.spawn(*args, cache=self.path("cache"), MS_TEST_UPLOAD_STOP=stage)
            self.stopped_at(p, stage)
            p.send_signal(signal.SIGKILL)
            p.communicate(timeout=30)
        final = self.json_out(self.ms(*args, "--json", timeout=120))
        # Whatever the kills left, one more run sends nothing.
        again = self.json_out(self.ms(*args, "--json", timeout=60))
        self.assertEqual((again["files_committed"], again["bytes_uploaded"], again["commits"]), (0, 0, []))
        self.assertLessEqual(final["blobs_uploaded"], 3)
        listing = self.listing("alice/killed")
        for name, data in files.items():
            self.assertEqual(listing[name]["Sha256"], hashlib.sha256(data).hexdigest(), name)

    def test_a_signal_still_gives_the_json_document_and_the_run_resumes(self):
        # docs/hub.md: --json prints one document, on failure too. A download or upload that
        # SIGINT or SIGTERM stopped printed none (stdout empty), where ms train prints an
        # "interrupted" one. Each run stops itself at a point (MS_TEST_*_STOP), gets the signal
        # there, and is continued with its work held (MS_TEST_STOP_HOLD: it could otherwise finish
        # first): it ends by that signal, as it would have without --json.
        self.require_test_hooks()
        files = {"big.bin": os.urandom(6 << 20), "small.txt": b"small"}
        src = make_tree(self.path("src"), files)
        def up(repo):
            return ["upload", repo, src, "--create", "--token", self.token, "--json"]
        down = ["download", "alice/stopped-2", "--local-dir", self.path("local"), "--token",
                self.token, "--json"]
        # Stops with work still to do after them (half a blob and the commit; every file), so
        # the signal comes before the run could print its result.
        for args, stop, signo in ((up("alice/stopped-1"), {"MS_TEST_UPLOAD_STOP": "blob-half"},
                                   signal.SIGINT),
                                  (up("alice/stopped-2"), {"MS_TEST_UPLOAD_STOP": "hashed"},
                                   signal.SIGTERM),
                                  (down, {"MS_TEST_DOWNLOAD_STOP": "listed"}, signal.SIGTERM)):
            with self.subTest(command=args[0], stop=stop, signal=signo):
                p = self.spawn(*args, cache=self.path("cache"), MS_TEST_STOP_HOLD="1", **stop)
                self.stopped_at(p, next(iter(stop.values())))
                p.send_signal(signo)
                p.send_signal(signal.SIGCONT)
                out, err = p.communicate(timeout=60)
                self.assertEqual(p.returncode, -signo, err)
                error = json.loads(out)["error"]
                self.assertEqual((error["code"], error["exit_code"]), ("interrupted", 128 + signo),
                                 error)
                self.assertIn(f"signal {int(signo)}", error["message"])
                self.assertIn("run the same command again", error["hint"])
                # What the stopped run did stays resumable: the same command finishes the job.
                again = self.json_out(self.ms(*args))
                self.assertNotIn("error", again)
        for name, data in files.items():
            with open(self.path("local", name), "rb") as f:
                self.assertEqual(f.read(), data, name)

    def test_a_file_cut_short_while_it_is_sent(self):
        # curl waited for the bytes the file had promised until its stall timeout, and every
        # retry again (4 minutes by default), then said "Operation too slow" (exit 5, network).
        self.require_test_hooks()
        src = make_tree(self.path("src"), {"big.bin": os.urandom(8 << 20)})
        p = self.spawn("upload", "alice/cut", src, "--create", "--token", self.token,
                       cache=self.path("cache"), MS_TEST_UPLOAD_STOP="blob-half",
                       MS_HUB_STALL_TIMEOUT="5")
        self.stopped_at(p, "blob-half")
        os.truncate(os.path.join(src, "big.bin"), 1 << 20)
        p.send_signal(signal.SIGCONT)
        _out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 74, err)
        self.assertIn("big.bin: changed while uploading", err)

    def test_a_commit_during_a_download_gives_the_new_commits_files(self):
        # Files are fetched by branch name, so a commit that lands after the listing serves some
        # of them at the new commit. That failed with exit 7 ("changed on the hub during the
        # download"); now the run lists the branch again and fetches what changed.
        self.require_test_hooks()
        v1 = {"same.txt": b"unchanged", "resized.bin": b"a" * 5000, "rewritten.txt": b"one 1"}
        self.assertExit(self.upload("alice/moving", make_tree(self.path("v1"), v1)), 0)
        local = self.path("local")
        p = self.spawn("download", "alice/moving", "--local-dir", local, "--token", self.token,
                       "--json", cache=self.path("cache"), MS_TEST_DOWNLOAD_STOP="listed")
        self.stopped_at(p, "listed")
        # The commit lands between the listing and the first file: the same size with other
        # bytes, another size, and a file the first listing did not have.
        v2 = dict(v1, **{"resized.bin": b"b" * 7000, "rewritten.txt": b"two 2", "added.txt": b"new"})
        self.assertExit(self.upload("alice/moving", make_tree(self.path("v2"), v2)), 0)
        p.send_signal(signal.SIGCONT)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("changed during the download (a new commit)", err)
        self.assertIn("listing it again (2/3)", err)
        for name, data in v2.items():
            with open(os.path.join(local, name), "rb") as f:
                self.assertEqual(f.read(), data, name)
        self.assertEqual(sorted(f["path"] for f in json.loads(out)["files"]),
                         sorted(v2))

    def test_server_killed_mid_upload_keeps_a_consistent_store(self):
        root = self.path("hub-root")
        server = HubServer(root)
        self.addCleanup(server.stop)
        token = server.token("alice")
        files = {f"w{i}.bin": os.urandom(2 << 20) for i in range(4)}
        files.update({f"t{i:02d}.txt": os.urandom(500 + i) for i in range(30)})
        src = make_tree(self.path("src"), files)
        # The upload stops itself (MS_TEST_UPLOAD_STOP) half way through a blob, after the blobs,
        # after the first commit; the hub is killed there, then the upload goes on and fails.
        self.require_test_hooks()
        for stage in ("blob-half", "blobs", "commit"):
            env = self.env(MODELSCOPE_ENDPOINT=server.endpoint, MS_TEST_UPLOAD_STOP=stage)
            p = subprocess.Popen([MS_BIN, "upload", "alice/m", src, "--create", "--token", token],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
            self.stopped_at(p, stage)
            server.proc.kill()
            server.proc.wait(10)
            server.stop()
            p.send_signal(signal.SIGCONT)
            p.communicate(timeout=60)
            self.assert_store_consistent(root)
            server = HubServer(root)
            self.addCleanup(server.stop)
        r = run_ms("upload", "alice/m", src, "--create", "--token", token,
                   env=self.env(MODELSCOPE_ENDPOINT=server.endpoint), timeout=120)
        self.assertExit(r, 0)
        r = run_ms("download", "alice/m", "--token", token, "--local-dir", self.path("back"),
                   env=self.env(MODELSCOPE_ENDPOINT=server.endpoint), timeout=120)
        self.assertExit(r, 0)
        for name, data in files.items():
            with open(self.path("back", name), "rb") as f:
                self.assertEqual(f.read(), data, name)

    def test_a_killed_servers_partial_blob_goes_at_its_next_start(self):
        # A hub killed mid-upload kept ROOT/tmp/<sha>.<random>.part for a day (another server may
        # share the root, so a live one's part must stay). Parts now name their host and PID.
        self.require_test_hooks()
        root = self.path("hub-root")
        server = HubServer(root)
        self.addCleanup(server.stop)
        token = server.token("alice")
        src = make_tree(self.path("src"), {"big.bin": os.urandom(8 << 20)})
        p = subprocess.Popen([MS_BIN, "upload", "alice/cut", src, "--create", "--token", token],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, **self.env(MODELSCOPE_ENDPOINT=server.endpoint,
                                                           MS_TEST_UPLOAD_STOP="blob-half")})
        self.addCleanup(p.kill)
        self.stopped_at(p, "blob-half")
        tmp = os.path.join(root, "tmp")
        self.assertTrue(self.wait_for(lambda: os.listdir(tmp)), "no part in the hub's tmp/")
        [part] = os.listdir(tmp)
        self.assertIn(f".{server.proc.pid}.", part)
        server.proc.kill()
        server.proc.wait(10)
        server.stop()
        server = HubServer(root)
        self.addCleanup(server.stop)
        self.assertEqual(os.listdir(tmp), [])

    def test_only_dead_servers_parts_of_this_host_go_at_start(self):
        root = self.path("hub-root")
        tmp = os.path.join(root, "tmp")
        os.makedirs(tmp)
        sha = hashlib.sha256(b"x").hexdigest()
        host = "".join(c if c.isascii() and (c.isalnum() or c in "-.") else "_"
                       for c in socket.gethostname())
        # A writer holds its part's lock (flock) all along: an unlocked part of this host is a
        # dead server's, whatever PID its name has (a PID says nothing across PID namespaces).
        parts = {
            "dead": f"{sha}.{host}.{os.getpid()}.00112233445566aa.part",  # a live PID, unlocked
            "live": f"{sha}.{host}.1.00112233445566bb.part",  # locked below, as a writer's is
            "other-host": f"{sha}.other-{host}.1.00112233445566cc.part",
            "old-form": f"{sha}.00112233445566dd.part",
        }
        for name in parts.values():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(b"half a blob")
        held = open(os.path.join(tmp, parts["live"]), "rb")
        self.addCleanup(held.close)
        fcntl.flock(held, fcntl.LOCK_EX)
        server = HubServer(root)
        self.addCleanup(server.stop)
        self.assertEqual(sorted(os.listdir(tmp)),
                         sorted(parts[k] for k in ("live", "other-host", "old-form")))

    def assert_store_consistent(self, root):
        """SQLite intact, and every commit's tree names blobs that exist with their sizes."""
        db = sqlite3.connect(os.path.join(root, "meta.sqlite3"))
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            trees = [row[0] for row in db.execute("SELECT tree FROM commits")]
        finally:
            db.close()
        for tree in trees:
            with open(os.path.join(root, "trees", tree[:2], tree + ".json")) as f:
                for path, sha, size, *_ in json.load(f):
                    blob = os.path.join(root, "blobs", sha[:2], sha)
                    self.assertTrue(os.path.isfile(blob), path)
                    self.assertEqual(os.path.getsize(blob), size, path)

    # --- the hub changes a folder into a file, or the reverse --------------------------------------
    def test_folder_becoming_a_file_and_back(self):
        # Every later download of the repo used to fail with 'cannot move into the cache: Is a
        # directory' (exit 74), until the user deleted the cache by hand.
        repo = "alice/flip"
        self.assertExit(self.upload(repo, make_tree(self.path("src"), {"x/y.txt": b"y", "x/z.bin": b"z" * 5000})), 0)
        repo_dir = self.path("cache", "models", "alice", "flip")

        def download_and_check(expected):
            r = self.ms("download", repo, "--token", self.token)
            self.assertExit(r, 0)
            for name, data in expected.items():
                with open(os.path.join(repo_dir, name), "rb") as f:
                    self.assertEqual(f.read(), data, name)
            with open(os.path.join(repo_dir, ".msc"), "rb") as f:
                self.assertEqual(sorted(e["Path"] for e in pickle.load(f)), sorted(expected))

        download_and_check({"x/y.txt": b"y", "x/z.bin": b"z" * 5000})
        self.replace(repo, "x", {"x": b"now a file"})
        download_and_check({"x": b"now a file"})
        self.replace(repo, "x", {"x/w.txt": b"a folder again"})
        # A partial file of an interrupted run sits where the folder goes in the temp area too.
        temp = self.path("cache", "models", "._____temp", "alice", "flip")
        os.makedirs(temp, exist_ok=True)
        with open(os.path.join(temp, "x"), "wb") as f:
            f.write(b"partial")
        download_and_check({"x/w.txt": b"a folder again"})

    def replace(self, repo, old, files):
        for change in ({"deletes": [old]}, {"files": files}):
            status, env = self.server.commit(self.token, repo, **change)
            self.assertEqual(status, 200, env)

    def test_a_users_own_folder_is_never_replaced(self):
        repo = "alice/flip-local"
        self.assertExit(self.upload(repo, make_tree(self.path("src"), {"u": b"hub file"})), 0)
        local = make_tree(self.path("local"), {"u/mine.txt": b"the user's"})
        r = self.ms("download", repo, "--token", self.token, "--local-dir", local)
        self.assertExit(r, 74)
        self.assertOneLineError(r, "mine.txt", "not from the hub")
        with open(os.path.join(local, "u", "mine.txt"), "rb") as f:
            self.assertEqual(f.read(), b"the user's")

    # --- concurrent clients -------------------------------------------------------------------
    def spawn(self, *args, cache, **extra_env):
        env = dict(os.environ)
        env.update(self.env(MODELSCOPE_CACHE=cache, **extra_env))
        # SIGINT as a terminal's job has it: a test run started in the background of a script
        # (CI) passes it on ignored, which ms keeps ignored, as documented.
        return subprocess.Popen([MS_BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def test_two_uploads_creating_the_same_repo_both_succeed(self):
        trees = {side: make_tree(self.path(side), {f"{side}{i}.txt": side.encode() * i for i in range(10)})
                 for side in ("a", "b")}
        for n in range(4):
            repo = f"alice/race{n}"
            procs = [self.spawn("upload", repo, trees[side], "--create", "--token", self.token,
                                cache=self.path("cache-" + side)) for side in trees]
            for p in procs:
                _out, err = p.communicate(timeout=60)
                self.assertEqual(p.returncode, 0, err)
            # Both commits landed: neither upload lost the other's files.
            self.assertEqual(len(self.listing(repo)), 21)

    def test_two_downloads_into_one_local_dir_from_different_caches(self):
        # Different cache roots mean different repo locks; both runs still share the folder and
        # its .msc index. They used to race: 'cannot move into the cache' (exit 74), and an index
        # missing files that the other run had moved in.
        files = {f"f{i:02d}.bin": os.urandom(100000 + i) for i in range(30)}
        files["big.bin"] = os.urandom(3 << 20)
        self.assertExit(self.upload("alice/shared-dir", make_tree(self.path("src"), files)), 0)
        for n in range(5):
            local = self.path(f"local{n}")
            procs = [self.spawn("download", "alice/shared-dir", "--local-dir", local, "--token", self.token,
                                "--max-workers", "4", cache=self.path(f"cache{n}-{side}")) for side in "ab"]
            for p in procs:
                _out, err = p.communicate(timeout=120)
                self.assertEqual(p.returncode, 0, err)
            for name, data in files.items():
                with open(os.path.join(local, name), "rb") as f:
                    self.assertEqual(f.read(), data, name)
            with open(os.path.join(local, ".msc"), "rb") as f:
                self.assertEqual(sorted(e["Path"] for e in pickle.load(f)), sorted(files))


if __name__ == "__main__":
    unittest.main()

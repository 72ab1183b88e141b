"""`ms serve` end to end: a real server on 127.0.0.1 with the tiny models of tests/data/infer.
ModelScope's /call, /describe and /health bodies; answers equal to `ms infer` on the same input;
concurrent requests merged into one batch (forced with the test build's /_test/hold) and each
answer equal to the same input alone; a bad input failing alone inside a batch; 400/401/404/413
errors naming the field; a full queue -> 503 + Retry-After; a timeout -> 504; SIGTERM answering
queued requests before exit; images as base64, data: URL and http URL; /metrics.
"""
import base64
import concurrent.futures
import functools
import itertools
import http.client
import http.server
import json
import os
import gzip
import signal
import socket
import ssl
import subprocess
import threading
import unittest
import zlib

from harness import MS_BIN, SOURCE_DIR, TorchTestCase, component_available, free_port, run_ms

TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")
VISION = os.path.join(SOURCE_DIR, "tests", "data", "infer", "vision")
IMAGES = os.path.join(VISION, "images")
# scripts/gpu-check.sh runs these tests again with MS_INFER_DEVICE=gpu:0 (server and `ms infer`).
DEVICE = os.environ.get("MS_INFER_DEVICE", "cpu")
# Batched and single forward passes multiply matrices of other shapes; float rounding differs in
# the last bits (about 1e-7 seen on the CPU; GPU libraries pick other kernels per shape), never
# the labels.
TOL = 1e-5 if DEVICE == "cpu" else 1e-4


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_responses(conn, first_only=False):
    """The HTTP responses on `conn` until the server closes it (first_only: the first one, without
    waiting for the close): [(status, headers as (name, value) pairs, parsed JSON body)]."""
    data, responses = b"", []
    while True:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            lines = data[:head_end].decode("latin-1").split("\r\n")
            headers = [tuple(part.strip() for part in l.split(":", 1)) for l in lines[1:]]
            length = int(dict((k.lower(), v) for k, v in headers).get("content-length", "0"))
            end = head_end + 4 + length
            if len(data) >= end:
                body = data[head_end + 4:end]
                responses.append((int(lines[0].split()[1]), headers, json.loads(body or b"null")))
                data = data[end:]
                if first_only:
                    return responses
                continue
        chunk = conn.recv(65536)
        if not chunk:
            return responses
        data += chunk


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Served:
    """`ms serve --port 0 --json` on a model; start() waits for its ready line."""

    def __init__(self, model, *extra, log_dir, ignore_hangup=False):
        self.args = [MS_BIN, "serve", "-m", model, "--port", "0", "--json", "--device", DEVICE,
                     *map(str, extra)]
        self.tls = None  # an ssl.SSLContext trusting the server's certificate, for https
        self.stderr = open(os.path.join(log_dir, "serve.stderr"), "a+")
        # As `nohup` starts it, else as a terminal's job (a test run in a script's background, or
        # under nohup itself, would pass SIGHUP / SIGINT on ignored).
        def signals_as_started():
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN if ignore_hangup else signal.SIG_DFL)
        self.preexec = signals_as_started

    def start(self, timeout=60):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     preexec_fn=self.preexec)
        line = [None]
        t = threading.Thread(target=lambda: line.__setitem__(0, self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not line[0]:
            self.proc.kill()
            raise RuntimeError(f"ms serve did not start:\n{self.log()}")
        self.ready = json.loads(line[0])
        self.port = int(self.ready["endpoint"].rsplit(":", 1)[1])
        return self

    def log(self):
        self.stderr.flush()
        with open(self.stderr.name, errors="replace") as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, headers, parsed JSON or text) of one request on a fresh connection."""
        if self.ready["endpoint"].startswith("https:"):
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.tls)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read().decode()
            kind = r.getheader("Content-Type", "")
            return r.status, dict(r.getheaders()), json.loads(data) if "json" in kind else data
        finally:
            conn.close()

    def call(self, body, **kw):
        return self.request("POST", "/call", body, **kw)

    def connect(self, timeout=120):
        """A raw socket to the server, for requests http.client cannot send."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def raw(self, data, timeout=120, close_write=False):
        """Sends raw bytes on a fresh connection and returns every response the server sends
        before it closes: a list of (status, headers as (name, value) pairs, body)."""
        with self.connect(timeout) as conn:
            conn.sendall(data)
            if close_write:
                conn.shutdown(socket.SHUT_WR)
            return read_responses(conn)

    def metric(self, name):
        _, _, text = self.request("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()
        self.stderr.close()
        return self.proc.returncode


class ServeTestCase(TorchTestCase):
    def setUp(self):
        super().setUp()
        if not component_available("serve"):
            self.skipTest("this ms is built without ms serve")

    def serve(self, model, *extra, ignore_hangup=False):
        s = Served(model, *extra, log_dir=self.tmp, ignore_hangup=ignore_hangup).start()
        self.addCleanup(s.stop)
        return s

    def infer(self, model, *args):
        r = run_ms("infer", "-m", model, "--device", DEVICE, *args)
        self.assertExit(r, 0)
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    def assertClose(self, got, want, path="$"):
        if isinstance(want, float) or isinstance(got, float):
            self.assertLess(abs(got - want), TOL, path)
        elif isinstance(want, list):
            self.assertEqual(len(got), len(want), path)
            for i, (g, w) in enumerate(zip(got, want)):
                self.assertClose(g, w, f"{path}[{i}]")
        elif isinstance(want, dict):
            self.assertEqual(sorted(got), sorted(want), path)
            for k in want:
                self.assertClose(got[k], want[k], f"{path}.{k}")
        else:
            self.assertEqual(got, want, path)

    def queue_together_and_compare(self, s, texts, alone):
        """Holds the batcher, sends each text as its own request at once, waits until all are
        queued, releases them, and checks each answer against `alone[text]`."""
        s.request("POST", "/_test/hold")
        with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
            futures = {t: pool.submit(s.call, {"input": t}) for t in texts}
            self.wait_queue(s, len(texts))
            s.request("POST", "/_test/release")
            for t, f in futures.items():
                status, _, got = f.result()
                self.assertEqual(status, 200, got)
                self.assertClose(got, alone[t])

    def wait_queue(self, s, depth):
        self.assertTrue(self.wait_for(lambda: s.metric("ms_serve_queue_depth") == depth),
                        f"queue never reached {depth}:\n{s.log()}")


class TextServeTest(ServeTestCase):
    def test_modelscope_api_and_answers_equal_ms_infer(self):
        model = os.path.join(TINY, "cls")
        s = self.serve(model)
        self.assertEqual(s.ready["task"], "text-classification")
        status, _, body = s.request("GET", "/health")
        self.assertEqual((status, body["Code"], body["Success"]), (200, 200, True))
        status, _, body = s.request("GET", "/describe")
        self.assertEqual(status, 200)
        self.assertEqual(body["schema"]["task_name"], "text-classification")
        self.assertIn("text", body["schema"]["schema"]["input"]["properties"])
        # The sample body /describe gives is one /call takes.
        status, _, _ = s.call(body["sample"])
        self.assertEqual(status, 200)

        texts = ["a great film", "the worst day", "neither here nor there"]
        want = [{k: v for k, v in o.items() if k != "id"} for o in self.infer(model, "--input", *texts)]
        for text, w in zip(texts, want):
            for body in ({"input": text}, {"input": {"text": text}}, {"input": {"text": text}, "parameters": {}}):
                status, headers, got = s.call(body)
                self.assertEqual(status, 200, got)
                self.assertClose(got, w)
                self.assertIn("X-Request-Id", headers)
        # A list in one request is answered with a list, in order; topk keeps the best labels.
        status, _, got = s.call({"input": texts, "parameters": {"topk": 1}})
        self.assertEqual(status, 200, got)
        self.assertClose(got, [{"labels": w["labels"][:1], "scores": w["scores"][:1]} for w in want])
        # A pair: ModelScope's text2.
        pair = self.infer(model, "--input-file", self.write("p.jsonl", json.dumps({"text": "a", "text_pair": "b"}) + "\n"))
        status, _, got = s.call({"input": {"text": "a", "text2": "b"}})
        self.assertClose(got, {k: v for k, v in pair[0].items() if k != "id"})

    def test_dtype_answers_equal_ms_infer_with_the_same_dtype(self):
        # --dtype is ms infer's switch: bf16 here (fp16 too on a GPU), answers equal to ms infer's
        # in the same dtype, and different from fp32's.
        model = os.path.join(TINY, "st_dense")
        texts = ["a great film", "the worst day"]
        for dtype in ["bf16"] + (["fp16"] if DEVICE != "cpu" else []):
            s = self.serve(model, "--dtype", dtype)
            want = self.infer(model, "--dtype", dtype, "--input", *texts)
            fp32 = self.infer(model, "--input", *texts)
            for text, w, f in zip(texts, want, fp32):
                status, _, got = s.call({"input": text})
                self.assertEqual(status, 200, got)
                emb = got["text_embedding"][0]  # ModelScope's shape: one row per sentence
                self.assertClose(emb, w["text_embedding"])
                self.assertNotEqual(emb, f["text_embedding"])
            s.stop()
        r = run_ms("serve", "-m", model, "--port", "0", "--dtype", "fp8")
        self.assertExit(r, 2)

    def test_concurrent_requests_share_a_batch_and_each_answer_equals_its_input_alone(self):
        self.require_test_hooks()
        s = self.serve(os.path.join(TINY, "cls"), "--max-batch", "64", "--workers", "1", "--test-routes")
        # Permutations of the same words: one token count, so the 24 make a single forward pass
        # (the batcher splits inputs of unlike lengths into passes of their own).
        words = ["the", "film", "was", "good", "bad"]
        texts = [" ".join(p) for p in list(itertools.permutations(words))[:24]]
        alone = {}
        for t in texts:
            status, _, alone[t] = s.call({"input": t})
            self.assertEqual(status, 200)
        self.queue_together_and_compare(s, texts, alone)
        # All 24 waited together, so they ran as one batch of 24 (between 16 and 32).
        _, _, metrics = s.request("GET", "/metrics")
        self.assertIn('ms_serve_batch_size_bucket{le="16"} %d\n' % len(texts), metrics)
        self.assertIn('ms_serve_batch_size_bucket{le="32"} %d\n' % (len(texts) + 1), metrics)
        self.assertIn('ms_serve_requests_total{code="200"} %d\n' % (2 * len(texts)), metrics)
        # Unlike lengths, queued together: run in passes of similar length, still equal alone.
        texts = [("word " * n + "end").strip() for n in range(1, 25)]
        alone = {t: s.call({"input": t})[2] for t in texts}
        self.queue_together_and_compare(s, texts, alone)

    def test_sentence_embedding_in_modelscope_shape(self):
        model = os.path.join(TINY, "st_dense")
        s = self.serve(model)
        sents = ["how to bake bread", "bread needs yeast", "the sky is blue"]
        want = [o["text_embedding"] for o in self.infer(model, "--input", *sents)]
        status, _, got = s.call({"input": {"source_sentence": [sents[0]], "sentences_to_compare": sents[1:]}})
        self.assertEqual(status, 200, got)
        self.assertClose(got["text_embedding"], want)
        dots = [sum(a * b for a, b in zip(want[0], w)) for w in want[1:]]
        self.assertClose(got["scores"], dots)
        status, _, got = s.call({"input": {"source_sentence": sents}})
        self.assertClose(got, {"text_embedding": want, "scores": []})

    def test_text_generation_is_servable(self):
        model = os.path.join(TINY, "gpt2")
        s = self.serve(model, "--set", "max_new_tokens=5")
        self.assertEqual(s.ready["workers"], 1)
        self.assertNotIn("--workers", s.log())
        want = self.infer(model, "--input", "hello world", "--set", "max_new_tokens=5")[0]["text"]
        status, _, got = s.call({"input": {"text": "hello world"}})
        self.assertEqual((status, got), (200, {"text": want}))
        status, _, got = s.call({"input": "hello", "parameters": {"top_k": 3}})
        self.assertEqual(status, 400)
        self.assertEqual(got["Data"]["field"], "parameters.top_k")
        self.assertIn("--set", got["Message"])
        # A second text is refused, not dropped.
        status, _, got = s.call({"input": {"text": "hello", "text2": "world"}})
        self.assertEqual(status, 400, got)
        self.assertIn("not a text pair", got["Message"])
        s.stop()
        # Sampling without a seed: each request draws anew (a seed drawn once at start-up gave
        # every request for a prompt the same text). Temperature 5 flattens the draw.
        s = self.serve(model, "--set", "max_new_tokens=12", "--set", "temperature=5")
        texts = {s.call({"input": "hello"})[2]["text"] for _ in range(6)}
        self.assertGreater(len(texts), 1, texts)

    def test_workers_for_a_pipeline_that_runs_one_batch_at_a_time(self):
        # Text generation cannot run batches side by side: --workers 4 ran one worker without a
        # word. The warning comes before the ready line.
        s = self.serve(os.path.join(TINY, "gpt2"), "--set", "max_new_tokens=2", "--threads", "1",
                       "--workers", "4")
        self.assertEqual(s.ready["workers"], 1)
        self.assertIn("warning: --workers 4: the text-generation pipeline cannot run batches side by "
                      "side, so they run one at a time", s.log())
        self.assertEqual(s.call({"input": "hello"})[0], 200)

    def test_other_text_pipelines_answer_as_ms_infer(self):
        # Token classification (NER, word segmentation) and fill-mask, through the same pipelines.
        for name, text in (("ner", "alice moved to paris"), ("ws", "hello world again"),
                           ("mlm", "the capital of [MASK] is paris")):
            model = os.path.join(TINY, name)
            want = {k: v for k, v in self.infer(model, "--input", text)[0].items() if k != "id"}
            self.assertNotIn("error", want)
            s = self.serve(model)
            status, _, got = s.call({"input": {"text": text}})
            self.assertEqual(status, 200, (name, got))
            self.assertClose(got, want)
            s.stop()

    def test_bad_requests_are_400_naming_the_field_and_the_server_keeps_serving(self):
        s = self.serve(os.path.join(TINY, "cls"), "--max-body-mb", "1")
        cases = [
            ('{"input":', "body"),
            ('"just a string"', "body"),
            ({"inputs": "a"}, "inputs"),
            ({}, "input"),
            ({"input": 42}, "input"),
            ({"input": {"txt": "a"}}, "input.txt"),
            ({"input": ["ok", {"text": 7}]}, "input[1].text"),
            # Two second sentences are as ambiguous as two first ones.
            ({"input": {"text": "a", "text2": "b", "text_pair": "c"}}, "input.text_pair"),
            ({"input": {"text": "a", "sentence2": "b", "text_b": "c"}}, "input.text_b"),
            # A key twice (JSON parsers keep the last): refused, not answered for one of them.
            ('{"input": {"text": "a", "text": "b"}}', "body"),
            ('{"input": "a", "input": "b"}', "body"),
            # An empty text is named where it is, not as the whole input.
            ({"input": {"text": ""}}, "input.text"),
            ({"input": ["ok", ""]}, "input[1]"),
            ({"input": "a", "parameters": {"topk": "two"}}, "parameters.topk"),
            ({"input": "a", "parameters": {"beam": 2}}, "parameters.beam"),
        ]
        for body, field in cases:
            status, _, got = s.call(body)
            self.assertEqual(status, 400, (body, got))
            self.assertEqual((got["Success"], got["Code"], got["Data"]["field"]), (False, 400, field), got)
            self.assertTrue(got["Message"].startswith(field + ":"), got)
        status, _, got = s.call("x" * (2 << 20))
        self.assertEqual(status, 413, got)
        status, headers, got = s.request("GET", "/nothing")
        self.assertEqual(status, 404)
        self.assertIn("/call", got["Message"])
        # Every response carries X-Request-Id (those of other routes than /call had none).
        self.assertTrue(headers.get("X-Request-Id"), headers)
        for path in ("/health", "/describe", "/metrics"):
            status, headers, _ = s.request("GET", path)
            self.assertEqual(status, 200, path)
            self.assertTrue(headers.get("X-Request-Id"), (path, headers))
        # An error answered with "Connection: close" says it once, with no Keep-Alive beside it.
        [(status, pairs, _)] = s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                     b"Content-Encoding: compress\r\nContent-Length: 2\r\n\r\n{}")
        self.assertEqual(status, 415)
        names = [name.lower() for name, _ in pairs]
        self.assertEqual(names.count("connection"), 1, pairs)
        self.assertNotIn("keep-alive", names)
        status, _, got = s.request("GET", "/call")
        self.assertIn(status, (404, 405))
        for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
            status, headers, got = s.request(method, "/call")
            self.assertEqual((status, headers.get("Allow")), (405, "POST"), method)
            self.assertIn("POST", got["Message"])
        # Nesting is bounded while parsing; texts are bounded in size.
        status, _, got = s.call('{"input":' + "[" * 5000 + "]" * 5000 + "}")
        self.assertEqual((status, got["Data"]["field"]), (400, "body"), got)
        self.assertIn("nested deeper", got["Message"])
        # A long key is named by its start: the error echoed a client's 0.9 MiB key twice.
        for body in ({"k" * 900000: 1}, {"input": {"k" * 900000: "a"}}):
            status, _, got = s.call(body)
            self.assertEqual(status, 400, str(got)[:200])
            self.assertLess(len(json.dumps(got)), 2000)
            self.assertRegex(got["Data"]["field"], r"^(input\.)?k+\.\.\. \(9000\d\d bytes\)$")
        status, _, _ = s.call({"input": "still fine"})
        self.assertEqual(status, 200)
        # The cases, the 413, the nesting, the long keys and the 415; 404 and 405 are not /call
        # answers.
        self.assertEqual(s.metric("ms_serve_errors_total"), len(cases) + 5)

    def test_a_nul_byte_in_the_json_body_is_400(self):
        # The JSON parser read a NUL as the end of the text: {"input":"a"}<NUL>xyz{{{ was answered
        # for "a", while {"input":"a"}xyz was 400.
        s = self.serve(os.path.join(TINY, "cls"))
        for body in (b'{"input":"a"}\x00xyz{{{', b'{"input":"a"}\x00', b'{"input":"a\x00b"}'):
            status, _, got = s.call(body, headers={"Content-Type": "application/json"})
            self.assertEqual((status, got["Data"]["field"]), (400, "body"), (body, got))
            self.assertIn("NUL", got["Message"], body)
        self.assertEqual(s.call({"input": "a"})[0], 200)

    def test_curl_style_form_content_type_takes_large_bodies(self):
        # `curl -d` sends application/x-www-form-urlencoded; the body is still JSON, and may be
        # far larger than the 8 KiB httplib allows a form.
        s = self.serve(os.path.join(TINY, "cls"))
        texts = [f"sentence number {i} of a long list" for i in range(400)]
        body = json.dumps({"input": texts})
        self.assertGreater(len(body), 8192)
        status, _, got = s.call(body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200, got)
        self.assertEqual(len(got), len(texts))
        status, _, got = s.call({"input": "x" * (1 << 20) + "y"})
        self.assertEqual((status, got["Data"]["field"]), (400, "input"), got)
        self.assertIn("at most", got["Message"])

    def test_bad_requests_on_one_keep_alive_connection(self):
        # An application-level 400 (a well-formed request with a bad field) keeps the connection.
        s = self.serve(os.path.join(TINY, "cls"))
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        for body, want in (({"input": 1}, 400), ({"input": "ok"}, 200), ({"input": {}}, 400), ({"input": "ok"}, 200)):
            conn.request("POST", "/call", body=json.dumps(body))
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, want)
            self.assertNotEqual(r.getheader("Connection"), "close")
        conn.close()

    def test_bearer_token(self):
        s = self.serve(os.path.join(TINY, "cls"), "--token", "s3cret")
        status, headers, got = s.call({"input": "a"})
        self.assertEqual(status, 401)
        self.assertEqual(headers.get("WWW-Authenticate"), "Bearer")
        self.assertIn("Authorization", got["Message"])
        status, _, _ = s.call({"input": "a"}, headers={"Authorization": "Bearer wrong!"})
        self.assertEqual(status, 401)
        # Each 401's body names the request id its header gives (/describe's and /metrics' said "").
        for path in ("/describe", "/metrics"):
            status, headers, got = s.request("GET", path)
            self.assertEqual(status, 401, path)
            self.assertTrue(headers.get("X-Request-Id"), (path, headers))
            self.assertEqual(got["RequestId"], headers["X-Request-Id"], path)
        status, headers, got = s.call({"input": "a"})
        self.assertEqual(got["RequestId"], headers["X-Request-Id"])
        status, _, _ = s.request("GET", "/health")
        self.assertEqual(status, 200)
        status, _, _ = s.call({"input": "a"}, headers={"Authorization": "Bearer s3cret"})
        self.assertEqual(status, 200)
        status, _, _ = s.call({"input": "a"}, headers={"Authorization": "bearer s3cret"})
        self.assertEqual(status, 200)  # the scheme is case-insensitive

    def test_full_queue_is_503_with_retry_after(self):
        self.require_test_hooks()
        s = self.serve(os.path.join(TINY, "cls"), "--max-queue", "2", "--test-routes")
        s.request("POST", "/_test/hold")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            waiting = [pool.submit(s.call, {"input": t}) for t in ("one", "two")]
            self.wait_queue(s, 2)
            status, headers, got = s.call({"input": "three"})
            self.assertEqual(status, 503, got)
            self.assertEqual(headers.get("Retry-After"), "1")
            self.assertIn("--max-queue", got["Message"])
            # A list that does not fit now is refused whole.
            status, _, _ = s.call({"input": ["three", "four"]})
            self.assertEqual(status, 503)
            s.request("POST", "/_test/release")
            for f in waiting:
                self.assertEqual(f.result()[0], 200)
        # A list that can never fit is refused as too large, not "retry later".
        status, _, got = s.call({"input": ["a", "b", "c"]})
        self.assertEqual((status, got["Data"]["field"]), (413, "input"), got)

    def test_a_list_longer_than_the_queue_is_refused_while_parsing(self):
        s = self.serve(os.path.join(TINY, "cls"), "--max-queue", "3")
        # The fourth element is bad, but the list is refused for its length before any element is
        # converted (it used to be converted whole first: 3 GB for 8 million strings).
        status, _, got = s.call({"input": ["a", "b", "c", 4]})
        self.assertEqual((status, got["Data"]["field"]), (413, "input"), got)
        self.assertIn("more than 3 inputs", got["Message"])
        self.assertIn("--max-queue", got["Message"])
        status, _, got = s.call({"input": ["a", "b", 3]})
        self.assertEqual((status, got["Data"]["field"]), (400, "input[2]"), got)
        status, _, got = s.call({"input": ["a", "b", "c"]})
        self.assertEqual(status, 200, got)
        # Objects are bounded too: a /call body's have a few members.
        status, _, got = s.call({"input": {f"k{i}": "a" for i in range(100)}})
        self.assertEqual((status, got["Data"]["field"]), (400, "body"), got)

    def test_a_body_of_millions_of_inputs_costs_little_memory(self):
        # A legal 32 MiB body: 8 million one-letter strings. Refused (413) while parsing, its
        # tree is never built: the server's peak memory grows by about the body, not 3 GB.
        s = self.serve(os.path.join(TINY, "cls"))
        def peak_kib():
            with open(f"/proc/{s.proc.pid}/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        self.assertEqual(s.call({"input": "warm up"})[0], 200)
        before = peak_kib()
        body = '{"input":[' + ",".join(['"a"'] * ((32 << 20) // 4 - 10)) + "]}"
        self.assertLessEqual(len(body), 32 << 20)
        status, _, got = s.call(body)
        self.assertEqual((status, got["Data"]["field"]), (413, "input"), got)
        self.assertLess(peak_kib() - before, 512 << 10)

    def test_timeout_is_504_and_the_input_leaves_the_queue(self):
        self.require_test_hooks()
        s = self.serve(os.path.join(TINY, "cls"), "--request-timeout", "1", "--test-routes")
        s.request("POST", "/_test/hold")
        status, _, got = s.call({"input": "late"})
        self.assertEqual(status, 504, got)
        self.assertEqual(s.metric("ms_serve_queue_depth"), 0)
        s.request("POST", "/_test/release")
        self.assertEqual(s.call({"input": "on time"})[0], 200)

    def test_a_request_whose_client_left_is_dropped(self):
        # A client that timed out (and perhaps retries) left its inputs queued: they were run
        # and counted as answered, and every later request waited behind them.
        self.require_test_hooks()
        s = self.serve(os.path.join(TINY, "cls"), "--test-routes")
        s.request("POST", "/_test/hold")
        body = json.dumps({"input": ["left behind", "also left"]}).encode()
        with s.connect() as conn:
            conn.sendall(b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.wait_queue(s, 2)
        # Held, nothing runs: only the client's leaving empties the queue.
        self.wait_queue(s, 0)
        self.assertTrue(self.wait_for(lambda: s.metric('ms_serve_requests_total{code="499"}') == 1),
                        s.log())
        s.request("POST", "/_test/release")
        self.assertEqual(s.call({"input": "still served"})[0], 200)

    def test_sigterm_answers_queued_requests_then_exits_0(self):
        self.require_test_hooks()
        # SIGHUP (the terminal closed) drains as SIGTERM does; it ended the server at once.
        for signo in (signal.SIGTERM, signal.SIGHUP):
            with self.subTest(signal=signo.name):
                s = self.serve(os.path.join(TINY, "cls"), "--test-routes", "--verbose")
                want = s.call({"input": "queued before the signal"})[2]
                s.request("POST", "/_test/hold")
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    queued = pool.submit(s.call, {"input": "queued before the signal"})
                    self.wait_queue(s, 1)
                    s.proc.send_signal(signo)
                    status, headers, got = queued.result()
                self.assertEqual(status, 200, s.log())
                self.assertClose(got, want)
                # Said, so that a keep-alive client does not send its next request into a
                # connection about to close (it was lost, unanswered).
                self.assertEqual(headers.get("Connection"), "close", headers)
                self.assertNotIn("Keep-Alive", headers)
                self.assertEqual(s.proc.wait(30), 0, s.log())
                self.assertIn("draining 1 queued", s.log())
                self.assertIn(f"ms serve: {signal.strsignal(signo)}: stopping", s.log())

    def test_a_request_during_the_stop_hears_the_server_is_shutting_down(self):
        # A request on a connection open before the stop was told "the server is busy (0 inputs
        # queued, --max-queue 1024) or shutting down", where a new connection hears plainly that
        # the server is shutting down.
        self.require_test_hooks()
        s = self.serve(os.path.join(TINY, "cls"), "--test-routes")
        s.request("POST", "/_test/hold")
        body = json.dumps({"input": "sent during the stop"}).encode()
        with s.connect() as conn, concurrent.futures.ThreadPoolExecutor(1) as pool:
            queued = pool.submit(s.call, {"input": "queued before the signal"})
            self.wait_queue(s, 1)
            # Its body's start keeps the connection in a request across the signal.
            conn.sendall(b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                         + body[:5])
            s.proc.send_signal(signal.SIGTERM)
            # Answered by the drain: the batcher takes no more work from here on.
            self.assertEqual(queued.result()[0], 200, s.log())
            conn.sendall(body[5:])
            (status, headers, got), = read_responses(conn, first_only=True)
        self.assertEqual(status, 503, got)
        self.assertEqual(got["Message"], "the server is shutting down")
        self.assertEqual(dict(headers).get("Retry-After"), "1")
        self.assertEqual(s.proc.wait(30), 0, s.log())

    def test_a_ready_line_stdout_cannot_take_is_a_warning_not_a_failed_exit(self):
        # `ms serve > /dev/full` served, then after its clean stop exited 74 ("standard output
        # could not be written: the results on it are incomplete"): a server has no results there.
        port = free_port()
        stderr = self.path("full.stderr")
        with open("/dev/full", "w") as full, open(stderr, "w") as err:
            proc = subprocess.Popen([MS_BIN, "serve", "-m", os.path.join(TINY, "cls"), "--port", str(port),
                                     "--device", DEVICE], stdout=full, stderr=err)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        written = lambda: read_bytes(stderr).decode()

        def answers():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                    conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return read_responses(conn)[0][0] == 200
            except OSError:
                return proc.poll() is not None  # stop waiting: it exited
        self.assertTrue(self.wait_for(answers), stderr)
        self.assertTrue(self.wait_for(lambda: "warning" in written()))
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        log = written()
        self.assertEqual(code, 0, log)
        self.assertIn("ms serve: warning: its ready line could not be written", log)
        self.assertNotIn("error", log)

    def test_host_takes_the_bracketed_ipv6_form(self):
        # `--host ::1` printed http://[::1]:PORT, but `--host '[::1]'` was "not an address".
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("no ::1 on this machine")
        s = Served(os.path.join(TINY, "cls"), "--host", "[::1]", log_dir=self.tmp).start()
        self.addCleanup(s.stop)
        self.assertTrue(s.ready["endpoint"].startswith("http://[::1]:"), s.ready)
        with socket.create_connection(("::1", s.port), timeout=30) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertEqual(read_responses(conn)[0][0], 200)

    def test_sighup_stays_ignored_under_nohup(self):
        s = self.serve(os.path.join(TINY, "cls"), ignore_hangup=True)
        # Pending signals arrive lowest number first, so a SIGHUP the server kept would be the
        # one that stops it, whichever of the two it takes first.
        s.proc.send_signal(signal.SIGHUP)
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.proc.wait(30), 0, s.log())
        self.assertIn(f"ms serve: {signal.strsignal(signal.SIGTERM)}: stopping", s.log())
        self.assertNotIn(signal.strsignal(signal.SIGHUP), s.log())

    def test_tls(self):
        cert, key = self.path("cert.pem"), self.path("key.pem")
        made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                               "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                               "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True)
        if made.returncode != 0:
            self.skipTest("no openssl command to make a certificate")
        s = self.serve(os.path.join(TINY, "cls"), "--tls-cert", cert, "--tls-key", key)
        self.assertTrue(s.ready["endpoint"].startswith("https://127.0.0.1:"), s.ready)
        s.tls = ssl.create_default_context(cafile=cert)
        status, _, got = s.call({"input": "over tls"})
        self.assertEqual(status, 200, got)
        self.assertEqual(len(got["labels"]), 3)

        # TLS connections get the plain front's limits: a cap per client address (one client
        # held 4096 threads) and a drain that ends connections nobody completes (a silent TCP
        # connection or a trickled request held SIGTERM for good).
        s = self.serve(os.path.join(TINY, "cls"), "--tls-cert", cert, "--tls-key", key,
                       "--max-client-connections", "2")
        context = ssl.create_default_context(cafile=cert)

        def tls_connection():
            c = context.wrap_socket(s.connect(timeout=60), server_hostname="127.0.0.1")
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b" 200 ", c.recv(100))  # admitted and served
            return c

        held = [tls_connection(), tls_connection()]
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            tls_connection()
        for c in held:
            c.close()
        # A stop waits for the trickled request's headers until --header-timeout (3 s here).
        s = self.serve(os.path.join(TINY, "cls"), "--tls-cert", cert, "--tls-key", key,
                       "--header-timeout", "3")
        silent = s.connect(timeout=60)
        trickling = tls_connection()
        trickling.sendall(b"GET /health HTTP/1.1\r\nX-a: b\r\n")
        s.proc.send_signal(signal.SIGTERM)
        try:
            code = s.proc.wait(120)  # a bound for a hang: it exits at once
        except subprocess.TimeoutExpired:
            code = "still running 120 s after SIGTERM"
        self.assertEqual(code, 0)
        silent.close()
        trickling.close()

    def test_startup_errors(self):
        r = run_ms("serve", "-m", self.path("missing"), "--port", "0")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "missing")
        # Bounded, rather than aborting when the threads cannot start; empty values are refused
        # (an empty --token would serve without authentication).
        for args, fragment in ((("--workers", "100000"), "--workers"),
                               (("--threads", "100000"), "--threads"),
                               (("--host", ""), "--host"), (("--token", ""), "--token"),
                               (("--token", " "), "--token"), (("--token", "s3cret\r"), "--token"),
                               (("--token", " s3cret"), "--token"),
                               # A lone request would wait out its whole deadline: every one 504.
                               (("--max-wait-ms", "3000", "--request-timeout", "3"),
                                "--max-wait-ms 3000 is not below --request-timeout")):
            r = run_ms("serve", "-m", os.path.join(TINY, "cls"), "--port", "0", *args)
            self.assertExit(r, 2, str(args))
            self.assertOneLineError(r, fragment)
        r = run_ms("serve", "-m", os.path.join(TINY, "cls"), "--port", "0", "--max-batch", "0")
        self.assertExit(r, 2)
        r = run_ms("serve", "-m", os.path.join(TINY, "cls"), "--port", "0", "--tls-cert", self.path("none.pem"),
                   "--tls-key", self.path("none.key"))
        self.assertExit(r, 4)
        self.assertOneLineError(r, "none.pem")
        # A folder is a wrong argument, not a missing file.
        folder = self.path("certs")
        os.makedirs(folder)
        key = self.write("key.pem", "")
        r = run_ms("serve", "-m", os.path.join(TINY, "cls"), "--port", "0", "--tls-cert", folder,
                   "--tls-key", key)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--tls-cert", "is a folder, not a file")
        s = self.serve(os.path.join(TINY, "cls"))
        r = run_ms("serve", "-m", os.path.join(TINY, "cls"), "--port", str(s.port))
        self.assertExit(r, 74)
        self.assertOneLineError(r, "cannot listen", "the port is in use")
        # Why, where it can be found: a host that does not resolve is a usage error; one that is
        # no address of this machine is the environment's (TEST-NET-3, never a local address).
        r = run_ms("serve", "-m", os.path.join(TINY, "cls"), "--port", "0", "--host", "999.1.1.1")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "--host 999.1.1.1 is not an address")
        r = run_ms("serve", "-m", os.path.join(TINY, "cls"), "--port", "0", "--host", "203.0.113.7")
        self.assertExit(r, 74)
        self.assertOneLineError(r, "not an address of this machine")


    def test_json_stopped_before_ready_prints_the_interrupted_document(self):
        # A hub that takes the model's request and never answers: the server is loading (not
        # ready) when the signal comes, for as long as the test needs.
        with socket.socket() as hub:
            hub.bind(("127.0.0.1", 0))
            hub.listen(4)
            hub.settimeout(120)  # a bound for a run that never asks, not a timing assertion
            env = dict(os.environ, MODELSCOPE_ENDPOINT=f"http://127.0.0.1:{hub.getsockname()[1]}",
                       MODELSCOPE_CACHE=self.path("cache"))
            env.pop("MODELSCOPE_OFFLINE", None)
            proc = subprocess.Popen([MS_BIN, "serve", "-m", "owner/model", "--port", "0", "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=env, preexec_fn=lambda: signal.signal(signal.SIGTERM,
                                                                              signal.SIG_DFL))
            conn, _ = hub.accept()  # the download began
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
            conn.close()
        self.assertEqual(proc.returncode, 128 + signal.SIGTERM, err)
        doc = json.loads(out)  # one document (stdout was empty)
        self.assertEqual(doc["error"]["code"], "interrupted")
        self.assertEqual(doc["error"]["exit_code"], 128 + signal.SIGTERM)
        self.assertIn("before it was ready", err)


class HttpFramingTest(ServeTestCase):
    """How a request's body is delimited, and how long a client may take to send it."""

    def test_a_post_without_content_length_has_an_empty_body(self):
        # HTTP/1.1: no Content-Length and no chunked encoding is no body, answered at once (it
        # used to wait for the client to close, up to the 60 s read timeout). The write side
        # stays open, so without the fix this read would wait for the server's timeout.
        s = self.serve(os.path.join(TINY, "cls"))
        with s.connect() as conn:
            conn.sendall(b"POST /call HTTP/1.1\r\nHost: x\r\n\r\n")
            (status, _, got), = read_responses(conn, first_only=True)
        self.assertEqual((status, got["Data"]["field"]), (400, "body"), got)
        self.assertIn("empty request body", got["Message"])

    def test_bad_framing_is_400_and_closes_the_connection(self):
        s = self.serve(os.path.join(TINY, "cls"))
        body = b'{"input":"hello"}'
        request = b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        for headers, message in (
                # The body is itself a request: it must not run as a second one.
                (b"Content-Length: abc\r\n", "bad Content-Length"),
                (b"Content-Length: -5\r\n", "bad Content-Length"),
                (b"Content-Length: 17\r\nContent-Length: 5\r\n", "bad Content-Length"),
                (b"Content-Length: 17, 5\r\n", "bad Content-Length"),
                (b"Transfer-Encoding: gzip\r\n", "Transfer-Encoding"),
                (b"Transfer-Encoding: chunked\r\nContent-Length: 17\r\n", "Transfer-Encoding"),
                # An empty length was read as 0, the body then run as a next request.
                (b"Content-Length: \r\n", "bad Content-Length"),
                (b"Content-Length:\r\nContent-Length: 17\r\n", "bad Content-Length")):
            got = s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + request)
            self.assertEqual([(st, b["Code"]) for st, _, b in got], [(400, 400)], (headers, got))
            self.assertIn(message, got[0][2]["Message"], headers)
            self.assertIn(("Connection", "close"), got[0][1])
        # Identical lengths are one length.
        got = s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Content-Length: 17\r\nContent-Length: 17\r\n\r\n" + body)
        self.assertEqual([st for st, _, _ in got], [200], got)
        self.assertEqual(s.call({"input": "still serving"})[0], 200)

    def test_chunked_bodies_are_read_strictly(self):
        # httplib 0.11's own chunked decoder ended a body at a chunk whose data ran past its size
        # (the rest then ran as a next request: a smuggled one), read "-5" as 2^64 - 5 bytes (the
        # connection then waited for the read timeout), refused trailer fields and counted no
        # chunk against --max-body-mb.
        s = self.serve(os.path.join(TINY, "cls"), "--max-body-mb", "1")
        want = s.call({"input": "hello"})[2]
        body = b'{"input":"hello"}'
        head = b"POST /call HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        well_formed = (head + b"3;part=1\r\n" + body[:3] + b"\r\n" + b"%X \t;x=\"a;b\"\r\n" % (len(body) - 3) +
                       body[3:] + b"\r\n0\r\nDigest: sha-256=:abc:\r\nX-Note: ok\r\n\r\n")
        # Two on one connection, sent together: where the first body ends is found exactly.
        got = s.raw(well_formed + well_formed.replace(b"Host: x", b"Host: x\r\nConnection: close"))
        self.assertEqual([st for st, _, _ in got], [200, 200], got)
        self.assertEqual([b["labels"] for _, _, b in got], [want["labels"]] * 2)
        smuggled = b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        for chunks, message in (
                # Data longer than its chunk size, a smuggled request inside.
                (b"5\r\n" + body + smuggled + b"\r\n0\r\n\r\n", "longer than its size"),
                (b"-5\r\n" + body + b"\r\n0\r\n\r\n", "not a hexadecimal number"),
                (b"5\nhello\r\n0\r\n\r\n", "does not end in CRLF"),
                (b"0\r\nno colon\r\n\r\n", "not a field")):
            # The write side stays open: a server waiting for more would wait for its timeout.
            with s.connect() as conn:
                conn.sendall(head + chunks)
                got = read_responses(conn)
            self.assertEqual([(st, b["Code"]) for st, _, b in got], [(400, 400)], (chunks, got))
            self.assertIn("chunked request body: ", got[0][2]["Message"])
            self.assertIn(message, got[0][2]["Message"])
            self.assertIn(("Connection", "close"), got[0][1])
        # A chunk announcing more than --max-body-mb is 413 before its data is sent.
        with s.connect() as conn:
            conn.sendall(head + b"%x\r\n" % (2 << 20))
            got = read_responses(conn)
        self.assertEqual([(st, b["Code"]) for st, _, b in got], [(413, 413)], got)
        self.assertIn("--max-body-mb", got[0][2]["Message"])
        self.assertEqual(s.call({"input": "still serving"})[0], 200)

    def test_expect_100_continue_hears_a_refusal_before_the_body(self):
        # httplib answered "100 Continue" before the token and the size were checked, so a client
        # (curl asks for bodies over 1 MB) sent its whole body only to be refused.
        s = self.serve(os.path.join(TINY, "cls"), "--token", "s3cret", "--max-body-mb", "1")
        body = b'{"input":"hello"}'

        def ask(length, token=None):
            conn = s.connect()
            conn.sendall(b"POST /call HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n" +
                         (b"Authorization: Bearer %s\r\n" % token if token else b"") +
                         b"Content-Length: %d\r\n\r\n" % length)
            return conn, read_responses(conn, first_only=True)[0]

        for length, token, status, message in ((len(body), None, 401, "Authorization: Bearer"),
                                               (len(body), b"wrong", 401, "Authorization: Bearer"),
                                               (2 << 20, b"s3cret", 413, "--max-body-mb")):
            conn, (got_status, headers, got) = ask(length, token)
            with conn:
                self.assertEqual(got_status, status, (token, got))
                self.assertEqual(got["Code"], status, got)
                self.assertIn(message, got["Message"])
                self.assertIn(("Connection", "close"), headers)
        # One request, one id: the final answer gave a second X-Request-Id beside the one given
        # when the expectation was checked. The interim 100 carries none.
        for sent, status in ((body, 200), (b'{"input":42}', 400)):
            conn, (got_status, interim_headers, _) = ask(len(sent), b"s3cret")
            with conn:
                self.assertEqual(got_status, 100)
                conn.sendall(sent)
                (got_status, headers, got), = read_responses(conn, first_only=True)
            self.assertEqual(got_status, status, got)
            self.assertNotIn("x-request-id", [name.lower() for name, _ in interim_headers])
            ids = [value for name, value in headers if name.lower() == "x-request-id"]
            self.assertEqual(len(ids), 1, headers)
            if status == 200:
                self.assertIn("labels", got)
            else:
                self.assertEqual(got["RequestId"], ids[0], got)

    def test_a_body_left_unread_closes_the_connection(self):
        # A request answered without reading its body (a 401, a GET with a body) kept its
        # connection, and the body's bytes then ran as the next request: a request smuggled inside
        # a body the server refused.
        s = self.serve(os.path.join(TINY, "cls"), "--token", "s3cret", "--max-body-mb", "1")
        inner = b'{"input":"hello"}'
        smuggled = (b"POST /call HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(inner) + inner)
        for head in (b"POST /call HTTP/1.1\r\nHost: x\r\n",
                     b"POST /call HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n",
                     b"GET /health HTTP/1.1\r\nHost: x\r\n"):
            with s.connect() as conn:
                conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(smuggled) + smuggled)
                got = read_responses(conn)
            self.assertEqual(len(got), 1, (head, got))
            self.assertIn(("Connection", "close"), got[0][1], head)
        # "Expect: 100-Continue" in another case is the same expectation (RFC 9110).
        with s.connect() as conn:
            conn.sendall(b"POST /call HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n"
                         b"Content-Length: 2000\r\n\r\n")
            (status, headers, _), = read_responses(conn, first_only=True)
        self.assertEqual(status, 401)
        self.assertIn(("Connection", "close"), headers)
        # HTTP/1.0 has no transfer codings, and its clients get no 100 (RFC 9110 section 10.1.1).
        got = s.raw(b"POST /call HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(inner) + inner + b"\r\n0\r\n\r\n")
        self.assertEqual([st for st, _, _ in got], [400], got)
        self.assertIn("HTTP/1.0", got[0][2]["Message"])
        got = s.raw(b"POST /call HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                    b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(inner) + inner)
        self.assertEqual([st for st, _, _ in got], [200], got)

    def test_an_upload_past_the_limit_hears_its_413(self):
        # The server stopped reading 1 MiB after its answer and closed: the client, still
        # sending, got a reset instead of the 413.
        s = self.serve(os.path.join(TINY, "cls"), "--max-body-mb", "1")
        chunk = b"x" * 65536
        with s.connect() as conn:
            conn.sendall(b"POST /call HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(256):  # 16 MiB
                conn.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
            got = read_responses(conn)
        self.assertEqual([(st, b["Code"]) for st, _, b in got], [(413, 413)], got)
        self.assertIn("--max-body-mb", got[0][2]["Message"])

    def test_header_lines_past_64_kib_are_431(self):
        # httplib kept every header line: a million short ones held over 100 MB per connection.
        s = self.serve(os.path.join(TINY, "cls"))
        body = b'{"input":"hello"}'
        def post(header_lines):
            return s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header_lines +
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
        line = b"X-Padding: 0123456789\r\n"  # 23 bytes
        got = post(line * (60 * 1024 // len(line)))
        self.assertEqual([st for st, _, _ in got], [200], got)
        got = post(line * (70 * 1024 // len(line)))
        self.assertEqual([(st, b["Code"]) for st, _, b in got], [(431, 431)], got)
        self.assertIn("64 KiB", got[0][2]["Message"])
        self.assertIn(("Connection", "close"), got[0][1])
        self.assertEqual(s.call({"input": "still serving"})[0], 200)

    def test_content_encodings(self):
        s = self.serve(os.path.join(TINY, "cls"), "--max-body-mb", "1")
        want = s.call({"input": "hello"})[2]
        body = json.dumps({"input": "hello"}).encode()
        # Coding names in any case (RFC 9110 section 8.4.1).
        for coding in ("gzip", "GZIP", " Gzip"):
            status, _, got = s.call(gzip.compress(body), headers={"Content-Encoding": coding})
            self.assertEqual(status, 200, (coding, got))
            self.assertEqual(got["labels"], want["labels"])
        status, _, got = s.call(body, headers={"Content-Encoding": "compress"})
        self.assertEqual((status, got["Data"]["field"]), (415, "body"), got)
        self.assertIn("Content-Encoding compress", got["Message"])
        status, _, got = s.call(body, headers={"Content-Encoding": "gzip"})
        self.assertEqual((status, got["Data"]["field"]), (400, "body"), got)
        self.assertIn("not valid gzip", got["Message"])
        # br: {"input":"hello"} by brotli's encoder (quality 11); Python has no brotli module.
        brotli_body = bytes.fromhex("1b1000f8a54574f6faa624936c523424d358420e")
        status, _, got = s.call(brotli_body, headers={"Content-Encoding": "br"})
        self.assertEqual(status, 200, got)
        self.assertEqual(got["labels"], want["labels"])
        # A stream cut short is refused as a corrupt one is: httplib's decoders stopped at the last
        # byte given without asking whether the stream had ended, so a gzip body without the
        # 8 bytes of its trailer (CRC-32 and length) and one byte more, and a zlib stream without
        # its Adler-32, decoded to the whole JSON and were answered 200.
        gzipped, zlibbed = gzip.compress(body, mtime=0), zlib.compress(body)
        for coding, coded in (("gzip", gzipped[:-9]), ("gzip", gzipped[:-4]), ("gzip", gzipped[:-1]),
                              ("deflate", zlibbed[:-4]), ("deflate", zlibbed[:-1]),
                              ("br", brotli_body[:-1]),
                              # Bytes after the end of the stream.
                              ("gzip", gzipped + b"xx"), ("deflate", zlibbed + b"x")):
            status, _, got = s.call(coded, headers={"Content-Encoding": coding})
            self.assertEqual(status, 400, (coding, coded, got))
            self.assertEqual(got["Data"]["field"], "body", got)
            self.assertIn(f"not valid {coding} data, or was cut short", got["Message"])
        status, _, got = s.call(zlibbed, headers={"Content-Encoding": "deflate"})
        self.assertEqual(status, 200, got)
        # Chunked: the stream must end with the body's last chunk too.
        for coded, want_status in ((gzipped, 200), (gzipped[:-9], 400)):
            got = s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Encoding: gzip\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(coded) + coded + b"\r\n0\r\n\r\n")
            self.assertEqual([st for st, _, _ in got], [want_status], got)
        self.assertIn("not valid gzip data, or was cut short", got[0][2]["Message"])
        # Repeated Content-Encoding lines are one list (RFC 9110 section 5.3), refused as the same
        # list on one line is: httplib read the first line alone, so "gzip" then "br" was decoded
        # as gzip (200), and a body coded twice under two "gzip" lines was decoded once (400 for
        # its JSON).
        twice = gzip.compress(gzipped, mtime=0)
        for lines, coded in ((b"Content-Encoding: gzip\r\nContent-Encoding: br\r\n", gzipped),
                             (b"Content-Encoding: gzip, br\r\n", gzipped),
                             (b"Content-Encoding: gzip\r\nContent-Encoding: GZIP\r\n", twice),
                             (b"Content-Encoding: gzip, gzip\r\n", twice)):
            got = s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + lines +
                        b"Content-Length: %d\r\n\r\n" % len(coded) + coded)
            self.assertEqual([(st, b["Data"]["field"]) for st, _, b in got], [(415, "body")], (lines, got))
            self.assertIn("Content-Encoding gzip, " + ("br" if coded is gzipped else "gzip") + " is not supported",
                          got[0][2]["Message"])
        # Each error response says "Connection: close" once. A declared body over the limit is
        # refused without waiting for it: the socket's 30 s bound is for a wait, the server
        # answered only when its 60 s read timeout for the body ran out.
        got = s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (2 << 20),
                    timeout=30)
        self.assertEqual(got[0][0], 413, got)
        self.assertEqual([h for h in got[0][1] if h[0].lower() == "connection"], [("Connection", "close")])

    def test_a_trickled_body_gets_408_within_the_request_timeout(self):
        # The body has --request-timeout in all, like the headers' 30 s: a client sending a byte
        # now and then cannot hold its connection (and its address's connection slots) forever.
        # Without the deadline this body (half sent, then nothing) waited for the 60 s read
        # timeout and got 400 "cut short".
        s = self.serve(os.path.join(TINY, "cls"), "--request-timeout", "1")
        with s.connect() as conn:
            conn.sendall(b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                         b'{"input": "')
            (status, headers, got), = read_responses(conn, first_only=True)
        self.assertEqual((status, got["Data"]["field"]), (408, "body"), got)
        self.assertIn("--request-timeout 1 s", got["Message"])
        self.assertIn(("Connection", "close"), headers)

    def test_headers_past_the_header_timeout_get_408(self):
        # A client too slow with its request line or headers was answered 400 "malformed
        # request" (its headers), or not at all (its request line).
        s = self.serve(os.path.join(TINY, "cls"), "--header-timeout", "1")
        for start in (b"GET /health HTTP/1.1\r\nHost: x\r\n", b"GET /hea"):
            with s.connect() as conn:
                conn.sendall(start)
                got = read_responses(conn, first_only=True)
            self.assertEqual([(st, b["Code"]) for st, _, b in got], [(408, 408)], (start, got))
            self.assertIn("did not arrive within --header-timeout 1 s", got[0][2]["Message"])
            self.assertIn(("Connection", "close"), got[0][1])
        self.assertEqual(s.request("GET", "/health")[0], 200)

    def test_http_1_0_answers_say_whether_the_connection_closes(self):
        # HTTP/1.0 closes after each answer unless the request asks for Keep-Alive: the answer
        # said "Keep-Alive: timeout=5, max=10000", with no Connection header, and the connection
        # closed.
        s = self.serve(os.path.join(TINY, "cls"))
        got = s.raw(b"GET /health HTTP/1.0\r\n\r\nGET /health HTTP/1.0\r\n\r\n")
        self.assertEqual([st for st, _, _ in got], [200], got)  # closed after the first
        self.assertIn(("Connection", "close"), got[0][1])
        self.assertNotIn("keep-alive", [name.lower() for name, _ in got[0][1]])
        # Kept alive when asked: the next request on the connection is answered, and it says
        # "close" in its turn.
        got = s.raw(b"GET /health HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
                    b"POST /call HTTP/1.0\r\nContent-Length: 17\r\n\r\n{\"input\":\"hello\"}")
        self.assertEqual([st for st, _, _ in got], [200, 200], got)
        # (An HTTP/1.0 client keeps it only on "Connection: keep-alive".)
        self.assertIn(("Connection", "keep-alive"), got[0][1])
        self.assertIn(("Connection", "close"), got[1][1])
        self.assertIn("labels", got[1][2])

    def test_nul_cr_or_lf_in_a_header_field_is_400_and_closes(self):
        # httplib read a value up to its first NUL: "Content-Length: 0<NUL>88" was a body of 0
        # bytes, and the 88 after the headers ran as a second request (a smuggled one); "17<NUL>abc"
        # was 17, "chunked<NUL>" chunked. A lone CR stayed in the value, and a line ended by a bare
        # LF was dropped while the next was read.
        s = self.serve(os.path.join(TINY, "cls"))
        body = b'{"input":"hello"}'
        smuggled = b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        for headers, rest in (
                (b"Content-Length: 0\x00%d\r\n" % len(smuggled), smuggled),
                (b"Content-Length: 17\x00abc\r\n", body),
                (b"Transfer-Encoding: chunked\x00\r\n", b"11\r\n" + body + b"\r\n0\r\n\r\n"),
                (b"X-Note: a\rb\r\nContent-Length: 17\r\n", body),
                (b"X-Note: a\nContent-Length: 17\r\n", body)):
            got = s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + rest)
            self.assertEqual([(st, b["Code"]) for st, _, b in got], [(400, 400)], (headers, got))
            self.assertIn("NUL, or a CR or LF", got[0][2]["Message"], headers)
            self.assertIn(("Connection", "close"), got[0][1])
        self.assertEqual(s.call({"input": "still serving"})[0], 200)
        # httplib percent-decodes every value: a %0A in a cookie is no line break on the wire
        # (the first version of this check refused it as one).
        got = s.raw(b"GET /health HTTP/1.1\r\nHost: x\r\nCookie: a=line1%0Aline2\r\n"
                    b"Connection: close\r\n\r\n")
        self.assertEqual([st for st, _, _ in got], [200], got)

    def test_connection_options_are_case_insensitive_tokens_of_a_list(self):
        # "Connection: Close" (or a list holding close) kept the connection open, and an HTTP/1.0
        # "keep-alive" in lower case closed it: httplib matched the whole value as written.
        s = self.serve(os.path.join(TINY, "cls"))
        health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        for value in (b"Close", b"CLOSE", b"keep-alive, close", b"TE, close", b"te,CLOSE "):
            got = s.raw(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: " + value + b"\r\n\r\n" + health)
            self.assertEqual([st for st, _, _ in got], [200], (value, got))  # the second is not read
            self.assertIn(("Connection", "close"), got[0][1], value)
        for value in (b"keep-alive", b"KEEP-ALIVE", b"foo, Keep-Alive"):
            got = s.raw(b"GET /health HTTP/1.0\r\nConnection: " + value + b"\r\n\r\n"
                        b"GET /health HTTP/1.0\r\n\r\n")
            self.assertEqual([st for st, _, _ in got], [200, 200], (value, got))
            self.assertIn(("Connection", "keep-alive"), got[0][1], value)
            self.assertIn(("Connection", "close"), got[1][1], value)
        got = s.raw(b"GET /health HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
                    b"GET /health HTTP/1.0\r\n\r\n")
        self.assertEqual([st for st, _, _ in got], [200], got)

    def test_empty_lines_before_a_request_line_are_ignored(self):
        # RFC 9112 section 2.2: a server should ignore at least one empty line before a request
        # line (a client that ends its body with a CRLF it does not count sends one); it was 400.
        s = self.serve(os.path.join(TINY, "cls"))
        body = b'{"input":"hello"}'
        got = s.raw(b"\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual([st for st, _, _ in got], [200], got)
        got = s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n" + body +
                    b"\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual([st for st, _, _ in got], [200, 200], got)
        self.assertIn("labels", got[0][2])
        # A few, not any number.
        got = s.raw(b"\r\n" * 100 + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual([st for st, _, _ in got], [400], got)

    def test_a_request_line_past_the_limit_is_414_naming_it(self):
        s = self.serve(os.path.join(TINY, "cls"))
        got = s.raw(b"GET /health?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual([(st, b["Code"]) for st, _, b in got], [(414, 414)], got)
        self.assertIn("request line", got[0][2]["Message"])
        self.assertIn("8190 bytes", got[0][2]["Message"])

    def test_a_long_keep_alive_connection_is_never_refused_a_short_request_line(self):
        # Each request's line was counted on from the previous ones': on one keep-alive
        # connection, about the 400th short request heard 414 and the connection closed (a
        # connection pool's client failed one request in a few hundred).
        s = self.serve(os.path.join(TINY, "cls"))
        requests = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 1000
        got = s.raw(requests + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(len(got), 1001)
        self.assertEqual({st for st, _, _ in got}, {200})

    def test_folded_or_colonless_header_lines_and_two_credentials_are_400(self):
        # httplib dropped such lines without a word: a proxy that unfolds reads
        # "Content-Length: 17 99" where ms read 17 (RFC 9112 section 5.2). Two Authorization
        # headers: the first decided, where a proxy adding its own may check the other.
        s = self.serve(os.path.join(TINY, "cls"), "--token", "s3cret")
        body = b'{"input":"hello"}'
        auth = b"Authorization: Bearer s3cret\r\n"
        for headers, fragment in (
                (auth + b"Content-Length: 17\r\n\t99\r\n", "starts with white space"),
                (auth + b"Content-Length: 17\r\n 99\r\n", "starts with white space"),
                (auth + b"JunkWithoutColon\r\nContent-Length: 17\r\n", "without a colon"),
                (b"Authorization: Bearer wrong\r\n" + auth + b"Content-Length: 17\r\n",
                 "more than one Authorization")):
            got = s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body)
            self.assertEqual([(st, b["Code"]) for st, _, b in got], [(400, 400)], (headers, got))
            self.assertIn(fragment, got[0][2]["Message"], headers)
        got = s.raw(b"POST /call HTTP/1.1\r\nHost: x\r\n" + auth +
                    b"Connection: close\r\nContent-Length: 17\r\n\r\n" + body)
        self.assertEqual([st for st, _, _ in got], [200], got)

    def test_a_client_that_closes_mid_body_counts_as_499(self):
        # It was counted as a bad request (400), though no one was there to read the answer.
        s = self.serve(os.path.join(TINY, "cls"))
        with s.connect() as conn:
            conn.sendall(b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"input\":")
        counted = lambda code: s.metric(f'ms_serve_requests_total{{code="{code}"}}')
        self.assertTrue(self.wait_for(lambda: counted(400) or counted(499)), s.log())
        self.assertEqual((counted(499), counted(400)), (1, None), s.log())

    def test_connections_per_address_are_configurable(self):
        s = self.serve(os.path.join(TINY, "cls"), "--max-client-connections", "2")
        held = []
        for _ in range(2):
            conn = s.connect()
            self.addCleanup(conn.close)
            # A request answered proves the connection was admitted; the start of the next one
            # then keeps it open (for the 30 s header deadline).
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b" 200 ", conn.recv(65536))
            conn.sendall(b"GET /health HTTP/1.1\r\n")
            held.append(conn)
        got = s.raw(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(got[0][0], 503, got)
        self.assertIn("too many connections", got[0][2]["Message"])


class ImageServeTest(ServeTestCase):
    def setUp(self):
        super().setUp()
        if not (component_available("png") and component_available("jpeg")):
            self.skipTest("this ms cannot decode PNG and JPEG")
        self.model = os.path.join(VISION, "small-cnn")

    def test_base64_data_url_and_http_url_images(self):
        s = self.serve(self.model)
        want = {o["id"]: {k: v for k, v in o.items() if k != "id"}
                for o in self.infer(self.model, "--input-dir", IMAGES) if "error" not in o}
        for name in ("a.png", "c.jpg"):
            raw = read_bytes(os.path.join(IMAGES, name))
            b64 = base64.b64encode(raw).decode()
            for value in (b64, base64.urlsafe_b64encode(raw).decode().rstrip("="),
                          "data:image/png;base64," + b64):
                status, _, got = s.call({"input": {"image": value}})
                self.assertEqual(status, 200, got)
                self.assertClose(got, want[name])
        # An http URL, read by the server from a local web server.
        handler = functools.partial(QuietFiles, directory=IMAGES)
        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        self.addCleanup(web.server_close)
        self.addCleanup(web.shutdown)
        url = f"http://127.0.0.1:{web.server_address[1]}"
        status, _, got = s.call({"input": url + "/c.jpg"})
        self.assertEqual(status, 200, got)
        self.assertClose(got, want["c.jpg"])
        status, _, got = s.call({"input": {"image": url + "/missing.png"}})
        self.assertEqual((status, got["Data"]["field"]), (400, "input.image"), got)

    def test_torchscript_image_model(self):
        model = os.path.join(VISION, "torchscript")
        want = {o["id"]: {k: v for k, v in o.items() if k != "id"}
                for o in self.infer(model, "--input-dir", IMAGES) if "error" not in o}
        s = self.serve(model)
        raw = read_bytes(os.path.join(IMAGES, "a.png"))
        status, _, got = s.call({"input": [base64.b64encode(raw).decode()]})
        self.assertEqual(status, 200, got)
        self.assertClose(got, [want["a.png"]])

    def test_a_broken_image_fails_alone_inside_a_batch(self):
        self.require_test_hooks()
        s = self.serve(self.model, "--test-routes", "--workers", "1")
        good = base64.b64encode(read_bytes(os.path.join(IMAGES, "a.png"))).decode()
        broken = base64.b64encode(read_bytes(os.path.join(IMAGES, "broken.png"))).decode()
        want = s.call({"input": good})[2]
        s.request("POST", "/_test/hold")
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            results = [pool.submit(s.call, {"input": {"image": v}}) for v in (good, broken, good)]
            self.wait_queue(s, 3)
            s.request("POST", "/_test/release")
            (s1, _, g1), (s2, _, g2), (s3, _, g3) = (f.result() for f in results)
        self.assertEqual((s1, s3), (200, 200))
        self.assertClose(g1, want)
        self.assertClose(g3, want)
        self.assertEqual((s2, g2["Data"]["field"]), (400, "input.image"), g2)
        for value in ("/srv/images/cat.png", "file:///etc/passwd", "%%%"):
            status, _, got = s.call({"input": value})
            self.assertEqual((status, got["Data"]["field"]), (400, "input"), got)


if __name__ == "__main__":
    unittest.main()

"""`ms infer` weight formats and sentence-transformers modules:
- sharded checkpoints (model.safetensors.index.json, pytorch_model.bin.index.json) give the same
  outputs as the single file, and bad indexes (corrupt JSON, missing shard, path traversal,
  tensor absent from its shard) fail with one clear line;
- legacy (pre-1.6, non-zip) pytorch_model.bin files give the same outputs as safetensors, and
  truncated ones fail cleanly;
- sentence-transformers Pooling (every mode, concatenated), Dense and Normalize modules within
  1e-4 of sentence-transformers (tests/data/infer/tiny/st_*, written by scripts/make_tiny_st.py).
Shards are cut from tests/data/infer/tiny/cls with the standard library; .bin files are written
by a Python with torch (/usr/bin/python3 from python3-torch, which scripts/setup.sh installs).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import unittest

from harness import MS_BIN, SOURCE_DIR, TorchTestCase, run_ms, torch_python

TINY = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny")
TOL = 1e-4
DEVICE = os.environ.get("MS_INFER_DEVICE", "cpu")
TEXTS = ["the cat sat on the mat.", "john lives in london and paris!", "北京是中国的首都"]


# Run by torch_python(): reads a safetensors file (standard library + torch, no safetensors
# package) and writes its tensors with torch.save, in the zip or the legacy format, split into
# shards with an index when asked.
TO_BIN = r"""
import json, struct, sys, torch
src, out, legacy, shards = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
data = open(src, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
sd = {}
for name, spec in sorted(header.items()):
    if name == "__metadata__":
        continue
    assert spec["dtype"] == "F32", spec
    a, b = spec["data_offsets"]
    sd[name] = torch.frombuffer(bytearray(data[8 + n + a:8 + n + b]), dtype=torch.float32).reshape(spec["shape"]).clone()
if shards == 1:
    torch.save(sd, out, _use_new_zipfile_serialization=not legacy)
else:
    names = sorted(sd)
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        shard = "pytorch_model-%05d-of-%05d.bin" % (i + 1, shards)
        # Odd shards legacy, even ones zip: both readers behind one index.
        torch.save({k: sd[k] for k in part}, out + "/" + shard, _use_new_zipfile_serialization=(i % 2 == 1))
        weight_map.update({k: shard for k in part})
    json.dump({"metadata": {}, "weight_map": weight_map}, open(out + "/pytorch_model.bin.index.json", "w"))
"""


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    return {name: (spec, body[spec["data_offsets"][0]:spec["data_offsets"][1]])
            for name, spec in header.items()}


def write_safetensors(path, tensors):
    header, body = {"__metadata__": {"format": "pt"}}, b""
    for name, (spec, raw) in sorted(tensors.items()):
        header[name] = {"dtype": spec["dtype"], "shape": spec["shape"],
                        "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + body)


# A legacy torch.save file written with the standard library alone: stand-in torch.FloatStorage
# and torch._utils._rebuild_tensor_v2 globals, a persistent id per storage, then the raw data.
# Every tensor views a slice (storage view metadata, as PyTorch before 1.0 wrote) of one root
# storage, starting `pad` elements in.
def write_legacy_views(path, tensors, pad=3):
    import collections
    import pickle
    import types
    torch_mod = sys.modules.setdefault("torch", types.ModuleType("torch"))
    utils_mod = sys.modules.setdefault("torch._utils", types.ModuleType("torch._utils"))
    storage_cls = type("FloatStorage", (), {"__module__": "torch"})
    torch_mod.FloatStorage = storage_cls

    def _rebuild_tensor_v2(*args):
        return args
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2

    class Ref:
        def __init__(self, pid):
            self.pid = pid

    class Tensor:
        def __init__(self, ref, shape):
            self.ref, self.shape = ref, shape

        def __reduce__(self):
            strides, acc = [], 1
            for n in reversed(self.shape):
                strides.insert(0, acc)
                acc *= n
            return (_rebuild_tensor_v2, (self.ref, 0, tuple(self.shape), tuple(strides), False,
                                         collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return obj.pid if isinstance(obj, Ref) else None

    data, state = b"\0" * (4 * pad), {}
    for name, (spec, raw) in sorted(tensors.items()):
        assert spec["dtype"] == "F32"
        view = (f"v{len(state)}", len(data) // 4, len(raw) // 4)
        state[name] = Tensor(Ref(("storage", storage_cls, "0", "cpu", 0, view)), spec["shape"])
        data += raw
    numel = len(data) // 4
    for t in state.values():
        t.ref.pid = t.ref.pid[:4] + (numel,) + t.ref.pid[5:]
    with open(path, "wb") as f:
        pickle.dump(0x1950a86a20f9469cfc6c, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True}, f, protocol=2)
        Pickler(f, protocol=2).dump(state)
        pickle.dump(["0"], f, protocol=2)
        f.write(struct.pack("<q", numel) + data)


def lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


class FormatsTest(TorchTestCase):
    def copy_model(self, name, dest=None):
        d = self.path(dest or name)
        shutil.copytree(os.path.join(TINY, name), d)
        return d

    def infer(self, model, *args, code=0):
        r = run_ms("infer", "--model", model, "--device", DEVICE, *args)
        self.assertExit(r, code)
        return r

    def test_an_output_file_gets_the_umasks_mode(self):
        # 0666 less the umask, as `> out.jsonl` and ms's other files: it was 0644 under umask 0.
        out = self.path("out.jsonl")
        r = subprocess.run([MS_BIN, "infer", "--model", os.path.join(TINY, "cls"),
                            "--device", DEVICE, "--input", "x", "-o", out],
                           capture_output=True, text=True, preexec_fn=lambda: os.umask(0))
        self.assertExit(r, 0)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o666)

    def reference_lines(self):
        """tiny/cls (text-classification, one model.safetensors) on TEXTS."""
        return self.infer(os.path.join(TINY, "cls"), "--input", *TEXTS).stdout

    def shard_safetensors(self, name="cls", shards=3):
        """A copy of tiny/NAME with its model.safetensors cut into shards plus an index."""
        d = self.copy_model(name, name + "-sharded")
        tensors = read_safetensors(os.path.join(d, "model.safetensors"))
        os.remove(os.path.join(d, "model.safetensors"))
        names = sorted(tensors)
        weight_map = {}
        for i in range(shards):
            shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = names[i::shards]
            write_safetensors(os.path.join(d, shard), {k: tensors[k] for k in part})
            weight_map.update({k: shard for k in part})
        self.write_index(d, weight_map)
        return d, weight_map

    def write_index(self, d, weight_map, name="model.safetensors.index.json"):
        with open(os.path.join(d, name), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)

    def to_bin(self, d, legacy, shards=1):
        """Replaces model.safetensors in D with pytorch_model.bin (or .bin shards + index)."""
        py = torch_python()
        if py is None:
            self.skipTest("no Python with torch to write .bin files (apt install python3-torch)")
        src = os.path.join(d, "model.safetensors")
        out = os.path.join(d, "pytorch_model.bin") if shards == 1 else d
        r = subprocess.run([py, "-c", TO_BIN, src, out, "1" if legacy else "0", str(shards)],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        os.remove(src)

    def test_untied_masked_lm_head_reads_the_decoder_bias(self):
        # transformers 5 saves an untied BertForMaskedLM with the live output bias in
        # cls.predictions.decoder.bias (cls.predictions.bias unused): ms read the unused one.
        bias = struct.pack("<86f", *[((i * 37) % 11 - 5) * 0.3 for i in range(86)])
        tied = self.copy_model("mlm", "tied")
        weights = read_safetensors(os.path.join(tied, "model.safetensors"))
        spec = weights["cls.predictions.bias"][0]
        weights["cls.predictions.bias"] = (spec, bias)
        write_safetensors(os.path.join(tied, "model.safetensors"), weights)
        untied = self.copy_model("mlm", "untied")
        weights = read_safetensors(os.path.join(untied, "model.safetensors"))
        spec_w, raw = weights["bert.embeddings.word_embeddings.weight"]
        values = struct.unpack(f"<{len(raw) // 4}f", raw)
        # Its own decoder: the embeddings off in the last bits (the same scores within 1e-4).
        weights["cls.predictions.decoder.weight"] = (spec_w, struct.pack(
            f"<{len(values)}f", *[v * 1.000001 for v in values]))
        weights["cls.predictions.decoder.bias"] = (spec, bias)
        write_safetensors(os.path.join(untied, "model.safetensors"), weights)
        texts = ["the cat sat on the [MASK].", "john [MASK] in london"]
        want = [json.loads(l) for l in self.infer(tied, "--input", *texts).stdout.splitlines()]
        got = [json.loads(l) for l in self.infer(untied, "--input", *texts).stdout.splitlines()]
        for w, g in zip(want, got):
            for wp, gp in zip(w["predictions"][0], g["predictions"][0]):
                self.assertEqual(wp["token"], gp["token"])
                self.assertLess(abs(wp["score"] - gp["score"]), 1e-4)
        # The export writes the live bias under both names, for transformers 4 and 5.
        r = run_ms("export", "--model", untied, "--format", "safetensors", "--output",
                   self.path("repo"))
        self.assertExit(r, 0)
        exported = read_safetensors(self.path("repo", "model.safetensors"))
        self.assertEqual(exported["cls.predictions.bias"][1], bias)
        self.assertEqual(exported["cls.predictions.decoder.bias"][1], bias)

    # --- sharded checkpoints -------------------------------------------------------------------

    def test_sharded_safetensors_match_the_single_file(self):
        d, _ = self.shard_safetensors()
        self.assertEqual(self.infer(d, "--input", *TEXTS).stdout, self.reference_lines())

    def test_sharded_pytorch_bin_matches_safetensors(self):
        d = self.copy_model("cls", "bin-sharded")
        self.to_bin(d, legacy=False, shards=2)
        self.assertTrue(os.path.exists(os.path.join(d, "pytorch_model-00002-of-00002.bin")))
        self.assertEqual(self.infer(d, "--input", *TEXTS).stdout, self.reference_lines())

    def test_corrupt_index(self):
        d, _ = self.shard_safetensors()
        index = os.path.join(d, "model.safetensors.index.json")
        for text in ('{"weight_map": {"a": ', '[1, 2]', '{"metadata": {}}', '{"weight_map": {"a": 3}}'):
            with self.subTest(index=text):
                with open(index, "w") as f:
                    f.write(text)
                r = self.infer(d, "--input", "x", code=7)
                self.assertOneLineError(r, "model.safetensors.index.json")

    def test_missing_shard(self):
        d, _ = self.shard_safetensors()
        os.remove(os.path.join(d, "model-00002-of-00003.safetensors"))
        r = self.infer(d, "--input", "x", code=4)
        self.assertOneLineError(r, "model-00002-of-00003.safetensors", "model.safetensors.index.json")

    def test_shard_names_cannot_leave_the_folder(self):
        d, weight_map = self.shard_safetensors()
        first = sorted(weight_map)[0]
        # A real file outside the folder, so only the name check can stop the read.
        shutil.copy(os.path.join(d, weight_map[first]), self.path("outside.safetensors"))
        for bad in ("../outside.safetensors", self.path("outside.safetensors"), "sub/x.safetensors",
                    "..", "", "a\\..\\outside.safetensors"):
            with self.subTest(shard=bad):
                self.write_index(d, {**weight_map, first: bad})
                r = self.infer(d, "--input", "x", code=7)
                self.assertOneLineError(r, "model.safetensors.index.json", "not a plain file name")

    def test_tensor_missing_from_its_shard(self):
        d, weight_map = self.shard_safetensors()
        name = sorted(weight_map)[0]
        other = next(s for s in sorted(set(weight_map.values())) if s != weight_map[name])
        self.write_index(d, {**weight_map, name: other})
        r = self.infer(d, "--input", "x", code=7)
        self.assertOneLineError(r, "model.safetensors.index.json", name, other)

    def test_corrupt_shard_names_the_shard(self):
        d, _ = self.shard_safetensors()
        with open(os.path.join(d, "model-00003-of-00003.safetensors"), "r+b") as f:
            f.truncate(100)
        r = self.infer(d, "--input", "x", code=7)
        self.assertOneLineError(r, "model-00003-of-00003.safetensors")

    # --- legacy pytorch_model.bin --------------------------------------------------------------

    def test_legacy_storage_views_count_from_the_view(self):
        # Tensors over a slice of a storage start at the slice, not at the storage's first byte.
        d = self.copy_model("cls", "legacy_views")
        tensors = read_safetensors(os.path.join(d, "model.safetensors"))
        os.remove(os.path.join(d, "model.safetensors"))
        write_legacy_views(os.path.join(d, "pytorch_model.bin"), tensors)
        self.assertEqual(self.infer(d, "--input", *TEXTS).stdout, self.reference_lines())

    def test_hostile_weight_files_fail_cleanly(self):
        d = self.copy_model("cls", "hostile")
        st = os.path.join(d, "model.safetensors")
        tensors = read_safetensors(st)
        name = next(n for n, (spec, _) in tensors.items() if len(spec["shape"]) == 2)
        # [2^62, 32] float32 is 2^69 bytes: wrapped to 0, it matched empty data_offsets.
        for shape in ([2 ** 62, 32], [2 ** 32, 2 ** 32], [2 ** 63, 1], [2 ** 64 - 1, 2]):
            with self.subTest(shape=shape):
                spec, _ = tensors[name]
                write_safetensors(st, {**tensors, name: ({**spec, "shape": shape}, b"")})
                r = self.infer(d, "--input", "x", code=7)
                self.assertOneLineError(r, "model.safetensors", name)
        # Two tensors over the same bytes (Python's safetensors refuses the file), and a tensor
        # named twice in the header (which of the two a JSON parser keeps is its own choice).
        write_safetensors(st, tensors)
        with open(st, "rb") as f:
            data = f.read()
        n = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8:8 + n])
        names = ["bert.encoder.layer.0.attention.self.key.weight",
                 "bert.encoder.layer.0.attention.self.query.weight"]  # both [32, 32]
        first, second = header[names[0]], header[names[1]]
        overlapped = dict(header, **{names[1]: dict(second, data_offsets=first["data_offsets"])})
        h = json.dumps(overlapped).encode()
        h += b" " * (-len(h) % 8)
        with open(st, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + data[8 + n:])
        r = self.infer(d, "--input", "x", code=7)
        self.assertOneLineError(r, "model.safetensors", "overlap")
        text = json.dumps(header)
        entry = f'"{names[0]}": {json.dumps(first)}'
        self.assertIn(entry, text)
        h = text.replace(entry, entry + ", " + entry, 1).encode()
        h += b" " * (-len(h) % 8)
        with open(st, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + data[8 + n:])
        r = self.infer(d, "--input", "x", code=7)
        self.assertOneLineError(r, "model.safetensors", names[0], "twice")
        # Bytes that belong to no tensor, past the last (a file grown by truncate, two joined)
        # or between two: Python's safetensors refuses the file ("not fully covered"); ms read
        # it without a word.
        with open(st, "wb") as f:
            f.write(data + b"\0" * 4096)
        r = self.infer(d, "--input", "x", code=7)
        self.assertOneLineError(r, "model.safetensors", "4096 data bytes after the last tensor")
        last = max(header[k]["data_offsets"][1] for k in header if k != "__metadata__")
        gapped = {k: (dict(v, data_offsets=[o + 8 for o in v["data_offsets"]])
                      if k != "__metadata__" else v) for k, v in header.items()}
        h = json.dumps(gapped).encode()
        h += b" " * (-len(h) % 8)
        with open(st, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + b"\0" * 8 + data[8 + n:8 + n + last])
        r = self.infer(d, "--input", "x", code=7)
        self.assertOneLineError(r, "model.safetensors", "data bytes [0, 8) belong to no tensor")
        # A pickle of lists nested a million deep: freeing it recursively overflowed the stack.
        os.remove(st)
        with open(os.path.join(d, "pytorch_model.bin"), "wb") as f:
            f.write(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.")
            f.write(b"\x80\x02M\xe9\x03.\x80\x02}.")
            f.write(b"\x80\x02" + b"]" * 1000000 + b"a" * 999999 + b".")
        r = self.infer(d, "--input", "x", code=7)
        self.assertOneLineError(r, "pytorch_model.bin")

    def test_legacy_bin_matches_safetensors(self):
        d = self.copy_model("cls", "legacy")
        self.to_bin(d, legacy=True)
        with open(os.path.join(d, "pytorch_model.bin"), "rb") as f:
            self.assertNotEqual(f.read(2), b"PK", "the file should be in the legacy format")
        self.assertEqual(self.infer(d, "--input", *TEXTS).stdout, self.reference_lines())

    def test_truncated_legacy_bin(self):
        d = self.copy_model("st_concat")
        path = os.path.join(d, "pytorch_model.bin")
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(data[:4], b"\x80\x02\x8a\x0a")  # the committed fixture is legacy
        # Cuts inside each pickle, the key list and the storages, down to the last byte.
        cuts = sorted({1, 3, 12, 20, 60, 200, 1000, len(data) // 3, len(data) // 2, len(data) - 500,
                       len(data) - 9, len(data) - 1})
        for cut in cuts:
            with self.subTest(cut=cut):
                with open(path, "wb") as f:
                    f.write(data[:cut])
                r = self.infer(d, "--input", "x", code=7)
                self.assertOneLineError(r, "pytorch_model.bin")

    def test_corrupt_legacy_bin(self):
        d = self.copy_model("st_concat")
        path = os.path.join(d, "pytorch_model.bin")
        with open(path, "rb") as f:
            data = f.read()
        # The storage key list (a protocol-2 pickle of digit strings) follows the state dict; the
        # first storage's int64 element count follows the list.
        keys_start = data.find(b"\x80\x02]q\x00(", 100)
        keys_end = data.find(b"e.", keys_start) + 2
        self.assertGreater(keys_start, 0)
        count = struct.unpack("<q", data[keys_end:keys_end + 8])[0]
        first_key = keys_start + 11  # after PROTO 2, EMPTY_LIST, BINPUT 0, MARK, BINUNICODE, length
        variants = {
            "magic": data[:4] + b"\x00" + data[5:],
            "garbage after the header": data[:150] + bytes(range(256)) * 4,
            "element count": data[:keys_end] + struct.pack("<q", count + 1) + data[keys_end + 8:],
            "huge element count": data[:keys_end] + struct.pack("<q", 1 << 62) + data[keys_end + 8:],
            "unknown key": data[:first_key] + b"x" + data[first_key + 1:],
        }
        messages = {"magic": "no torch magic number", "element count": "holds 17 elements",
                    "huge element count": "the state dict says 16", "unknown key": "unknown storage"}
        for name, blob in variants.items():
            with self.subTest(variant=name):
                with open(path, "wb") as f:
                    f.write(blob)
                r = self.infer(d, "--input", "x", code=7)
                self.assertOneLineError(r, "pytorch_model.bin", messages.get(name, ""))

    # --- sentence-transformers modules ---------------------------------------------------------

    def check_st(self, name, *args):
        with open(os.path.join(TINY, name, "expected.json"), encoding="utf-8") as f:
            ref = json.load(f)
        got = lines(self.infer(os.path.join(TINY, name), "--input", *ref["texts"], "-b", "4", *args).stdout)
        self.assertEqual(len(got), len(ref["embeddings"]))
        for want, out in zip(ref["embeddings"], got):
            e = out["text_embedding"]
            self.assertEqual(len(e), len(want))
            self.assertLess(max(abs(a - b) for a, b in zip(e, want)), TOL)
        return got

    def test_st_cls_pooling_dense_tanh_normalize(self):
        got = self.check_st("st_dense")
        for out in got:
            self.assertAlmostEqual(sum(x * x for x in out["text_embedding"]), 1.0, places=4)

    def test_st_all_pooling_modes_two_dense_legacy_bin(self):
        # Six pooling modes concatenated, Dense(identity, safetensors), Normalize, Dense(sigmoid),
        # and the encoder in a legacy pytorch_model.bin.
        self.check_st("st_concat")

    def test_st_overrides(self):
        got = lines(self.infer(os.path.join(TINY, "st_dense"), "--input", "the cat",
                               "--set", "model.normalize=false").stdout)
        self.assertGreater(abs(sum(x * x for x in got[0]["text_embedding"]) - 1.0), 1e-3)
        # A pooling override that changes the width no longer fits the Dense after it.
        r = self.infer(os.path.join(TINY, "st_concat"), "--input", "x", "--set", "model.pooling=cls", code=3)
        self.assertOneLineError(r, os.path.join("2_Dense", "config.json"), "in_features is 96")
        r = self.infer(os.path.join(TINY, "st_dense"), "--input", "x", "--set", "model.pooling=maxx", code=3)
        self.assertOneLineError(r, "unknown pooling mode 'maxx'")
        self.assertIn("max", r.stderr)

    def edit_json(self, path, change):
        with open(path) as f:
            data = json.load(f)
        data = change(data) or data
        with open(path, "w") as f:
            json.dump(data, f)

    def test_unknown_module_type_names_close_matches(self):
        d = self.copy_model("st_dense")
        self.edit_json(os.path.join(d, "modules.json"),
                       lambda m: m[2].update(type="sentence_transformers.models.Dence"))
        r = self.infer(d, "--input", "x", code=3)
        self.assertOneLineError(r, "modules.json", "sentence_transformers.models.Dence")
        self.assertIn("sentence_transformers.models.Dense", r.stderr.split("ms: error:")[1].split("\n", 1)[1])
        self.edit_json(os.path.join(d, "modules.json"),
                       lambda m: m[2].update(type="sentence_transformers.models.LSTM"))
        r = self.infer(d, "--input", "x", code=3)
        self.assertOneLineError(r, "modules.json", "sentence_transformers.models.LSTM")

    def test_sentence_transformers_5_7_layout(self):
        # sentence-transformers 5.7 and later (6.3 is the newest) name the modules by their own
        # module paths and write Pooling's config as embedding_dimension and a pooling_mode list
        # (what its _convert_legacy_pooling_kwargs makes of the old flags): ms refused such a
        # folder as "not supported". The same model must give the same embeddings.
        old = os.path.join(TINY, "st_concat")
        d = self.copy_model("st_concat")
        new_types = {
            "sentence_transformers.models.Transformer": "sentence_transformers.base.modules.transformer.Transformer",
            "sentence_transformers.models.Pooling": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
            "sentence_transformers.models.Dense": "sentence_transformers.base.modules.dense.Dense",
            "sentence_transformers.models.Normalize": "sentence_transformers.base.modules.normalize.Normalize"}
        self.edit_json(os.path.join(d, "modules.json"),
                       lambda m: [x | {"type": new_types[x["type"]]} for x in m])
        flags = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens",
                 "lasttoken")
        modes = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")

        def new_pooling(c):
            return {"embedding_dimension": c["word_embedding_dimension"],
                    "pooling_mode": [m for f, m in zip(flags, modes) if c.get("pooling_mode_" + f)],
                    "include_prompt": True}
        self.edit_json(os.path.join(d, "1_Pooling", "config.json"), new_pooling)
        self.assertEqual(lines(self.infer(d, "--input", *TEXTS).stdout),
                         lines(self.infer(old, "--input", *TEXTS).stdout))
        # A residual Dense (new in 5.7) is refused, not run without its residual.
        self.edit_json(os.path.join(d, "2_Dense", "config.json"), lambda c: c | {"use_residual": True})
        r = self.infer(d, "--input", "x", code=3)
        self.assertOneLineError(r, "use_residual")

    def test_unknown_activation(self):
        d = self.copy_model("st_dense")
        self.edit_json(os.path.join(d, "2_Dense", "config.json"),
                       lambda c: c.update(activation_function="torch.nn.modules.activation.Tahn"))
        r = self.infer(d, "--input", "x", code=3)
        self.assertOneLineError(r, "config.json", "torch.nn.modules.activation.Tahn")
        self.assertIn("torch.nn.modules.activation.Tanh", r.stderr)
        # The short torch.nn spelling of a known activation is accepted.
        self.edit_json(os.path.join(d, "2_Dense", "config.json"),
                       lambda c: c.update(activation_function="torch.nn.Tanh"))
        self.infer(d, "--input", "x")

    def test_dense_errors(self):
        d = self.copy_model("st_dense")
        cfg = os.path.join(d, "2_Dense", "config.json")
        self.edit_json(cfg, lambda c: c.update(out_features=9))
        r = self.infer(d, "--input", "x", code=3)
        self.assertOneLineError(r, "2_Dense", "linear.weight (file 8x16, model 9x16)")
        self.edit_json(cfg, lambda c: c.update(out_features=8, in_features=17))
        r = self.infer(d, "--input", "x", code=3)
        self.assertOneLineError(r, "in_features is 17")
        self.edit_json(cfg, lambda c: c.update(in_features=16))
        os.remove(os.path.join(d, "2_Dense", "pytorch_model.bin"))
        r = self.infer(d, "--input", "x", code=4)
        self.assertOneLineError(r, "no weights", "2_Dense")
        os.remove(cfg)
        r = self.infer(d, "--input", "x", code=4)
        self.assertOneLineError(r, "2_Dense", "config.json")

    def test_module_paths_and_order(self):
        d = self.copy_model("st_dense")
        modules = os.path.join(d, "modules.json")
        self.edit_json(modules, lambda m: m[2].update(path="../st_dense/2_Dense"))
        r = self.infer(d, "--input", "x", code=3)
        self.assertOneLineError(r, "modules.json", "leaves the model folder")
        self.edit_json(modules, lambda m: [m[0], m[2] | {"path": "2_Dense"}, m[1], m[3]])
        r = self.infer(d, "--input", "x", code=3)
        self.assertOneLineError(r, "modules.json", "comes before the Pooling module")
        with open(modules, "w") as f:
            f.write("{broken")
        r = self.infer(d, "--input", "x", code=3)
        self.assertOneLineError(r, "modules.json", "not valid JSON")

    def test_dtype_half_precision_stays_close_to_fp32(self):
        # bf16 runs on the CPU too; on a GPU (MS_INFER_DEVICE) fp16 is checked as well. Outputs
        # are float32 either way, and near the fp32 ones (bf16 keeps ~3 significant digits).
        dtypes = ["bf16"] + (["fp16"] if DEVICE != "cpu" else [])
        for name in ("st_dense", "st_concat"):
            ref = lines(self.infer(os.path.join(TINY, name), "--input", *TEXTS).stdout)
            for dtype in dtypes:
                with self.subTest(model=name, dtype=dtype):
                    out = lines(self.infer(os.path.join(TINY, name), "--input", *TEXTS,
                                           "--dtype", dtype).stdout)
                    for a, b in zip(ref, out):
                        x, y = a["text_embedding"], b["text_embedding"]
                        cos = sum(p * q for p, q in zip(x, y)) / (
                            sum(p * p for p in x) * sum(q * q for q in y)) ** 0.5
                        self.assertGreater(cos, 0.99)
                        self.assertNotEqual(x, y)  # it really computed in another type
        ref = lines(self.reference_lines())
        for dtype in dtypes:
            out = lines(self.infer(os.path.join(TINY, "cls"), "--input", *TEXTS, "--dtype", dtype).stdout)
            for a, b in zip(ref, out):
                got = dict(zip(b["labels"], b["scores"]))
                for label, score in zip(a["labels"], a["scores"]):
                    self.assertAlmostEqual(got[label], score, delta=2e-2)

    def test_dtype_errors(self):
        if DEVICE == "cpu":
            r = self.infer(os.path.join(TINY, "cls"), "--input", "x", "--dtype", "fp16", code=2)
            self.assertOneLineError(r, "--dtype fp16 needs a GPU")
            self.assertIn("--dtype bf16", r.stderr)
        r = self.infer(os.path.join(TINY, "cls"), "--input", "x", "--dtype", "fp8", code=2)
        self.assertIn("fp8", r.stderr)
        # Pipelines that compute in float32 only say so instead of ignoring the option.
        r = self.infer(os.path.join(TINY, "gpt2"), "--input", "x", "--dtype", "bf16", code=2)
        self.assertOneLineError(r, "--dtype bf16", "float32 only")


if __name__ == "__main__":
    unittest.main()

"""torch.save / torch.load files between ms (ms::tensor::save_checkpoint / load_checkpoint, run
through tests/tools/checkpoint_tool.cpp, $MS_CHECKPOINT_TOOL) and Python's torch, both ways:
- a tree that ms writes loads in torch.load (and torch.load(weights_only=True)) as the same tree
  built in Python: dict and OrderedDict, int keys, lists, tuples, None, bools, exact floats, big
  ints, tensors of every dtype (non-contiguous, offset, empty and 0-dim ones included), and its
  zip holds what torch's loaders want (stored records, data aligned to 64 bytes, byteorder and
  version records);
- what torch.save writes (an AdamW state_dict, a model state_dict, views sharing a storage, a
  Parameter), in the zip and the legacy format, reads back in ms equal.
Both ways with each of two Python torches: Debian's /usr/bin/python3 (python3-torch 1.13, which
scripts/setup.sh installs) and the newest torch (build/venv-torch-newest, which
scripts/setup_python_interop.sh makes), whose torch.load reads with weights_only=True by default.
"""
import json
import os
import struct
import subprocess
import unittest
import zipfile

from harness import MsTestCase, python_torch_version, require_newest_torch, torch_pythons

TOOL = os.environ.get("MS_CHECKPOINT_TOOL")

# Run by each Python torch, on a JSON list of commands (one interpreter for them all: importing
# torch costs seconds); prints the list of their results. ["expected", FLOATS] gives the tree
# checkpoint_tool writes, built in Python; ["load", FILE, WEIGHTS_ONLY] what torch.load reads from
# FILE; ["resave", FILE, OUT] saves that again with torch.save; ["save", FILE, LEGACY] saves an
# optimizer's and a model's state and gives it. All in one JSON encoding: floats by their bits,
# tensors by dtype, shape and bytes, dicts as entry lists with their class.
TORCH_SIDE = r"""
import collections, json, struct, sys, torch

DTYPES = {torch.float32: "Float", torch.float64: "Double", torch.float16: "Half",
          torch.bfloat16: "BFloat16", torch.int64: "Long", torch.int32: "Int", torch.int16: "Short",
          torch.int8: "Char", torch.uint8: "Byte", torch.bool: "Bool"}

def enc(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return {"float": struct.unpack("<Q", struct.pack("<d", v))[0]}
    if isinstance(v, torch.Tensor):
        t = v.detach().contiguous()
        return {"tensor": DTYPES[t.dtype], "shape": list(t.shape),
                "hex": t.flatten().view(torch.uint8).numpy().tobytes().hex()}
    if isinstance(v, list):
        return {"list": [enc(x) for x in v]}
    if isinstance(v, tuple):
        return {"tuple": [enc(x) for x in v]}
    if isinstance(v, dict):
        return {"dict": [[enc(k), enc(x)] for k, x in v.items()],
                "ordered": isinstance(v, collections.OrderedDict)}
    raise TypeError(type(v))

def expected(floats):
    t = lambda dtype: torch.arange(6).reshape(2, 3).to(dtype)
    state = {p: {"step": torch.arange(3, 4, dtype=torch.float32).reshape(()),
                 "exp_avg": torch.arange(6, dtype=torch.float32) * (0.5 + p)} for p in range(2)}
    group = {"params": [0, 1], "amsgrad": False, "foreach": None}
    if floats:
        group["lr"] = 0.1
        group["betas"] = (0.9, 0.999)
    dtypes = [(t(torch.int64) % 2).to(torch.bool) if d == torch.bool else t(d) for d in DTYPES]
    root = {
        "state": state,
        "param_groups": [group],
        "model": collections.OrderedDict([("a.weight", t(torch.float32)),
                                          ("b.bias", torch.arange(3, dtype=torch.float64))]),
        "big": [2**40, -2**40, 2**63 - 1, -2**63, 255, 256, 65535, 65536, -1, 2**31, -2**31 - 1],
        "dtypes": dtypes,
        "noncontig": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),
        "offset": torch.arange(10, dtype=torch.int32)[3:7],
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(7),
        "text": ("h\u00e9llo", "x" * 300, ""),
        "flags": (True, False, None, 1, 2, 3, 4),
    }
    if floats:
        root["floats"] = [0.1, 1e300, -0.0, 1.5, -2.5e-300]
    return root

def saved():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.9, 0.999))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    base = torch.randn(4, 5)
    return {"optimizer": opt.state_dict(), "model": model.state_dict(), "epoch": 3,
            "views": [base[1], base[2:, 1:3], base.t()], "param": torch.nn.Parameter(torch.ones(2)),
            "half": torch.randn(3).half(), "big": 2**62, "nested": {"a": [(), [[]], {}]}}

def run(mode, *args):
    if mode == "expected":
        return enc(expected(args[0] == "1"))
    if mode == "load":
        return enc(torch.load(args[0], weights_only=args[1] == "1"))
    if mode == "resave":
        torch.save(torch.load(args[0]), args[1])
        return None
    obj = saved()
    torch.save(obj, args[0], _use_new_zipfile_serialization=args[1] == "0")
    # What a load gives (views stay views of one storage there; ms copies them apart).
    return enc(obj)

print(json.dumps([run(*command) for command in json.loads(sys.argv[1])]))
"""


class CheckpointInteropTest(MsTestCase):
    def setUp(self):
        super().setUp()
        if not TOOL:
            self.skipTest("set MS_CHECKPOINT_TOOL to the ms_checkpoint_tool binary")
        self.pythons = torch_pythons()
        if not self.pythons:
            self.skipTest("needs a Python with torch (/usr/bin/python3 and python3-torch)")
        require_newest_torch(self)

    def for_each_torch(self, check):
        """Runs check() with self.py set to each Python torch in turn, in a subTest named by its
        version."""
        for self.py in self.pythons:
            with self.subTest(torch=python_torch_version(self.py)):
                check()

    def torch_side(self, *commands):
        """The results of TORCH_SIDE's commands (tuples) in self.py's torch."""
        r = subprocess.run([self.py, "-c", TORCH_SIDE,
                            json.dumps([[str(a) for a in c] for c in commands])],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        results = json.loads(r.stdout)
        self.assertEqual(len(results), len(commands))
        return results

    def tool(self, *args):
        r = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_ms_writes_what_torch_load_reads(self):
        self.for_each_torch(self.check_ms_writes_what_torch_load_reads)

    def check_ms_writes_what_torch_load_reads(self):
        version = python_torch_version(self.py)
        commands, cases = [], {}  # cases: floats -> (ms's read of its file, its commands' span)
        for floats in (True, False):
            f = self.path(f"ms_{int(floats)}.pth")
            self.tool("write" if floats else "write-no-floats", f)
            first = len(commands)
            commands += [("expected", int(floats)), ("load", f, 0)]
            # torch 1.13's weights_only reader has no BINFLOAT (torch 2.0 added it): there only
            # the tree without floats is read with it, as torch.save's own files are.
            if not floats or int(version.split(".")[0]) >= 2:
                commands.append(("load", f, 1))
            cases[floats] = (json.loads(self.tool("read", f)), first, len(commands))
        results = self.torch_side(*commands)
        for floats, (read, first, end) in cases.items():
            expected, *loads = results[first:end]
            with self.subTest(floats=floats):
                # ms reads back what it wrote.
                self.assertEqual(read, expected)
                for command, loaded in zip(commands[first + 1:end], loads):
                    with self.subTest(weights_only=command[2]):
                        self.assertEqual(loaded, expected)

    def test_zip_layout_is_torch_s(self):
        self.for_each_torch(self.check_zip_layout_is_torch_s)

    def check_zip_layout_is_torch_s(self):
        f = self.path("layout.pth")
        self.tool("write", f)
        with open(f, "rb") as fh:
            raw = fh.read()
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
            names = [i.filename for i in infos]
            self.assertEqual({n.split("/")[0] for n in names}, {"archive"})
            self.assertEqual(names[0], "archive/data.pkl")
            self.assertEqual(z.read("archive/version"), b"3\n")
            self.assertEqual(z.read("archive/byteorder"), b"little")
            self.assertEqual(z.read("archive/data.pkl")[:2], b"\x80\x02")  # pickle protocol 2
            self.assertEqual(sum(n.startswith("archive/data/") for n in names), 20)
            for i in infos:
                self.assertEqual(i.compress_type, zipfile.ZIP_STORED, i.filename)
                # Data offset = local header (30 bytes) + name + local extra field.
                o = i.header_offset
                name_len, extra_len = struct.unpack("<HH", raw[o + 26:o + 30])
                self.assertEqual((o + 30 + name_len + extra_len) % 64, 0, i.filename)
            pickled = z.read("archive/data.pkl")
        # torch 1.13's torch.save of what it loaded writes the very same pickle (its storage keys
        # count up from 0 in the order met, as ms's do; torch 2.x may differ in memo details).
        again = self.path("again.pth")
        self.torch_side(("resave", f, again))
        if python_torch_version(self.py).startswith("1."):
            with zipfile.ZipFile(again) as z:
                self.assertEqual(z.read("again/data.pkl"), pickled)

    def test_ms_reads_what_torch_save_writes(self):
        self.for_each_torch(self.check_ms_reads_what_torch_save_writes)

    def check_ms_reads_what_torch_save_writes(self):
        files = {legacy: self.path(f"torch_{int(legacy)}.pth") for legacy in (False, True)}
        saved = self.torch_side(*(("save", f, int(legacy)) for legacy, f in files.items()))
        for (legacy, f), expected in zip(files.items(), saved):
            with self.subTest(legacy=legacy):
                self.assertEqual(json.loads(self.tool("read", f)), expected)


if __name__ == "__main__":
    unittest.main()

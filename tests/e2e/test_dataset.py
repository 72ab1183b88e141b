"""End to end: `ms dataset info|head|iter` on real data (Fashion-MNIST PNGs and scikit-learn CSVs
from Debian packages, built by scripts/make_dataset_fixtures.py), ModelScope-style zip datasets
(local, file:// and http:// on 127.0.0.1), and bad input: ragged CSV, invalid UTF-8, corrupt and
truncated images, unsafe archives, unknown subsets and splits, bad slices."""
import http.server
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MS_BIN, MsTestCase, SOURCE_DIR, component_available, run_ms  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
SKLEARN = "/usr/lib/python3/dist-packages/sklearn/datasets"
IRIS = f"{SKLEARN}/data/iris.csv"
CHINA = f"{SKLEARN}/images/china.jpg"
HAVE_DATA = os.path.exists(FMNIST) and os.path.exists(IRIS)
FIXTURES = None
def needs(*parts):
    """Skips a test on a build without these optional parts (as `ms env` lists them)."""
    missing = [p for p in parts if not component_available(p.lower())]
    return unittest.skipIf(missing, f"built without {', '.join('MS_WITH_' + p for p in missing)}")


def setUpModule():
    global FIXTURES
    if not HAVE_DATA:
        return
    FIXTURES = tempfile.mkdtemp(prefix="ms-ds-fixtures-")
    subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "scripts", "make_dataset_fixtures.py"), FIXTURES,
                    "--per-class", "12", "--test-per-class", "4"], check=True, capture_output=True, timeout=120)


def tearDownModule():
    if FIXTURES:
        shutil.rmtree(FIXTURES, True)


@unittest.skipUnless(HAVE_DATA, "needs Debian dataset-fashion-mnist and python3-sklearn (scripts/setup.sh)")
class DatasetTest(MsTestCase):
    def setUp(self):
        super().setUp()
        self.env = {"MODELSCOPE_CACHE": self.path("cache")}

    def ms(self, *args, **kw):
        return run_ms(*args, env=self.env, **kw)

    def info(self, *args):
        r = self.ms("dataset", "info", *args, "--json")
        self.assertExit(r, 0)
        return self.json_out(r)

    def head(self, *args):
        r = self.ms("dataset", "head", *args, "--json")
        self.assertExit(r, 0)
        return [json.loads(line) for line in r.stdout.splitlines()]

    def test_head_parses_only_the_rows_it_shows(self):
        # Row 3 is ragged and row 4 not JSON: head -n 2 never reaches them (a look at the top of
        # a large table does not build the whole of it), info and a slice read everything.
        csv = self.write("big.csv", "id,text\n1,a\n2,b\n3,c,extra\n")
        self.assertEqual(self.head(csv, "-n", "2"), [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}])
        self.assertExit(self.ms("dataset", "info", csv), 7)
        self.assertExit(self.ms("dataset", "head", csv, "-n", "2", "--split", "train[:2]"), 7)
        jsonl = self.write("big.jsonl", '{"a": 1}\n{"a": 2}\n{oops}\n')
        self.assertEqual(self.head(jsonl, "-n", "2"), [{"a": 1}, {"a": 2}])
        self.assertExit(self.ms("dataset", "info", jsonl), 7)
        # -n 0 still names the columns (info-like use), printing no row.
        self.assertEqual(self.head(csv, "-n", "0"), [])
        # A folder's split of two files: the second is not read once the first has the rows.
        folder = self.path("shards")
        os.makedirs(folder)
        with open(os.path.join(folder, "train-00000-of-00002.csv"), "w") as f:
            f.write("x\n1\n2\n")
        with open(os.path.join(folder, "train-00001-of-00002.csv"), "w") as f:
            f.write("y\nnot the same columns\n")
        self.assertEqual(self.head(folder, "-n", "2"), [{"x": 1}, {"x": 2}])
        self.assertExit(self.ms("dataset", "info", folder), 7)

    def test_head_of_a_huge_file_reads_its_start_and_memory_running_out_is_said(self):
        # A sparse terabyte after a few rows: head reads a start of it; the rows' error comes from
        # there too. Reading it whole is out of memory: exit 74 naming it, not a crash's 70.
        import resource
        csv = self.write("huge.csv", "id,text\n1,a\n2,b\n")
        os.truncate(csv, 1 << 40)
        self.assertEqual(self.head(csv, "-n", "2"), [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}])
        # A JSON array, on one line as json.dump writes it: its first elements, found by their
        # brackets (it was read whole: 1 GB for a 110 MB array).
        array = self.write("huge.json", '[{"id": 1, "text": "a"}, {"id": 2, "text": "b"}, ')
        os.truncate(array, 1 << 40)
        self.assertEqual(self.head(array, "-n", "2"), [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}])
        bad = self.write("huge-bad.csv", "id,text\n1,a\n2,b,extra\n")
        os.truncate(bad, 1 << 40)
        r = self.ms("dataset", "head", bad, "-n", "5")
        self.assertExit(r, 7)
        self.assertIn("huge-bad.csv:3: ragged row", r.stderr)

        def limit_memory():
            resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        r = subprocess.run([MS_BIN, "dataset", "info", csv], capture_output=True, text=True,
                           preexec_fn=limit_memory, timeout=120)
        self.assertExit(r, 74)
        self.assertIn("ms: error: out of memory", r.stderr)

    # --- imagefolder --------------------------------------------------------------------------

    def test_imagefolder_splits_labels_and_ids(self):
        d = self.info(os.path.join(FIXTURES, "fmnist"))
        self.assertEqual(d["kind"], "imagefolder")
        self.assertEqual([(s["name"], s["rows"]) for s in d["splits"]], [("train", 120), ("test", 40)])
        self.assertEqual(d["labels"], sorted(d["labels"]))
        self.assertEqual(len(d["labels"]), 10)
        self.assertNotIn("train", d["labels"])
        self.assertEqual(d["splits"][0]["columns"], [{"name": "image", "type": "image"},
                                                     {"name": "label", "type": "int"}])
        # Every row's label id is the index of its folder name in the sorted class list.
        with open(os.path.join(FIXTURES, "fmnist_labels.json")) as f:
            truth = {os.path.join(FIXTURES, "fmnist", rel): name for split in json.load(f).values()
                     for rel, name in split}
        rows = self.head("imagefolder:" + os.path.join(FIXTURES, "fmnist"), "-n", "1000")
        self.assertEqual(len(rows), 160)
        for row in rows:
            self.assertEqual(row["label_name"], truth[row["image"]])
            self.assertEqual(row["label"], d["labels"].index(truth[row["image"]]))

    def test_readme_configs_declare_subsets_and_splits(self):
        # A Hugging Face dataset card's `configs` (which ModelScope 1.40's MsDataset.load reads):
        # the folder had "no images, tables or dataset config".
        ds = self.path("carded")
        self.write("carded/en/train.csv", "text,label\nhi,1\n")
        self.write("carded/en/test.csv", "text,label\nt,0\n")
        self.write("carded/zh/train.jsonl", '{"text": "x", "label": 1}\n')
        self.write("carded/sh/train-0.csv", "text,label\na,1\n")
        self.write("carded/sh/train-1.csv", "text,label\nb,2.5\n")
        self.write("carded/README.md", "---\nlicense: mit\nconfigs:\n"
                   "- config_name: en\n  data_files:\n"
                   "  - {split: train, path: en/train.csv}\n  - {split: test, path: en/test.csv}\n"
                   "- config_name: zh\n  data_files: zh/train.jsonl\n"
                   "- config_name: sh\n  default: true\n  data_files:\n    train: 'sh/train-*.csv'\n"
                   "---\n# The card\n")
        d = self.info(ds)
        self.assertEqual((d["subset"], d["subsets"]), ("sh", ["en", "zh", "sh"]))
        self.assertEqual([(s["name"], s["rows"]) for s in d["splits"]], [("train", 2)])
        self.assertEqual(self.head(ds, "--subset", "en", "--split", "test"), [{"text": "t", "label": 0}])
        self.assertEqual(self.head(ds, "--subset", "zh"), [{"text": "x", "label": 1}])
        r = self.ms("dataset", "info", ds, "--subset", "fr")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "subset 'fr'", "en, zh, sh")
        # YAML makes `config_name: 2020` a number: still a name (it was exit 70).
        self.write("carded/README.md", "---\nconfigs:\n- config_name: 2020\n  data_files:\n"
                   "  - {split: 1, path: en/train.csv}\n---\n")
        d = self.info(ds)
        self.assertEqual((d["subset"], [s["name"] for s in d["splits"]]), ("2020", ["1"]))
        # A path the card names that is not there is an error naming it.
        self.write("carded/README.md", "---\nconfigs:\n- config_name: x\n  data_files: gone/*.csv\n---\n")
        r = self.ms("dataset", "info", ds)
        self.assertExit(r, 4)
        self.assertOneLineError(r, "gone/*.csv")

    def test_links_that_lead_nowhere_are_skipped(self):
        # A symlink loop (or a dangling link) beside the data is no file, as a folder is not: it
        # failed the whole dataset as an I/O error (exit 74).
        images = self.path("images")
        shutil.copytree(os.path.join(FIXTURES, "fmnist"), images)
        tables = self.path("tables")
        os.makedirs(tables)
        with open(os.path.join(tables, "train.csv"), "w") as f:
            f.write("text,label\na,1\nb,0\n")
        for folder in (images, os.path.join(images, "train"), tables):
            os.symlink("loop", os.path.join(folder, "loop"))
            os.symlink("nowhere", os.path.join(folder, "dangling.csv"))
        self.assertEqual([(s["name"], s["rows"]) for s in self.info(images)["splits"]],
                         [("train", 120), ("test", 40)])
        self.assertEqual([(s["name"], s["rows"]) for s in self.info(tables)["splits"]], [("train", 2)])

    def test_text_output_and_slices(self):
        r = self.ms("dataset", "info", os.path.join(FIXTURES, "fmnist"), "--split", "train[:10%]")
        self.assertExit(r, 0)
        self.assertIn("train[:10%]: 12 rows", r.stdout)
        self.assertIn("0=ankle_boot", r.stdout)
        d = self.info(os.path.join(FIXTURES, "fmnist"), "--split", "test[10:20]")
        self.assertEqual([(s["name"], s["rows"]) for s in d["splits"]], [("test", 10)])
        for bad in ["train[5:2]", "train[x:]", "train[:150%]", "train[1:2%]", "train[500:]"]:
            r = self.ms("dataset", "info", os.path.join(FIXTURES, "fmnist"), "--split", bad)
            self.assertExit(r, 2, bad)
            self.assertOneLineError(r, bad)

    def test_a_column_named_like_a_key_head_adds_keeps_its_values(self):
        # A column "_split" replaced the split's name in `head --json` over several splits.
        self.write("sp/train.csv", "_split,a\nfoo,1\n")
        self.write("sp/test.csv", "_split,a\nbar,2\n")
        r = self.ms("dataset", "head", "folder:" + self.path("sp"), "--json")
        self.assertExit(r, 0)
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(sorted((row["__split"], row["_split"], row["a"]) for row in rows),
                         [("test", "bar", 2), ("train", "foo", 1)])
        self.assertIn("the data has a column '_split', so the split's name ms adds goes under "
                      "'__split'", r.stderr)

    def test_unknown_split_lists_available(self):
        r = self.ms("dataset", "info", os.path.join(FIXTURES, "fmnist"), "--split", "tset")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "tset", "available: train, test")

    @needs("PNG", "JPEG")
    def test_non_images_and_corrupt_images(self):
        root = self.path("imgs")
        shutil.copytree(os.path.join(FIXTURES, "fmnist", "test"), root)
        cls = os.path.join(root, "bag")
        good = sorted(os.listdir(cls))[0]
        with open(os.path.join(cls, good), "rb") as f:
            png = f.read()
        with open(CHINA, "rb") as f:
            jpeg = f.read()
        self.write("imgs/bag/zz_trunc.png", png[:len(png) // 2], "wb")
        self.write("imgs/coat/zz_trunc.jpg", jpeg[:len(jpeg) // 3], "wb")
        self.write("imgs/coat/zz_corrupt.jpg", jpeg[:200] + bytes(range(256)) * 20, "wb")
        self.write("imgs/coat/readme.txt", "not an image")
        d = self.info(root)
        self.assertEqual(d["splits"][0]["rows"], 43)
        self.assertEqual(d["splits"][0]["skipped_non_image"], 1)
        for name in ["zz_trunc.png", "zz_trunc.jpg", "zz_corrupt.jpg"]:
            one = self.path("one_" + name)
            os.makedirs(os.path.join(one, "c"))
            shutil.copy(os.path.join(root, "bag" if name.endswith("png") else "coat", name), os.path.join(one, "c"))
            r = self.ms("dataset", "iter", one, "--transform", '{"resize": [16, 16]}')
            self.assertExit(r, 7, name)
            self.assertOneLineError(r, name, "corrupt image")
        r = self.ms("dataset", "info", root, "--verify")
        self.assertExit(r, 7)
        r = self.ms("dataset", "info", root, "--verify", "--skip-bad", "--json")
        self.assertExit(r, 0)
        d = self.json_out(r)
        self.assertEqual(d["splits"][0]["rows"], 40)
        self.assertEqual(d["splits"][0]["skipped_bad"], 3)
        r = self.ms("dataset", "iter", root, "--skip-bad", "--workers", "2", "--json", "--transform",
                    '{"resize": [16, 16]}')
        self.assertExit(r, 0)
        self.assertEqual(self.json_out(r)["samples"], 40)
        self.assertEqual(self.json_out(r)["skipped_bad"], 3)

    # --- loader -------------------------------------------------------------------------------

    def iter_json(self, *args):
        r = self.ms("dataset", "iter", os.path.join(FIXTURES, "fmnist"), "--split", "train", "--json",
                    "--transform", '{"resize": [20, 20], "mean": [0.5], "std": [0.25]}', *args)
        self.assertExit(r, 0)
        return self.json_out(r)

    @needs("PNG")
    def test_loader_seed_workers_shards(self):
        a = self.iter_json("--shuffle", "--seed", "5", "--batch-size", "7")
        b = self.iter_json("--shuffle", "--seed", "5", "--batch-size", "7", "--workers", "2", "--prefetch", "1")
        c = self.iter_json("--shuffle", "--seed", "6", "--batch-size", "7")
        self.assertEqual(a["order"], b["order"])
        self.assertAlmostEqual(a["checksum"], b["checksum"], places=3)
        self.assertNotEqual(a["order"], c["order"])
        self.assertEqual(a["samples"], 120)
        self.assertEqual(a["batches"], 18)
        d = self.iter_json("--batch-size", "7", "--drop-last")
        self.assertEqual((d["samples"], d["batches"]), (119, 17))
        s0 = self.iter_json("--shard", "0/2")
        s1 = self.iter_json("--shard", "1/2")
        self.assertEqual(s0["samples"] + s1["samples"], 120)
        self.assertTrue(set(s0["order"]).isdisjoint(s1["order"]))
        r = self.ms("dataset", "iter", os.path.join(FIXTURES, "fmnist"), "--split", "train", "--shard", "2/2")
        self.assertExit(r, 2)
        r = self.ms("dataset", "iter", os.path.join(FIXTURES, "fmnist"))
        self.assertExit(r, 2)
        self.assertOneLineError(r, "train, test")

    @needs("PNG", "JPEG")
    def test_different_sizes_need_resize(self):
        os.makedirs(self.path("mixed", "a"))
        shutil.copy(CHINA, self.path("mixed", "a", "1.jpg"))
        shutil.copy(os.path.join(FIXTURES, "fmnist", "test", "bag", sorted(os.listdir(os.path.join(FIXTURES, "fmnist", "test", "bag")))[0]),
                    self.path("mixed", "a", "2.png"))
        r = self.ms("dataset", "iter", self.path("mixed"))
        self.assertExit(r, 2)
        self.assertOneLineError(r, "2.png")
        r = self.ms("dataset", "iter", self.path("mixed"), "--transform", '{"resize": [8, 8], "mode": "L"}', "--json")
        self.assertExit(r, 0)
        r = self.ms("dataset", "iter", self.path("mixed"), "--transform", '{"mode": "CMYK"}')
        self.assertExit(r, 3)
        self.assertOneLineError(r, "mode")

    @needs("PNG", "JPEG")
    def test_resize_matches_pil(self):
        py = "/usr/bin/python3"
        probe = subprocess.run([py, "-c", "import PIL, numpy"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("Debian python3-pil and python3-numpy are needed for the PIL comparison")
        os.makedirs(self.path("pil", "a"))
        shutil.copy(CHINA, self.path("pil", "a", "1.jpg"))
        shutil.copy(f"{SKLEARN}/images/flower.jpg", self.path("pil", "a", "2.jpg"))
        fm = os.path.join(FIXTURES, "fmnist", "test", "dress")
        shutil.copy(os.path.join(fm, sorted(os.listdir(fm))[0]), self.path("pil", "a", "3.png"))
        npy = self.path("batch.npy")
        r = self.ms("dataset", "iter", self.path("pil"), "--batch-size", "3", "--save-batch", npy,
                    "--transform", '{"resize": [224, 200]}')
        self.assertExit(r, 0)
        script = (
            "import numpy as np, sys, os\n"
            "from PIL import Image\n"
            "b = np.load(sys.argv[1]); d = sys.argv[2]; worst = 0\n"
            "for i, f in enumerate(sorted(os.listdir(d))):\n"
            "    a = np.asarray(Image.open(os.path.join(d, f)).convert('RGB').resize((200, 224), Image.BILINEAR))\n"
            "    worst = max(worst, float(np.abs(a.transpose(2, 0, 1) / 255.0 - b[i]).max() * 255))\n"
            "print(b.shape, worst)\n")
        out = subprocess.run([py, "-c", script, npy, self.path("pil", "a")], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        shape, worst = out.stdout.split(") ")
        self.assertEqual(shape + ")", "(3, 3, 224, 200)")
        self.assertLessEqual(float(worst), 1.0, "resize differs from PIL by more than one grey level")

    # --- CSV / JSON lines ---------------------------------------------------------------------

    def test_sklearn_csvs(self):
        d = self.info(IRIS)
        self.assertEqual(d["kind"], "csv")
        self.assertEqual(d["splits"][0]["rows"], 150)
        self.assertEqual([c["type"] for c in d["splits"][0]["columns"]], ["float"] * 4 + ["int"])
        # scikit-learn's own layout: a short "178,13,class_0,..." first line, then 14-field rows.
        r = self.ms("dataset", "info", f"csv:{SKLEARN}/data/wine_data.csv")
        self.assertExit(r, 7)
        self.assertOneLineError(r, "wine_data.csv:2", "ragged row: 14 fields, expected 5")
        rows = self.head(IRIS, "-n", "2")
        self.assertEqual(rows[0], {"150": 5.1, "4": 3.5, "setosa": 1.4, "versicolor": 0.2, "virginica": 0})

    def test_csv_edge_cases_and_errors(self):
        p = self.write("q.csv", "\ufeffname,\"a, b\",n\r\nx,\"multi\nline \"\"q\"\"\",1\r\n\r\ny,,2.5\r\n")
        rows = self.head(p)
        self.assertEqual(rows, [{"name": "x", "a, b": "multi\nline \"q\"", "n": 1.0},
                                {"name": "y", "a, b": None, "n": 2.5}])
        t = self.write("t.tsv", "a\tb\n1\tx,y\n")
        self.assertEqual(self.head(t), [{"a": 1, "b": "x,y"}])
        self.assertEqual(self.head("tsv:" + self.write("t.txt", "a\tb\n1\t2\n")), [{"a": 1, "b": 2}])
        semi = self.write("s.csv", "a;b\n1;x,y\n")
        self.assertEqual(self.head(semi, "--delimiter", ";"), [{"a": 1, "b": "x,y"}])
        self.assertEqual(self.head(semi, "--delimiter", ";", "--no-header"),
                         [{"column_0": "a", "column_1": "b"}, {"column_0": "1", "column_1": "x,y"}])
        r = self.ms("dataset", "info", semi, "--delimiter", ";;")
        self.assertExit(r, 2)
        r = self.ms("dataset", "info", self.write("r.csv", "a,b\n1,2\n\"x\ny\",3\n4,5,6\n"))
        self.assertExit(r, 7)
        self.assertOneLineError(r, "r.csv:5", "ragged row: 3 fields, expected 2")
        # Fewer fields: the missing ones are missing values, as pandas reads them; numbers with
        # spaces around them are numbers, as there.
        self.assertEqual(self.head(self.write("short.csv", "a,b,c\n1,2\n7,8,9\n")),
                         [{"a": 1, "b": 2, "c": None}, {"a": 7, "b": 8, "c": 9}])
        self.assertEqual(self.head(self.write("sp.csv", "a, b\n 7 ,1\n8, 2.5\n")),
                         [{"a": 7, " b": 1.0}, {"a": 8, " b": 2.5}])
        r = self.ms("dataset", "info", self.write("u.csv", b"a,b\n1,2\n3,\xff\xfe\n", "wb"))
        self.assertExit(r, 7)
        self.assertOneLineError(r, "u.csv:3", "invalid UTF-8")
        r = self.ms("dataset", "info", self.write("o.csv", "a,b\n\"open,2\n"))
        self.assertExit(r, 7)
        self.assertOneLineError(r, "o.csv:2", "unterminated")

    def test_jsonl(self):
        p = self.write("d.jsonl", '{"text": "hi", "label": 1}\n\n{"text": "yo", "label": 0, "tags": ["a"]}\n')
        d = self.info(p)
        self.assertEqual(d["splits"][0]["rows"], 2)
        self.assertEqual(d["splits"][0]["columns"], [{"name": "text", "type": "string"},
                                                     {"name": "label", "type": "int"},
                                                     {"name": "tags", "type": "json"}])
        self.assertEqual(self.head(p)[1]["tags"], ["a"])
        r = self.ms("dataset", "info", self.write("b.jsonl", '{"a": 1}\n{"a": 2,}\n'))
        self.assertExit(r, 7)
        self.assertOneLineError(r, "b.jsonl:2")

    def test_hostile_json_and_csv(self):
        # Issue 12: 70,000 levels of nesting crashed `ms dataset` (SIGSEGV); a number beyond a
        # double was an internal error (exit 70); 10,000 repeated CSV header names ran for minutes.
        deep = "[" * 100000 + "]" * 100000
        for name, text, where in [("deep.jsonl", '{"a": 1}\n{"a": ' + deep + "}\n", "deep.jsonl:2:1006"),
                                  ("deep.json", '[{"a": ' + deep + "}]", "deep.json:1:1006")]:
            p = self.write(name, text)
            for cmd in ["info", "head", "iter"]:
                r = self.ms("dataset", cmd, "jsonl:" + p)
                self.assertExit(r, 3, f"{cmd} {name}")
                self.assertOneLineError(r, where, "nested deeper than 1000 levels")
        ok = self.write("ok.jsonl", '{"a": ' + "[" * 999 + "]" * 999 + "}\n")
        r = self.ms("dataset", "head", ok)  # (Python's json module cannot read this deep)
        self.assertExit(r, 0)
        self.assertEqual(r.stdout.strip(), '{"a":' + "[" * 999 + "]" * 999 + "}")
        for number in ["1e999", "-1e400", "9" * 100000]:
            for name, text, where in [("n.jsonl", '{"x": 1}\n{"x": ' + number + "}\n", "n.jsonl:2:7"),
                                      ("n.json", '[{"x": ' + number + "}]", "n.json:1:8")]:
                r = self.ms("dataset", "head", self.write(name, text))
                self.assertExit(r, 3, number[:10])
                self.assertOneLineError(r, where, "beyond the range of a 64-bit float")
                self.assertLess(len(r.stderr), 500)
        # Integers beyond int64 are floats; NaN and Infinity are not JSON (exit 7 as other bad JSON).
        big = self.write("big.jsonl", '{"u": 1}\n{"u": 18446744073709551615}\n{"u": 100000000000000000000}\n')
        self.assertEqual([c["type"] for c in self.info(big)["splits"][0]["columns"]], ["float"])
        self.assertEqual([row["u"] for row in self.head(big)], [1.0, 18446744073709551615.0, 1e20])
        r = self.ms("dataset", "info", self.write("nan.jsonl", '{"x": NaN}\n'))
        self.assertExit(r, 7)
        self.assertOneLineError(r, "nan.jsonl:1:7", "bad JSON")
        # Repeated CSV header names are renamed as pandas' read_csv does, in linear time.
        dup = self.write("dup.csv", "a," * 10000 + "a\n" + "1," * 10000 + "2\n")
        cols = self.info(dup)["splits"][0]["columns"]
        self.assertEqual([c["name"] for c in cols[:3]] + [cols[-1]["name"]], ["a", "a.1", "a.2", "a.10000"])
        self.assertEqual(self.head(self.write("d2.csv", "a,a,a.1,b\n1,2,3,4\n")),
                         [{"a": 1, "a.2": 2, "a.1": 3, "b": 4}])
        # A file name that is not UTF-8 was an internal error (nlohmann's type_error 316 on dump).
        odd = os.fsdecode(os.path.join(os.fsencode(self.path("")), b"odd\xffname.csv"))
        self.write(odd, "a\n1\n")
        d = self.info(odd)
        self.assertIn("odd\ufffdname.csv", d["spec"])
        self.assertEqual(self.head(odd), [{"a": 1}])
        wide = self.write("wide.jsonl", json.dumps({f"k{i}": i for i in range(100000)}) + "\n")
        row = self.head(wide)[0]
        self.assertEqual((len(row), row["k99999"]), (100000, 99999))

    # --- zip datasets with a dataset config ---------------------------------------------------

    @needs("ZIP", "PNG")
    def test_an_image_file_column_holds_images_whatever_their_names(self):
        # One ".jfif" row made the meta file's "image:FILE" column plain files: `dataset iter`
        # then decoded no image at all, with exit 0 and a rate.
        folder = self.path("odd")
        os.makedirs(folder)
        with open(os.path.join(SOURCE_DIR, "tests", "data", "infer", "vision", "images", "a.png"), "rb") as f:
            png = f.read()
        with zipfile.ZipFile(os.path.join(folder, "train.zip"), "w") as z:
            z.writestr("imgs/a.png", png)
            z.writestr("imgs/b.jfif", png)
        self.write("odd/train.csv", "image:FILE,category\nimgs/a.png,x\nimgs/b.jfif,y\n")
        self.write("odd/ds.json", json.dumps({"default": {"train": {"meta": "train.csv", "file": "train.zip"}}}))
        d = self.info("folder:" + folder)
        self.assertEqual(d["splits"][0]["columns"][0], {"name": "image:FILE", "type": "image"})
        r = self.ms("dataset", "iter", "folder:" + folder, "--transform", '{"resize": [4, 4]}')
        self.assertExit(r, 0)
        self.assertIn("images 2x3x4x4", r.stdout + r.stderr)

    @needs("ZIP", "PNG")
    def test_dataset_config_folder(self):
        folder = os.path.join(FIXTURES, "fmnist_zip")
        r = self.ms("dataset", "info", folder)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "default, iris")
        d = self.info(folder, "--subset", "default")
        self.assertEqual(d["subsets"], ["default", "iris"])
        # "validation" has neither meta nor file: dropped, as ModelScope does.
        self.assertEqual([(s["name"], s["rows"]) for s in d["splits"]], [("train", 120), ("test", 40)])
        self.assertEqual(d["splits"][0]["columns"][0], {"name": "image:FILE", "type": "image"})
        for row in self.head(folder, "--subset", "default", "-n", "500"):
            self.assertTrue(os.path.isfile(row["image:FILE"]), row)
            self.assertTrue(row["image:FILE"].startswith(self.path("cache", "datasets", "extracted")))
            self.assertIn("/" + row["category"] + "/", row["image:FILE"])
        d = self.info(folder, "--subset", "iris")
        self.assertEqual(d["splits"][0]["rows"], 150)
        r = self.ms("dataset", "info", folder, "--subset", "irsi")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "irsi", "available: default, iris")
        r = self.ms("dataset", "info", folder, "--subset", "default", "--split", "validation")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "validation", "available: train, test")
        r = self.ms("dataset", "iter", folder, "--subset", "default", "--split", "test", "--workers", "2",
                    "--transform", '{"resize": [28, 28]}', "--json")
        self.assertExit(r, 0)
        self.assertEqual(self.json_out(r)["samples"], 40)

    def zip_folder(self, src, dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
            for root, _, files in os.walk(src):
                for f in files:
                    full = os.path.join(root, f)
                    z.write(full, os.path.relpath(full, os.path.dirname(src)))
        return dest

    @needs("ZIP")
    def test_zip_extracted_once_and_reused(self):
        z = self.zip_folder(os.path.join(FIXTURES, "fmnist_zip"), self.path("ds.zip"))
        d = self.info("zip:" + z, "--subset", "default", "--split", "train[:25%]")
        self.assertEqual(d["splits"][0]["rows"], 30)
        extracted = self.path("cache", "datasets", "extracted")
        first = sorted(e for e in os.listdir(extracted) if not e.startswith("."))
        stamp = {e: os.stat(os.path.join(extracted, e)).st_mtime_ns for e in first}
        d = self.info("zip:file://" + z, "--subset", "iris")
        self.assertEqual(d["splits"][0]["rows"], 150)
        self.assertEqual(sorted(e for e in os.listdir(extracted) if not e.startswith(".")), first)
        self.assertEqual({e: os.stat(os.path.join(extracted, e)).st_mtime_ns for e in first}, stamp)
        self.assertEqual([e for e in os.listdir(extracted) if ".ms-extract-" in e], [])
        # An imagefolder inside a zip, named by a bare .zip path.
        z2 = self.zip_folder(os.path.join(FIXTURES, "fmnist"), self.path("img.zip"))
        d = self.info(z2)
        self.assertEqual(d["kind"], "zip")
        self.assertEqual(len(d["labels"]), 10)
        # The same path with new content is extracted afresh, not served from the old folder.
        os.makedirs(self.path("tables"))
        shutil.copy(IRIS, self.path("tables", "train.csv"))
        self.zip_folder(self.path("tables"), z2)
        d = self.info(z2)
        self.assertEqual(d["splits"][0]["rows"], 150)
        self.assertEqual(d["labels"], [])

    @needs("ZIP")
    def test_a_killed_extraction_is_removed_by_the_next_read(self):
        # An extraction stopped by Ctrl-C or SIGKILL left its partial folder in the cache for good
        # (12 MB each time in a report). The next read of the archive removes such a folder, and
        # only a dead writer's: a running extraction holds its folder's lock (flock).
        import fcntl
        import hashlib
        z = self.zip_folder(os.path.join(FIXTURES, "fmnist_zip"), self.path("k.zip"))
        with open(z, "rb") as f:
            name = hashlib.sha256(f.read()).hexdigest()[:16]
        extracted = self.path("cache", "datasets", "extracted")
        dead = os.path.join(extracted, f".{name}.ms-extract-Dead01")
        live = os.path.join(extracted, f".{name}.ms-extract-Live01")
        for folder in (dead, live):
            os.makedirs(os.path.join(folder, "train"))
            with open(os.path.join(folder, "train", "part.csv"), "w") as f:
                f.write("half a file")
        held = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(held, fcntl.LOCK_EX)
            d = self.info("zip:" + z, "--subset", "iris")
            self.assertEqual(d["splits"][0]["rows"], 150)
            self.assertFalse(os.path.exists(dead))
            self.assertTrue(os.path.exists(live))
            self.assertTrue(os.path.isdir(os.path.join(extracted, name)))
        finally:
            os.close(held)

    @needs("ZIP")
    def test_concurrent_extraction(self):
        z = self.zip_folder(os.path.join(FIXTURES, "fmnist"), self.path("c.zip"))
        env = dict(os.environ, **self.env)
        procs = [subprocess.Popen([MS_BIN, "dataset", "info", "zip:" + z, "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(4)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(json.loads(out)["splits"][0]["rows"], 120)
        self.assertEqual(len([e for e in os.listdir(self.path("cache", "datasets", "extracted"))
                              if not e.startswith(".")]), 1)

    @needs("ZIP")
    def test_zip_over_http(self):
        z = self.zip_folder(os.path.join(FIXTURES, "fmnist"), self.path("serve", "img.zip"))
        directory = os.path.dirname(z)

        with open(z, "rb") as f:
            whole = f.read()
        cut = {"on": True}

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=directory, **kw)

            def do_GET(self):
                if self.path == "/login.zip":
                    # A whole body that is no archive: a page a site serves with status 200.
                    page = b"<html>please log in</html>"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                if self.path != "/flaky.zip":
                    return super().do_GET()
                # Half the archive, no Content-Length, then the connection closes: the client
                # cannot tell a short body from a whole one but by the bytes.
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(whole[:len(whole) // 2] if cut["on"] else whole)
                self.close_connection = True

            def log_message(self, *a):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.shutdown)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        d = self.info(f"zip:{url}/img.zip", "--split", "test")
        self.assertEqual(d["splits"][0]["rows"], 40)
        r = self.ms("dataset", "info", f"zip:{url}/missing.zip")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "missing.zip")
        # A download cut short is no cached archive (every later run failed on it, exit 7): the
        # next run fetches it whole.
        r = self.ms("dataset", "info", f"zip:{url}/flaky.zip")
        self.assertExit(r, 5)
        self.assertOneLineError(r, "no complete zip archive")
        # What the URL serves whole is no archive: no retry mends that (it said "try again").
        r = self.ms("dataset", "info", f"zip:{url}/login.zip")
        self.assertExit(r, 7)
        self.assertOneLineError(r, "serves no zip archive", "<html>")
        self.assertNotIn("try again", r.stderr)
        cut["on"] = False
        d = self.info(f"zip:{url}/flaky.zip", "--split", "test")
        self.assertEqual(d["splits"][0]["rows"], 40)
        # A cut-short file an older ms left in the cache is fetched again.
        downloads = self.path("cache", "datasets", "downloads")
        for name in os.listdir(downloads):
            with open(os.path.join(downloads, name), "r+b") as f:
                f.truncate(len(whole) // 2)
        shutil.rmtree(self.path("cache", "datasets", "extracted"))
        d = self.info(f"zip:{url}/flaky.zip", "--split", "test")
        self.assertEqual(d["splits"][0]["rows"], 40)

    @needs("HUB_SERVER")
    def test_a_hub_dataset_at_a_revision_has_that_revisions_splits_only(self):
        # v1 has a train split; master (v2) adds validation. In one indexed cache folder, which
        # keeps every revision's files, v1 loaded after master had master's validation split.
        from hubserver import HubServer
        server = HubServer(self.path("hubroot"))
        self.env.update({"MODELSCOPE_API_TOKEN": server.token("alice"),
                         "MODELSCOPE_CREDENTIALS_PATH": self.path("credentials")})
        server.start()
        self.addCleanup(server.stop)
        self.env["MODELSCOPE_ENDPOINT"] = server.endpoint
        self.write("ds/train.csv", "text,label\nv1-row,0\n")
        self.assertExit(self.ms("upload", "alice/dsv", self.path("ds"), "--dataset", "--create",
                                "--tag", "v1"), 0)
        self.write("ds/train.csv", "text,label\nv2-row,1\n")
        self.write("ds/validation.csv", "text,label\nv2-only,1\n")
        self.assertExit(self.ms("upload", "alice/dsv", self.path("ds"), "--dataset"), 0)
        # (v1's folder of links is made once, then found again.)
        for spec, splits in (("hub:alice/dsv", {"train": 1, "validation": 1}),
                             ("hub:alice/dsv@v1", {"train": 1}),
                             ("hub:alice/dsv", {"train": 1, "validation": 1}),
                             ("hub:alice/dsv@v1", {"train": 1})):
            with self.subTest(spec=spec):
                d = self.info(spec)
                self.assertEqual({s["name"]: s["rows"] for s in d["splits"]}, splits)
                rows = self.head(spec)
                want = "v1-row" if spec.endswith("@v1") else "v2-row"
                self.assertIn(want, json.dumps(rows))
        # A load killed while it built v1's folder left its ".tmp-PID" folder for good: the next
        # build (under the repo folder's lock, which every build holds) removes it.
        revisions = [os.path.join(root, ".ms-revisions") for root, dirs, _ in os.walk(self.path("cache"))
                     if ".ms-revisions" in dirs]
        self.assertEqual(len(revisions), 1, revisions)
        [view] = os.listdir(revisions[0])
        shutil.rmtree(os.path.join(revisions[0], view))
        self.write(os.path.join(revisions[0], view + ".tmp-99999999", "train.csv"), "half")
        self.assertEqual({s["name"]: s["rows"] for s in self.info("hub:alice/dsv@v1")["splits"]}, {"train": 1})
        self.assertEqual(os.listdir(revisions[0]), [view])
        # Offline there is no listing: v1 is read from the folder an online read of it made (the
        # cache folder, last filled at v1, also held master's validation split).
        self.env["MODELSCOPE_OFFLINE"] = "1"
        d = self.info("hub:alice/dsv@v1")
        self.assertEqual({s["name"]: s["rows"] for s in d["splits"]}, {"train": 1})
        self.assertIn("v1-row", json.dumps(self.head("hub:alice/dsv@v1")))

    @needs("ZIP", "HUB_SERVER")
    def test_hub_datasets_read_as_msdataset_reads_them(self):
        from hubserver import HubServer
        server = HubServer(self.path("hubroot"))
        tokens = {user: server.token(user) for user in ("damo", "modelscope", "alice")}
        server.start()
        self.addCleanup(server.stop)
        self.env.update({"MODELSCOPE_ENDPOINT": server.endpoint,
                         "MODELSCOPE_CREDENTIALS_PATH": self.path("credentials")})

        def upload(owner, name, files):
            for rel, text in files.items():
                self.write(f"{owner}-{name}/{rel}", text)
            env = dict(self.env, MODELSCOPE_API_TOKEN=tokens[owner])
            self.assertExit(run_ms("upload", f"{owner}/{name}", self.path(f"{owner}-{name}"),
                                   "--dataset", "--create", env=env), 0)

        # A bare name is MsDataset.load's namespace "modelscope" (models' is "damo").
        upload("damo", "nsd", {"train.csv": "who\ndamo\n"})
        upload("modelscope", "nsd", {"train.csv": "who\nmodelscope\n"})
        self.assertEqual(self.head("hub:nsd"), [{"who": "modelscope"}])
        # Splits from folders named by a keyword at any depth; those found, a keyword in a file
        # name no longer counts (Hugging Face's order).
        upload("alice", "deep", {"train/a/x.jsonl": '{"x": 1}\n', "train/b/y.jsonl": '{"x": 2}\n',
                                 "data/test/z.jsonl": '{"x": 3}\n',
                                 "data/dataset-dev.jsonl": '{"x": 4}\n'})
        d = self.info("hub:alice/deep")
        self.assertEqual({s["name"]: s["rows"] for s in d["splits"]}, {"train": 2, "test": 1})
        # A repo whose loading script makes the data is not read around the script.
        upload("alice", "scripted", {"scripted.py": "import datasets\n", "data.csv": "x\n1\n"})
        r = self.ms("dataset", "info", "hub:alice/scripted")
        self.assertExit(r, 6)
        self.assertOneLineError(r, "scripted.py", "does not run")

    def test_dataset_served_by_ms_hub_serve(self):
        """The ModelScope layout uploaded to a real `ms hub serve`: the files fetched back the way
        a snapshot download does (tree listing, then each file) load as a dataset folder, and a
        zip loads straight from its hub file URL."""
        import urllib.parse
        from hubserver import HubServer
        server = HubServer(self.path("hubroot"))
        token = server.token("alice")
        server.start()
        self.addCleanup(server.stop)
        boundary = "----msds"
        fields = {"Name": "fmnist_zip", "ChineseName": "", "Owner": "alice", "License": "MIT",
                  "Visibility": "5", "Description": "Fashion-MNIST sample"}
        body = "".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                       for k, v in fields.items()) + f"--{boundary}--\r\n"
        status, _, out = server.request("POST", "/api/v1/datasets", body.encode(), token,
                                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        self.assertEqual(status, 200, out)
        src = os.path.join(FIXTURES, "fmnist_zip")
        small, big = {}, {}
        for name in os.listdir(src):
            with open(os.path.join(src, name), "rb") as f:
                (big if name.endswith(".zip") else small)[name] = f.read()
        status, env = server.commit(token, "alice/fmnist_zip", files=small, lfs=big, kind="datasets")
        self.assertEqual(status, 200, env)

        status, env = server.api("GET", "/api/v1/datasets/alice/fmnist_zip")
        ds_id = env["Data"]["Id"]
        q = urllib.parse.urlencode({"Revision": "master", "Root": "/", "Recursive": "True",
                                    "PageNumber": 1, "PageSize": 100})
        status, env = server.api("GET", f"/api/v1/datasets/{ds_id}/repo/tree?{q}")
        self.assertEqual(status, 200, env)
        snap = self.path("snapshot", "fmnist_zip")
        for entry in env["Data"]["Files"]:
            if entry["Type"] != "blob":
                continue
            status, _, data = server.download("alice/fmnist_zip", entry["Path"], kind="datasets")
            self.assertEqual(status, 200)
            self.write(os.path.join("snapshot", "fmnist_zip", entry["Path"]), data, "wb")
        d = self.info("folder:" + snap, "--subset", "default")
        self.assertEqual([(s["name"], s["rows"]) for s in d["splits"]], [("train", 120), ("test", 40)])
        self.assertEqual(self.info(snap, "--subset", "iris")["splits"][0]["rows"], 150)

        q = urllib.parse.urlencode({"Source": "SDK", "Revision": "master", "FilePath": "train.zip"})
        d = self.info(f"zip:{server.endpoint}/api/v1/datasets/alice/fmnist_zip/repo?{q}")
        self.assertEqual([(s["name"], s["rows"]) for s in d["splits"]], [("train", 120)])
        self.assertEqual(len(d["labels"]), 10)

        # The same dataset by its hub id: downloaded through the hub client into the cache, then
        # found there offline with the server gone.
        self.env["MODELSCOPE_ENDPOINT"] = server.endpoint
        d = self.info("hub:alice/fmnist_zip:default/test")
        self.assertEqual([(s["name"], s["rows"]) for s in d["splits"]], [("test", 40)])
        self.assertTrue(os.path.isfile(self.path("cache", "datasets", "alice", "fmnist_zip", "test.zip")))
        r = self.ms("dataset", "info", "hub:alice/fmnist_zip:nosuch")
        self.assertExit(r, 4)
        self.assertOneLineError(r, "nosuch")
        self.assertIn("default", r.stderr)
        server.stop()
        self.env["MODELSCOPE_OFFLINE"] = "1"
        d = self.info("hub:alice/fmnist_zip", "--subset", "iris")
        self.assertEqual(d["splits"][0]["rows"], 150)

    @needs("ZIP")
    def test_unsafe_archives_rejected(self):
        cases = {}
        with zipfile.ZipFile(self.path("slip.zip"), "w") as z:
            z.writestr("ok/a.csv", "a\n1\n")
            z.writestr("ok/../../evil.csv", "a\n1\n")
        cases["slip.zip"] = "../evil.csv"
        with zipfile.ZipFile(self.path("abs.zip"), "w") as z:
            z.writestr("/tmp/evil.csv", "a\n1\n")
        cases["abs.zip"] = "/tmp/evil.csv"
        with zipfile.ZipFile(self.path("link.zip"), "w") as z:
            info = zipfile.ZipInfo("data/link")
            info.create_system = 3
            info.external_attr = 0o120777 << 16
            z.writestr(info, "../../../etc")
        cases["link.zip"] = "points outside"
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            with zipfile.ZipFile(self.path("dup.zip"), "w") as z:
                z.writestr("d/x.csv", "a\n1\n")
                z.writestr("d/x.csv", "a\n2\n")
        cases["dup.zip"] = "already exists"  # libzip refuses duplicate names when opening
        with zipfile.ZipFile(self.path("clash.zip"), "w") as z:
            z.writestr("d", "a file")
            z.writestr("d/x.csv", "a\n1\n")
        cases["clash.zip"] = "clashes"
        for name, fragment in cases.items():
            r = self.ms("dataset", "info", "zip:" + self.path(name))
            self.assertExit(r, 7, name)
            self.assertOneLineError(r, name, fragment)
        self.assertFalse(os.path.exists(self.path("evil.csv")))
        extracted = self.path("cache", "datasets", "extracted")
        self.assertEqual([e for e in os.listdir(extracted) if not e.startswith(".")]
                         if os.path.exists(extracted) else [], [])
        with zipfile.ZipFile(self.path("bomb.zip"), "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("big.bin", b"\0" * (20 << 20))
        r = run_ms("dataset", "info", "zip:" + self.path("bomb.zip"),
                   env={**self.env, "MS_DATASET_MAX_EXTRACT_BYTES": "1000000"})
        self.assertExit(r, 7)
        self.assertOneLineError(r, "bomb.zip", "1000000")
        with zipfile.ZipFile(self.path("many.zip"), "w") as z:
            for i in range(50):
                z.writestr(f"f{i}.txt", "x")
        r = run_ms("dataset", "info", "zip:" + self.path("many.zip"),
                   env={**self.env, "MS_DATASET_MAX_EXTRACT_ENTRIES": "10"})
        self.assertExit(r, 7)
        self.assertOneLineError(r, "many.zip", "50 entries")
        r = self.ms("dataset", "info", "zip:" + self.write("notzip.zip", "plain text"))
        self.assertExit(r, 7)

    @needs("ZIP")
    def test_zip_bomb_ratio(self):
        # Issue 12: a 1 MiB zip extracted 1.1 GiB into the cache; only the 64 GiB cap applied.
        # Ratios are counted from the bytes actually inflated, so a header that lies does not help.
        extracted = self.path("cache", "datasets", "extracted")

        def nothing_extracted():
            return [e for e in os.listdir(extracted) if not e.startswith(".")] if os.path.exists(extracted) else []

        def make(name, files):
            with zipfile.ZipFile(self.path(name), "w", zipfile.ZIP_DEFLATED) as z:
                for entry, data in files:
                    z.writestr(entry, data)
            return self.path(name)

        def set_sizes(path, usize):
            # The uncompressed size in the local and the central header: what a lying archive claims.
            with open(path, "rb") as f:
                data = bytearray(f.read())
            for magic, offset in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)]:
                at = data.find(magic)
                data[at + offset:at + offset + 4] = struct.pack("<I", usize)
            with open(path, "wb") as f:
                f.write(data)
            return path

        zeros = b"a\n" + b"0\n" * (5 << 20)  # 10 MiB of CSV, about 1000:1 deflated
        bomb = make("bomb.zip", [("train.csv", zeros)])
        liar = set_sizes(make("liar.zip", [("train.csv", zeros)]), 100)
        many = make("many.zip", [(f"part{i}/train.csv", b"a\n" + b"0\n" * (1 << 18)) for i in range(40)])
        for path, what in [(bomb, "entry 'train.csv'"), (liar, "entry 'train.csv'"), (many, "the archive")]:
            r = self.ms("dataset", "info", "zip:" + path)
            self.assertExit(r, 7, path)
            self.assertOneLineError(r, os.path.basename(path), what, "more than 200 times")
            self.assertIn("MS_DATASET_MAX_EXTRACT_RATIO", r.stderr)
            self.assertEqual(nothing_extracted(), [])
        # The limit is configurable (0 turns it off); small compressible files and headers claiming
        # huge sizes are not rejected by the ratio.
        r = run_ms("dataset", "info", "zip:" + bomb, "--json",
                   env={**self.env, "MS_DATASET_MAX_EXTRACT_RATIO": "2000"})
        self.assertExit(r, 0)
        self.assertEqual(self.json_out(r)["splits"][0]["rows"], 5 << 20)
        r = run_ms("dataset", "info", "zip:" + liar, env={**self.env, "MS_DATASET_MAX_EXTRACT_RATIO": "0"})
        self.assertNotIn("times its compressed size", r.stderr)
        small = make("small.zip", [("train.csv", b"a\n" + b"0\n" * (200 << 10))])
        self.assertEqual(self.info("zip:" + small)["splits"][0]["rows"], 200 << 10)
        claims = set_sizes(make("claims.zip", [("train.csv", b"a\n1\n")]), 0xFFFFFFF0)
        self.assertEqual(self.info("zip:" + claims)["splits"][0]["rows"], 1)
        r = run_ms("dataset", "info", "zip:" + many, env={**self.env, "MS_DATASET_MAX_EXTRACT_RATIO": "x"})
        self.assertExit(r, 2)

    # --- specs --------------------------------------------------------------------------------

    def test_specs_and_hub_datasets_offline(self):
        # Offline with an empty cache: the hub client makes no call and names the repo.
        r = run_ms("dataset", "info", "hub:owner/name@v1:default/train",
                   env={**self.env, "MODELSCOPE_OFFLINE": "1", "MODELSCOPE_ENDPOINT": "http://127.0.0.1:1"})
        self.assertExit(r, 4)
        self.assertOneLineError(r, "owner/name")
        r = self.ms("dataset", "info", "cvs:" + IRIS)
        self.assertExit(r, 2)
        self.assertOneLineError(r, "cvs")
        r = self.ms("dataset", "info", self.path("nope.csv"))
        self.assertExit(r, 4)
        r = self.ms("dataset", "info", "csv:" + self.path("nope.csv"))
        self.assertExit(r, 4)
        self.assertOneLineError(r, "nope.csv")
        r = self.ms("dataset", "info", "imagefolder:" + self.path("nope"))
        self.assertExit(r, 4)
        r = self.ms("dataset", "info", IRIS, "--subset", "other")
        self.assertExit(r, 4)



# --- parquet ---------------------------------------------------------------------------------------

# Writes the Parquet fixtures with pyarrow and records what Hugging Face's datasets reads from each
# (the peer's rows as JSON values: NaN as null, as ms shows a missing float) into expected.json.
PARQUET_WRITER = r'''
import json, math, os, sys
import pyarrow as pa, pyarrow.parquet as pq
import datasets
datasets.disable_progress_bars()
root = sys.argv[1]
n = 45
def column(values, t):
    return pa.array(values, t)
table = pa.table({
    "i8": column([None if i % 7 == 3 else (i * 37) % 256 - 128 for i in range(n)], pa.int8()),
    "i16": column([i * 1000 - 20000 for i in range(n)], pa.int16()),
    "i32": column([i * 100000 for i in range(n)], pa.int32()),
    "i64": column([None if i % 5 == 0 else i * 10 ** 12 for i in range(n)], pa.int64()),
    "u8": column([i % 256 for i in range(n)], pa.uint8()),
    "u16": column([65535 - i for i in range(n)], pa.uint16()),
    "u32": column([4294967295 - i for i in range(n)], pa.uint32()),
    "f32": column([i / 4 for i in range(n)], pa.float32()),
    "f64": column([None if i == 4 else (float("nan") if i == 6 else i / 3) for i in range(n)],
                  pa.float64()),
    "flag": column([None if i == 2 else i % 3 == 0 for i in range(n)], pa.bool_()),
    "text": column([None if i % 4 == 1 else f"row {i} héllo 日本 {'x' * (i % 9)}" for i in range(n)],
                   pa.string()),
    "label": column([i % 3 for i in range(n)], pa.int64()),
    "tokens": column([None if i % 6 == 5 else [f"t{j}é" for j in range(i % 4)] for i in range(n)],
                     pa.list_(pa.string())),
    "ner_tags": column([[j if j != 1 else None for j in range(i % 5)] for i in range(n)],
                       pa.list_(pa.int64())),
})
variants = {}
for codec in ["snappy", "gzip", "zstd", "none"]:
    for dictionary in [True, False]:
        for version in ["1.0", "2.0"]:
            name = f"{codec}-{'dict' if dictionary else 'plain'}-v{version[0]}.parquet"
            pq.write_table(table, os.path.join(root, name), compression=codec,
                           use_dictionary=dictionary, data_page_version=version,
                           row_group_size=10, data_page_size=64, write_batch_size=4)
            variants[name] = None
pq.write_table(table, os.path.join(root, "delta.parquet"), use_dictionary=False,
               column_encoding={"i32": "DELTA_BINARY_PACKED", "i64": "DELTA_BINARY_PACKED",
                                "text": "DELTA_BYTE_ARRAY", "label": "DELTA_BINARY_PACKED"})
variants["delta.parquet"] = None
pq.write_table(table.select(["text", "label"]), os.path.join(root, "len.parquet"),
               use_dictionary=False, column_encoding={"text": "DELTA_LENGTH_BYTE_ARRAY"})
variants["len.parquet"] = None
def clean(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, list):
        return [clean(x) for x in v]
    return v
expected = {}
for name in variants:
    ds = datasets.load_dataset("parquet", data_files=os.path.join(root, name), split="train")
    expected[name] = [{k: clean(v) for k, v in row.items()} for row in ds]
# A Hugging Face layout: two train shards and a test shard.
os.makedirs(os.path.join(root, "hf", "data"))
pq.write_table(table.slice(0, 20), os.path.join(root, "hf/data/train-00000-of-00002.parquet"))
pq.write_table(table.slice(20, 15), os.path.join(root, "hf/data/train-00001-of-00002.parquet"))
pq.write_table(table.slice(35), os.path.join(root, "hf/data/test-00000-of-00001.parquet"))
hf = datasets.load_dataset(os.path.join(root, "hf"))
expected["hf"] = {s: [{k: clean(v) for k, v in row.items()} for row in hf[s]] for s in hf}
# Columns ms leaves out (a struct: Hugging Face's Image feature; binary data), and LZ4 pages,
# which it refuses. The shards of struct-shards/ each hold the struct column.
struct_table = pa.table({"image": pa.array([{"bytes": b"\x89PNG", "path": "a.png"},
                                            {"bytes": b"\xff\xd8", "path": "b.jpg"}]),
                         "blob": pa.array([b"\x00\x01", b""], pa.binary()),
                         "label": [1, 0], "text": ["first", "second"]})
pq.write_table(struct_table, os.path.join(root, "struct.parquet"))
os.makedirs(os.path.join(root, "struct-shards"))
for i in range(2):
    pq.write_table(struct_table.slice(i, 1),
                   os.path.join(root, "struct-shards", f"train-0000{i}-of-00002.parquet"))
pq.write_table(table, os.path.join(root, "lz4.parquet"), compression="lz4")
pq.write_table(table, os.path.join(root, "groups.parquet"), row_group_size=20)
# The hub's layout of the same shards: a README whose configs name them.
import shutil
shutil.copytree(os.path.join(root, "hf"), os.path.join(root, "hf-card"))
with open(os.path.join(root, "hf-card", "README.md"), "w") as f:
    f.write("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
            "    path: data/train-*\n  - split: test\n    path: data/test-*\n---\n# card\n")
# Edge cases: infinities (text, as a CSV column of them), a null-typed column, a 0-row file,
# two columns of one name, nanosecond timestamps, an infinity inside a list.
pq.write_table(pa.table({"x": pa.array([float("inf"), float("-inf"), 1.0, float("nan"), 2.5e20]),
                         "nothing": pa.nulls(5)}), os.path.join(root, "inf.parquet"))
pq.write_table(pa.table({"a": pa.array([], pa.int64())}), os.path.join(root, "empty.parquet"))
pq.write_table(pa.table([pa.array([1]), pa.array([2])], names=["a", "a"]),
               os.path.join(root, "twice.parquet"))
pq.write_table(pa.table({"v": pa.array([[float("inf")]], pa.list_(pa.float64()))}),
               os.path.join(root, "inf-list.parquet"))
stamps = pa.array([250000000, 1500, None], pa.timestamp("ns"))
pq.write_table(pa.table({"t": stamps, "u": pa.array([250000, 1, None], pa.timestamp("us"))}),
               os.path.join(root, "ts.parquet"))
ts = datasets.load_dataset("parquet", data_files=os.path.join(root, "ts.parquet"), split="train")
expected["ts"] = [{k: None if v is None else str(v) for k, v in row.items()} for row in ts]
# A dictionary bomb: 4,000 rows naming one 1 MB string (4 GB as rows) in a file of a few KB.
import numpy as np
bomb = pa.DictionaryArray.from_arrays(pa.array(np.zeros(4000, np.int32)), pa.array(["x" * 1000000]))
pq.write_table(pa.table({"s": bomb}), os.path.join(root, "bomb.parquet"), compression="zstd")
# Hugging Face features in the "huggingface" metadata: a Json column of mixed values (a JSON lines
# column of texts and numbers saved to Parquet) and ClassLabel columns, as to_parquet writes them.
features = datasets.Features({"a": datasets.Value("int64"), "m": datasets.Json(),
                              "label": datasets.ClassLabel(names=["neg", "neu", "pos"]),
                              "tags": datasets.List(datasets.ClassLabel(names=["O", "B"]))})
datasets.Dataset.from_dict({"a": [1, 2, 3, 4], "m": ["text", 5, [1, 2], {"k": 1, "b": None}],
                            "label": [0, 1, 2, 1], "tags": [[0, 1], [], [1], [0]]},
                           features=features).to_parquet(os.path.join(root, "features.parquet"))
feat = datasets.load_dataset("parquet", data_files=os.path.join(root, "features.parquet"),
                             split="train")
expected["features"] = {"rows": [dict(row) for row in feat],
                        "names": {k: (f.names if hasattr(f, "names") else f.feature.names)
                                  for k, f in feat.features.items() if k in ("label", "tags")}}
with open(os.path.join(root, "expected.json"), "w") as f:
    json.dump(expected, f, ensure_ascii=False)
'''


def python_with_pyarrow():
    """The Python of the newest modelscope venv of scripts/setup_python_interop.sh (pyarrow and
    datasets 4.8.4 are in it), or None."""
    from hub_fixture import modelscope_pythons
    for python in reversed(list(modelscope_pythons().values())):
        r = subprocess.run([python, "-c", "import pyarrow, datasets"], capture_output=True, timeout=120)
        if r.returncode == 0:
            return python
    return None


def python_with_newest_datasets():
    """The Python of build/venv-datasets (scripts/setup_python_interop.sh: datasets 5.2.0, the
    newest release, pinned in scripts/requirements-datasets.txt), or None."""
    builds = [os.path.join(SOURCE_DIR, "build")]
    if MS_BIN:
        builds.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(MS_BIN))))
    for build in builds:
        python = os.path.join(build, "venv-datasets", "bin", "python")
        if os.path.exists(python) and subprocess.run(
                [python, "-c", "import pyarrow, datasets"], capture_output=True, timeout=120).returncode == 0:
            return python
    return None


def run_peer(python, script, root):
    """Runs a fixture script under a peer's Python (offline, its cache in `root`); returns its
    expected.json."""
    r = subprocess.run([python, "-c", script, root], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "HF_DATASETS_CACHE": os.path.join(root, ".hf"),
                            "HF_HUB_OFFLINE": "1"})
    if r.returncode != 0:
        raise RuntimeError(f"the fixture script failed under {python}:\n{r.stderr}")
    with open(os.path.join(root, "expected.json")) as f:
        return json.load(f)


class PeerFixtureCase(MsTestCase):
    """Fixtures a peer writes and reads (SCRIPT, run by run_peer under peer_python(): the
    datasets 4.8.4 of the newest modelscope venv, or 5.2.0 where a subclass says so) into
    self.root, with what the peer read in self.expected, for ms to be compared with."""
    SCRIPT = None

    @staticmethod
    def peer_python():
        return python_with_pyarrow()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = None
        python = cls.peer_python()
        if python is None:
            return
        cls.root = tempfile.mkdtemp(prefix="ms-peer-")
        cls.expected = run_peer(python, cls.SCRIPT, cls.root)

    @classmethod
    def tearDownClass(cls):
        if cls.root:
            shutil.rmtree(cls.root, True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self.root is None:
            self.skipTest("needs the venvs of scripts/setup_python_interop.sh (datasets 4.8.4 in "
                          "the newest modelscope venv, 5.2.0 in build/venv-datasets)")
        self.env = {"MODELSCOPE_CACHE": self.path("cache")}


class ParquetTest(PeerFixtureCase):
    """Parquet files as pyarrow writes them, read by ms as Hugging Face's datasets reads them: the
    datasets 4.8.4 of the newest modelscope venv here, 5.2.0 in ParquetTestNewestDatasets."""

    SCRIPT = PARQUET_WRITER

    def head(self, spec):
        r = run_ms("dataset", "head", spec, "--json", "-n", "1000", env=self.env)
        self.assertExit(r, 0)
        return [json.loads(line) for line in r.stdout.splitlines()]

    def test_rows_match_datasets_for_every_codec_encoding_and_page_version(self):
        names = [n for n in self.expected if n.endswith(".parquet")]
        self.assertEqual(len(names), 18)
        for name in names:
            with self.subTest(name):
                rows = self.head(os.path.join(self.root, name))
                self.assertEqual(rows, self.expected[name])
                # The parquet: prefix reads the same.
                self.assertEqual(self.head("parquet:" + os.path.join(self.root, name)), rows)

    def test_info_rows_and_types(self):
        r = run_ms("dataset", "info", os.path.join(self.root, "snappy-dict-v1.parquet"), "--json", env=self.env)
        self.assertExit(r, 0)
        d = self.json_out(r)
        self.assertEqual([(s["name"], s["rows"]) for s in d["splits"]], [("train", 45)])
        types = {c["name"]: c["type"] for c in d["splits"][0]["columns"]}
        self.assertEqual(types, {"i8": "int", "i16": "int", "i32": "int", "i64": "int", "u8": "int",
                                 "u16": "int", "u32": "int", "f32": "float", "f64": "float",
                                 "flag": "bool", "text": "string", "label": "int", "tokens": "json",
                                 "ner_tags": "json"})

    def test_hugging_face_shards_are_splits(self):
        hf = os.path.join(self.root, "hf")
        r = run_ms("dataset", "info", hf, "--json", env=self.env)
        self.assertExit(r, 0)
        d = self.json_out(r)
        self.assertEqual(d["kind"], "parquet")
        self.assertEqual([(s["name"], s["rows"]) for s in d["splits"]], [("train", 35), ("test", 10)])
        rows = self.head(hf)
        for split in ("train", "test"):
            got = [{k: v for k, v in row.items() if k != "_split"} for row in rows if row["_split"] == split]
            self.assertEqual(got, self.expected["hf"][split], split)

    def test_unread_column_types_are_left_out_by_name_and_lz4_refused(self):
        # A struct (datasets' Image feature) or binary column is left out with a warning naming
        # it and its type; the other columns read (a text job on them works). It failed the whole
        # dataset before.
        r = run_ms("dataset", "info", os.path.join(self.root, "struct.parquet"), "--json",
                   env=self.env)
        self.assertExit(r, 0)
        types = {c["name"]: c["type"] for c in self.json_out(r)["splits"][0]["columns"]}
        self.assertEqual(types, {"label": "int", "text": "string"})
        self.assertIn("column 'image': its type is struct<bytes: binary, path: string>", r.stderr)
        self.assertIn("column 'blob': its type is binary", r.stderr)
        self.assertIn("left out", r.stderr)
        self.assertEqual(self.head(os.path.join(self.root, "struct.parquet")),
                         [{"label": 1, "text": "first"}, {"label": 0, "text": "second"}])
        # Said once for a dataset of many shards, not once per shard.
        r = run_ms("dataset", "head", os.path.join(self.root, "struct-shards"), "--json",
                   env=self.env)
        self.assertExit(r, 0)
        self.assertEqual([json.loads(line)["text"] for line in r.stdout.splitlines()],
                         ["first", "second"])
        self.assertEqual(r.stderr.count("column 'image'"), 1, r.stderr)
        r = run_ms("dataset", "info", os.path.join(self.root, "lz4.parquet"), env=self.env)
        self.assertExit(r, 6)
        self.assertIn("LZ4", r.stderr)

    def test_the_hub_layout_with_a_dataset_card_naming_the_shards(self):
        r = run_ms("dataset", "info", os.path.join(self.root, "hf-card"), "--json", env=self.env)
        self.assertExit(r, 0)
        d = self.json_out(r)
        self.assertEqual([(s["name"], s["rows"]) for s in d["splits"]], [("train", 35), ("test", 10)])
        rows = self.head(os.path.join(self.root, "hf-card"))
        self.assertEqual([{k: v for k, v in row.items() if k != "_split"} for row in rows
                          if row["_split"] == "test"], self.expected["hf"]["test"])

    def test_edge_values_and_shapes(self):
        # Infinities have no JSON form: the column is text, as a CSV column of them (NaN: null).
        r = run_ms("dataset", "info", os.path.join(self.root, "inf.parquet"), "--json", env=self.env)
        self.assertExit(r, 0)
        types = {c["name"]: c["type"] for c in self.json_out(r)["splits"][0]["columns"]}
        self.assertEqual(types, {"x": "string", "nothing": "null"})
        self.assertEqual([row["x"] for row in self.head(os.path.join(self.root, "inf.parquet"))],
                         ["inf", "-inf", "1.0", None, "2.5e+20"])
        self.assertEqual(self.head(os.path.join(self.root, "empty.parquet")), [])
        r = run_ms("dataset", "info", os.path.join(self.root, "twice.parquet"), env=self.env)
        self.assertExit(r, 7)
        self.assertIn("two columns are named 'a'", r.stderr)
        r = run_ms("dataset", "info", os.path.join(self.root, "inf-list.parquet"), env=self.env)
        self.assertExit(r, 6)
        self.assertIn("infinity", r.stderr)
        # Timestamps as Python prints what datasets gives (microseconds unless there are nanos).
        self.assertEqual(self.head(os.path.join(self.root, "ts.parquet")), self.expected["ts"])

    def test_json_and_class_label_features_as_datasets_reads_them(self):
        # The Json column was text of JSON ("\"text\"", "5"); the values are datasets' own.
        path = os.path.join(self.root, "features.parquet")
        self.assertEqual(json.dumps(self.head(path)), json.dumps(self.expected["features"]["rows"]))
        r = run_ms("dataset", "info", path, "--json", env=self.env)
        self.assertExit(r, 0)
        columns = {c["name"]: c for c in self.json_out(r)["splits"][0]["columns"]}
        self.assertEqual(columns["m"]["type"], "json")
        self.assertEqual({k: columns[k]["names"] for k in ("label", "tags")},
                         self.expected["features"]["names"])
        self.assertNotIn("names", columns["a"])
        r = run_ms("dataset", "info", path, env=self.env)
        self.assertExit(r, 0)
        self.assertRegex(r.stdout, r"label +int +classes: 0=neg, 1=neu, 2=pos")

    def test_a_dictionary_bomb_is_refused_before_it_is_built(self):
        # 4,000 rows that each copy one 1 MB dictionary string: refused by the memory limit for
        # a file of its size (checked before the copies), not decoded into 4 GB.
        r = run_ms("dataset", "info", os.path.join(self.root, "bomb.parquet"), env=self.env)
        self.assertExit(r, 7)
        self.assertIn("MS_DATASET_MAX_EXTRACT_RATIO", r.stderr)

    def test_head_reads_the_footer_and_the_row_groups_it_shows(self):
        # A terabyte hole between the row groups and the footer (the first group's offsets still
        # hold; the later ones' point into the hole): head -n 5 reads the footer and the first
        # group only. It read the whole file first, and ran out of memory.
        with open(os.path.join(self.root, "groups.parquet"), "rb") as f:
            data = f.read()
        footer_start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
        holed = self.path("holed.parquet")
        with open(holed, "wb") as f:
            f.write(data[:footer_start])
            f.seek(1 << 40, os.SEEK_CUR)
            f.write(data[footer_start:])
        first = run_ms("dataset", "head", holed, "--json", "-n", "5", env=self.env)
        self.assertExit(first, 0)
        # The same rows as the file read whole (a gzip-compressed copy is: it cannot be read by
        # byte ranges).
        import gzip
        packed = self.path("packed.parquet")
        with gzip.open(packed, "wb") as f:
            f.write(data)
        whole = run_ms("dataset", "head", packed, "--json", "-n", "5", env=self.env)
        self.assertExit(whole, 0)
        self.assertEqual(first.stdout, whole.stdout)
        self.assertEqual(len(first.stdout.splitlines()), 5)

    def test_corrupt_and_truncated_files_name_the_file(self):
        with open(os.path.join(self.root, "snappy-dict-v1.parquet"), "rb") as f:
            data = f.read()
        bad = self.path("bad.parquet")
        # A page's bytes changed: snappy or the page header then fails; then a cut-off file.
        for body in (data[:200] + bytes(b ^ 0x5A for b in data[200:260]) + data[260:], data[:len(data) // 2]):
            with open(bad, "wb") as f:
                f.write(body)
            r = run_ms("dataset", "info", bad, env=self.env)
            self.assertExit(r, 7)
            self.assertIn("bad.parquet", r.stderr)


class ParquetTestNewestDatasets(ParquetTest):
    """ParquetTest's checks with the fixtures written and read by datasets 5.2.0 (build/venv-datasets)."""

    @staticmethod
    def peer_python():
        return python_with_newest_datasets()


# --- dataset cards, CSV types, imagefolder metadata, against datasets ------------------------------

# Writes folders whose reading ms used to get wrong and records what Hugging Face's datasets'
# load_dataset(FOLDER) gives for each: split -> rows (an image as its file's name) into
# expected.json.
PEER_CASES = r'''
import json, math, os, sys
import datasets
datasets.disable_progress_bars()
root = sys.argv[1]
def write(rel, text, mode="w"):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)
def card(configs):
    return "---\nconfigs:\n" + configs + "---\n# card\n"
# data_files globs: * stays within a folder, ** is zero or more folders.
for case, pattern in [("glob", "data/*.csv"), ("dstar", "data/**/*.csv")]:
    write(f"{case}/data/top.csv", "a\n1\n")
    write(f"{case}/data/sub/y.csv", "a\n2\n")
    write(f"{case}/README.md", card(f"- config_name: default\n  data_files: \"{pattern}\"\n"))
write("named_default/other.csv", "a\n1\n")
write("named_default/default.csv", "a\n2\n")
write("named_default/README.md", card("- config_name: other\n  data_files: other.csv\n"
                                      "- config_name: default\n  data_files: default.csv\n"))
write("datadir/sub/train.csv", "a,src\n1,sub/train.csv\n")
write("datadir/sub/test.csv", "a,src\n1,sub/test.csv\n")
write("datadir/README.md", card("- config_name: default\n  data_dir: sub\n"))
write("sep/a.csv", "a;b\n1;x\n2;y\n")
write("sep/README.md", card("- config_name: default\n  data_files: a.csv\n  sep: ';'\n"))
write("csv_blank/train.csv", "n,m,s\n1,1,a\n,2,b\n3,3,\n")
write("tsv_blank/train.tsv", "n\tm\n1\t1\n\t2\n")
write("jsonl_null/train.jsonl", '{"n": 1}\n{"n": null}\n{"n": 3}\n')
# Lines of only blanks (ms read them as rows of missing values, typing ints as text).
write("csv_spaces/train.csv", " \nid,text,label\n1,good movie,1\n \t\n2,bad movie,0\n \n")
# Records as `jq .` prints them, one after another (ms refused the file).
write("jq_json/train.json", '{\n  "a": 1,\n  "t": "x"\n}\n{\n  "a": 2,\n  "t": "y }"\n}\n')
# A key twice in one object: datasets refuses the file (ms kept the last value).
write("json_twice/train.jsonl", '{"id": 1, "text": "a"}\n{"id": 2, "text": "b", "text": "c"}\n')
# An imagefolder whose metadata is a Parquet file.
import pyarrow as pa, pyarrow.parquet as pq
from PIL import Image
os.makedirs(os.path.join(root, "if_parquet"))
for i in range(2):
    Image.new("RGB", (4, 3), (i, 0, 0)).save(os.path.join(root, "if_parquet", f"{i}.png"))
pq.write_table(pa.table({"file_name": ["0.png", "1.png"], "cap": ["a", "b"], "n": [1, None]}),
               os.path.join(root, "if_parquet", "metadata.parquet"))
def clean(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "filename") and hasattr(v, "size"):
        return os.path.basename(v.filename)
    return v
expected = {}
for case in ["glob", "dstar", "named_default", "datadir", "sep", "csv_blank", "tsv_blank",
             "jsonl_null", "if_parquet", "csv_spaces", "jq_json", "json_twice"]:
    try:
        ds = datasets.load_dataset(os.path.join(root, case))
    except Exception as e:  # what ms must refuse too
        expected[case] = {"refused": type(e).__name__}
        continue
    expected[case] = {s: [{k: clean(v) for k, v in row.items()} for row in ds[s]] for s in ds}
with open(os.path.join(root, "expected.json"), "w") as f:
    json.dump(expected, f, ensure_ascii=False)
'''


class DatasetsPeerTest(PeerFixtureCase):
    """Folders read by ms as Hugging Face's datasets reads them (PEER_CASES): the 4.8.4 of the
    newest modelscope venv here, 5.2.0 in DatasetsPeerTestNewestDatasets."""

    SCRIPT = PEER_CASES

    def rows(self, case):
        """split -> rows of `ms dataset head` on the case's folder (an image as its file's name)."""
        r = run_ms("dataset", "head", os.path.join(self.root, case), "--json", "-n", "1000", env=self.env)
        self.assertExit(r, 0)
        out = {}
        for line in r.stdout.splitlines():
            row = json.loads(line)
            split = row.pop("_split", "train")
            if "image" in row:
                row["image"] = os.path.basename(row["image"])
            out.setdefault(split, []).append(row)
        return out

    def assertReadsAsDatasets(self, case):
        # As JSON text: 1.0 and 1 are equal in Python, not in what ms gives.
        self.assertEqual(json.dumps(self.rows(case)), json.dumps(self.expected[case]), case)

    def test_card_globs_stay_within_a_folder_and_double_star_is_any_folders(self):
        self.assertReadsAsDatasets("glob")   # ms took data/sub/y.csv too
        self.assertReadsAsDatasets("dstar")  # ms missed data/top.csv

    def test_card_config_named_default_is_the_default(self):
        self.assertReadsAsDatasets("named_default")  # ms exited 2

    def test_card_data_dir_without_data_files(self):
        self.assertReadsAsDatasets("datadir")  # ms exited 3

    def test_card_sep(self):
        self.assertReadsAsDatasets("sep")  # ms read 'a;b' as one column

    def test_csv_integers_with_a_blank_are_floats_json_lines_keep_ints(self):
        for case in ("csv_blank", "tsv_blank", "jsonl_null"):
            self.assertReadsAsDatasets(case)

    def test_imagefolder_metadata_parquet(self):
        self.assertReadsAsDatasets("if_parquet")  # ms dropped its columns

    def test_blank_lines_records_over_lines_and_keys_given_twice(self):
        self.assertReadsAsDatasets("csv_spaces")  # ms: a row of " ", ids typed text
        self.assertReadsAsDatasets("jq_json")     # ms: exit 7
        # datasets refuses a key given twice; ms kept the last value without a word.
        self.assertIn("refused", self.expected["json_twice"])
        r = run_ms("dataset", "head", os.path.join(self.root, "json_twice"), env=self.env)
        self.assertExit(r, 7)
        self.assertIn('train.jsonl:2:', r.stderr)
        self.assertIn('key "text" appears twice', r.stderr)

    def test_card_keys_ms_does_not_read_are_named(self):
        folder = os.path.join(self.tmp, "keys")
        os.makedirs(folder)
        with open(os.path.join(folder, "a.csv"), "w") as f:
            f.write("a\n1\n")
        with open(os.path.join(folder, "README.md"), "w") as f:
            f.write("---\nconfigs:\n- config_name: default\n  data_files: a.csv\n  header: 0\n---\n")
        r = run_ms("dataset", "info", folder, "--json", env=self.env)
        self.assertExit(r, 0)
        self.assertIn("key 'header' is not read by ms", r.stderr)


class DatasetsPeerTestNewestDatasets(DatasetsPeerTest):
    """DatasetsPeerTest's checks against datasets 5.2.0 (build/venv-datasets)."""

    @staticmethod
    def peer_python():
        return python_with_newest_datasets()


if __name__ == "__main__":
    unittest.main()

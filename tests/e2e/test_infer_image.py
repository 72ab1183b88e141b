"""`ms infer` image-classification: a small CNN (committed fixture, also as a traced TorchScript
module for the generic TorchScript pipeline) and ResNet-18/50 (random
torchvision weights generated at test time by scripts/make_tiny_vision.py, since they are too big
to commit) against torchvision within 1e-4; undecodable and non-image inputs become error lines.

The ResNet cases need a Python with torch + torchvision + PIL (harness.torch_python(): Debian's
/usr/bin/python3 with the packages scripts/setup.sh installs); they are skipped (with the reason)
when there is none, which MS_TESTS_STRICT=1 turns into a failure.
"""
import json
import os
import subprocess
import unittest

from harness import (STRICT, SOURCE_DIR, JsonLinesWorker, TorchTestCase, component_available,
                     newest_torch_python, python_imports, run_ms, torch_python)

VISION = os.path.join(SOURCE_DIR, "tests", "data", "infer", "vision")
IMAGES = os.path.join(VISION, "images")
DEVICE = os.environ.get("MS_INFER_DEVICE", "cpu")


def lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


# The torchvision side of compare_with_torchvision, one process for the test class (importing
# torch and torchvision costs seconds): each request (a JSON line: a folder, configuration.json's
# transforms, image sizes "WxH", the crop) writes an identity network (flatten, all values as
# scores) as model/model.pt and random PNGs of the sizes into imgs/, and answers with what the
# transforms make of each image, from PIL images, as ModelScope runs them ({"images": ...}), or
# with {"error": traceback}: a request torchvision refuses fails that comparison only.
TORCHVISION_PEER = r"""
import json, sys, traceback
import numpy as np, torch, torchvision.transforms as T
from PIL import Image

class Flat(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)

def answer(request):
    out, crop = request["folder"], request["crop"]
    torch.jit.trace(Flat(), torch.zeros(1, 3, crop, crop)).save(out + "/model/model.pt")
    steps = []
    for t in request["transforms"]:
        kind = t.pop("type")
        steps.append(getattr(T, kind)(**t))
    tf = T.Compose(steps)
    rng = np.random.default_rng(1)
    ref = {}
    for size in request["sizes"]:
        w, h = map(int, size.split("x"))
        path = f"{out}/imgs/{size}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        ref[size + ".png"] = tf(Image.open(path).convert("RGB")).flatten().tolist()
    return {"images": ref}

for line in sys.stdin:
    try:
        reply = answer(json.loads(line))
    except Exception:
        reply = {"error": traceback.format_exc()}
    print(json.dumps(reply), flush=True)
"""



class ImageTest(TorchTestCase):
    def pil_python(self, jpeg=False):
        """A Python with PIL and numpy, for the reference pixels; the test is skipped without one
        (or, with `jpeg`, in a build without JPEG)."""
        if jpeg and not component_available("jpeg"):
            self.skipTest("this ms is built without JPEG")
        py = torch_python(("PIL", "numpy"))
        if py is None:
            self.skipTest("no Python with PIL and numpy (apt-get install python3-pil python3-numpy)")
        return py

    def newest_pil_python(self):
        """build/venv-torch-newest's Python, with the newest Pillow (13), which users run: ms
        turns and resizes images as it does (Pillow 12 and older resize some images in the other
        order, one grey level apart). Debian's PIL 9.4 stands in outside CI."""
        py = newest_torch_python()
        if py and python_imports(py, ("PIL", "numpy")):
            return py
        if STRICT:
            self.fail("MS_TESTS_STRICT=1: build/venv-torch-newest with Pillow is absent (run "
                      "scripts/setup_python_interop.sh)")
        return self.pil_python()

    def check(self, model_dir, labels=None):
        with open(os.path.join(model_dir, "expected.json")) as f:
            ref = json.load(f)
        r = run_ms("infer", "-m", model_dir, "--input-dir", IMAGES, "-b", "3", "--device", DEVICE, timeout=300)
        self.assertExit(r, 0)
        got = {g["id"]: g for g in lines(r.stdout)}
        self.assertEqual(sorted(got), ["a.png", "b.png", "broken.png", "c.jpg"])
        jpeg = component_available("jpeg")
        for name, want in ref["items"].items():
            if name.endswith(".jpg") and not jpeg:
                continue
            names = [labels[i] if labels else f"LABEL_{i}" for i in want["indices"]]
            have = got[name]
            # Ties at (numerically) zero probability may order differently; compare what matters.
            for s_want, s_have, n_want, n_have in zip(want["scores"], have["scores"], names, have["labels"]):
                self.assertLess(abs(s_want - s_have), 1e-4, name)
                if s_want > 1e-6:
                    self.assertEqual(n_want, n_have, name)
        self.assertIn("broken.png: corrupt image", got["broken.png"]["error"]["message"])
        if jpeg:
            self.assertIn("scores", got["c.jpg"])
        else:  # a build without libjpeg-turbo says so per item, and the other items still run
            self.assertEqual(got["c.jpg"]["error"]["code"], "missing-component")
        self.assertIn(f"{1 if jpeg else 2} of 4 inputs failed", r.stderr)

    def test_small_cnn(self):
        self.check(os.path.join(VISION, "small-cnn"), ["cat", "dog", "bird"])

    def test_dtype_bf16_stays_close_to_fp32(self):
        model = os.path.join(VISION, "small-cnn")

        def scores(*extra):
            r = run_ms("infer", "-m", model, "--input-dir", IMAGES, "--device", DEVICE, *extra)
            self.assertExit(r, 0)
            return {g["id"]: dict(zip(g["labels"], g["scores"])) for g in lines(r.stdout)
                    if "scores" in g}

        want, got = scores(), scores("--dtype", "bf16")
        self.assertEqual(sorted(want), sorted(got))
        self.assertGreaterEqual(len(want), 2)
        self.assertNotEqual(want, got)  # computed in bfloat16, not ignored
        for name in want:
            for label, p in want[name].items():
                self.assertLess(abs(got[name][label] - p), 2e-2, (name, label))
        # A TorchScript classifier keeps the dtype it was saved in.
        r = run_ms("infer", "-m", os.path.join(VISION, "torchscript"), "--input-dir", IMAGES,
                   "--device", DEVICE, "--dtype", "bf16")
        self.assertExit(r, 2)
        self.assertIn("TorchScript classifier", r.stderr)

    def test_imagefolder_dataset_input(self):
        # An imagefolder's rows run through the same pipeline; ids are the paths in the folder.
        import shutil
        for cls, name in (("cat", "a.png"), ("dog", "c.jpg"), ("dog", "b.png")):
            os.makedirs(self.path("imgs", "test", cls), exist_ok=True)
            shutil.copy(os.path.join(IMAGES, name), self.path("imgs", "test", cls, name))
        model = os.path.join(VISION, "small-cnn")
        r = run_ms("infer", "-m", model, "--dataset", "imagefolder:" + self.path("imgs"), "--device", DEVICE)
        self.assertExit(r, 0)
        got = {g["id"]: g for g in lines(r.stdout)}
        self.assertEqual(sorted(got), ["test/cat/a.png", "test/dog/b.png", "test/dog/c.jpg"])
        # The folder named relative to the working folder: the same rows and ids (its paths
        # were joined to the folder a second time, and every row failed "no such file").
        relative = run_ms("infer", "-m", model, "--dataset", "imagefolder:imgs", "--device", DEVICE,
                          cwd=self.tmp)
        self.assertExit(relative, 0)
        self.assertEqual(lines(relative.stdout), lines(r.stdout))
        r = run_ms("infer", "-m", model, "--input-dir", IMAGES, "--device", DEVICE)
        direct = {g["id"]: g for g in lines(r.stdout)}
        for path, out in got.items():
            want = direct[os.path.basename(path)]
            self.assertEqual(out.get("labels"), want.get("labels"))
            self.assertEqual(out.get("error", {}).get("code"), want.get("error", {}).get("code"))
            for a, b in zip(out.get("scores", []), want.get("scores", [])):
                self.assertLess(abs(a - b), 1e-6)
        # Linked class folders and files keep the names they have in the dataset (a class folder
        # linked from outside gave row numbers as ids, a link inside gave one id twice, exit 2).
        os.makedirs(self.path("store"))
        shutil.copy(os.path.join(IMAGES, "a.png"), self.path("store", "x.png"))
        os.symlink(self.path("store"), self.path("imgs", "test", "bird"))
        os.symlink(os.path.join("..", "cat", "a.png"), self.path("imgs", "test", "dog", "alias.png"))
        os.symlink("dog", self.path("imgs", "test", "hound"))
        r = run_ms("infer", "-m", model, "--dataset", "imagefolder:" + self.path("imgs"), "--device", DEVICE)
        self.assertExit(r, 0)
        self.assertEqual(sorted(g["id"] for g in lines(r.stdout)),
                         ["test/bird/x.png", "test/cat/a.png", "test/dog/alias.png", "test/dog/b.png",
                          "test/dog/c.jpg", "test/hound/alias.png", "test/hound/b.png", "test/hound/c.jpg"])

    def test_file_names_that_are_not_utf8_and_an_output_inside_the_folder(self):
        # A name that is not UTF-8 gets an id with \\xHH escapes (it crashed the JSON writer, exit
        # 70, and no input got a result); the output file inside the input folder is no input,
        # on a rerun with --resume either.
        import shutil
        folder = self.path("imgs").encode()
        os.makedirs(os.path.join(folder, b"cat"))
        shutil.copy(os.path.join(IMAGES, "a.png"), os.path.join(folder, b"cat", b"a.png"))
        shutil.copy(os.path.join(IMAGES, "b.png"), os.path.join(folder, b"cat", b"b\xff.png"))
        model = os.path.join(VISION, "small-cnn")
        out = self.path("imgs", "out.jsonl")
        for extra in ((), ("--resume",)):
            with self.subTest(extra=extra):
                r = run_ms("infer", "-m", model, "--input-dir", self.path("imgs"), "-o", out,
                           "--device", DEVICE, *extra)
                self.assertExit(r, 0)
                with open(out) as f:
                    got = [json.loads(l) for l in f]
                self.assertEqual([g["id"] for g in got], ["cat/a.png", "cat/b\\xff.png"])
                self.assertTrue(all("scores" in g for g in got), got)
        r = run_ms("infer", "-m", model, "--dataset", "imagefolder:" + self.path("imgs"),
                   "--device", DEVICE)
        self.assertExit(r, 0)
        self.assertEqual(sorted(g["id"] for g in lines(r.stdout)), ["cat/a.png", "cat/b\\xff.png"])
        # `ms dataset head` names the file the same way (it wrote U+FFFD, a name no file has).
        r = run_ms("dataset", "head", "imagefolder:" + self.path("imgs"), "--json")
        self.assertExit(r, 0)
        self.assertEqual(sorted(os.path.basename(g["image"]) for g in lines(r.stdout)),
                         ["a.png", "b\\xff.png"])

    def test_torchscript_pipeline(self):
        self.check(os.path.join(VISION, "torchscript"), ["cat", "dog", "bird"])

    def test_corrupt_torchscript_archive(self):
        import shutil
        d = self.path("ts")
        shutil.copytree(os.path.join(VISION, "torchscript"), d)
        with open(os.path.join(d, "model.pt"), "wb") as f:
            f.write(b"PK\x03\x04 not really a zip")
        r = run_ms("infer", "-m", d, "--input-dir", IMAGES)
        self.assertExit(r, 7)
        self.assertOneLineError(r, "model.pt", "TorchScript")
        os.remove(os.path.join(d, "model.pt"))
        r = run_ms("infer", "-m", d, "--input-dir", IMAGES)
        self.assertExit(r, 4)

    def resnet(self, depth):
        py = torch_python(("torch", "torchvision", "PIL"))
        if py is None:
            self.skipTest("no Python with torch + torchvision + PIL to generate ResNet weights "
                          "(apt-get install python3-torchvision python3-pil)")
        out = self.path(f"resnet{depth}")
        r = subprocess.run([py, os.path.join(SOURCE_DIR, "scripts", "make_tiny_vision.py"), "--resnet", str(depth), out],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check(out)

    def test_resnet18(self):
        self.resnet(18)

    def test_resnet50(self):
        self.resnet(50)

    def torchvision_peer(self):
        """The class's TORCHVISION_PEER, started on first use; the test is skipped without a
        Python that has torch, torchvision and PIL."""
        py = torch_python(("torch", "torchvision", "PIL", "numpy"))
        if py is None:
            self.skipTest("no Python with torch + torchvision + PIL (apt-get install python3-torchvision python3-pil)")
        cls = type(self)
        peer = getattr(cls, "_torchvision_peer", None)
        if peer is None or peer.exited():
            # A peer that died (or was killed after a timeout) fails its own comparison; the next
            # one gets a new peer.
            peer = cls._torchvision_peer = JsonLinesWorker([py, "-c", TORCHVISION_PEER])
            cls.addClassCleanup(peer.close)
        return peer

    def compare_with_torchvision(self, transforms, sizes, crop, name):
        """Random PNGs of `sizes` ("WxH") through `transforms` (configuration.json's list, ending
        in a crop x crop image) in ms and in torchvision on PIL images, as ModelScope runs them; an
        identity network (flatten, all values as scores) shows ms's pixels."""
        peer = self.torchvision_peer()
        root = self.path(name)
        os.makedirs(os.path.join(root, "model"))
        os.makedirs(os.path.join(root, "imgs"))
        n = 3 * crop * crop
        with open(os.path.join(root, "model", "configuration.json"), "w") as f:
            json.dump({"framework": "pytorch", "task": "image-classification",
                       "model": {"type": "torchscript", "file": "model.pt"},
                       "pipeline": {"top_k": n, "softmax": False},
                       "preprocessor": {"val": transforms}}, f)
        reply = peer.ask({"folder": root, "transforms": transforms, "sizes": list(sizes),
                          "crop": crop})
        self.assertNotIn("error", reply, reply.get("error"))
        ref = reply["images"]
        r = run_ms("infer", "-m", os.path.join(root, "model"), "--input-dir",
                   os.path.join(root, "imgs"), "--device", DEVICE, timeout=300)
        self.assertExit(r, 0)
        got = {g["id"]: g for g in lines(r.stdout)}
        self.assertEqual(sorted(got), sorted(ref))
        for image, want in ref.items():
            have = [0.0] * n
            for score, label in zip(got[image]["scores"], got[image]["labels"]):
                have[int(label.split("_")[1])] = score
            # One grey level is 1/255/std > 0.017 here: 1e-4 allows float rounding only.
            worst = max(abs(a - b) for a, b in zip(have, want))
            self.assertLess(worst, 1e-4, (name, image))

    def test_pixels_match_torchvision_on_pil_images(self):
        # ModelScope runs the configuration.json transforms through torchvision on PIL images:
        # Resize is PIL's antialiased bilinear filter on 8-bit pixels, CenterCrop rounds its
        # offset as Python's round() does (102x100 -> 73x72: 9 columns, offset 4 not 5).
        normalize = {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
        self.compare_with_torchvision(
            [{"type": "Resize", "size": 72}, {"type": "CenterCrop", "size": 64},
             {"type": "ToTensor"}, normalize],
            ["131x77", "300x201", "45x67", "102x100", "100x102", "512x384"], 64, "shrink")
        # A crop larger than the image pads it with zeros (more of the surplus after), on the
        # pixels or, after a Normalize, on the tensor; ms refused such images.
        self.compare_with_torchvision(
            [{"type": "CenterCrop", "size": 24}, {"type": "ToTensor"}, normalize],
            ["15x11", "30x9", "23x24", "9x40"], 24, "pad-pixels")
        self.compare_with_torchvision(
            [{"type": "Resize", "size": 20}, {"type": "ToTensor"}, normalize,
             {"type": "CenterCrop", "size": 25}],
            ["30x23", "23x30"], 25, "pad-tensor")

    def test_normalize_and_sizes_as_torchvision_reads_them(self):
        # Normalize's values are taken as given on pixels in [0, 1]: ms divided means and stds by
        # 255 when the first was above 1 (an ImageNet mean in 0-255 units came out as the usual
        # ImageNet normalisation, torchvision's is about -2.1 everywhere). A number or a list of
        # one broadcasts over the channels, and a size of [N] is N; ms refused both.
        self.compare_with_torchvision(
            [{"type": "Resize", "size": 20}, {"type": "CenterCrop", "size": 16}, {"type": "ToTensor"},
             {"type": "Normalize", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}],
            ["31x24", "24x40"], 16, "stats-255")
        self.compare_with_torchvision(
            [{"type": "Resize", "size": [20]}, {"type": "CenterCrop", "size": [16]}, {"type": "ToTensor"},
             {"type": "Normalize", "mean": 0.5, "std": [2.0]}],
            ["31x24", "24x40"], 16, "broadcast")
        # max_size caps the longer side of a shorter-side Resize (ms refused the key).
        self.compare_with_torchvision(
            [{"type": "Resize", "size": 10, "max_size": 14}, {"type": "CenterCrop", "size": 8},
             {"type": "ToTensor"}],
            ["40x16", "30x50", "20x18"], 8, "max-size")
        # A Resize of the tensor (after ToTensor) is antialiased or not as it says (unsaid: as
        # torchvision 0.17 and later, antialiased; older ones did not).
        for antialias in (True, False):
            self.compare_with_torchvision(
                [{"type": "CenterCrop", "size": 30}, {"type": "ToTensor"},
                 {"type": "Resize", "size": 13, "antialias": antialias}],
                ["31x34"], 13, f"tensor-resize-{antialias}")

    def test_png_pixels_are_pils_for_every_kind_of_png(self):
        # ModelScope's LoadImage is PIL's Image.open(...).convert("RGB"): 16-bit samples keep
        # their high byte (grey: clipped at 255), gamma chunks are ignored, alpha is dropped.
        # libpng's simplified reader gamma-encoded 16-bit samples and applied gAMA (0.28 off).
        py = self.pil_python()
        script = r"""
import json, os, struct, sys, zlib
import numpy as np
from PIL import Image, PngImagePlugin
folder = sys.argv[1]
rng = np.random.default_rng(3)
h, w = 6, 8
def save(name, image, **kw):
    image.save(os.path.join(folder, name + ".png"), **kw)
save("rgb8", Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
# Whole pixels, but no IEND chunk at the end (PIL reads it).
with open(os.path.join(folder, "rgb8.png"), "rb") as f:
    whole = f.read()
with open(os.path.join(folder, "rgb8_no_iend.png"), "wb") as f:
    f.write(whole[:-12])
save("rgba8", Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8)))
save("l8", Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)))
save("la8", Image.fromarray(rng.integers(0, 256, (h, w, 2), dtype=np.uint8), "LA"))
save("bit1", Image.fromarray(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255).convert("1"))
palette = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(
    "P", palette=Image.ADAPTIVE, colors=16)
save("palette", palette)
save("palette_trns", palette, transparency=3)
save("l16", Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16)))
gamma = PngImagePlugin.PngInfo()
gamma.add(b"gAMA", (100000).to_bytes(4, "big"))
save("rgb8_gamma", Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), pnginfo=gamma)
# 16-bit colour PNGs, which PIL does not write: by hand.
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
for name, color_type, channels in (("rgb16", 2, 3), ("rgba16", 6, 4), ("la16", 4, 2)):
    samples = rng.integers(0, 65536, (h, w, channels), dtype=np.uint16).astype(">u2")
    raw = b"".join(b"\0" + row.tobytes() for row in samples)
    with open(os.path.join(folder, name + ".png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
# Adam7-interlaced (PIL reads these but does not write them): seven passes over sub-images.
samples = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
raw = b"".join(b"\0" + samples[y, x0::dx].tobytes()
               for x0, y0, dx, dy in passes if x0 < w for y in range(y0, h, dy))
with open(os.path.join(folder, "rgb8_interlaced.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
ref = {name: (np.asarray(Image.open(os.path.join(folder, name)).convert("RGB"), dtype=np.float32)
              / 255).transpose(2, 0, 1).tolist() for name in sorted(os.listdir(folder))}
print(json.dumps(ref))
"""
        folder = self.path("pngs", "kind")
        os.makedirs(folder)
        r = subprocess.run([py, "-c", script, folder], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        ref = json.loads(r.stdout)
        batch = self.path("batch.npy")
        r = run_ms("dataset", "iter", "imagefolder:" + self.path("pngs"), "--batch-size", "100",
                   "--save-batch", batch)
        self.assertExit(r, 0)
        check = r"""
import json, sys
import numpy as np
batch, ref = np.load(sys.argv[1]), json.loads(sys.stdin.read())
print(json.dumps({name: float(np.abs(batch[i] - np.array(want)).max())
                  for i, (name, want) in enumerate(sorted(ref.items()))}))
"""
        r = subprocess.run([py, "-c", check, batch], input=json.dumps(ref), capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        worst = json.loads(r.stdout)
        self.assertEqual(len(worst), 14)
        for name, difference in worst.items():
            self.assertLess(difference, 1e-6, name)

    def differences_from_pil(self, script, size=(8, 8)):
        """Runs `script` with the newest Pillow: it writes images into the folder it is given and
        prints {file name: pixels} of each as PIL's exif_transpose turns it, resized to `size`
        ([C][H][W] in [0, 1]). Reads the folder with ms (resize to `size`) and returns {file
        name: the largest difference}."""
        self.pil_python(jpeg=True)
        py = self.newest_pil_python()
        folder = self.path("photos", "a")
        os.makedirs(folder)
        r = subprocess.run([py, "-c", script, folder], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        ref = r.stdout
        batch = self.path("batch.npy")
        r = run_ms("dataset", "iter", "imagefolder:" + self.path("photos"), "--batch-size", "100",
                   "--transform", json.dumps({"resize": list(size)}), "--save-batch", batch)
        self.assertExit(r, 0)
        check = r"""
import json, sys
import numpy as np
batch, ref = np.load(sys.argv[1]), json.loads(sys.stdin.read())
print(json.dumps({name: float(np.abs(batch[i] - np.array(want)).max())
                  for i, (name, want) in enumerate(sorted(ref.items()))}))
"""
        r = subprocess.run([py, "-c", check, batch], input=ref, capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def assert_pixels_are_pils(self, script, count, size=(8, 8)):
        """differences_from_pil(script, size) for `count` images, each within float rounding."""
        differences = self.differences_from_pil(script, size=size)
        self.assertEqual(len(differences), count)
        for name, difference in differences.items():
            self.assertLess(difference, 1e-6, name)

    def test_jpeg_photos_are_turned_upright_by_their_exif_orientation(self):
        # ModelScope's LoadImage calls PIL's ImageOps.exif_transpose: a camera's photo stored
        # sideways with Orientation 6 is classified upright. Each of the 8 orientations, resized
        # to one size so that they make one batch, equals PIL's pixels.
        script = r"""
import json, os, sys
import numpy as np
from PIL import Image, ImageOps
folder = sys.argv[1]
base = Image.fromarray(np.random.default_rng(5).integers(0, 256, (6, 10, 3), dtype=np.uint8))
ref = {}
for orientation in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = os.path.join(folder, f"o{orientation}.jpg")
    base.save(path, exif=exif.tobytes(), quality=95)
    upright = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((8, 8), Image.BILINEAR)
    ref[f"o{orientation}.jpg"] = (np.asarray(upright, dtype=np.float32) / 255).transpose(2, 0, 1).tolist()
print(json.dumps(ref))
"""
        self.assert_pixels_are_pils(script, 8)

    def test_exif_orientation_in_other_layouts_and_in_pngs(self):
        # Each is a sideways photo (Orientation 6) that PIL's exif_transpose turns upright: the tag
        # stored as a LONG, fill bytes before the Exif segment, a PNG's eXIf chunk before the
        # pixels and one after them. ms read only JPEG's SHORT tag with no fill bytes.
        script = r"""
import io, json, os, struct, sys, zlib
import numpy as np
from PIL import Image, ImageOps
folder = sys.argv[1]
base = Image.fromarray(np.random.default_rng(6).integers(0, 256, (6, 10, 3), dtype=np.uint8))
def encoded(fmt, **kw):
    out = io.BytesIO()
    base.save(out, fmt, **kw)
    return out.getvalue()
def tiff(kind, value):
    entry = struct.pack("<HHI", 0x0112, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
    return b"II*\0" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)
def app1(data):
    return b"\xff\xe1" + struct.pack(">H", 8 + len(data)) + b"Exif\0\0" + data
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
jpeg, png = encoded("JPEG", quality=95), encoded("PNG")
files = {"fill6.jpg": jpeg[:2] + b"\xff\xff" + app1(tiff(3, 6)) + jpeg[2:],
         "long6.jpg": jpeg[:2] + app1(tiff(4, 6)) + jpeg[2:],
         "png6.png": png[:33] + chunk(b"eXIf", tiff(3, 6)) + png[33:],
         "png6_after.png": png[:-12] + chunk(b"eXIf", tiff(3, 6)) + png[-12:]}
ref = {}
for name, data in files.items():
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    upright = ImageOps.exif_transpose(Image.open(path))
    assert upright.size == (6, 10), (name, upright.size)
    ref[name] = (np.asarray(upright.convert("RGB").resize((8, 8), Image.BILINEAR), dtype=np.float32) / 255).transpose(2, 0, 1).tolist()
print(json.dumps(ref))
"""
        self.assert_pixels_are_pils(script, 4)

    def test_orientation_from_xmp_raw_profiles_and_prefixed_exif(self):
        # Pillow's exif_transpose reads the orientation from more than a JPEG's Exif segment and a
        # PNG's bare eXIf chunk: XMP's tiff:Orientation (attribute or element; only where the EXIF
        # has no Orientation tag), ImageMagick's "Raw profile type exif" PNG text (tEXt or zTXt),
        # an eXIf chunk or a tEXt "exif" holding "Exif\0\0" and the TIFF data. ms left these
        # images as stored.
        script = r"""
import io, json, os, struct, sys, zlib
import numpy as np
from PIL import Image, ImageOps
folder = sys.argv[1]
base = Image.fromarray(np.random.default_rng(8).integers(0, 256, (6, 10, 3), dtype=np.uint8))
def encoded(fmt, **kw):
    out = io.BytesIO()
    base.save(out, fmt, **kw)
    return out.getvalue()
def tiff(value, tag=0x0112):
    return b"II*\0" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", tag, 3, 1, value, 0) + struct.pack("<I", 0)
def segment(marker, data):
    return marker + struct.pack(">H", 2 + len(data)) + data
def xmp(form, value):
    prop = (f'tiff:Orientation="{value}"/>' if form == "attr" else
            f'><tiff:Orientation>{value}</tiff:Orientation></rdf:Description>')
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" ' + prop + '</rdf:RDF></x:xmpmeta>').encode()
def jpeg_with(*segments):
    data = encoded("JPEG", quality=95)
    return data[:2] + b"".join(segments) + data[2:]
XMP = b"http://ns.adobe.com/xap/1.0/\0"
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
def png_with(*chunks, after=False):
    data = encoded("PNG")
    return data[:-12] + b"".join(chunks) + data[-12:] if after else data[:33] + b"".join(chunks) + data[33:]
def raw_profile(value):
    hexed = (b"Exif\0\0" + tiff(value)).hex()
    return ("\nexif\n" + str(len(hexed) // 2).rjust(8) + "\n" +
            "\n".join(hexed[i:i + 72] for i in range(0, len(hexed), 72)) + "\n").encode("latin-1")
def itxt(key, text, compressed):
    body = zlib.compress(text) if compressed else text
    return chunk(b"iTXt", key + b"\0" + bytes([int(compressed), 0]) + b"\0\0" + body)
files = {
    "jpeg_xmp_attr6.jpg": jpeg_with(segment(b"\xff\xe1", XMP + xmp("attr", 6))),
    "jpeg_xmp_element8.jpg": jpeg_with(segment(b"\xff\xe1", XMP + xmp("element", 8))),
    # EXIF without an Orientation tag: XMP's counts; EXIF saying 1: XMP's does not.
    "jpeg_exif_untagged_xmp3.jpg": jpeg_with(segment(b"\xff\xe1", b"Exif\0\0" + tiff(1, tag=0x010F)),
                                             segment(b"\xff\xe1", XMP + xmp("attr", 3))),
    "jpeg_exif1_xmp6.jpg": jpeg_with(segment(b"\xff\xe1", b"Exif\0\0" + tiff(1)),
                                     segment(b"\xff\xe1", XMP + xmp("attr", 6))),
    "png_itxt_xmp3.png": png_with(itxt(b"XML:com.adobe.xmp", xmp("attr", 3), False)),
    "png_itxt_zipped_xmp6.png": png_with(itxt(b"XML:com.adobe.xmp", xmp("element", 6), True), after=True),
    "png_raw_profile_text6.png": png_with(chunk(b"tEXt", b"Raw profile type exif\0" + raw_profile(6))),
    "png_raw_profile_ztxt8.png": png_with(chunk(b"zTXt", b"Raw profile type exif\0\0" + zlib.compress(raw_profile(8))), after=True),
    "png_exif_prefixed5.png": png_with(chunk(b"eXIf", b"Exif\0\0" + tiff(5))),
    "png_text_exif7.png": png_with(chunk(b"tEXt", b"exif\0" + b"Exif\0\0" + tiff(7))),
}
ref = {}
for name, data in files.items():
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    upright = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    ref[name] = (np.asarray(upright.resize((8, 8), Image.BILINEAR), dtype=np.float32) / 255).transpose(2, 0, 1).tolist()
print(json.dumps(ref))
"""
        self.assert_pixels_are_pils(script, 10)

    def test_a_resize_that_shrinks_the_height_most_is_pillow_13s(self):
        # Pillow 13 resizes vertically first when the height shrinks by more than twice what the
        # width does (PIL 12 and older: always horizontally first); the passes round to 8 bits
        # in between, so the orders differ by a grey level on some pixels. ms followed the old
        # order. The script checks that the orders do differ on these images.
        script = r"""
import json, os, sys
import numpy as np
from PIL import Image
folder = sys.argv[1]
rng = np.random.default_rng(11)
ref, differ = {}, 0
for w, h in ((20, 60), (30, 50), (12, 40), (40, 30)):
    image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    image.save(os.path.join(folder, f"{w}x{h}.png"))
    resized = image.resize((16, 10), Image.BILINEAR)
    horizontal_first = image.resize((16, h), Image.BILINEAR).resize((16, 10), Image.BILINEAR)
    differ += (h - 10) > 2 * (w - 16) and not np.array_equal(np.asarray(resized), np.asarray(horizontal_first))
    ref[f"{w}x{h}.png"] = (np.asarray(resized, dtype=np.float32) / 255).transpose(2, 0, 1).tolist()
assert differ >= 2, differ
print(json.dumps(ref))
"""
        self.assert_pixels_are_pils(script, 4, size=(10, 16))

    def test_an_image_path_that_is_a_device_a_fifo_or_too_big_fails_alone(self):
        # A JSON line naming /dev/zero was read without end (24 GB, then killed by the OOM
        # killer, no result for any item); a FIFO waited for a writer for ever; a sparse 3 GiB
        # file was read whole. Each is now that item's error, and the others get their results.
        fifo = self.path("pipe.png")
        os.mkfifo(fifo)
        sparse = self.path("sparse.png")
        with open(os.path.join(IMAGES, "a.png"), "rb") as src, open(sparse, "wb") as f:
            f.write(src.read())
            f.truncate(3 << 30)
        inputs = self.path("inputs.jsonl")
        with open(inputs, "w") as f:
            for image in ("/dev/zero", fifo, sparse, os.path.join(IMAGES, "a.png")):
                f.write(json.dumps({"image": image}) + "\n")
        r = run_ms("infer", "-m", os.path.join(VISION, "small-cnn"), "--input-file", inputs,
                   "--device", DEVICE, timeout=120)
        self.assertExit(r, 0)
        got = lines(r.stdout)
        self.assertEqual(len(got), 4, r.stdout)
        self.assertIn("is a character device, expected a regular file", got[0]["error"]["message"])
        self.assertIn("is a FIFO (named pipe), expected a regular file", got[1]["error"]["message"])
        self.assertIn("3221225472 bytes is more than", got[2]["error"]["message"])
        self.assertEqual([g["error"]["code"] for g in got[:3]], ["usage"] * 3)
        self.assertIn("scores", got[3])

    def test_jpeg_warnings_are_pils_but_a_cut_file_is_corrupt(self):
        # libjpeg warns about stray bytes before a marker and PIL keeps the pixels; ms refused
        # such a file as corrupt (exit 7). A file cut before its end marker stays corrupt (PIL:
        # "image file is truncated").
        py = self.pil_python(jpeg=True)
        script = r"""
import json, os, sys
import numpy as np
from PIL import Image
folder = sys.argv[1]
path = os.path.join(folder, "a", "stray.jpg")
Image.fromarray(np.random.default_rng(9).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
data = open(path, "rb").read()
end = data.rindex(b"\xff\xd9")
open(path, "wb").write(data[:end] + b"\0\1\2" + data[end:])
open(os.path.join(folder, "..", "cut", "cut.jpg"), "wb").write(data[:len(data) * 2 // 3])
# The same cut after an Exif segment holding a thumbnail's scan and end markers (a camera's).
thumb = b"Exif\0\0" + b"\xff\xd8\xff\xda\0\2thumb\xff\xd9"
app1 = b"\xff\xe1" + (len(thumb) + 2).to_bytes(2, "big") + thumb
open(os.path.join(folder, "..", "cut", "cut_thumb.jpg"), "wb").write(data[:2] + app1 + data[2:len(data) * 2 // 3])
print(json.dumps((np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).transpose(2, 0, 1).tolist()))
"""
        os.makedirs(self.path("jpegs", "a"))
        os.makedirs(self.path("cut"))
        r = subprocess.run([py, "-c", script, self.path("jpegs")], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = r.stdout
        batch = self.path("batch.npy")
        r = run_ms("dataset", "iter", "imagefolder:" + self.path("jpegs"), "--batch-size", "1",
                   "--save-batch", batch)
        self.assertExit(r, 0)
        check = r"""
import json, sys
import numpy as np
print(float(np.abs(np.load(sys.argv[1])[0] - np.array(json.loads(sys.stdin.read()))).max()))
"""
        r = subprocess.run([py, "-c", check, batch], input=want, capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(float(r.stdout), 1e-6)
        r = run_ms("infer", "-m", os.path.join(VISION, "small-cnn"), "--input-dir",
                   self.path("cut"))
        self.assertExit(r, 7)
        for line in lines(r.stdout):
            self.assertIn("ends before the image's end marker", line["error"]["message"], line["id"])
        self.assertEqual(sorted(l["id"] for l in lines(r.stdout)), ["cut.jpg", "cut_thumb.jpg"])

    def test_cmyk_jpegs_and_grey_decode_to_pils_pixels(self):
        # CMYK JPEGs (ImageNet holds some) were refused as corrupt; PIL reads them with Adobe's
        # inverted samples and converts to RGB, or on to grey, by its own formulas. Grey from a
        # colour JPEG is its RGB pixels' luma (libjpeg's Y was a level off here and there).
        py = self.pil_python(jpeg=True)
        script = r"""
import json, os, sys
import numpy as np
from PIL import Image
folder = sys.argv[1]
cmyk = Image.fromarray(np.random.default_rng(7).integers(0, 256, (6, 10, 4), dtype=np.uint8), "CMYK")
path = os.path.join(folder, "cmyk.jpg")
cmyk.save(path, quality=95)
assert Image.open(path).mode == "CMYK"
rgb = Image.fromarray(np.random.default_rng(8).integers(0, 256, (6, 10, 3), dtype=np.uint8))
rgb.save(os.path.join(folder, "rgb.jpg"), quality=90)
ref = {mode: [(np.asarray(Image.open(os.path.join(folder, name)).convert(mode), dtype=np.float32)
               / 255).reshape(6, 10, -1).transpose(2, 0, 1).tolist()
              for name in ("cmyk.jpg", "rgb.jpg")] for mode in ("RGB", "L")}
print(json.dumps(ref))
"""
        folder = self.path("cmyk", "a")
        os.makedirs(folder)
        r = subprocess.run([py, "-c", script, folder], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        ref = json.loads(r.stdout)
        check = r"""
import json, sys
import numpy as np
batch, want = np.load(sys.argv[1]), json.loads(sys.stdin.read())
print(float(np.abs(batch - np.array(want)).max()))
"""
        for mode in ("RGB", "L"):
            batch = self.path(f"cmyk-{mode}.npy")
            r = run_ms("dataset", "iter", "imagefolder:" + self.path("cmyk"), "--batch-size", "2",
                       "--transform", json.dumps({"mode": mode}), "--save-batch", batch)
            self.assertExit(r, 0)
            r = subprocess.run([py, "-c", check, batch], input=json.dumps(ref[mode]),
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertLess(float(r.stdout), 1e-6, mode)

    def test_text_input_to_an_image_model(self):
        # Its error line is written, and with not one result the job fails as a whole.
        r = run_ms("infer", "-m", os.path.join(VISION, "small-cnn"), "--input", "not an image")
        self.assertExit(r, 2)
        self.assertIn("needs image files", lines(r.stdout)[0]["error"]["message"])
        self.assertOneLineError(r, "the one input (0) failed", "needs image files")
        r = run_ms("infer", "-m", os.path.join(VISION, "small-cnn"), "--input", "a", "b")
        self.assertExit(r, 2)
        self.assertOneLineError(r, "every one of the 2 inputs failed; the first, input 0: ")
        r = run_ms("infer", "-m", os.path.join(VISION, "small-cnn"), "--input-dir", IMAGES, "--fail-fast")
        self.assertExit(r, 7)  # a corrupt image is an integrity error, as in `ms dataset`
        self.assertOneLineError(r, "broken.png")

    def test_bad_transform_is_a_config_error(self):
        r = run_ms("infer", "-m", os.path.join(VISION, "small-cnn"), "--input-dir", IMAGES,
                   "--set", 'preprocessor.val=[{"type": "Resise", "size": 20}]')
        self.assertExit(r, 3)
        self.assertOneLineError(r, "unknown type 'Resise'")
        # Keys ms does not apply were ignored: a bicubic Resize ran bilinear, silently.
        for transform, message in (({"interpolation": "bicubic"}, "interpolation \"bicubic\" is not supported"),
                                   ({"interploation": "bilinear"}, "unknown key 'interploation'")):
            r = run_ms("infer", "-m", os.path.join(VISION, "small-cnn"), "--input-dir", IMAGES,
                       "--set", "preprocessor.val=" + json.dumps([{"type": "Resize", "size": 20, **transform}]))
            self.assertExit(r, 3)
            self.assertOneLineError(r, message)
        # Lists torchvision's Compose cannot run (ModelScope fails on them) ran: a Normalize
        # before ToTensor as if after it, two ToTensors, none; a std of 0 gave every item a NaN
        # error (exit 7); a mean of two numbers is no broadcast over three channels.
        crop = {"type": "CenterCrop", "size": 16}
        normalize = {"type": "Normalize", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
        for transforms, message in (
                ([crop, normalize, {"type": "ToTensor"}], "Normalize before ToTensor"),
                ([crop, {"type": "ToTensor"}, {"type": "ToTensor"}, normalize], "a second ToTensor"),
                ([crop, normalize], "Normalize before ToTensor"),
                ([crop], "has no ToTensor"),
                ([crop, {"type": "ToTensor"}, dict(normalize, std=[0.2, 0, 0.2])], "'std' is zero"),
                ([crop, {"type": "ToTensor"}, dict(normalize, std=1e-50)], "'std' is zero"),
                ([crop, {"type": "ToTensor"}, dict(normalize, mean=[0.5, 0.5])], "a list of 1 or 3 numbers"),
                ([{"type": "Resize", "size": 20, "antialias": "yes"}, {"type": "ToTensor"}], "'antialias' must be"),
                ([{"type": "Resize", "size": [20, 30], "max_size": 40}, {"type": "ToTensor"}], "'max_size' only goes"),
                ([{"type": "Resize", "size": 20, "max_size": 20}, {"type": "ToTensor"}], "'max_size' must be an integer above")):
            with self.subTest(transforms=transforms):
                r = run_ms("infer", "-m", os.path.join(VISION, "small-cnn"), "--input-dir", IMAGES,
                           "--set", "preprocessor.val=" + json.dumps(transforms))
                self.assertExit(r, 3)
                self.assertOneLineError(r, message)

    def test_a_training_list_alone_warns_that_evaluation_takes_the_imagenet_recipe(self):
        # Evaluation and inference read preprocessor.val; with only preprocessor.train they took
        # the ImageNet recipe silently (ModelScope logs "No preprocessor key val found").
        r = run_ms("infer", "-m", os.path.join(VISION, "small-cnn"), "--input-dir", IMAGES,
                   "--set", "preprocessor.val=null", "--set",
                   'preprocessor.train=[{"type": "RandomHorizontalFlip"}, {"type": "ToTensor"}]')
        self.assertExit(r, 0)
        self.assertEqual(r.stderr.count("preprocessor.train but no preprocessor.val"), 1, r.stderr)
        self.assertIn("ImageNet recipe", r.stderr)

    def test_very_wide_pngs(self):
        # libpng's default limit of 1,000,000 columns made such PNGs "corrupt" (PIL opens them);
        # a Resize whose other side overflows int is refused (it wrapped and ran).
        py = self.pil_python()
        os.makedirs(self.path("wide", "a"))
        script = r"""
import sys
from PIL import Image
Image.new("RGB", (1000001, 1), (10, 20, 30)).save(sys.argv[1] + "/a/wide.png")
Image.new("RGB", (999999, 1)).save(sys.argv[1] + "/long.png")
"""
        r = subprocess.run([py, "-c", script, self.path("wide")], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_ms("dataset", "iter", "imagefolder:" + self.path("wide"), "--transform", '{"resize": [2, 2]}')
        self.assertExit(r, 0)
        r = run_ms("infer", "-m", os.path.join(VISION, "small-cnn"), "--input-dir", self.path("wide"),
                   "--set", 'preprocessor.val=[{"type": "Resize", "size": 4295}, {"type": "ToTensor"}]')
        self.assertExit(r, 2)
        errors = {g["id"]: g["error"]["message"] for g in lines(r.stdout) if "error" in g}
        self.assertIn("more than the limit of 178956970 pixels", errors["long.png"])


if __name__ == "__main__":
    unittest.main()

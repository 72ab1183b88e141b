"""TensorBoard reads the event files of ms::trainer::TensorboardWriter (the TensorboardHook's writer).

A test-only tool (tests/e2e/tools/tensorboard_scalars.cpp, $MS_TENSORBOARD_TOOL) writes scalars;
tests/e2e/interop/tensorboard_reader.py, in the venv with the real `tensorboard` package that
scripts/setup_python_interop.sh makes (build/venv-tensorboard, or $MS_TENSORBOARD_PYTHON), reads
them with TensorBoard's own readers and rebuilds the same scalars with its own writer. Tags, steps,
float32 values and wall times must come back exactly, and the file's records must be byte for byte
those of TensorBoard's writer for the Events torch.utils.tensorboard's add_scalar makes."""
import json
import math
import os
import re
import socket
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MS_BIN, SOURCE_DIR, MsTestCase, venv_python  # noqa: E402

READER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop", "tensorboard_reader.py")
FLT_MAX = 3.4028234663852886e38

# (tag, step, value, wall_time): first what is written and flushed while the writer stays open,
# then the rest, flushed by the writer's destructor. Steps never decrease: TensorBoard's
# EventAccumulator drops events older than a step it saw (it takes them for a restarted run).
FIRST = [
    ("train/loss", 0, 2.302585092994046, 1700000000.0),
    ("train/lr", 0, 1e-05, 1700000000.0),
    ("train/loss", 1, 0.1, 1700000000.125),
]
REST = [
    ("train/loss", 2, math.nan, 1700000001.5),
    ("train/loss", 3, math.inf, 1700000002.75),
    ("train/grad_norm", 3, 1e39, 1700000003.0),  # past float32: infinity
    ("train/grad_norm", 4, -1e39, 1700000004.0),
    ("train/grad_norm", 5, FLT_MAX, 1700000005.0),
    ("eval/accuracy", 6, 1e-45, 1700000006.0),  # the smallest float32 subnormal
    ("eval/accuracy", 7, -0.0, 1700000007.0),
    ("train/loss", 2**40, 123456789.123, 1700000008.0),
    ("train/lr", 2**40 + 1, 0.5, None),  # stamped by the writer: time now
]


def float32_hex(value):
    """The float32 bits (little-endian hex) Python's struct makes of an in-range value."""
    return struct.pack("<f", value).hex()


def tensorboard_python():
    return venv_python("venv-tensorboard", "MS_TENSORBOARD_PYTHON")


def tensorboard_tool():
    if os.environ.get("MS_TENSORBOARD_TOOL"):
        return os.environ["MS_TENSORBOARD_TOOL"]
    if MS_BIN:
        tool = os.path.join(os.path.dirname(os.path.abspath(MS_BIN)), "ms_test_tensorboard_scalars")
        if os.path.exists(tool):
            return tool
    return None


def command(tag, step, value, wall_time):
    return f"scalar {tag} {step} {value!r} {'now' if wall_time is None else repr(wall_time)}\n"


class TensorboardReadsOurEvents(MsTestCase):
    def setUp(self):
        super().setUp()
        self.python, self.tool = tensorboard_python(), tensorboard_tool()
        if not self.python:
            self.skipTest("build/venv-tensorboard is absent: run scripts/setup_python_interop.sh "
                          "(or set MS_TENSORBOARD_PYTHON)")
        if not self.tool:
            self.skipTest("the ms_test_tensorboard_scalars tool is absent (set MS_TENSORBOARD_TOOL)")

    def read(self, log_dir, written):
        r = subprocess.run([self.python, READER, log_dir], input=json.dumps(written),
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def check_scalars(self, seen, written, name):
        """Every reader of `seen` holds exactly `written`, in order, with exact float32 values."""
        self.assertEqual(len(seen["float32"]), len(written))
        expected = {}
        for (tag, step, _, wall_time), bits in zip(written, seen["float32"]):
            expected.setdefault(tag, []).append([wall_time.hex(), step, bits])
        events = seen["loader"][name]
        self.assertEqual(events[0]["what"], "file_version")
        self.assertEqual(events[0]["file_version"], "brain.Event:2")
        self.assertEqual([[e["wall_time"], e["step"], e["values"]] for e in events[1:]],
                         [[w.hex(), s, [[t, "simple_value", b]]]
                          for (t, s, _, w), b in zip(written, seen["float32"])])
        self.assertEqual(seen["scalars"], expected)
        self.assertEqual(seen["tensors"], {tag: [[w, s, "scalars", "float32", b] for w, s, b in rows]
                                           for tag, rows in expected.items()})

    def test_tensorboard_reads_scalars_while_written_and_after(self):
        log_dir = self.path("runs", "exp1")
        tool = subprocess.Popen([self.tool, log_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: tool.poll() is None and tool.kill())
        path = tool.stdout.readline().strip()
        self.assertEqual(os.path.dirname(path), log_dir)
        name = os.path.basename(path)
        # As TensorBoard's EventFileWriter names its files (the first this process opened: 0).
        m = re.fullmatch(r"events\.out\.tfevents\.(\d{10})\.(.+)\.(\d+)\.0", name)
        self.assertTrue(m, name)
        self.assertEqual((m.group(2), int(m.group(3))), (socket.gethostname(), tool.pid))

        for scalar in FIRST:
            tool.stdin.write(command(*scalar))
        tool.stdin.write("flush\n")
        tool.stdin.flush()
        self.assertEqual(tool.stdout.readline(), "flushed\n")
        seen = self.read(log_dir, FIRST)
        self.assertEqual(seen["files"], [name])
        self.check_scalars(seen, FIRST, name)
        # The file_version event's time names the file.
        self.assertEqual(int(float.fromhex(seen["loader"][name][0]["wall_time"])), int(m.group(1)))

        for scalar in REST:
            tool.stdin.write(command(*scalar))
        out, err = tool.communicate(timeout=60)
        self.assertEqual(tool.returncode, 0, err)
        self.assertEqual(out, "")
        # The last scalar's wall time is the writer's clock: take it from the file.
        first_read = self.read(log_dir, [])
        stamped = float.fromhex(first_read["loader"][name][-1]["wall_time"])
        self.assertTrue(math.isfinite(stamped) and stamped > 1.6e9, stamped)
        written = FIRST + REST[:-1] + [REST[-1][:3] + (stamped,)]
        seen = self.read(log_dir, written)
        self.assertEqual(seen["files"], [name])
        self.check_scalars(seen, written, name)

        # float32 values as protobuf's float field stores them: rounded, overflowing to
        # infinity, NaN and -0.0 kept.
        in_range = [float32_hex(v) if math.isfinite(v) and abs(v) <= FLT_MAX else None
                    for _, _, v, _ in written]
        for bits, expected in zip(seen["float32"], in_range):
            if expected is not None:
                self.assertEqual(bits, expected)
        self.assertEqual(seen["float32"][3:7], ["0000c07f", "0000807f", "0000807f", "000080ff"])
        self.assertEqual(seen["float32"][7:10], ["ffff7f7f", "01000000", "00000080"])

        # Byte for byte: the records after the file_version event are TensorBoard's own.
        with open(path, "rb") as f:
            data = f.read()
        first_length = struct.unpack("<Q", data[:8])[0]
        self.assertEqual(data[12 + first_length + 4:].hex(), seen["reference"])

    def test_each_writer_opens_its_own_file(self):
        log_dir = self.path("runs")
        names = []
        for value in (1.0, 2.0):
            r = subprocess.run([self.tool, log_dir], input=command("loss", 1, value, 1.5e9),
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            names.append(os.path.basename(r.stdout.strip()))
        self.assertNotEqual(names[0], names[1])  # another pid
        seen = self.read(log_dir, [])
        self.assertEqual(seen["files"], sorted(names))
        for name, value in zip(names, (1.0, 2.0)):
            self.assertEqual(seen["loader"][name][1]["values"], [["loss", "simple_value",
                                                                  float32_hex(value)]])

    def test_a_log_folder_that_cannot_be_made_is_an_io_error(self):
        blocker = self.write("not-a-folder", "x")
        r = subprocess.run([self.tool, os.path.join(blocker, "runs")], input="", capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 74, r.stderr)
        self.assertIn(os.path.join(blocker, "runs"), r.stderr)


if __name__ == "__main__":
    unittest.main()

"""Runs inside the venv with the `tensorboard` package (scripts/setup_python_interop.sh makes
build/venv-tensorboard): reads the event files of LOG_DIR as TensorBoard reads them and prints one
JSON object with what each reader saw. Floats are given as the hex of their float32 bits (so NaN,
infinities and rounding compare exactly); wall times as float.hex().

Standard input: a JSON list of [tag, step, value, wall_time], the scalars as written (value and
wall_time as Python float reprs). For them, "reference" holds the records TensorBoard's own writer
makes of the Events torch.utils.tensorboard's add_scalar builds (Event(wall_time, step,
Summary(value=[Summary.Value(tag, simple_value)]))), as hex, to compare with the file's bytes.

Readers:
  "loader"       event_file_loader.RawEventFileLoader: every record of each file (its CRCs checked)
                 parsed as an Event, as summary_iterator does
  "scalars"      event_accumulator.EventAccumulator: Reload(), Scalars(tag) for each scalar tag
  "tensors"      plugin_event_accumulator.EventAccumulator, what `tensorboard --logdir` serves: the
                 scalars as scalar tensors of the "scalars" plugin"""
import glob
import io
import json
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util


def f32(value):
    """The float32 bits of a float that is already a float32 (read from a float proto field)."""
    return struct.pack("<f", value).hex()


def main():
    log_dir = sys.argv[1]
    written = json.load(sys.stdin)
    out = {"files": sorted(os.path.basename(p) for p in glob.glob(os.path.join(log_dir, "*")))}

    out["loader"] = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        events = []
        for record in RawEventFileLoader(path).Load():
            event = event_pb2.Event.FromString(record)
            entry = {"wall_time": event.wall_time.hex(), "step": event.step,
                     "what": event.WhichOneof("what")}
            if entry["what"] == "file_version":
                entry["file_version"] = event.file_version
            elif entry["what"] == "summary":
                entry["values"] = [[v.tag, v.WhichOneof("value"), f32(v.simple_value)]
                                   for v in event.summary.value]
            events.append(entry)
        out["loader"][os.path.basename(path)] = events

    scalars = event_accumulator.EventAccumulator(log_dir)
    scalars.Reload()
    out["scalars"] = {tag: [[e.wall_time.hex(), e.step, f32(e.value)] for e in scalars.Scalars(tag)]
                      for tag in scalars.Tags()["scalars"]}

    tensors = plugin_event_accumulator.EventAccumulator(log_dir)
    tensors.Reload()
    out["tensors"] = {}
    for tag in tensors.Tags()["tensors"]:
        plugin = tensors.SummaryMetadata(tag).plugin_data.plugin_name
        out["tensors"][tag] = [
            [e.wall_time.hex(), e.step, plugin, tensor_util.make_ndarray(e.tensor_proto).dtype.name,
             f32(float(tensor_util.make_ndarray(e.tensor_proto).item()))]
            for e in tensors.Tensors(tag)]

    reference = io.BytesIO()
    writer = RecordWriter(reference)
    out["float32"] = []
    for tag, step, value, wall_time in written:
        value = summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
        out["float32"].append(f32(value.simple_value))
        event = event_pb2.Event(wall_time=float(wall_time), step=int(step),
                                summary=summary_pb2.Summary(value=[value]))
        writer.write(event.SerializeToString())
    out["reference"] = reference.getvalue().hex()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

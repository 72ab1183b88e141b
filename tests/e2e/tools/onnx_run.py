"""Runs an ONNX model in onnxruntime (build/venv-onnxruntime) for tests/e2e/test_export_onnx.py.

  python onnx_run.py MODEL.onnx FEEDS

FEEDS is a JSON file {input name: nested list} (integers are fed as int64, others as float32) or
an .npz file of arrays. Prints {"inputs": [...], "outputs": {name: nested list}} as JSON, the
graph's declared input names and shapes included.
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def main():
    model, feeds_path = sys.argv[1], sys.argv[2]
    if feeds_path.endswith(".npz"):
        feeds = dict(np.load(feeds_path))
    else:
        with open(feeds_path) as f:
            raw = json.load(f)
        feeds = {}
        for name, value in raw.items():
            array = np.array(value)
            feeds[name] = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, feeds)
    print(json.dumps({
        "inputs": [{"name": i.name, "shape": i.shape, "type": i.type} for i in session.get_inputs()],
        "outputs": {n: v.tolist() for n, v in zip(names, values)},
    }))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Inputs and reference outputs for `lpuc emulate --inputs D --expect D`, made by onnxruntime.

For an example model and an artifact compiled from it (which gives the inputs' bound shapes in
its dataflow.json), write `input_<i>.pb` (seeded random values: floats from a normal
distribution, token ids in [0, 100), attention masks all ones, token types zeros, positions
0, 1, ...) and `output_<i>.pb` (what onnxruntime computes on them) into a directory, in the
layout of ONNX's node tests. examples/data/ was made with it:

    python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6
    lpuc compile examples/llama_prefill.onnx --bucket 16 --embed-weights -o /tmp/a
    /tmp/venv/bin/python scripts/make_example_data.py examples/llama_prefill.onnx /tmp/a \\
        examples/data/llama_prefill_bucket16

(the MLP with no --bucket into examples/data/mlp, and bert_encoder with --bucket 16 into
examples/data/bert_encoder_bucket16). Only for regenerating that data: lpuc and its tests do
not need Python.
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort
from onnx import numpy_helper


def main(model: str, artifact: str, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(artifact, "dataflow.json")) as f:
        dataflow = json.load(f)
    session = ort.InferenceSession(model)
    rng = np.random.default_rng(0)
    feeds = {}
    for k, v in enumerate(dataflow["inputs"]):
        value = dataflow["values"][v]
        name, shape, dtype = value["name"], value["shape"], value["dtype"]
        if dtype in ("i64", "i32"):
            if "mask" in name:
                a = np.ones(shape, dtype=np.int64)
            elif "type" in name:
                a = np.zeros(shape, dtype=np.int64)
            elif "position" in name:
                a = np.broadcast_to(np.arange(shape[-1]), shape).astype(np.int64)
            else:
                a = rng.integers(0, 100, size=shape).astype(np.int64)
            if dtype == "i32":
                a = a.astype(np.int32)
        elif dtype == "bool":
            a = np.ones(shape, dtype=bool)
        else:
            a = rng.standard_normal(shape).astype(np.float32)
        feeds[name] = a
        with open(os.path.join(out, f"input_{k}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(a, name).SerializeToString())
    results = session.run(None, feeds)
    for k, r in enumerate(results):
        name = session.get_outputs()[k].name
        with open(os.path.join(out, f"output_{k}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(np.asarray(r), name).SerializeToString())


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: make_example_data.py MODEL.onnx ARTIFACT_DIR OUT_DIR")
    main(*sys.argv[1:])

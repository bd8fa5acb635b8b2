# ruff: noqa: E402 -- the site folders must be added before the imports that need them
"""Runs the exported encoder's model.onnx inside Triton's Python backend (test support).

The nvidia-pytriton wheel ships only the Python backend, so the e2e test swaps this file in
for the encoder step's onnxruntime backend. Everything else on the path is what a cluster
runs: Triton's ensemble scheduler, the generated tokenizer step, the step configs the
operator renders (batcher included) and the very ONNX artefact prepare wrote and measured.
"""

import json
import os
import site
from pathlib import Path

for _site_dir in filter(None, os.environ.get("TENFOLD_SITE_DIRS", "").split(os.pathsep)):
    site.addsitedir(_site_dir)

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils

HERE = Path(__file__).resolve().parent


class TritonPythonModel:
    """One onnxruntime session; the batcher only joins requests of one padded length."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.output = config["output"][0]["name"]
        self.session = onnxruntime.InferenceSession(
            str(HERE / "model.onnx"), providers=["CPUExecutionProvider"]
        )

    def execute(self, requests):
        arrays = [
            [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs]
            for r in requests
        ]
        feed = {name: np.concatenate([a[i] for a in arrays]) for i, name in enumerate(self.inputs)}
        (vectors,) = self.session.run([self.output], feed)
        responses, start = [], 0
        for request_arrays in arrays:
            rows = request_arrays[0].shape[0]
            tensor = pb_utils.Tensor(self.output, vectors[start : start + rows].astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            start += rows
        return responses

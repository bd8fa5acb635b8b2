"""A deterministic stand-in embedding model for Triton's Python backend.

The cache sidecar's e2e tests and benchmark need a real Triton answering a real embedding
request (`TEXT` BYTES [N,1] -> `EMBEDDING` FP32 [N,384]) without loading a neural network:
each text maps to a unit vector seeded by its SHA-256, so answers are reproducible and
differ per text. The optional `cost_us_per_item` model parameter burns CPU per text so a
benchmark can stand in for a real model's compute cost. This file is copied into a model
repository as `model.py`; it only runs inside Triton's Python backend stub.
"""

import hashlib
import json
import os
import site
import time

# The stub's interpreter runs isolated; tenfold's local runner names its virtualenv here
# (tenfold_runtime.builders.SITE_DIRS_ENV), as the generated model.py does.
for _site_dir in filter(None, os.environ.get("TENFOLD_SITE_DIRS", "").split(os.pathsep)):
    site.addsitedir(_site_dir)

import numpy as np  # noqa: E402 - needs the site directories above
import triton_python_backend_utils as pb_utils  # noqa: E402 - provided by the Python backend


def embed(text: bytes, dim: int) -> np.ndarray:
    """The unit vector of one text, seeded by its SHA-256."""
    seed = int.from_bytes(hashlib.sha256(text).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def burn(microseconds: float) -> None:
    """Spin the CPU for a while: a model's compute is CPU time, not sleep."""
    deadline = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < deadline:
        pass


class TritonPythonModel:
    """Triton's entry point."""

    def initialize(self, args):
        """Read the embedding width and the per-item cost from the model config."""
        config = json.loads(args["model_config"])
        self.dim = int(config["output"][0]["dims"][0])
        parameters = config.get("parameters", {})
        self.cost_us = float(parameters.get("cost_us_per_item", {}).get("string_value", "0"))

    def execute(self, requests):
        """One embedding per text, in order."""
        responses = []
        for request in requests:
            texts = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
            burn(self.cost_us * len(texts))
            rows = np.stack([embed(bytes(text), self.dim) for text in texts])
            output = pb_utils.Tensor("EMBEDDING", rows)
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses

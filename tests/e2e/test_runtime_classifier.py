"""Real Triton serves a sequence classifier: the logits of the reference model, per label.

A BertForSequenceClassification 48 wide with 3 labels, built in the test and saved with
save_pretrained, is prepared from the spec and config the operator renders for
`task: classification` (no guard metric named: the task's top1Agreement) and served by
tritonserver. Its metadata states [-1, 3] over HTTP and gRPC; at fp32 its answers are the
reference model's logits (transformers, loaded on its own); at int8 they are the logits of the
module the guard measured, whose top-1 agreement is what the manifest reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tenfold.api.enums import Task
from tenfold_runtime import builders
from tenfold_runtime.calibration import builtin_calibration
from tenfold_runtime.clients import embed_grpc, embed_http
from tenfold_runtime.local import container_command, start_triton
from tenfold_runtime.modeling import load_model
from tenfold_runtime.prepare import prepare
from tests.small_models import metadata_outputs, operator_prepare_spec, save_small_classifier

pytestmark = pytest.mark.e2e

HIDDEN, LABELS = 48, 3
TEXTS = [
    "The battery died after two days and support never answered my emails.",
    "Absolutely love this blender, it crushes ice in seconds.",
    "What time does the pharmacy close on Sundays?",
    "the a of to",
]


def reference_logits(source: Path, texts: list[str]) -> np.ndarray:
    """The classifier's fp32 logits, from transformers alone (none of tenfold's code)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source).eval()
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**batch).logits.numpy()


def test_served_logits_are_the_reference_models(tmp_path: Path):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    source = save_small_classifier(tmp_path / "bert48x3", HIDDEN, LABELS)
    models = tmp_path / "models"
    fp32 = prepare(
        operator_prepare_spec(source, "python", models, "cls-fp32", task="classification"),
        cache_dir=tmp_path,
    )
    int8_spec = operator_prepare_spec(
        source,
        "python",
        models,
        "cls-int8",
        task="classification",
        quantization={"precision": "int8", "guard": {"calibrationSamples": 32, "maxDrop": 0.1}},
    )
    int8 = prepare(int8_spec, cache_dir=tmp_path)
    assert fp32["guard"]["metric"] == int8["guard"]["metric"] == "top1Agreement"  # type: ignore[index]
    handle = start_triton(models, command=container_command(), log_path=tmp_path / "triton.log")
    try:
        http = httpclient.InferenceServerClient(handle.http_url)
        grpc = grpcclient.InferenceServerClient(handle.grpc_url)
        assert metadata_outputs(http, grpc, "cls-fp32") == [("LOGITS", "FP32", [-1, LABELS])] * 2

        reference = reference_logits(source, TEXTS)
        for answer in (
            embed_http(http, "cls-fp32", TEXTS, task=Task.CLASSIFICATION),
            embed_grpc(grpc, "cls-fp32", TEXTS, task=Task.CLASSIFICATION),
        ):
            np.testing.assert_allclose(answer, reference, rtol=1e-4, atol=1e-5)

        # int8 (or the rung the guard fell back to): the served logits are the guarded
        # module's, batch for batch, and agree on top-1 as often as the manifest says on the
        # held-out half of the 32 calibration inputs (every other one) it was judged on.
        calibration = builtin_calibration(Task.CLASSIFICATION)[1:32:2]
        served = embed_http(http, "cls-int8", calibration, task=Task.CLASSIFICATION)
        module = torch.load(models / "cls-int8" / "1" / builders.ARTEFACT_FILE, weights_only=False)
        loaded = load_model(source, Task.CLASSIFICATION)
        np.testing.assert_allclose(
            served, loaded.outputs(module, calibration), rtol=1e-4, atol=1e-5
        )
        agreement = np.mean(served.argmax(1) == reference_logits(source, calibration).argmax(1))
        assert agreement == pytest.approx(int8["accuracy"]["mean"])  # type: ignore[index]
        assert 1 - agreement <= 0.1 + 1e-9
        http.close()
        grpc.close()
    finally:
        handle.stop()

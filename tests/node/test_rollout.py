"""A rolling update on the real node, under steady load: a new batching window rolls the
Deployment to pods with the new Triton config, no request fails, and at no moment do more
pods run than the budget pays for (terminating pods count: they still run).

The load goes through the Service's HTTP port, the cache sidecar's, so both containers of a
terminating pod must drain (preStop) while endpoints and kube-proxy stop sending to it.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tenfold.constants import CACHE_HTTP_PORT, TRITON_HTTP_PORT
from tenfold_tools.testbed import Kubectl, Testbed
from tenfold_tools.testbed.workloads import LOAD_CLIENT
from tests.conftest import load_example
from tests.integration.operator_support import get_json, wait_for
from tests.node.support import (
    EXAMPLE_MODEL,
    SERVING_TIMEOUT,
    budget_paying_for,
    serve_example_beside_a_client,
    write_report,
)

NAME = "minilm-roll"
MODEL = EXAMPLE_MODEL
# The replica and one surge pod of examples/minilm-local.yaml at the catalog's prices, not a
# third.
AFFORDABLE_PODS = 2
BUDGET_PER_HOUR = budget_paying_for(AFFORDABLE_PODS, load_example("minilm-local.yaml")["spec"])
NEW_WINDOW_US = 2000
LOAD_CONCURRENCY = 2
ROLLOUT_TIMEOUT = SERVING_TIMEOUT


@pytest.fixture(scope="module")
def served(kubectl: Kubectl, operator: str, make_module_namespace, images) -> tuple[str, dict]:
    """One replica of the CPU example (autoscaling off), its budget two pods, and a client."""
    namespace = make_module_namespace("restricted")
    spec = {
        "autoscaling": {"mode": "off", "minReplicas": 1, "maxReplicas": 1},
        "budget": {"maxCostPerHour": BUDGET_PER_HOUR},
    }
    service = serve_example_beside_a_client(
        kubectl, namespace, NAME, spec, images["operator"], client="load"
    )
    return namespace, service


def running_pods(kubectl: Kubectl, namespace: str) -> list[dict]:
    """The service's pods that hold a node's resources: pending, running or terminating."""
    pods = get_json(kubectl, namespace, "pods", "-l", f"app.kubernetes.io/instance={NAME}")
    return [p for p in pods["items"] if p["status"].get("phase") not in ("Succeeded", "Failed")]


def rolled_out(deployment: dict) -> bool:
    """The Deployment's controller saw the new template and every replica is updated."""
    status, want = deployment["status"], deployment["spec"]["replicas"]
    return (
        status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == want
        and status.get("availableReplicas") == want
        and status.get("replicas") == want
    )


def served_window(pod_ip: str) -> int:
    """The dynamic batching window Triton in the pod loaded (read from the host)."""
    import tritonclient.http as httpclient

    with httpclient.InferenceServerClient(f"{pod_ip}:{TRITON_HTTP_PORT}") as http:
        config = http.get_model_config(MODEL)
    return int(config["dynamic_batching"]["max_queue_delay_microseconds"])


def test_a_new_batching_window_rolls_out_under_load_without_a_lost_request(
    testbed: Testbed, kubectl: Kubectl, served
) -> None:
    namespace, _ = served
    deployment = get_json(kubectl, namespace, "deployment", NAME)
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    (old,) = running_pods(kubectl, namespace)
    host = f"{NAME}.{namespace}.svc.cluster.local"
    kubectl_cmd = [str(testbed.binaries.kubectl), f"--kubeconfig={testbed.kubeconfig}"]
    load = subprocess.Popen(
        [*kubectl_cmd, "exec", "-i", "-n", namespace, "load", "--", "python3", "-c",
         LOAD_CLIENT, host, MODEL, "0", str(LOAD_CONCURRENCY), str(CACHE_HTTP_PORT)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    most_pods, started = 1, time.time()
    try:
        patch = {"spec": {"batching": {"maxQueueDelayMicroseconds": NEW_WINDOW_US}}}
        kubectl("patch", "-n", namespace, "inferenceservice", NAME, "--type=merge", "-p",
                json.dumps(patch))  # fmt: skip

        def done() -> bool:
            nonlocal most_pods
            pods = running_pods(kubectl, namespace)
            most_pods = max(most_pods, len(pods))
            deployment = get_json(kubectl, namespace, "deployment", NAME)
            names = {p["metadata"]["name"] for p in pods}
            changed = deployment["metadata"]["generation"] > 1
            return changed and rolled_out(deployment) and old["metadata"]["name"] not in names

        wait_for(done, "the rollout to finish and the old pod to be gone", ROLLOUT_TIMEOUT)
        finished = time.time()
        (new,) = running_pods(kubectl, namespace)
        # Keep the load on the new pod for a while: it must serve, not only be Ready.
        wait_for(lambda: len(running_pods(kubectl, namespace)) == 1 and time.time() > finished + 10,
                 "ten seconds of load on the new pod", 60)  # fmt: skip
    finally:
        out, err = load.communicate(input="", timeout=120)
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    assert result, err
    report = {
        "rollout_seconds": round(finished - started, 1),
        "most_pods": most_pods,
        "requests_ok": result["ok"],
        "requests_failed": result["failed"],
        "errors": result["errors"],
        "p95_ms_by_10s_window": result["p95_ms_by_window"],
    }
    write_report("rolling update on the real node", "node-rollout.json", report)
    assert served_window(new["status"]["podIP"]) == NEW_WINDOW_US
    assert result["failed"] == 0, result["errors"]
    assert result["ok"] > 0
    assert most_pods <= AFFORDABLE_PODS, report

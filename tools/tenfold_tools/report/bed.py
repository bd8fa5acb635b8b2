"""The report's deployments on the test bed's real node: apply, wait, find, measure, delete.

Thin I/O over kubectl and the pod's own ports; the figures are computed elsewhere.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tenfold.plan.labels import REDIS_APP_NAME
from tenfold_tools.testbed import Kubectl
from tenfold_tools.testbed.layout import REPO_ROOT, TestbedError

EXAMPLE = REPO_ROOT / "examples" / "minilm-local.yaml"
NAMESPACE = "tenfold-report"
# Prepare quantizes and guards MiniLM on two shared cores, then Triton loads it.
READY_TIMEOUT_S = 900


def example() -> dict[str, Any]:
    """examples/minilm-local.yaml: the configuration tenfold's side of the report serves."""
    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return document


def variant(name: str, **spec: Any) -> dict[str, Any]:
    """The example as `name`, with the given top-level spec fields replaced."""
    document = copy.deepcopy(example())
    document["metadata"] = {"name": name}
    document["spec"].update(spec)
    return document


def naive(name: str = "naive") -> dict[str, Any]:
    """fp32, a batch of one (no request waits for another), no cache, one static replica."""
    return variant(
        name,
        quantization={"precision": "fp32"},
        batching={"maxBatchSize": 1, "maxQueueDelayMicroseconds": 0},
        cache={"mode": "none"},
        autoscaling={"mode": "off", "minReplicas": 1, "maxReplicas": 1},
    )


def batched_fp32(name: str = "batched-fp32") -> dict[str, Any]:
    """The example's batching window at fp32, no cache: isolates the batching lever."""
    return variant(
        name,
        quantization={"precision": "fp32"},
        cache={"mode": "none"},
        autoscaling={"mode": "off", "minReplicas": 1, "maxReplicas": 1},
    )


def tenfold(name: str = "tenfold") -> dict[str, Any]:
    """The example (guarded precision, batching window, autoscaler under its budget) with the
    managed Redis behind the sidecar, so every replica of a larger deployment shares one
    cache, as the computed day assumes."""
    spec = example()["spec"]
    return variant(name, cache={**spec["cache"], "mode": "redis"})


def ensure_namespace(kubectl: Kubectl) -> None:
    """The report's namespace, under PodSecurity's restricted profile like the demo's."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(manifest))


def apply(kubectl: Kubectl, document: dict[str, Any]) -> None:
    """Create or update one InferenceService in the report's namespace."""
    kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(document))


def wait_ready(kubectl: Kubectl, name: str) -> None:
    """Until the service's Ready condition is True (prepare, the guard and Triton done)."""
    kubectl("wait", "-n", NAMESPACE, f"inferenceservice/{name}", "--for=condition=Ready",
            f"--timeout={READY_TIMEOUT_S}s", timeout=READY_TIMEOUT_S + 60)  # fmt: skip


def delete(kubectl: Kubectl, *names: str) -> None:
    """Delete services and wait until their pods are gone (they would share the CPU)."""
    kubectl("delete", "-n", NAMESPACE, "inferenceservice", *names, "--wait=true",
            "--timeout=180s", timeout=240)  # fmt: skip
    for name in names:
        selector = f"app.kubernetes.io/instance={name}"
        kubectl("wait", "-n", NAMESPACE, "pods", "-l", selector, "--for=delete",
                "--timeout=180s", timeout=240, check=False)  # fmt: skip


def serving_pods(kubectl: Kubectl, name: str) -> list[dict[str, Any]]:
    """The service's serving pods (not its Redis)."""
    selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/name!={REDIS_APP_NAME}"
    listed = kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json").stdout
    pods: list[dict[str, Any]] = json.loads(listed)["items"]
    return pods


def one_pod(kubectl: Kubectl, name: str) -> dict[str, Any]:
    """The one serving pod of a service at one replica."""
    pods = [p for p in serving_pods(kubectl, name) if "deletionTimestamp" not in p["metadata"]]
    if len(pods) != 1:
        raise TestbedError(f"{name}: expected one serving pod, found {len(pods)}")
    return pods[0]


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def start_seconds(pod: dict[str, Any]) -> float:
    """From the pod's creation to its Ready condition, by the apiserver's clock."""
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    return (
        _time(ready["lastTransitionTime"]) - _time(pod["metadata"]["creationTimestamp"])
    ).total_seconds()


def served_precision(pod: dict[str, Any]) -> str:
    """What the init container's guard served, from its termination message."""
    state = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
    return str(json.loads(state["message"]).get("precision_served", "?"))


def service_pods(kubectl: Kubectl, name: str) -> list[dict[str, Any]]:
    """Every pod of the service: serving pods and its managed Redis."""
    selector = f"app.kubernetes.io/instance={name}"
    listed = kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json").stdout
    pods: list[dict[str, Any]] = json.loads(listed)["items"]
    return pods


def cpu_seconds(kubectl: Kubectl, pods: list[dict[str, Any]]) -> float:
    """CPU-seconds every container of these pods has used, from the kubelet's summary API."""
    total, uids = 0.0, {pod["metadata"]["uid"] for pod in pods}
    for node in {pod["spec"]["nodeName"] for pod in pods}:
        raw = kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/stats/summary").stdout
        for entry in json.loads(raw)["pods"]:
            if entry["podRef"]["uid"] in uids:
                uids.discard(entry["podRef"]["uid"])
                total += sum(c["cpu"]["usageCoreNanoSeconds"] for c in entry["containers"]) / 1e9
    if uids:
        raise TestbedError(f"the kubelet's summary lacks pods {sorted(uids)}")
    return total


def replicas_now(kubectl: Kubectl, name: str) -> int:
    """Serving pods that exist now (any phase, terminating included): what is paid for."""
    return len(serving_pods(kubectl, name))


def save_json(path: Path, document: Any) -> None:
    """Write the raw results beside the page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")

"""The operator against a real apiserver, controller-manager, scheduler and KWOK nodes."""

from __future__ import annotations

import copy
import json
import urllib.request
from pathlib import Path

import pytest

from tenfold_tools.testbed import Kubectl
from tests.integration.operator_support import (
    REPO_ROOT,
    OperatorProcess,
    apply_manifest,
    condition_of,
    get_json,
    get_json_or_none,
    load_manifest,
    settle,
    wait_for,
    wait_ready,
)

EXAMPLES = REPO_ROOT / "examples"
CHILDREN = ("deployment", "service", "configmap", "poddisruptionbudget")
CONFIG_HASH = "tenfold.dev/config-hash"


def minilm(name: str = "minilm") -> dict:
    """The CPU MiniLM example, renamed."""
    return load_manifest(EXAMPLES / "minilm-cpu.yaml", name)


def node_labels(kubectl: Kubectl, node: str) -> dict[str, str]:
    """Labels of one node."""
    return json.loads(kubectl("get", "node", node, "-o", "json").stdout)["metadata"]["labels"]


def pods_of(kubectl: Kubectl, namespace: str, name: str) -> list[dict]:
    """The service's pods."""
    selector = f"app.kubernetes.io/instance={name}"
    listing = kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    return json.loads(listing)["items"]


# --- the API alone (no operator) ---------------------------------------------------------


def test_crd_explain_and_printer_columns(crd: None, kubectl: Kubectl, namespace: str):
    # The apiserver publishes a new CRD's OpenAPI a moment after it is Established.
    explained = wait_for(
        lambda: (
            kubectl(
                "explain", "inferenceservice.spec.batching.maxQueueDelayMicroseconds", check=False
            ).stdout
        ),
        "kubectl explain of the new CRD",
        timeout=60,
    )
    assert "batching window" in explained
    apply_manifest(kubectl, namespace, minilm("columns"))
    header = kubectl("get", "tfis", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "REPLICAS", "GPU", "PRECISION", "COST/H", "AGE"]


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"quantization": {"precision": "bf16"}, "hardware": {"gpuType": "T4"}},
         "spec.quantization.precision", "not supported on gpuType T4"),
        ({"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
         "spec.autoscaling.minReplicas", "must not exceed maxReplicas"),
        ({"hardware": {"gpuType": "A100-80GB"}, "autoscaling": {"minReplicas": 2},
          "budget": {"maxCostPerHour": 5}},
         "spec.budget.maxCostPerHour", "cannot pay for minReplicas"),
        ({"hardware": {"cpu": "64", "memory": "256Gi"}, "budget": {"maxCostPerHour": 0.5}},
         "spec.budget.maxCostPerHour", "cannot pay for minReplicas"),
        ({"batching": {"maxQueueDelayMicroseconds": 500000}},
         "spec.batching.maxQueueDelayMicroseconds", "longer than the p95"),
        ({"batching": {"maxBatchSize": 8, "preferredBatchSizes": [16]}},
         "spec.batching.preferredBatchSizes", "at most maxBatchSize"),
        ({"batching": {"maxBatchSize": 100000}},
         "spec.batching.maxBatchSize", "less than or equal"),
        ({"hardware": {"gpuType": "V100"}}, "spec.hardware.gpuType", "catalog"),
        ({"budget": {"priceOverrides": {"cpu": 0}}}, "spec.budget.priceOverrides", "above 0"),
        ({"budget": {"priceOverrides": {"cpu": -1}}}, "spec.budget.priceOverrides", "above 0"),
        # 0.085 pays for the 2 vCPU and 4 GiB (0.0816), not for the cache sidecar beside them.
        ({"budget": {"maxCostPerHour": 0.085}},
         "spec.budget.maxCostPerHour", "cannot pay for minReplicas"),
    ],
)  # fmt: skip
def test_apiserver_rejects_invalid_specs_without_the_operator(
    crd: None, kubectl: Kubectl, namespace: str, patch: dict, field: str, words: str
):
    document = minilm("invalid")
    for section, values in patch.items():
        document["spec"].setdefault(section, {}).update(values)
    result = apply_manifest(kubectl, namespace, document, check=False)
    assert result.returncode != 0
    assert field in result.stderr and words in result.stderr, result.stderr
    assert get_json_or_none(kubectl, namespace, "inferenceservice", "invalid") is None


def test_invalid_example_is_rejected_by_the_apiserver(crd: None, kubectl: Kubectl, namespace):
    result = kubectl(
        "apply", "-n", namespace, "-f", str(EXAMPLES / "invalid-bf16-on-t4.yaml"), check=False
    )
    assert result.returncode != 0
    assert "spec.quantization.precision" in result.stderr
    assert "spec.budget.maxCostPerHour" in result.stderr


# --- with the operator running -----------------------------------------------------------


def test_create_makes_children_that_run_and_report_ready(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
):
    apply_manifest(kubectl, namespace, minilm())
    service = wait_ready(kubectl, namespace, "minilm")
    assert condition_of(service, "Ready")["observedGeneration"] == service["metadata"]["generation"]
    assert service["status"]["observedGeneration"] == service["metadata"]["generation"]
    uid = service["metadata"]["uid"]
    for kind in CHILDREN:
        name = "minilm-config" if kind == "configmap" else "minilm"
        child = get_json(kubectl, namespace, kind, name)
        owner = child["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("InferenceService", uid, True)
    pods = pods_of(kubectl, namespace, "minilm")
    assert pods and all(p["status"]["phase"] == "Running" for p in pods)
    for pod in pods:
        assert "nvidia.com/gpu.product" not in node_labels(kubectl, pod["spec"]["nodeName"])
    assert service["status"]["selector"]
    assert service["status"]["endpoints"]["http"].endswith(":8080")
    gauge = f'tenfold_service_cost_per_hour_usd{{name="minilm",namespace="{namespace}"}}'

    def exported_cost_matches_status() -> bool:
        # The gauge and the status are written by the same tick; read both until they agree.
        cost = get_json(kubectl, namespace, "inferenceservice", "minilm")["status"]["costPerHour"]
        exported = urllib.request.urlopen(quiet_operator.metrics_url, timeout=10).read().decode()
        return cost > 0 and f"{gauge} {cost}" in exported

    wait_for(exported_cost_matches_status, "the operator's cost gauge to match the status")


def test_pods_land_on_the_requested_gpu_type(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
):
    document = minilm("on-l4")
    document["spec"]["hardware"] = {"gpuType": "L4", "gpusPerReplica": 1}
    document["spec"]["quantization"]["precision"] = "fp16"
    document["spec"]["autoscaling"]["minReplicas"] = 2
    document["spec"]["budget"]["maxCostPerHour"] = 2
    apply_manifest(kubectl, namespace, document)
    wait_ready(kubectl, namespace, "on-l4")
    pods = pods_of(kubectl, namespace, "on-l4")
    assert len(pods) == 2
    for pod in pods:
        labels = node_labels(kubectl, pod["spec"]["nodeName"])
        assert labels["nvidia.com/gpu.product"] == "NVIDIA-L4"
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "1"


def _config_hash(kubectl: Kubectl, namespace: str, name: str) -> str:
    deployment = get_json(kubectl, namespace, "deployment", name)
    return deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]


def test_batching_window_and_precision_roll_the_pods_other_fields_do_not(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
):
    document = minilm()
    apply_manifest(kubectl, namespace, document)
    wait_ready(kubectl, namespace, "minilm")
    first = _config_hash(kubectl, namespace, "minilm")

    unrelated = copy.deepcopy(document)
    unrelated["spec"]["autoscaling"]["targetP95LatencyMs"] = 150
    unrelated["spec"]["budget"]["maxCostPerHour"] = 0.9
    apply_manifest(kubectl, namespace, unrelated)
    wait_ready(kubectl, namespace, "minilm")
    assert _config_hash(kubectl, namespace, "minilm") == first

    window = copy.deepcopy(unrelated)
    window["spec"]["batching"]["maxQueueDelayMicroseconds"] = 2000
    apply_manifest(kubectl, namespace, window)
    second = wait_for(
        lambda: (h := _config_hash(kubectl, namespace, "minilm")) != first and h,
        "a new config hash after the batching window changed",
    )
    config = get_json(kubectl, namespace, "configmap", "minilm-config")
    assert "max_queue_delay_microseconds: 2000" in config["data"]["config.pbtxt"]
    wait_ready(kubectl, namespace, "minilm")

    precision = copy.deepcopy(window)
    precision["spec"]["quantization"]["precision"] = "fp32"
    apply_manifest(kubectl, namespace, precision)
    wait_for(
        lambda: _config_hash(kubectl, namespace, "minilm") not in (first, second),
        "a new config hash after the precision changed",
    )
    wait_ready(kubectl, namespace, "minilm")


def test_gpu_type_without_nodes_is_pending_and_says_why(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
):
    document = minilm("no-nodes")
    document["spec"]["hardware"] = {"gpuType": "L40S", "gpusPerReplica": 1}
    document["spec"]["budget"]["maxCostPerHour"] = 5
    apply_manifest(kubectl, namespace, document)

    def degraded() -> dict:
        service = get_json(kubectl, namespace, "inferenceservice", "no-nodes")
        condition = condition_of(service, "Degraded")
        return condition if condition.get("status") == "True" else {}

    condition = wait_for(degraded, "Degraded=True for a GPU type with no nodes")
    assert condition["reason"] == "Unschedulable"
    assert "didn't match" in condition["message"] and "affinity" in condition["message"]
    pods = pods_of(kubectl, namespace, "no-nodes")
    assert pods and all(p["status"]["phase"] == "Pending" for p in pods)
    service = get_json(kubectl, namespace, "inferenceservice", "no-nodes")
    assert condition_of(service, "Ready")["status"] == "False"


def test_delete_removes_children_through_garbage_collection(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
):
    apply_manifest(kubectl, namespace, minilm())
    wait_ready(kubectl, namespace, "minilm")
    kubectl("delete", "inferenceservice", "minilm", "-n", namespace, "--wait=true")
    for kind in CHILDREN:
        name = "minilm-config" if kind == "configmap" else "minilm"
        wait_for(
            lambda k=kind, n=name: get_json_or_none(kubectl, namespace, k, n) is None,
            f"{kind}/{name} garbage-collected",
        )
    wait_for(lambda: not pods_of(kubectl, namespace, "minilm"), "pods garbage-collected")


def test_a_child_the_plan_no_longer_holds_is_pruned_and_the_status_lists_the_children(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
):
    manifest = minilm("pruned")
    manifest["spec"]["cache"] = {"mode": "redis"}
    manifest["spec"]["budget"] = {"maxCostPerHour": 5}
    apply_manifest(kubectl, namespace, manifest)

    def children() -> list[str]:
        status = get_json(kubectl, namespace, "inferenceservice", "pruned").get("status") or {}
        return list(status.get("children") or [])

    wait_for(lambda: "StatefulSet/pruned-redis" in children(), "status.children with Redis")
    listed = children()
    assert listed == sorted(listed) and "Deployment/pruned" in listed
    assert get_json_or_none(kubectl, namespace, "statefulset", "pruned-redis") is not None
    manifest["spec"]["cache"] = {"mode": "none"}
    apply_manifest(kubectl, namespace, manifest)
    for kind in ("statefulset", "service", "networkpolicy"):
        wait_for(
            lambda k=kind: get_json_or_none(kubectl, namespace, k, "pruned-redis") is None,
            f"{kind}/pruned-redis pruned after the cache mode changed to none",
        )
    # kopf may hold the spec's update up to its consistency wait (60 s) when a busy host is
    # slow to show its own last patch; a drift repair can prune before, without the status.
    wait_for(
        lambda: not any("redis" in c for c in children()),
        "status.children without Redis",
        timeout=240,
    )
    assert get_json_or_none(kubectl, namespace, "deployment", "pruned") is not None


@pytest.mark.parametrize("server_side", [False, True], ids=["client-side", "server-side"])
def test_reapplying_unchanged_yaml_changes_nothing(
    quiet_operator: OperatorProcess,
    kubectl: Kubectl,
    namespace: str,
    server_side: bool,
    tmp_path: Path,
):
    path = tmp_path / "user.yaml"
    path.write_text(json.dumps(minilm()))
    mode = ["--server-side"] if server_side else []
    kubectl("apply", "-n", namespace, "-f", str(path), *mode)
    wait_ready(kubectl, namespace, "minilm")
    kubectl("scale", "tfis/minilm", "-n", namespace, "--replicas=2")
    wait_for(
        lambda: get_json(kubectl, namespace, "deployment", "minilm")["spec"]["replicas"] == 2,
        "the Deployment follows the scale subresource",
    )
    before = get_json(kubectl, namespace, "inferenceservice", "minilm")
    result = kubectl("apply", "-n", namespace, "-f", str(path), *mode)
    assert "unchanged" in result.stdout or "serverside-applied" in result.stdout
    after = get_json(kubectl, namespace, "inferenceservice", "minilm")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["replicas"] == 2
    diff = kubectl("diff", "-n", namespace, "-f", str(path), *mode, check=False)
    assert diff.returncode == 0, diff.stdout
    settle(2)
    assert get_json(kubectl, namespace, "deployment", "minilm")["spec"]["replicas"] == 2

"""The test bed is a real cluster: pinned version, GPU nodes, scheduler, controllers,
garbage collection, PodSecurity admission and RBAC all do their real jobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tenfold_tools.testbed import Kubectl, Testbed, TestbedError, assert_is_testbed
from tenfold_tools.testbed.health import wait_until

# GPU Feature Discovery's product strings, written out here rather than read from
# nodes.yaml so that a typo in the data file fails this test.
GPU_PRODUCTS = [
    "Tesla-T4",
    "NVIDIA-L4",
    "NVIDIA-A10G",
    "NVIDIA-A100-SXM4-80GB",
    "NVIDIA-H100-80GB-HBM3",
]
WAIT = "90s"
# KWOK never pulls images; any reference will do.
IMAGE = "pause:3.10"


def _get(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    """kubectl get ... -o json, parsed."""
    result: dict[str, Any] = json.loads(kubectl("get", *args, "-o", "json").stdout)
    return result


def _apply(kubectl: Kubectl, namespace: str, manifest: dict[str, Any]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def _is_ready(node: dict[str, Any]) -> bool:
    conditions = node["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": IMAGE} | spec.pop("container", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], **spec},
    }


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": IMAGE}]},
            },
        },
    }


def _running_pods(kubectl: Kubectl, namespace: str, selector: str) -> list[dict[str, Any]]:
    pods = _get(kubectl, "pods", "-n", namespace, "-l", selector)["items"]
    return [p for p in pods if p["status"].get("phase") == "Running"]


def test_server_reports_the_pinned_version(testbed: Testbed, k8s_api: client.ApiClient) -> None:
    info = client.VersionApi(k8s_api).get_code()
    assert info.git_version == testbed.versions.kubernetes
    assert f"v{info.major}.{info.minor}" == testbed.versions.kubernetes.rsplit(".", 1)[0]


@pytest.mark.parametrize("product", GPU_PRODUCTS)
def test_gpu_nodes_are_ready_with_gfd_labels(kubectl: Kubectl, product: str) -> None:
    nodes = _get(kubectl, "nodes", "-l", f"nvidia.com/gpu.product={product}")["items"]
    assert nodes, f"no node labelled {product}"
    for node in nodes:
        labels, status = node["metadata"]["labels"], node["status"]
        assert _is_ready(node)
        assert not node["spec"].get("taints")
        assert labels["nvidia.com/gpu.present"] == "true"
        assert labels["tenfold.dev/testbed"] == "true"
        assert labels["node.kubernetes.io/instance-type"]
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert status["capacity"]["nvidia.com/gpu"] in {"4", "8"}
        assert status["allocatable"]["nvidia.com/gpu"] == status["capacity"]["nvidia.com/gpu"]
        assert status["capacity"]["pods"] == "110"


def test_cpu_nodes_have_no_gpus(kubectl: Kubectl) -> None:
    nodes = _get(kubectl, "nodes", "-l", "tenfold.dev/testbed=true,!nvidia.com/gpu.product")
    assert len(nodes["items"]) >= 2
    for node in nodes["items"]:
        assert _is_ready(node)
        assert "nvidia.com/gpu" not in node["status"]["capacity"]


def test_scheduler_places_gpu_pod_on_requested_product(kubectl: Kubectl, namespace: str) -> None:
    pod = _pod(
        "wants-l4",
        nodeSelector={"nvidia.com/gpu.product": "NVIDIA-L4"},
        container={"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    )
    _apply(kubectl, namespace, pod)
    kubectl("wait", "-n", namespace, "pod/wants-l4", "--for=condition=Ready", f"--timeout={WAIT}")
    placed = _get(kubectl, "pod", "wants-l4", "-n", namespace)
    node = _get(kubectl, "node", placed["spec"]["nodeName"])
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-L4"
    assert placed["status"]["phase"] == "Running"


def test_gpu_pod_stays_pending_when_no_node_has_the_product(
    kubectl: Kubectl, namespace: str
) -> None:
    pod = _pod("wants-b200", nodeSelector={"nvidia.com/gpu.product": "NVIDIA-B200"})
    _apply(kubectl, namespace, pod)

    def unschedulable() -> bool:
        status = _get(kubectl, "pod", "wants-b200", "-n", namespace)["status"]
        conditions = status.get("conditions", [])
        return any(c["type"] == "PodScheduled" and c["status"] == "False" for c in conditions)

    wait_until(unschedulable, "the scheduler to report the pod unschedulable", timeout=60)


def test_deployment_rolls_out_through_replicaset(kubectl: Kubectl, namespace: str) -> None:
    _apply(kubectl, namespace, _deployment("web", replicas=3))
    kubectl("rollout", "status", "-n", namespace, "deployment/web", f"--timeout={WAIT}")
    replicasets = _get(kubectl, "replicasets", "-n", namespace, "-l", "app=web")["items"]
    assert len(replicasets) == 1
    assert replicasets[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    pods = _running_pods(kubectl, namespace, "app=web")
    assert len(pods) == 3
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in pods} == {"ReplicaSet"}


def test_deleting_deployment_garbage_collects_replicaset_and_pods(
    kubectl: Kubectl, namespace: str
) -> None:
    _apply(kubectl, namespace, _deployment("doomed", replicas=2))
    kubectl("rollout", "status", "-n", namespace, "deployment/doomed", f"--timeout={WAIT}")
    # --cascade=background deletes only the Deployment; the garbage collector must do the rest.
    kubectl("delete", "-n", namespace, "deployment/doomed", "--cascade=background", "--wait=false")

    def collected() -> bool:
        replicasets = _get(kubectl, "replicasets", "-n", namespace, "-l", "app=doomed")
        pods = _get(kubectl, "pods", "-n", namespace, "-l", "app=doomed")
        return not replicasets["items"] and not pods["items"]

    wait_until(collected, "the ReplicaSet and its pods to be garbage-collected", timeout=90)


@pytest.mark.parametrize("namespace", ["restricted"], indirect=True)
def test_pod_security_rejects_privileged_pod(kubectl: Kubectl, namespace: str) -> None:
    privileged = _pod("root", container={"securityContext": {"privileged": True}})
    result = kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(privileged), check=False)
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:' in result.stderr
    # A pod that meets the restricted profile is admitted in the same namespace.
    compliant = _pod(
        "compliant",
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        container={
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsUser": 65532,
            }
        },
    )
    _apply(kubectl, namespace, compliant)


def _can_i(kubectl: Kubectl, namespace: str, user: str) -> str:
    result = kubectl(
        "auth", "can-i", "list", "secrets", "-n", namespace, f"--as={user}", check=False
    )
    return result.stdout.strip()


def test_rbac_denies_unbound_service_account(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    user = f"system:serviceaccount:{namespace}:nobody"
    assert _can_i(kubectl, namespace, user) == "no"
    # Binding a Role flips the answer, so "no" above came from RBAC, not a broken check.
    kubectl("create", "role", "secret-reader", "-n", namespace, "--verb=list", "--resource=secrets")
    kubectl(
        "create", "rolebinding", "nobody-reads", "-n", namespace,
        "--role=secret-reader", f"--serviceaccount={namespace}:nobody",
    )  # fmt: skip
    assert _can_i(kubectl, namespace, user) == "yes"


def test_guard_refuses_a_kubeconfig_outside_the_state_folder(
    testbed: Testbed, tmp_path: Path
) -> None:
    copy = tmp_path / "kubeconfig"
    shutil.copy(testbed.kubeconfig, copy)
    with pytest.raises(TestbedError, match="is not the test bed's"):
        assert_is_testbed(testbed, copy)
    assert_is_testbed(testbed, testbed.kubeconfig)

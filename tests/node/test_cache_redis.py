"""The operator-managed Redis on the real node: a StatefulSet pod of the Redis image built
here, on a local PersistentVolume, behind the cache sidecar of a real serving pod.

The cache outlives the sidecar: entries written before the sidecar's process is restarted
answer the same texts after it. Deleting the InferenceService takes Redis, its claim and
every other child with it.
"""

from __future__ import annotations

import base64
import json

import pytest

from tenfold.plan.labels import REDIS_APP_NAME
from tenfold_tools.testbed import Kubectl
from tenfold_tools.testbed.node import LOCAL_STORAGE_CLASS, REAL_NODE_NAME
from tenfold_tools.testbed.workloads import EMBED_CLIENT, sidecar_counts
from tests.integration.operator_support import get_json, wait_for
from tests.node.support import EXAMPLE_MODEL, serve_example_beside_a_client

NAME = "minilm-redis"
MODEL = EXAMPLE_MODEL
TEXTS = ["A cache that forgets on restart is a slower cache.", "Redis keeps what it is told."]


@pytest.fixture(scope="module")
def served(kubectl: Kubectl, operator: str, make_module_namespace, images) -> tuple[str, dict]:
    """The CPU example with `cache.mode: redis` (managed), Ready, and a client pod."""
    namespace = make_module_namespace("restricted")
    spec = {
        "cache": {"mode": "redis", "ttlSeconds": 3600},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
    }
    service = serve_example_beside_a_client(kubectl, namespace, NAME, spec, images["operator"])
    return namespace, service


def serving_pod(kubectl: Kubectl, namespace: str) -> dict:
    """The one serving pod (Triton and the sidecar), not the Redis pod of the same service."""
    selector = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/name!={REDIS_APP_NAME}"
    (pod,) = get_json(kubectl, namespace, "pods", "-l", selector)["items"]
    return pod


def ask(kubectl: Kubectl, namespace: str) -> dict:
    """The texts through the Service: HTTP through the sidecar, gRPC straight to Triton."""
    host = f"{NAME}.{namespace}.svc.cluster.local"
    output = kubectl("exec", "-n", namespace, "client", "--", "python3", "-c", EMBED_CLIENT,
                     host, MODEL, json.dumps(TEXTS), timeout=120).stdout  # fmt: skip
    return json.loads(output)


def cache_restarts(pod: dict) -> int:
    (status,) = [s for s in pod["status"]["containerStatuses"] if s["name"] == "cache"]
    return int(status["restartCount"])


def test_managed_redis_runs_on_the_node_on_a_local_volume(kubectl: Kubectl, served) -> None:
    namespace, _ = served
    redis = get_json(kubectl, namespace, "pod", f"{NAME}-redis-0")
    assert redis["spec"]["nodeName"] == REAL_NODE_NAME
    assert all(s["ready"] for s in redis["status"]["containerStatuses"])
    assert redis["spec"]["containers"][0]["image"].endswith("/redis:bookworm")
    claim = get_json(kubectl, namespace, "pvc", f"data-{NAME}-redis-0")
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == LOCAL_STORAGE_CLASS
    # Redis writes its append-only file on that volume.
    listing = kubectl("exec", "-n", namespace, f"{NAME}-redis-0", "--", "ls", "/data").stdout
    assert "appendonlydir" in listing


def test_managed_redis_refuses_clients_without_its_generated_password(
    kubectl: Kubectl, served
) -> None:
    namespace, _ = served
    redis_pod = f"{NAME}-redis-0"
    secret = get_json(kubectl, namespace, "secret", f"{NAME}-redis-auth")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) >= 32
    assert secret["metadata"]["ownerReferences"][0]["name"] == NAME
    anonymous = kubectl("exec", "-n", namespace, redis_pod, "--", "sh", "-c",
                        "unset REDISCLI_AUTH; redis-cli ping").stdout  # fmt: skip
    assert "NOAUTH" in anonymous
    assert "PONG" in kubectl("exec", "-n", namespace, redis_pod, "--", "redis-cli", "ping").stdout
    # Nothing of the pod shows the password in a command line.
    argv = kubectl("exec", "-n", namespace, redis_pod, "--", "cat", "/proc/1/cmdline").stdout
    assert "redis-server" in argv and password not in argv
    serving = serving_pod(kubectl, namespace)
    (sidecar,) = [c for c in serving["spec"]["containers"] if c["name"] == "cache"]
    assert password not in json.dumps(sidecar)


def test_the_cache_survives_a_sidecar_restart(kubectl: Kubectl, served) -> None:
    namespace, _ = served
    first = ask(kubectl, namespace)
    pod = serving_pod(kubectl, namespace)
    ip = pod["status"]["podIP"]
    # A second ask of the same texts is answered by Redis, through the sidecar.
    second = ask(kubectl, namespace)
    assert second["http"] == first["http"]
    assert sidecar_counts(ip)["hits"] > 0
    keys = kubectl("exec", "-n", namespace, f"{NAME}-redis-0", "--", "redis-cli", "dbsize")
    assert int(keys.stdout.strip()) > 0

    restarts = cache_restarts(pod)
    kubectl("exec", "-n", namespace, pod["metadata"]["name"], "-c", "cache", "--", "python3",
            "-c", "import os, signal; os.kill(1, signal.SIGTERM)")  # fmt: skip

    def restarted_and_ready() -> bool:
        now = get_json(kubectl, namespace, "pod", pod["metadata"]["name"])
        return cache_restarts(now) > restarts and all(
            s["ready"] for s in now["status"]["containerStatuses"]
        )

    wait_for(restarted_and_ready, "the cache sidecar to restart and become Ready", 120)
    assert sidecar_counts(ip) == {"hits": 0.0, "misses": 0.0}  # a new process
    third = ask(kubectl, namespace)
    assert third["http"] == first["http"]
    after = sidecar_counts(ip)
    assert after["hits"] > 0 and after["misses"] == 0, after


def test_deleting_the_service_removes_redis_its_claim_its_secret_and_every_child(
    kubectl: Kubectl, served
) -> None:
    namespace, _ = served
    kubectl("delete", "-n", namespace, "inferenceservice", NAME, "--timeout=180s", timeout=200)

    def gone() -> bool:
        listed = kubectl("get", "deploy,sts,rs,pods,svc,cm,pdb,pvc,secrets", "-n", namespace,
                         "-o", "name").stdout  # fmt: skip
        return set(listed.split()) <= {"pod/client", "configmap/kube-root-ca.crt"}

    wait_for(gone, f"every child of {namespace}/{NAME} to be deleted", timeout=180)

"""What survives: drift repaired, refusals reported and not retried hot, idle services quiet.

Against the real apiserver, controller-manager and scheduler (KWOK nodes). Each recovery
time is printed (run with `-s`); docs/reliability.md quotes them with this command.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime

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

NAME = "minilm"
CONFIG = f"{NAME}-config"
# Far above the repair time measured here (well under a second, docs/reliability.md): a
# repair that waits for a resync or a restart instead of the watch fails this.
REPAIR_TIMEOUT = 15.0
IDLE_TICKS = 10


def minilm() -> dict:
    return load_manifest(REPO_ROOT / "examples" / "minilm-cpu.yaml", NAME)


def timed_wait(predicate: Callable[[], object], what: str) -> float:
    """Seconds until predicate holds (it is polled every half second)."""
    start = time.monotonic()
    wait_for(predicate, what, timeout=REPAIR_TIMEOUT)
    return time.monotonic() - start


def uid_of(kubectl: Kubectl, namespace: str, kind: str, name: str) -> str | None:
    found = get_json_or_none(kubectl, namespace, kind, name)
    return found["metadata"]["uid"] if found else None


def handler_progress(kubectl: Kubectl, namespace: str) -> dict:
    """kopf's record of the create handler (retries, next try), from its annotation."""
    annotations = get_json(kubectl, namespace, "inferenceservice", NAME)["metadata"]["annotations"]
    return json.loads(annotations["tenfold.dev/apply-plan-create"])


def test_deleted_children_come_back_from_the_watch(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
):
    apply_manifest(kubectl, namespace, minilm())
    wait_ready(kubectl, namespace, NAME)
    for kind, name in (("deployment", NAME), ("service", NAME), ("configmap", CONFIG)):
        before = uid_of(kubectl, namespace, kind, name)
        kubectl("delete", "-n", namespace, kind, name, "--wait=true")
        seconds = timed_wait(
            lambda k=kind, n=name, b=before: uid_of(kubectl, namespace, k, n) not in (None, b),
            f"{kind}/{name} applied again after its deletion",
        )
        print(f"drift: {kind} deleted -> back in {seconds:.1f} s")
    wait_ready(kubectl, namespace, NAME)


def test_edits_by_hand_or_another_manager_are_reverted(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
):
    apply_manifest(kubectl, namespace, minilm())
    service = wait_ready(kubectl, namespace, NAME)
    desired = service["status"]["desiredReplicas"]
    config = get_json(kubectl, namespace, "configmap", CONFIG)["data"]
    key = sorted(config)[0]

    kubectl("scale", "-n", namespace, "deployment", NAME, f"--replicas={desired + 3}")
    seconds = timed_wait(
        lambda: get_json(kubectl, namespace, "deployment", NAME)["spec"]["replicas"] == desired,
        "the Deployment's replicas back to the service's",
    )
    print(f"drift: kubectl scale deployment -> reverted in {seconds:.1f} s")

    intruder = {"data": {key: "poisoned"}}
    kubectl(
        "patch", "-n", namespace, "configmap", CONFIG, "--type=merge",
        "--field-manager=intruder", "-p", json.dumps(intruder),
    )  # fmt: skip
    seconds = timed_wait(
        lambda: get_json(kubectl, namespace, "configmap", CONFIG)["data"][key] == config[key],
        f"ConfigMap key {key} restored",
    )
    print(f"drift: ConfigMap edited by another manager -> reverted in {seconds:.1f} s")

    port = get_json(kubectl, namespace, "service", NAME)["spec"]["ports"][0]
    hijack = {"spec": {"ports": [{"port": port["port"], "targetPort": 9999}]}}
    kubectl("patch", "-n", namespace, "service", NAME, "-p", json.dumps(hijack))

    def target_port_restored() -> bool:
        ports = get_json(kubectl, namespace, "service", NAME)["spec"]["ports"]
        return any(p["port"] == port["port"] and p == port for p in ports)

    seconds = timed_wait(target_port_restored, "the Service's targetPort restored")
    print(f"drift: Service targetPort edited -> reverted in {seconds:.1f} s")


def test_an_idle_service_writes_nothing(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
):
    apply_manifest(kubectl, namespace, minilm())
    wait_ready(kubectl, namespace, NAME)
    # No Prometheus here: every tick decides the same thing (MetricsUnavailable, hold).
    wait_for(
        lambda: (get_json(kubectl, namespace, "inferenceservice", NAME)["status"]).get(
            "lastDecision"
        ),
        "a first autoscaling decision",
    )
    settle(3)  # the ticks that follow a first decision settle conditions once
    before = get_json(kubectl, namespace, "inferenceservice", NAME)
    quiet_operator.new_output()
    settle(IDLE_TICKS + 1)  # the test operator ticks every second
    after = get_json(kubectl, namespace, "inferenceservice", NAME)
    # Nor does it read: the status comes from the watches, not a GET per tick (the Python
    # client's requests are in the operator's verbose log, one line each).
    requests = [
        line for line in quiet_operator.new_output().splitlines()
        if f"/namespaces/{namespace}/" in line and ' HTTP/1.1" ' in line
    ]  # fmt: skip
    assert requests == [], requests[:5]
    moved = {
        key: (before["status"].get(key), value)
        for key, value in after["status"].items()
        if before["status"].get(key) != value
    }
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], moved


def test_a_refused_plan_is_degraded_with_the_apiservers_words_and_not_retried_hot(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
):
    # The namespace's kube-root-ca.crt already uses the one ConfigMap the quota allows.
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-more-configmaps"},
        "spec": {"hard": {"count/configmaps": "1"}},
    }
    apply_manifest(kubectl, namespace, quota)
    wait_for(
        lambda: (get_json(kubectl, namespace, "resourcequota", "no-more-configmaps").get("status")
                 or {}).get("used"),
        "the quota's usage counted",
    )  # fmt: skip
    apply_manifest(kubectl, namespace, minilm())

    def refused() -> dict | None:
        service = get_json(kubectl, namespace, "inferenceservice", NAME)
        degraded = condition_of(service, "Degraded")
        return degraded if degraded.get("reason") == "ApiRefused" else None

    degraded = wait_for(refused, "Degraded=ApiRefused")
    assert degraded["status"] == "True" and "exceeded quota" in degraded["message"], degraded
    assert (
        condition_of(get_json(kubectl, namespace, "inferenceservice", NAME), "Ready")["status"]
        == "False"
    )
    progress = handler_progress(kubectl, namespace)
    assert progress["retries"] == 1 and not progress["success"], progress
    settle(15)
    service = get_json(kubectl, namespace, "inferenceservice", NAME)
    assert condition_of(service, "Degraded").get("reason") == "ApiRefused", service["status"]
    assert "exceeded quota" in service["status"]["applyError"]
    later = handler_progress(kubectl, namespace)
    assert later["retries"] == 1, later  # not retried within 15 s
    delay = datetime.fromisoformat(later["delayed"]) - datetime.fromisoformat(later["started"])
    assert delay.total_seconds() >= 250, later

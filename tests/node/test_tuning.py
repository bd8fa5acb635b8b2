"""InferenceTuning on the real node: the operator runs the search as a Job of the built
runtime image (real prepare, real tritonserver, perf_analyzer in the pod), reads the trials
from the pod's termination message, and applies the winner through its own field manager.

The service is scaled to zero (autoscaling off, replicas 0) so that the search has the
node's two cores to itself; the tuning needs the service to exist, not to serve.
"""

from __future__ import annotations

import json
import time

import pytest

from tenfold.constants import TUNING_APPLY_ALLOWED, TUNING_APPLY_ANNOTATION
from tenfold.controller.tuning import TUNING_FIELD_MANAGER
from tenfold_tools.testbed import Kubectl
from tenfold_tools.testbed.node import REAL_NODE_NAME
from tests.conftest import load_example
from tests.integration.operator_support import condition_of, get_json, wait_condition, wait_for

# One precision (fp32: the guard's reference, one prepare), two windows, one level of
# one second: two trials, about a minute of prepare and measuring on two shared cores.
SEARCH = {
    "serviceName": "minilm",
    "searchSpace": {
        "precisions": ["fp32"],
        "maxQueueDelayMicroseconds": [1000, 5000],
        "maxBatchSizes": [8],
        "instancesPerReplica": [1],
    },
    "mode": "brute",
    "load": {"concurrency": [2], "measurementMilliseconds": 1000},
    "budget": {"maxTrials": 2, "minutes": 10},
}
SEARCH_TIMEOUT = 600.0


def tuning(name: str, **spec: object) -> dict:
    """An InferenceTuning of the scaled-to-zero service."""
    return {
        "apiVersion": "serving.tenfold.dev/v1alpha1",
        "kind": "InferenceTuning",
        "metadata": {"name": name},
        "spec": {**SEARCH, **spec},
    }


@pytest.fixture(scope="module")
def tuned(kubectl: Kubectl, operator: str, make_module_namespace) -> tuple[str, dict]:
    """examples/minilm-local.yaml, scaled to zero, in a restricted namespace."""
    namespace = make_module_namespace("restricted")
    document = load_example("minilm-local.yaml")
    document["spec"]["autoscaling"].update(mode="off", minReplicas=0)
    document["spec"]["replicas"] = 0
    # The service's editor lets `action: apply` tunings patch it (docs/tuning.md).
    document["metadata"]["annotations"] = {TUNING_APPLY_ANNOTATION: TUNING_APPLY_ALLOWED}
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(document))
    return namespace, get_json(kubectl, namespace, "inferenceservice", "minilm")


def _ended(kubectl: Kubectl, namespace: str, name: str) -> dict | None:
    body = get_json(kubectl, namespace, "inferencetuning", name)
    return body if (body.get("status") or {}).get("finishedAt") else None


def test_a_tuning_runs_as_a_job_on_the_node_and_applies_its_winner(
    kubectl: Kubectl, tuned: tuple[str, dict]
) -> None:
    namespace, service = tuned
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(tuning("fast", action="apply")))
    started = wait_for(
        lambda: (get_json(kubectl, namespace, "inferencetuning", "fast").get("status") or {}).get(
            "job"
        ),
        "the tuning's Job",
        60,
    )
    began = time.monotonic()
    body = wait_for(lambda: _ended(kubectl, namespace, "fast"), "the search's end", SEARCH_TIMEOUT)
    print(f"tuning Job {started}: {time.monotonic() - began:.0f} s from its creation to status")
    status = body["status"]
    (pod,) = get_json(kubectl, namespace, "pods", "-l", f"batch.kubernetes.io/job-name={started}")[
        "items"
    ]
    assert pod["spec"]["nodeName"] == REAL_NODE_NAME
    assert len(status["trials"]) == 2 and all(t["measured"] for t in status["trials"]), status
    winner = status.get("winner")
    assert winner, json.dumps(status, indent=1)
    assert winner["accepted"] and winner["throughput"] > 0 and winner["p95Ms"] <= 200
    assert winner["costPer1kRequests"] > 0 and winner["accuracyDrop"] == 0
    assert "precision: fp32" in status["patch"]
    assert condition_of(body, "Ready")["reason"] == "Applied", body["status"]["conditions"]
    assert status["applied"] is True
    # the service got the winner, written by the tuning's own field manager
    after = get_json(kubectl, namespace, "inferenceservice", "minilm")
    assert after["spec"]["quantization"]["precision"] == "fp32"
    assert (
        after["spec"]["batching"]["maxQueueDelayMicroseconds"]
        == winner["maxQueueDelayMicroseconds"]
    )
    fields = get_json(kubectl, namespace, "inferenceservice", "minilm", "--show-managed-fields")
    managers = {m["manager"] for m in fields["metadata"]["managedFields"]}
    assert TUNING_FIELD_MANAGER in managers
    assert after["metadata"]["generation"] == service["metadata"]["generation"] + 1
    events = get_json(kubectl, namespace, "events", "--field-selector", "reason=TuningApplied")
    assert [e["involvedObject"]["name"] for e in events["items"]] == ["minilm"]


def test_a_search_whose_pod_dies_is_degraded_and_leaves_the_service_alone(
    kubectl: Kubectl, tuned: tuple[str, dict]
) -> None:
    namespace, _ = tuned
    before = get_json(kubectl, namespace, "inferenceservice", "minilm")["metadata"]["generation"]
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(tuning("killed", action="apply")))

    def running_pod() -> str | None:
        body = get_json(kubectl, namespace, "inferencetuning", "killed")
        job = (body.get("status") or {}).get("job")
        if not job:
            return None
        pods = get_json(kubectl, namespace, "pods", "-l", f"batch.kubernetes.io/job-name={job}")
        running = [p for p in pods["items"] if p["status"].get("phase") == "Running"]
        return running[0]["metadata"]["name"] if running else None

    pod = wait_for(running_pod, "the search's pod running", 120)
    kubectl("delete", "pod", "-n", namespace, pod, "--wait=false")
    body = wait_for(lambda: _ended(kubectl, namespace, "killed"), "the search reported", 180)
    degraded = condition_of(body, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "JobFailed"), degraded
    assert condition_of(body, "Ready")["status"] == "False"
    assert not body["status"].get("applied") and not body["status"].get("winner")
    after = get_json(kubectl, namespace, "inferenceservice", "minilm")
    assert after["metadata"]["generation"] == before


def test_a_tuning_of_a_missing_service_says_so(kubectl: Kubectl, tuned: tuple[str, dict]) -> None:
    namespace, _ = tuned
    document = tuning("orphan", serviceName="nothing-here")
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(document))
    body = wait_condition(kubectl, namespace, "inferencetuning", "orphan", "Degraded")
    degraded = condition_of(body, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ServiceNotFound")
    assert "'nothing-here' does not exist" in degraded["message"]
    jobs = get_json(kubectl, namespace, "jobs", "-l", "tenfold.dev/tuning=orphan")
    assert jobs["items"] == []

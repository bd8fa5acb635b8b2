"""InferenceTuning against the real control plane: what the operator starts, replaces and
refuses. The search itself runs on the real node (tests/node/test_tuning.py); here the Job's
pod lands on a KWOK node, which never ends it.
"""

from __future__ import annotations

import copy

from tenfold_tools.testbed import Kubectl
from tests.integration.operator_support import (
    REPO_ROOT,
    OperatorProcess,
    apply_manifest,
    condition_of,
    get_json,
    get_json_or_none,
    load_manifest,
    wait_condition,
    wait_for,
)

TUNING = load_manifest(REPO_ROOT / "examples" / "minilm-tuning.yaml")


def tuning_status(kubectl: Kubectl, namespace: str, name: str) -> dict:
    """The tuning's status (empty until the operator writes one)."""
    return get_json(kubectl, namespace, "inferencetuning", name).get("status") or {}


def test_a_tuning_starts_one_job_placed_like_the_service_and_replaces_it_on_edit(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
) -> None:
    apply_manifest(kubectl, namespace, load_manifest(REPO_ROOT / "examples" / "minilm-cpu.yaml"))
    apply_manifest(kubectl, namespace, TUNING)
    job_name = wait_for(
        lambda: tuning_status(kubectl, namespace, "minilm-cost").get("job"), "the Job", 60
    )
    assert job_name == "minilm-cost-tune-1"
    job = get_json(kubectl, namespace, "job", job_name)
    config_map = get_json(kubectl, namespace, "configmap", job_name)
    assert "kind: InferenceService" in config_map["data"]["service.yaml"]
    for obj in (job, config_map):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("InferenceTuning", "minilm-cost")
    deployment = wait_for(
        lambda: get_json_or_none(kubectl, namespace, "deployment", "minilm"), "the Deployment", 60
    )
    served, searched = deployment["spec"]["template"]["spec"], job["spec"]["template"]["spec"]
    assert searched["affinity"] == served["affinity"]
    assert searched["containers"][0]["resources"] == served["containers"][0]["resources"]
    assert tuning_status(kubectl, namespace, "minilm-cost")["serviceGeneration"] == 1
    # KWOK's pod-complete stage ends a Job's pod at once, Succeeded, with no termination
    # message: a search that ends without its summary is a failure, and says so
    ended = wait_for(
        lambda: tuning_status(kubectl, namespace, "minilm-cost").get("finishedAt"),
        "the Job's end reported",
        90,
    )
    assert ended
    body = get_json(kubectl, namespace, "inferencetuning", "minilm-cost")
    degraded = condition_of(body, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "JobFailed"), degraded
    assert "the Job ended" in degraded["message"] and "exit code 0" in degraded["message"]
    assert get_json(kubectl, namespace, "inferenceservice", "minilm")["metadata"]["generation"] == 1

    # An edit is a new search: the running one is stopped, its Job deleted.
    edited = copy.deepcopy(TUNING)
    edited["spec"]["budget"]["maxTrials"] = 5
    apply_manifest(kubectl, namespace, edited)
    wait_for(
        lambda: tuning_status(kubectl, namespace, "minilm-cost").get("job") == "minilm-cost-tune-2",
        "the second generation's Job",
        60,
    )
    wait_for(
        lambda: (
            get_json_or_none(kubectl, namespace, "job", job_name) is None
            or get_json(kubectl, namespace, "job", job_name)["metadata"].get("deletionTimestamp")
        ),
        "the first Job deleted",
        60,
    )


def test_a_space_the_services_rules_refuse_starts_nothing(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
) -> None:
    apply_manifest(kubectl, namespace, load_manifest(REPO_ROOT / "examples" / "minilm-cpu.yaml"))
    refused = copy.deepcopy(TUNING)
    # 400 ms of batching window under a 200 ms p95 SLO: the service's own rule refuses it
    refused["spec"]["searchSpace"]["maxQueueDelayMicroseconds"] = [5000, 400000]
    apply_manifest(kubectl, namespace, refused)
    body = wait_condition(kubectl, namespace, "inferencetuning", "minilm-cost", "Degraded")
    degraded = condition_of(body, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "SearchSpaceRefused")
    assert "spec.batching.maxQueueDelayMicroseconds" in degraded["message"]
    assert get_json(kubectl, namespace, "jobs")["items"] == []
    # the service is untouched: its generation is the one it was created with
    assert get_json(kubectl, namespace, "inferenceservice", "minilm")["metadata"]["generation"] == 1


def test_the_apiserver_refuses_a_budget_of_zero_trials(kubectl: Kubectl, namespace: str) -> None:
    zero = copy.deepcopy(TUNING)
    zero["spec"]["budget"]["maxTrials"] = 0
    result = apply_manifest(kubectl, namespace, zero, check=False)
    assert result.returncode != 0
    assert "spec.budget.maxTrials" in result.stderr and "should be greater than or equal to 1" in (
        result.stderr
    )


def test_a_tuning_waits_for_its_inputs_configmap_then_mounts_it(
    quiet_operator: OperatorProcess, kubectl: Kubectl, namespace: str
) -> None:
    apply_manifest(kubectl, namespace, load_manifest(REPO_ROOT / "examples" / "minilm-cpu.yaml"))
    own = copy.deepcopy(TUNING)
    own["spec"]["load"]["inputs"] = {"configMapName": "traffic", "key": "sample.txt"}
    apply_manifest(kubectl, namespace, own)
    body = wait_condition(kubectl, namespace, "inferencetuning", "minilm-cost", "Degraded")
    degraded = condition_of(body, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "InputsNotFound")
    assert get_json(kubectl, namespace, "jobs")["items"] == []
    kubectl("create", "configmap", "traffic", "-n", namespace,
            "--from-literal=sample.txt=a question from our logs\nanother one")  # fmt: skip
    # looked for again every 30 s (controller/tuning.py SERVICE_MISSING_RETRY_SECONDS)
    job_name = wait_for(
        lambda: tuning_status(kubectl, namespace, "minilm-cost").get("job"), "the Job", 75
    )
    pod = get_json(kubectl, namespace, "job", job_name)["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "inputs"]
    assert volume["configMap"]["name"] == "traffic"
    assert "--inputs" in pod["containers"][0]["command"]

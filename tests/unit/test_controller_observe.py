"""What the operator keeps between events: its indexes hold less than each whole body and
everything a status tick or a repair reads from it (controller/observe.py), and a version
of a service is parsed once (reconcile.parse_body)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from tenfold.constants import TUNING_APPLY_ANNOTATION
from tenfold.controller import conditions, drift, observe
from tenfold.controller.reconcile import observed_status, parse_body
from tests.unit.test_controller_conditions import deployment, unschedulable_pod

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minilm-cpu.yaml"
MANAGED_FIELDS = [
    {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}}
]
PREPARE_REPORT = '{"precision_served": "mixed", "accuracy": {"metric": "cosine", "mean": 0.99}}'


def full_pod(**status: object) -> dict:
    """A serving pod as the watch delivers it: spec, managedFields and status."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "minilm-7d9c-abcde",
            "namespace": "team-a",
            "labels": {"app.kubernetes.io/instance": "minilm"},
            "managedFields": MANAGED_FIELDS,
        },
        "spec": {"containers": [{"name": "triton", "image": "tenfold/runtime", "env": []}]},
        "status": {
            "phase": "Running",
            "initContainerStatuses": [
                {
                    "name": "prepare",
                    "state": {"terminated": {"exitCode": 0, "message": PREPARE_REPORT}},
                }
            ],
            "containerStatuses": [
                {"name": "triton", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ],
            **status,
        },
    }


def full_deployment(**changes: int) -> dict:
    """The serving Deployment as the watch delivers it."""
    body = deployment(**changes)
    body["metadata"].update(name="minilm", namespace="team-a", managedFields=MANAGED_FIELDS)
    body["spec"]["template"] = {"spec": {"containers": [{"name": "triton"}]}}
    return body


@pytest.fixture
def minilm_body() -> dict:
    """The example service, named as the indexes above key it."""
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"] = {"name": "minilm", "namespace": "team-a", "generation": 1}
    return body


def index(key: tuple[str, str], *bodies: dict) -> dict:
    """An index as kopf hands it to a handler: key -> a store of bodies."""
    return {key: list(bodies)}


@pytest.mark.parametrize(
    "pods",
    [[full_pod()], [full_pod(**unschedulable_pod()["status"])], []],
    ids=["crash-looping", "unschedulable", "no-pods"],
)
@pytest.mark.parametrize("changes", [{}, {"ready": 1}, {"observed": 2}, {"replicas": 0}])
def test_a_tick_reads_the_same_status_from_the_index_entries(pods, changes, minilm_body):
    key = ("team-a", "minilm")
    service = parse_body(minilm_body)
    whole = observed_status(service, {}, index(key, full_deployment(**changes)), index(key, *pods))
    kept = observed_status(
        service,
        {},
        index(key, observe.deployment_entry(full_deployment(**changes))),
        index(key, *(observe.pod_entry(p) for p in pods)),
    )
    assert kept == whole


def test_entries_drop_what_no_tick_reads():
    pod, kept = full_pod(), observe.pod_entry(full_pod())
    assert "spec" not in kept and "managedFields" not in kept["metadata"]
    assert conditions.prepared_model([kept]) == conditions.prepared_model([pod])


def test_the_service_entry_keeps_what_a_repair_reads(minilm_body):
    body = copy.deepcopy(minilm_body)
    body["metadata"].update(
        uid="u-1",
        generation=4,
        managedFields=MANAGED_FIELDS,
        annotations={"kubectl.kubernetes.io/last-applied-configuration": json.dumps(body)},
    )
    body["status"] = {"observedGeneration": 4, "children": ["Deployment/minilm"]}
    entry = observe.service_entry(body)
    assert "managedFields" not in entry["metadata"] and "annotations" not in entry["metadata"]
    body["metadata"]["annotations"][TUNING_APPLY_ANNOTATION] = "allowed"  # tuning.may_apply
    consent = observe.service_entry(body)["metadata"]["annotations"]
    assert consent == {TUNING_APPLY_ANNOTATION: "allowed"}
    assert parse_body(entry) == parse_body(body)
    assert drift.may_repair(entry) and entry["status"] == body["status"]
    body["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    assert not drift.may_repair(observe.service_entry(body))


def test_one_version_of_a_service_is_parsed_once(minilm_body):
    body = copy.deepcopy(minilm_body)
    body["metadata"].update(uid="u-2", resourceVersion="10")
    first = parse_body(body)
    assert parse_body(copy.deepcopy(body)) is first
    body["metadata"]["resourceVersion"] = "11"
    body["spec"]["replicas"] = 3
    assert parse_body(body) is not first and parse_body(body).spec.replicas == 3

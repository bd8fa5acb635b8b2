"""Which child events are drift, and how refusals and idle ticks reach the status."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from kubernetes.client.exceptions import ApiException

from tenfold.autoscale.report import keep_stamp
from tenfold.controller import actions, conditions
from tenfold.controller.drift import (
    SeenGenerations,
    is_drift,
    kinds_by_owner,
    may_repair,
    missing_after_listing,
    owner_of,
)

OWNER = {
    "apiVersion": "serving.tenfold.dev/v1alpha1",
    "kind": "InferenceService",
    "name": "minilm",
    "uid": "u-1",
    "controller": True,
}


def child(kind: str = "Deployment", generation: int = 1, uid: str = "c-1") -> dict:
    return {
        "kind": kind,
        "metadata": {
            "name": "minilm",
            "namespace": "team-a",
            "uid": uid,
            "generation": generation,
            "ownerReferences": [OWNER],
        },
    }


def test_owner_is_the_controlling_inference_service():
    assert owner_of(child()) == "minilm"
    foreign = child()
    foreign["metadata"]["ownerReferences"] = [{**OWNER, "kind": "ReplicaSet"}]
    assert owner_of(foreign) is None
    not_controller = child()
    not_controller["metadata"]["ownerReferences"] = [{**OWNER, "controller": False}]
    assert owner_of(not_controller) is None


def test_listing_and_creation_prime_without_repair():
    seen = SeenGenerations()
    assert not is_drift(None, child(), seen)
    assert not is_drift("ADDED", child(uid="c-2"), seen)


def test_deletion_is_drift():
    assert is_drift("DELETED", child(), SeenGenerations())


def test_deployment_status_churn_is_not_drift_but_a_spec_edit_is():
    seen = SeenGenerations()
    is_drift(None, child(generation=3), seen)
    assert not is_drift("MODIFIED", child(generation=3), seen)  # status moved only
    assert is_drift("MODIFIED", child(generation=4), seen)  # kubectl edit / scale
    assert not is_drift("MODIFIED", child(generation=4), seen)


def test_a_deployment_first_seen_modified_is_primed_not_repaired():
    # Without a generation to compare with, a status update must not cost a full apply.
    assert not is_drift("MODIFIED", child(generation=7), SeenGenerations())


@pytest.mark.parametrize("kind", ["Service", "ConfigMap"])
def test_any_edit_of_a_service_or_configmap_is_drift(kind: str):
    seen = SeenGenerations()
    is_drift(None, child(kind), seen)
    assert is_drift("MODIFIED", child(kind), seen)


def test_no_repair_while_the_owner_is_deleted_or_its_spec_is_not_applied_yet():
    applied = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2}}
    assert may_repair(applied)
    assert not may_repair({**applied, "status": {"observedGeneration": 1}})
    assert not may_repair({"metadata": {"generation": 2}, "status": {}})
    deleting = {"metadata": {"generation": 2, "deletionTimestamp": "2026-12-01T00:00:00Z"}}
    assert not may_repair({**deleting, "status": {"observedGeneration": 2}})


def test_a_listing_without_an_always_planned_child_means_it_is_gone():
    listed_at = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)
    owner = {
        "metadata": {
            "name": "minilm",
            "generation": 2,
            "creationTimestamp": "2026-12-01T04:00:00Z",
        },
        "status": {"observedGeneration": 2},
    }
    assert missing_after_listing(owner, {"Deployment", "Service", "ConfigMap"}, listed_at) == []
    assert missing_after_listing(owner, {"Service", "ConfigMap"}, listed_at) == ["Deployment"]
    # A plan the apiserver refuses has no children either: its slow retry is not sped up.
    refused = {**owner, "status": {"observedGeneration": 2, "applyError": "422 ..."}}
    assert missing_after_listing(refused, set(), listed_at) == []
    # Younger than the listing: applied after it, so the listing says nothing about it.
    young = {
        **owner,
        "metadata": {**owner["metadata"], "creationTimestamp": "2026-12-01T04:29:58Z"},
    }
    assert missing_after_listing(young, set(), listed_at) == []
    # Its spec handler is about to apply: that, not the resync, brings the children.
    assert (
        missing_after_listing({**owner, "status": {"observedGeneration": 1}}, set(), listed_at)
        == []
    )


def test_children_are_grouped_by_their_controlling_owner():
    def child(owner: str) -> dict:
        reference = {
            "apiVersion": "serving.tenfold.dev/v1alpha1",
            "kind": "InferenceService",
            "name": owner,
            "controller": True,
        }
        return {"metadata": {"ownerReferences": [reference]}}

    listed = [
        ("Deployment", child("a")),
        ("Service", child("a")),
        ("ConfigMap", child("b")),
        ("Service", {"metadata": {}}),
    ]
    assert kinds_by_owner(listed) == {"a": {"Deployment", "Service"}, "b": {"ConfigMap"}}


def refusal(status: int, message: str) -> ApiException:
    error = ApiException(status=status, reason="Forbidden")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


def test_a_refusal_is_retried_slowly_with_the_apiservers_words():
    retry = actions.retry_for(refusal(403, 'configmaps "x" is forbidden: exceeded quota'))
    assert retry.delay == actions.REFUSED_RETRY_SECONDS
    assert "exceeded quota" in str(retry)
    assert actions.retry_for(refusal(422, "invalid")).delay == actions.REFUSED_RETRY_SECONDS


@pytest.mark.parametrize(
    ("status", "delay"),
    [(409, actions.CONFLICT_RETRY_SECONDS), (500, 10), (503, 10), (429, 10)],
)
def test_transient_errors_retry_quickly(status: int, delay: int):
    assert actions.retry_for(ApiException(status=status, reason="x")).delay == delay


def test_apiserver_message_falls_back_to_the_http_reason():
    assert actions.apiserver_message(ApiException(status=503, reason="Unavailable")) == (
        "503 Unavailable"
    )


def by_type(updates: list[conditions.ConditionUpdate]) -> dict[str, str]:
    return {u.type.value: f"{u.status.value}/{u.reason}" for u in updates}


def test_a_refusal_stays_degraded_until_an_apply_succeeds():
    ready = conditions.deployment_conditions(
        {"metadata": {"generation": 1}, "spec": {"replicas": 1},
         "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1,
                    "replicas": 1}},
        [],
        1,
    )  # fmt: skip
    assert by_type(ready)["Ready"] == "True/ReplicasReady"
    kept = conditions.with_refusal(ready, "exceeded quota", [])
    assert by_type(kept)["Ready"] == "False/ApiRefused"
    assert by_type(kept)["Degraded"] == "True/ApiRefused"
    assert by_type(kept)["Progressing"] == "False/RolloutComplete"
    assert conditions.with_refusal(ready, None, []) == ready
    refused = conditions.merge_conditions([], kept, 1, "2026-12-01T00:00:00Z")
    creating = conditions.deployment_conditions(None, [], 1)  # no Degraded of its own
    after = by_type(conditions.with_refusal(creating, None, refused))
    assert after["Degraded"] == "False/Applied"


def test_an_unchanged_decision_keeps_its_time():
    before = {"time": "T1", "toReplicas": 2, "reason": "idle"}
    assert keep_stamp({**before, "time": "T2"}, before, "time") == before
    changed = {"time": "T2", "toReplicas": 3, "reason": "busy"}
    assert keep_stamp(changed, before, "time") == changed
    assert keep_stamp(changed, None, "time") == changed

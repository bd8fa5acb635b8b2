"""Pure status rules: conditions from a Deployment and its pods."""

from __future__ import annotations

import pytest

from tenfold.api.cost import ServiceCost, max_affordable_replicas
from tenfold.api.resource import parse_spec
from tenfold.api.status import ConditionStatus, ConditionType
from tenfold.autoscale.limits import ToRun, replicas_to_run, rollout_surge
from tenfold.controller import conditions as rules
from tenfold.controller.reconcile import changed_fields, child_names, needs_prune, recorded_children

NOW, LATER = "2026-11-22T10:00:00Z", "2026-11-22T10:05:00Z"


def deployment(replicas=2, ready=2, updated=2, generation=3, observed=3):
    """A Deployment dict as the API returns it."""
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": updated,
        },
    }


def unschedulable_pod():
    """A pod the scheduler could not place."""
    return {
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/7 nodes are available: 7 node(s) didn't match affinity.",
                }
            ]
        }
    }


def by_type(updates):
    return {u.type: u for u in updates}


def test_rolled_out_and_ready():
    found = by_type(rules.deployment_conditions(deployment(), [], 2))
    assert found[ConditionType.READY].status is ConditionStatus.TRUE
    assert found[ConditionType.PROGRESSING].status is ConditionStatus.FALSE
    assert found[ConditionType.DEGRADED].status is ConditionStatus.FALSE


def test_rollout_in_progress_is_not_ready():
    found = by_type(rules.deployment_conditions(deployment(updated=1, ready=1), [], 2))
    assert found[ConditionType.READY].status is ConditionStatus.FALSE
    assert found[ConditionType.PROGRESSING].status is ConditionStatus.TRUE


def test_stale_observed_generation_is_not_ready():
    found = by_type(rules.deployment_conditions(deployment(observed=2), [], 2))
    assert found[ConditionType.READY].status is ConditionStatus.FALSE


def test_unschedulable_pods_degrade_with_scheduler_message():
    found = by_type(rules.deployment_conditions(deployment(ready=0), [unschedulable_pod()], 2))
    degraded = found[ConditionType.DEGRADED]
    assert degraded.status is ConditionStatus.TRUE
    assert degraded.reason == "Unschedulable"
    assert "didn't match affinity" in degraded.message


def test_crash_looping_init_container_degrades():
    pod = {
        "status": {
            "initContainerStatuses": [
                {"name": "prepare", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]
        }
    }
    found = by_type(rules.deployment_conditions(deployment(ready=0), [pod], 2))
    assert found[ConditionType.DEGRADED].reason == "CrashLoopBackOff"


def test_missing_deployment():
    found = by_type(rules.deployment_conditions(None, [], 1))
    assert found[ConditionType.READY].reason == "DeploymentMissing"


def test_transition_time_moves_only_on_flip():
    first = rules.merge_conditions(
        [], rules.deployment_conditions(deployment(ready=0), [], 2), 3, NOW
    )
    same = rules.merge_conditions(
        first, rules.deployment_conditions(deployment(ready=0), [], 2), 3, LATER
    )
    ready = {c["type"]: c for c in same}["Ready"]
    assert ready["lastTransitionTime"] == NOW
    flipped = rules.merge_conditions(
        same, rules.deployment_conditions(deployment(), [], 2), 3, LATER
    )
    assert {c["type"]: c for c in flipped}["Ready"]["lastTransitionTime"] == LATER


def test_merge_keeps_conditions_owned_by_others():
    budget = {
        "type": "BudgetLimited",
        "status": "True",
        "reason": "Capped",
        "lastTransitionTime": NOW,
        "observedGeneration": 1,
    }
    merged = rules.merge_conditions(
        [budget], rules.deployment_conditions(deployment(), [], 2), 3, LATER
    )
    assert [c["type"] for c in merged] == ["Ready", "Progressing", "Degraded", "BudgetLimited"]
    assert all(c["observedGeneration"] == 3 for c in merged if c["type"] != "BudgetLimited")


def test_prepare_report_from_termination_message():
    pod = {
        "status": {
            "initContainerStatuses": [
                {
                    "name": "prepare",
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "message": '{"precision_served": "mixed", "accuracy": '
                            '{"metric": "cosine", "mean": 0.995, "min": 0.98}, '
                            '"decision": "int8 failed the guard"}',
                        }
                    },
                }
            ]
        }
    }
    report = rules.prepared_model([pod])
    assert report["precision_served"] == "mixed"
    assert rules.accuracy_status(report)["mean"] == 0.995


def test_endpoints_go_through_the_sidecar_when_cached():
    cached = parse_spec({"model": {"name": "m", "source": "/m"}, "cache": {"mode": "memory"}})
    assert rules.endpoints("m", "ns", cached)["http"] == "http://m.ns.svc:8080"
    plain = parse_spec({"model": {"name": "m", "source": "/m"}})
    assert rules.endpoints("m", "ns", plain)["http"] == "http://m.ns.svc:8000"


def test_replicas_to_run_is_bounded_and_within_budget():
    spec = parse_spec(
        {
            "model": {"name": "m", "source": "/m"},
            "hardware": {"gpuType": "T4"},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 10},
            "budget": {"maxCostPerHour": 2},
            "replicas": 8,
        }
    )
    assert max_affordable_replicas(spec.budget.hourly_cap(), 0.526) == 3
    # At the cap a rollout may not start a fourth pod; below it, it may start one.
    assert replicas_to_run(spec, ServiceCost(0.526)) == ToRun(replicas=3, surge=0)
    unscaled = spec.model_copy(update={"replicas": None})
    assert replicas_to_run(unscaled, ServiceCost(0.526)) == ToRun(replicas=1, surge=1)


@pytest.mark.parametrize(
    ("replicas", "affordable", "surge"),
    [(1, None, 1), (1, 2, 1), (2, 2, 0), (0, 0, 0), (0, 1, 1), (3, 3, 0)],
)
def test_a_rollout_surges_only_while_the_budget_pays_for_one_more(
    replicas: int, affordable: int | None, surge: int
) -> None:
    assert rollout_surge(replicas, affordable) == surge


def test_changed_fields_only():
    assert changed_fields({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": 3, "c": 4}


def test_precision_is_what_prepare_reported_never_the_specs_wish() -> None:
    from tenfold.controller.conditions import PRECISION_PENDING, precision_status

    assert precision_status({"precision_served": "mixed"}) == {
        "precision": "mixed",
        "precisionReason": None,
    }
    for report in (None, {}, {"precision_served": ""}):
        assert precision_status(report) == {
            "precision": None,
            "precisionReason": PRECISION_PENDING,
        }


def test_a_refused_price_sets_prices_refused_and_posts_one_event():
    refusal = "refused cluster prices T4='nan': ..."
    (update,) = rules.price_conditions(refusal, [])
    assert (update.type, update.status.value, update.reason) == (
        ConditionType.PRICES_REFUSED,
        "True",
        "InvalidClusterPrice",
    )
    assert rules.price_refusal_event(refusal, []) == refusal
    reported = [{"type": "PricesRefused", "status": "True", "message": refusal}]
    assert rules.price_refusal_event(refusal, reported) is None  # not every tick
    assert rules.price_refusal_event("refused cluster prices L4='0'", reported) is not None
    # Fixed: False once; a service that never saw a refusal gets no such condition.
    (cleared,) = rules.price_conditions(None, reported)
    assert cleared.status.value == "False" and cleared.reason == "PricesValid"
    assert rules.price_conditions(None, []) == []


def test_children_are_listed_sorted_by_kind_and_name() -> None:
    objects = [
        {"kind": "Service", "metadata": {"name": "a"}},
        {"kind": "Deployment", "metadata": {"name": "a"}},
    ]
    assert child_names(objects) == ["Deployment/a", "Service/a"]
    assert recorded_children({"status": {"children": ["Deployment/a"]}}) == ["Deployment/a"]
    assert recorded_children({"status": {}}) is None and recorded_children({}) is None


@pytest.mark.parametrize(
    ("previous", "planned", "generation", "prune"),
    [
        (None, ["Deployment/a"], 1, False),  # a new service: no earlier plan left anything
        (None, ["Deployment/a"], 2, True),  # an older operator never recorded its children
        (["Deployment/a"], ["Deployment/a"], 7, False),  # the same plan: nothing to look for
        (["Deployment/a", "StatefulSet/a-redis"], ["Deployment/a"], 3, True),  # one dropped
        (["Deployment/a"], ["Deployment/a", "Service/a"], 3, True),  # one added
    ],
)
def test_a_prune_lists_children_only_when_the_plan_changed(
    previous: list[str] | None, planned: list[str], generation: int, prune: bool
) -> None:
    assert needs_prune(previous, planned, generation) is prune

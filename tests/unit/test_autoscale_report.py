"""Status and event builders of the autoscaler."""

from __future__ import annotations

import pytest

from tenfold.api.cost import ServiceCost, cost_per_1k_requests, projected_monthly_cost
from tenfold.api.enums import AutoscalingMode
from tenfold.api.status import Condition, ConditionStatus, ConditionType, merge_conditions
from tenfold.autoscale.policy import Decision, History
from tenfold.autoscale.report import (
    Costs,
    build_conditions,
    build_events,
    build_status_patch,
    rfc3339,
)
from tenfold.autoscale.signals import ServiceSignals, Unavailable

NOW = 1_700_000_000.0


def decision(
    replicas: int = 3, wanted: int = 3, act: bool = False, missing: Unavailable | None = None
) -> Decision:
    """A decision with only the fields a test cares about."""
    return Decision(replicas, wanted, wanted - replicas, act, "because", missing, History())


def test_costs() -> None:
    assert projected_monthly_cost(1.5) == pytest.approx(1095.0)
    # 3.6 USD/h at 100 req/s: 360,000 requests per hour -> 0.01 USD per 1,000
    assert cost_per_1k_requests(3.6, 100.0) == pytest.approx(0.01)
    assert cost_per_1k_requests(3.6, 0.0) is None


def test_budget_limited_condition_carries_the_shortfall() -> None:
    budget, metrics = build_conditions(decision(4, 7), 2.2, NOW, generation=3)
    assert budget.type is ConditionType.BUDGET_LIMITED
    assert budget.status is ConditionStatus.TRUE and budget.reason == "BudgetCap"
    assert "wants 7" in budget.message and "3 short" in budget.message
    assert budget.observed_generation == 3
    assert metrics.status is ConditionStatus.FALSE


def test_metrics_unavailable_condition_says_why() -> None:
    missing = Unavailable("PrometheusUnreachable", "connection refused")
    _, metrics = build_conditions(decision(missing=missing), None, NOW, generation=1)
    assert metrics.status is ConditionStatus.TRUE
    assert (metrics.reason, metrics.message) == ("PrometheusUnreachable", "connection refused")


def test_merge_keeps_other_types_and_transition_time_of_unchanged_status() -> None:
    existing = [
        {"type": "Ready", "status": "True", "reason": "Serving", "lastTransitionTime": "t0"},
        {
            "type": "BudgetLimited",
            "status": "False",
            "reason": "WithinBudget",
            "lastTransitionTime": "t1",
        },
    ]
    update = Condition(
        type=ConditionType.BUDGET_LIMITED,
        status=ConditionStatus.FALSE,
        reason="WithinBudget",
        last_transition_time=rfc3339(NOW),
    )
    merged = {c["type"]: c for c in merge_conditions(existing, [update])}
    assert merged["Ready"]["reason"] == "Serving"
    assert merged["BudgetLimited"]["lastTransitionTime"] == "t1"
    flipped = update.model_copy(update={"status": ConditionStatus.TRUE})
    merged = {c["type"]: c for c in merge_conditions(existing, [flipped])}
    assert merged["BudgetLimited"]["lastTransitionTime"] == rfc3339(NOW)


def test_events_fire_on_transitions_only() -> None:
    limited = decision(4, 7, act=True)
    first = build_events(limited, 2, AutoscalingMode.AUTO, {})
    assert [e.reason for e in first] == ["ScaledUp", "BudgetLimited"]
    already = {"conditions": [{"type": "BudgetLimited", "status": "True"}]}
    assert build_events(decision(4, 7), 4, AutoscalingMode.AUTO, already) == []


def test_recommendation_event_once_per_new_recommendation() -> None:
    first = build_events(decision(5, 5), 2, AutoscalingMode.RECOMMEND, {})
    assert [e.reason for e in first] == ["ScaleRecommended"]
    again = {"lastDecision": {"toReplicas": 5}}
    assert build_events(decision(5, 5), 2, AutoscalingMode.RECOMMEND, again) == []


def test_status_patch_is_camel_case_and_off_mode_writes_costs_only() -> None:
    signals = ServiceSignals(observed_at=NOW, request_rate=100.0, queue_time_ms=4.0)
    costs = Costs(cost=ServiceCost(0.5), running_replicas=3, hourly_cap=2.0)
    patch = build_status_patch(
        decision(3, 3),
        current=2,
        mode=AutoscalingMode.AUTO,
        applied=True,
        signals=signals,
        costs=costs,
        now=NOW,
        generation=1,
        previous={},
    )
    assert patch["desiredReplicas"] == 3
    assert patch["costPerHour"] == 1.5 and patch["projectedMonthlyCost"] == 1095.0
    # 1.5 USD/h at 100 req/s
    assert patch["costPer1KRequests"] == pytest.approx(1.5 / 360)
    assert patch["signals"]["requestRate"] == 100.0
    assert patch["lastDecision"]["fromReplicas"] == 2 and patch["lastDecision"]["applied"]
    assert {c["type"] for c in patch["conditions"]} == {"BudgetLimited", "MetricsUnavailable"}
    off = build_status_patch(
        decision(3, 3),
        current=2,
        mode=AutoscalingMode.OFF,
        applied=False,
        signals=None,
        costs=costs,
        now=NOW,
        generation=1,
        previous={},
    )
    assert set(off) == {"costPerHour", "projectedMonthlyCost", "costPer1KRequests"}


def test_an_idle_tick_writes_nothing() -> None:
    """The same decision on the same signals ten ticks later: no field differs, so the
    controller's status patch is empty and the resourceVersion stays put."""
    costs = Costs(ServiceCost(per_replica=0.5), running_replicas=3, hourly_cap=None)

    def tick(now: float, previous: dict, replicas: int = 3, rate: float = 0.0) -> dict:
        return build_status_patch(
            decision(replicas, replicas),
            current=3,
            mode=AutoscalingMode.AUTO,
            applied=replicas != 3,
            signals=ServiceSignals(request_rate=rate, observed_at=now),
            costs=costs,
            now=now,
            generation=1,
            previous=previous,
        )

    first = tick(NOW, {})
    for later in range(1, 11):
        again = tick(NOW + later, first)
        assert {k: v for k, v in again.items() if first.get(k) != v} == {}
    busier = tick(NOW + 20, first, replicas=4, rate=50.0)
    assert busier["lastDecision"]["time"] == rfc3339(NOW + 20)
    assert busier["signals"]["observedAt"] == rfc3339(NOW + 20)

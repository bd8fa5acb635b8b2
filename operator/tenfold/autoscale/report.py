"""What the autoscaler reports: its part of the InferenceService status, and its events.

Pure builders. Everything returns the api/status.py models (or their camelCase dicts), so
what lands in the cluster is exactly what the CRD schema declares. The cost fields come from
api.cost.cost_status, their one builder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tenfold.api.cost import ServiceCost, cost_status
from tenfold.api.enums import AutoscalingMode
from tenfold.api.status import (
    Condition,
    ConditionStatus,
    ConditionType,
    InferenceServiceStatus,
    ScaleDecision,
    Signals,
    merge_conditions,
)
from tenfold.autoscale.policy import Decision
from tenfold.autoscale.signals import ServiceSignals


def rfc3339(unix_seconds: float) -> str:
    """Kubernetes' timestamp format, UTC, second precision."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_signals(signals: ServiceSignals) -> Signals:
    """The status view of the signals behind a decision."""
    return Signals(
        request_rate=round(signals.request_rate, 3),
        queue_time_ms=_rounded(signals.queue_time_ms),
        p95_latency_ms=_rounded(signals.p95_latency_ms),
        pending_requests=_rounded(signals.pending_requests),
        cache_hit_ratio=_rounded(signals.cache_hit_ratio),
        observed_at=rfc3339(signals.observed_at),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# Status records stamped with a time, and the key of the stamp (CRD names).
STAMPED_FIELDS = (("lastDecision", "time"), ("signals", "observedAt"))


def keep_stamp(current: Any, previous: Any, stamp: str) -> Any:
    """`current`, with `previous`'s time stamp when nothing else in it changed: a tick that
    decides what the last one decided writes no status (an idle service stays quiet, and
    watchers such as GitOps tools see no churn)."""
    if not isinstance(current, dict) or not isinstance(previous, dict):
        return current
    unstamped = {k: v for k, v in current.items() if k != stamp}
    if unstamped == {k: v for k, v in previous.items() if k != stamp} and stamp in previous:
        return {**current, stamp: previous[stamp]}
    return current


def build_decision(decision: Decision, current: int, now: float, applied: bool) -> ScaleDecision:
    """The status record of a decision; `applied` is False in recommend mode or when the
    scale subresource refused the patch."""
    return ScaleDecision(
        time=rfc3339(now),
        from_replicas=current,
        to_replicas=decision.replicas,
        wanted_replicas=decision.wanted,
        reason=decision.reason[:1024],
        applied=applied,
    )


def build_conditions(
    decision: Decision, hourly_cap: float | None, now: float, generation: int
) -> list[Condition]:
    """BudgetLimited and MetricsUnavailable as of this decision."""
    when = rfc3339(now)
    if decision.shortfall > 0:
        budget = Condition(
            type=ConditionType.BUDGET_LIMITED,
            status=ConditionStatus.TRUE,
            reason="BudgetCap",
            message=f"demand wants {decision.wanted} replicas; the budget of {hourly_cap:g} "
            f"USD/h pays for {decision.replicas} ({decision.shortfall} short)",
            last_transition_time=when,
            observed_generation=generation,
        )
    else:
        budget = Condition(
            type=ConditionType.BUDGET_LIMITED,
            status=ConditionStatus.FALSE,
            reason="WithinBudget" if hourly_cap is not None else "NoBudget",
            last_transition_time=when,
            observed_generation=generation,
        )
    missing = decision.metrics_unavailable
    metrics = Condition(
        type=ConditionType.METRICS_UNAVAILABLE,
        status=ConditionStatus.TRUE if missing else ConditionStatus.FALSE,
        reason=missing.reason if missing else "MetricsFresh",
        message=(missing.message if missing else "")[:4096],
        last_transition_time=when,
        observed_generation=generation,
    )
    return [budget, metrics]


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the InferenceService."""

    type: str  # Normal or Warning
    reason: str
    message: str


def build_events(
    decision: Decision, current: int, mode: AutoscalingMode, previous: Mapping[str, Any]
) -> list[Event]:
    """Events worth a line in `kubectl describe`: a scale, a new recommendation, and the
    moments BudgetLimited or MetricsUnavailable turn True (not every tick they stay so).
    `previous` is the status before this tick."""
    events = []
    if decision.act:
        verb = "ScaledUp" if decision.replicas > current else "ScaledDown"
        events.append(Event("Normal", verb, f"{current} -> {decision.replicas}: {decision.reason}"))
    recommended_before = (previous.get("lastDecision") or {}).get("toReplicas")
    if (
        mode is AutoscalingMode.RECOMMEND
        and decision.replicas != current
        and decision.replicas != recommended_before
    ):
        events.append(
            Event(
                "Normal",
                "ScaleRecommended",
                f"recommend {current} -> {decision.replicas}: {decision.reason}",
            )
        )
    was = {str(c.get("type")): c.get("status") for c in previous.get("conditions") or ()}
    if decision.shortfall > 0 and was.get(ConditionType.BUDGET_LIMITED.value) != "True":
        events.append(
            Event(
                "Warning",
                "BudgetLimited",
                f"demand wants {decision.wanted} replicas, the budget pays for {decision.replicas}",
            )
        )
    missing = decision.metrics_unavailable
    if missing and was.get(ConditionType.METRICS_UNAVAILABLE.value) != "True":
        events.append(Event("Warning", "MetricsUnavailable", missing.message))
    return events


@dataclass(frozen=True)
class Costs:
    """What the service costs: its prices, the running replicas, and the hourly cap."""

    cost: ServiceCost
    running_replicas: int
    hourly_cap: float | None


def build_status_patch(
    decision: Decision,
    *,
    current: int,
    mode: AutoscalingMode,
    applied: bool,
    signals: ServiceSignals | None,
    costs: Costs,
    now: float,
    generation: int,
    previous: Mapping[str, Any],
) -> dict[str, Any]:
    """The autoscaler's status patch, keyed by the CRD's own field names.

    Mode off writes costs and signals only; signals missing this tick leave the last ones in
    place. None values are kept: in a merge patch they remove a field that no longer applies
    (costPer1KRequests when idle, a p95 Triton stopped exporting).
    """
    if signals is not None and signals.infinite:
        signals = None  # MetricsUnavailable says why; no infinite value reaches the status
    fields: dict[str, Any] = cost_status(
        costs.running_replicas, costs.cost, signals.request_rate if signals else None
    )
    if signals is not None:
        fields["signals"] = build_signals(signals)
    if mode is not AutoscalingMode.OFF:
        fields["desired_replicas"] = decision.replicas
        fields["last_decision"] = build_decision(decision, current, now, applied)
    patch = InferenceServiceStatus(**fields).model_dump(
        by_alias=True, mode="json", exclude_unset=True
    )
    for key, stamp in STAMPED_FIELDS:
        if key in patch:
            patch[key] = keep_stamp(patch[key], previous.get(key), stamp)
    if mode is not AutoscalingMode.OFF:
        patch["conditions"] = merge_conditions(
            previous.get("conditions") or (),
            build_conditions(decision, costs.hourly_cap, now, generation),
        )
    return patch

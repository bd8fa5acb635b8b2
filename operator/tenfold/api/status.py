"""The InferenceService status: what the operator observed and decided.

Conditions follow the Kubernetes convention (`type`, `status`, `reason`, `message`,
`lastTransitionTime`, `observedGeneration`) so `kubectl wait --for=condition=Ready`, Argo CD and
Flux read them without tenfold-specific health checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from tenfold.api.spec import ApiModel


class ConditionType(StrEnum):
    """Condition types tenfold writes."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    BUDGET_LIMITED = "BudgetLimited"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    PRICES_REFUSED = "PricesRefused"


class ConditionStatus(StrEnum):
    """Kubernetes condition status values."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One observation of the service's state."""

    type: ConditionType = Field(description="Ready, Progressing, Degraded, BudgetLimited...")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason, machine-readable.", max_length=128)
    message: str = Field("", description="Human-readable detail.", max_length=4096)
    last_transition_time: str = Field(description="When the status last changed (RFC 3339).")
    observed_generation: int = Field(0, description="Spec generation this condition is about.")


class Endpoints(ApiModel):
    """In-cluster URLs of the service."""

    http: str = Field(description="KServe v2 HTTP (through the cache sidecar when enabled).")
    grpc: str = Field(description="KServe v2 gRPC, straight to Triton.")
    metrics: str = Field(description="Triton's Prometheus metrics.")


class Accuracy(ApiModel):
    """What the accuracy guard measured against full precision."""

    metric: str = Field(description="cosine, top1Agreement or logitMSE.")
    mean: float = Field(description="Mean of the metric over the calibration inputs.")
    min: float = Field(description="Worst calibration input.")
    decision: str = Field("", description="Why this precision was served.", max_length=1024)


class Signals(ApiModel):
    """The live metrics behind the last scaling decision."""

    request_rate: float | None = Field(None, description="Successful requests per second.")
    queue_time_ms: float | None = Field(None, description="Mean queue time per request, ms.")
    p95_latency_ms: float | None = Field(None, description="p95 request latency, ms.")
    pending_requests: float | None = Field(None, description="Requests waiting in Triton.")
    cache_hit_ratio: float | None = Field(None, description="Cache sidecar hit ratio.")
    observed_at: str | None = Field(
        None,
        description="When the metrics were read with these values (RFC 3339); a read that "
        "finds the same values keeps the time, so an idle service writes nothing.",
    )


class ScaleDecision(ApiModel):
    """The autoscaler's last decision."""

    time: str = Field(
        description="When this decision was first taken (RFC 3339); the same decision on "
        "later ticks keeps the time, so an idle service writes nothing."
    )
    from_replicas: int = Field(description="Replicas before.")
    to_replicas: int = Field(description="Replicas decided (after the budget clamp).")
    wanted_replicas: int = Field(description="Replicas demand asked for before the clamp.")
    reason: str = Field(description="Why, in words.", max_length=1024)
    applied: bool = Field(description="False in recommend mode.")


class InferenceServiceStatus(ApiModel):
    """Observed state of an InferenceService."""

    observed_generation: int | None = Field(None, description="Last spec generation acted on.")
    apply_error: str | None = Field(
        None,
        description="The apiserver's refusal of the last plan apply (403, 422, ...), in its "
        "own words; absent once a plan applies. Degraded stays True with reason ApiRefused "
        "while it is set.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Standard conditions, one per type.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    replicas: int | None = Field(None, description="Replicas the Deployment runs now.")
    ready_replicas: int | None = Field(None, description="Replicas ready to serve.")
    desired_replicas: int | None = Field(None, description="Replicas last decided.")
    selector: str | None = Field(None, description="Label selector of the pods (scale).")
    endpoints: Endpoints | None = Field(None, description="Where to send requests.")
    children: list[Annotated[str, Field(max_length=320)]] | None = Field(
        None,
        description="The children (Kind/name) the last applied plan holds; a reconcile looks "
        "for children to delete only when its plan's list differs.",
        max_length=64,
    )
    precision: str | None = Field(
        None,
        description="Precision actually served, as the prepare init container reported it; "
        "unset until one has.",
    )
    precision_reason: str | None = Field(
        None, description="Why precision is unset (no prepare report yet)."
    )
    accuracy: Accuracy | None = Field(None, description="Accuracy measured by the guard.")
    cost_per_hour: float | None = Field(None, description="USD per hour at current replicas.")
    projected_monthly_cost: float | None = Field(None, description="cost_per_hour x 730.")
    cost_per_1k_requests: float | None = Field(None, description="USD per 1,000 requests.")
    signals: Signals | None = Field(None, description="Live metrics last read.")
    last_decision: ScaleDecision | None = Field(None, description="Last scaling decision.")


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], updates: Sequence[Condition]
) -> list[dict[str, Any]]:
    """The whole conditions list with `updates` replacing their types.

    Types not updated (the controller's Ready, the autoscaler's BudgetLimited...) are kept,
    and lastTransitionTime only moves when a condition's status flips. Sorted in
    ConditionType order so the list reads the same whoever wrote it last.
    """
    merged = {str(c.get("type")): dict(c) for c in existing}
    for update in updates:
        new = update.model_dump(by_alias=True, mode="json")
        old = merged.get(update.type.value)
        if old is not None and old.get("status") == new["status"]:
            new["lastTransitionTime"] = old.get("lastTransitionTime", new["lastTransitionTime"])
        merged[update.type.value] = new
    order = [t.value for t in ConditionType]
    return sorted(
        merged.values(), key=lambda c: order.index(c["type"]) if c["type"] in order else len(order)
    )

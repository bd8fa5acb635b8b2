"""What a replica costs and how many the budget pays for: the one place budget math lives.

Admission (rules.py), the replica limits (autoscale/limits.py) and the cost status all use
these functions, so they can never disagree about a price or the length of a month.

This module imports no other api model at run time: spec.py imports it (and rules.py, which
imports it), so the spec type is named for annotations only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tenfold.api.catalog import GpuCatalog

if TYPE_CHECKING:
    from tenfold.api.spec import InferenceServiceSpec

# A month of the budget's monthlyCap and of status.projectedMonthlyCost: 365 × 24 / 12.
HOURS_PER_MONTH = 730
# Below this rate cost per request is noise (and infinite at zero); report none instead.
MIN_RATE_FOR_UNIT_COST = 1e-3
# Slack so that a budget written as exactly N replicas' price buys N despite float rounding.
PRICE_EPSILON = 1e-9


def hourly_cap(max_cost_per_hour: float | None, monthly_cap: float | None) -> float | None:
    """The tighter of an hourly cap and a monthly cap spread over HOURS_PER_MONTH; None: no cap."""
    caps = [c for c in (max_cost_per_hour, monthly_cap and monthly_cap / HOURS_PER_MONTH) if c]
    return min(caps) if caps else None


def replica_cost(
    spec: InferenceServiceSpec,
    catalog: GpuCatalog,
    cluster_overrides: Mapping[str, float] | None = None,
) -> float:
    """USD per hour of one replica: GPUs x GPU price (spot or on-demand) for a GPU type,
    requested vCPUs and memory for cpu. The service's price overrides win over the
    cluster's (the price ConfigMap), which win over the catalog's list prices."""
    hardware = spec.hardware
    return catalog.replica_cost(
        hardware.gpu_type,
        hardware.gpus_per_replica,
        hardware.cpu_cores(),
        hardware.memory_bytes(),
        hardware.spot,
        {**(cluster_overrides or {}), **spec.budget.price_overrides},
    )


def max_affordable_replicas(hourly_cap: float | None, cost_per_replica: float) -> int | None:
    """The most replicas the hourly cap pays for: floor(cap / cost); None means no limit
    (no budget, or replicas that cost nothing)."""
    if hourly_cap is None or cost_per_replica <= 0:
        return None
    return math.floor(hourly_cap / cost_per_replica + PRICE_EPSILON)


def cost_per_hour(replicas: int, cost_per_replica: float) -> float:
    """USD per hour of running `replicas`."""
    return round(replicas * cost_per_replica, 6)


def projected_monthly_cost(hourly: float) -> float:
    """USD per month (HOURS_PER_MONTH hours) at this hourly cost."""
    return round(hourly * HOURS_PER_MONTH, 4)


def cost_per_1k_requests(hourly: float, request_rate: float | None) -> float | None:
    """USD per 1,000 requests at this hourly cost and request rate; None when idle."""
    if request_rate is None or request_rate < MIN_RATE_FOR_UNIT_COST:
        return None
    return round(hourly / (request_rate * 3600) * 1000, 8)


def cost_status(
    running_replicas: int, cost_per_replica: float, request_rate: float | None
) -> dict[str, float | None]:
    """The status's cost fields (snake_case, as InferenceServiceStatus names them): the one
    builder of costPerHour, projectedMonthlyCost and costPer1KRequests."""
    hourly = cost_per_hour(running_replicas, cost_per_replica)
    return {
        "cost_per_hour": hourly,
        "projected_monthly_cost": projected_monthly_cost(hourly),
        "cost_per_1k_requests": cost_per_1k_requests(hourly, request_rate),
    }

"""What a service costs and how many replicas the budget pays for: the one place budget
math lives.

Admission (rules.py), the replica limits (autoscale/limits.py) and the cost status all use
these functions, so they can never disagree about a price or the length of a month.

Every pod tenfold creates is priced: each replica (Triton's GPUs, or its vCPUs and memory,
plus the cache sidecar's vCPU and memory at the catalog's CPU prices) and, once per service,
the operator-managed Redis (CPU prices, on-demand). The prepare init container runs inside the
replica's pod before Triton starts, with requests no larger than the pod's, so its time is
priced as that replica's: a pod is paid for from the moment it exists. Not priced: the managed
Redis's volume (storage), network traffic, and the model's download.

This module imports no other api model at run time: spec.py imports it (and rules.py, which
imports it), so the spec type is named for annotations only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tenfold.api.catalog import GpuCatalog
from tenfold.api.footprint import cache_sidecar, managed_redis

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


def valid_price(value: float) -> bool:
    """A price tenfold acts on: finite and above zero. NaN breaks every comparison, infinity
    makes every replica unaffordable, and zero or less lifts every cap."""
    return math.isfinite(value) and value > 0


def replica_cost(
    spec: InferenceServiceSpec,
    catalog: GpuCatalog,
    cluster_overrides: Mapping[str, float] | None = None,
) -> float:
    """USD per hour of one replica's pod: GPUs x GPU price (spot or on-demand) for a GPU type,
    requested vCPUs and memory for cpu, plus the cache sidecar's vCPU and memory at CPU
    prices. The service's price overrides win over the cluster's (the price ConfigMap), which
    win over the catalog's list prices."""
    hardware = spec.hardware
    prices = {**(cluster_overrides or {}), **spec.budget.price_overrides}
    triton = catalog.replica_cost(
        hardware.gpu_type,
        hardware.gpus_per_replica,
        hardware.cpu_cores(),
        hardware.memory_bytes(),
        hardware.spot,
        prices,
    )
    sidecar = cache_sidecar(spec)
    if sidecar is None:
        return triton
    return triton + catalog.cpu_cost(sidecar.cpu_cores, sidecar.memory_bytes, hardware.spot, prices)


def fixed_cost(
    spec: InferenceServiceSpec,
    catalog: GpuCatalog,
    cluster_overrides: Mapping[str, float] | None = None,
) -> float:
    """USD per hour of what runs once per service whatever its replicas: the managed Redis,
    at on-demand CPU prices (its StatefulSet asks for no spot capacity)."""
    redis = managed_redis(spec)
    if redis is None:
        return 0.0
    prices = {**(cluster_overrides or {}), **spec.budget.price_overrides}
    return catalog.cpu_cost(redis.cpu_cores, redis.memory_bytes, False, prices)


@dataclass(frozen=True)
class ServiceCost:
    """What a service costs per hour: each replica, and what runs once beside them."""

    per_replica: float
    fixed: float = field(default=0.0)

    def hourly(self, replicas: int) -> float:
        """USD per hour of running `replicas` and the fixed part."""
        return cost_per_hour(replicas, self.per_replica, self.fixed)

    def affordable(self, hourly_cap: float | None) -> int | None:
        """The most replicas the cap pays for beside the fixed part (max_affordable_replicas)."""
        return max_affordable_replicas(hourly_cap, self.per_replica, self.fixed)


def service_cost(
    spec: InferenceServiceSpec,
    catalog: GpuCatalog,
    cluster_overrides: Mapping[str, float] | None = None,
) -> ServiceCost:
    """The service's replica price and fixed price (replica_cost, fixed_cost)."""
    return ServiceCost(
        replica_cost(spec, catalog, cluster_overrides), fixed_cost(spec, catalog, cluster_overrides)
    )


def max_affordable_replicas(
    hourly_cap: float | None, cost_per_replica: float, fixed: float = 0.0
) -> int | None:
    """The most replicas the hourly cap pays for after the fixed part: floor((cap - fixed) /
    cost), never below 0; None means no limit (no budget, or replicas that cost nothing)."""
    if hourly_cap is None or cost_per_replica <= 0:
        return None
    return max(0, math.floor((hourly_cap - fixed) / cost_per_replica + PRICE_EPSILON))


def cost_per_hour(replicas: int, cost_per_replica: float, fixed: float = 0.0) -> float:
    """USD per hour of running `replicas` (and the fixed part: the managed Redis)."""
    return round(replicas * cost_per_replica + fixed, 6)


def projected_monthly_cost(hourly: float) -> float:
    """USD per month (HOURS_PER_MONTH hours) at this hourly cost."""
    return round(hourly * HOURS_PER_MONTH, 4)


def cost_per_1k_requests(hourly: float, request_rate: float | None) -> float | None:
    """USD per 1,000 requests at this hourly cost and request rate; None when idle."""
    if request_rate is None or request_rate < MIN_RATE_FOR_UNIT_COST:
        return None
    return round(hourly / (request_rate * 3600) * 1000, 8)


def cost_status(
    running_replicas: int, cost: ServiceCost, request_rate: float | None
) -> dict[str, float | None]:
    """The status's cost fields (snake_case, as InferenceServiceStatus names them): the one
    builder of costPerHour, projectedMonthlyCost and costPer1KRequests."""
    hourly = cost.hourly(running_replicas)
    return {
        "cost_per_hour": hourly,
        "projected_monthly_cost": projected_monthly_cost(hourly),
        "cost_per_1k_requests": cost_per_1k_requests(hourly, request_rate),
    }


@dataclass(frozen=True)
class ClusterPrices:
    """The cluster's price overrides in force, and the keys refused (key → the text given)."""

    prices: Mapping[str, float] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)

    def refusal(self) -> str | None:
        """Why prices were refused, naming each key and value; None when none was."""
        if not self.refused:
            return None
        named = ", ".join(f"{key}={text!r}" for key, text in sorted(self.refused.items()))
        return (
            f"refused cluster prices {named}: a price must be a finite number above 0; "
            "the last good price of each stays in force (none: the catalog's)"
        )


def parse_cluster_prices(data: Mapping[str, str], last_good: Mapping[str, float]) -> ClusterPrices:
    """Prices from the cluster's price ConfigMap (GPU type → USD/hour text).

    A value that is no valid_price is refused and its key keeps its last good price (from
    `last_good`, the prices in force until now), or the catalog's if it never had one: a typo
    in one price neither stops reconciling nor moves any replica count.
    """
    prices: dict[str, float] = {}
    refused: dict[str, str] = {}
    for key, text in data.items():
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if valid_price(value):
            prices[key] = value
            continue
        refused[key] = text
        if key in last_good:
            prices[key] = last_good[key]
    return ClusterPrices(prices, refused)

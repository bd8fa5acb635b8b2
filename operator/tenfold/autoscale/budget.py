"""The hard cost cap: how many replicas the budget pays for, and the clamp that enforces it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tenfold.api.catalog import GpuCatalog
from tenfold.api.spec import InferenceServiceSpec

# Slack so that a budget written as exactly N replicas' price buys N despite float rounding;
# the same tolerance admission uses (api/rules.py).
PRICE_EPSILON = 1e-9


def replica_cost(spec: InferenceServiceSpec, catalog: GpuCatalog) -> float:
    """USD per hour of one replica: GPUs x GPU price (spot or on-demand, overrides first) for
    a GPU type, requested vCPUs and memory for cpu."""
    hardware = spec.hardware
    return catalog.replica_cost(
        hardware.gpu_type,
        hardware.gpus_per_replica,
        hardware.cpu_cores(),
        hardware.memory_bytes(),
        hardware.spot,
        spec.budget.price_overrides,
    )


def max_affordable_replicas(hourly_cap: float | None, cost_per_replica: float) -> int | None:
    """The most replicas the hourly cap pays for: floor(cap / cost); None means no limit
    (no budget, or replicas that cost nothing)."""
    if hourly_cap is None or cost_per_replica <= 0:
        return None
    return math.floor(hourly_cap / cost_per_replica + PRICE_EPSILON)


@dataclass(frozen=True)
class Clamped:
    """Replicas after the budget clamp, and how many demand wanted beyond it."""

    replicas: int
    shortfall: int

    @property
    def limited(self) -> bool:
        """True when the budget, not demand, set the replica count."""
        return self.shortfall > 0


def clamp(wanted: int, affordable: int | None) -> Clamped:
    """Cap `wanted` at what the budget pays for; the shortfall feeds BudgetLimited."""
    if affordable is None or wanted <= affordable:
        return Clamped(replicas=wanted, shortfall=0)
    return Clamped(replicas=affordable, shortfall=wanted - affordable)

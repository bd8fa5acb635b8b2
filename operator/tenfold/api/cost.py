"""What a replica costs and how many the budget pays for: the one place budget math lives.

Admission (rules.py), the controller's replica bound and the autoscaler's clamp all use these
functions, so the three can never disagree about a price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tenfold.api.catalog import GpuCatalog
from tenfold.api.spec import InferenceServiceSpec

# Slack so that a budget written as exactly N replicas' price buys N despite float rounding.
PRICE_EPSILON = 1e-9


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

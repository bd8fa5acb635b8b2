"""A day at production scale, computed from measured parts.

The 2-core machine cannot hold a peak that needs many replicas, so the day is computed: each
second of the trace goes through the queueing model of the autoscaler evaluation
(`tenfold_tools.autoscale.simulation`: fluid backlog, M/M/1 below saturation, replicas
serving only after their start-up time) with the per-replica capacity, the cache's hits
per repeat and the pod start time measured on the real node, and prices from the
operator's own cost code. Naive and every static step are sized for the peak at the
planned utilization (as the evaluation's static baseline is); the last step runs tenfold's
real policy and budget clamp.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from tenfold.api.spec import AutoscalingSpec
from tenfold.autoscale.policy import PolicyParams
from tenfold_tools.autoscale.simulation import (
    Cluster,
    Meters,
    Scaler,
    ServiceModel,
    Static,
    Tenfold,
    serve_one_second,
)
from tenfold_tools.report.accounting import WINDOW_SECONDS, Step, cost_per_1k
from tenfold_tools.report.trace import TraceRow

UTILIZATION = 0.8  # the planned utilization of the evaluation and of PolicyParams


@dataclass(frozen=True)
class Measured:
    """What the real node measured, per replica."""

    naive_rps: float  # fp32, no batching, at the SLO
    batched_rps: float  # fp32 with the batching window, at the SLO
    tenfold_rps: float  # the guarded precision with the batching window, at the SLO
    hits_per_repeat: float  # cache hits / repeated requests in the tenfold replay
    startup_s: float  # the tenfold pod: created -> Ready (prepare and the guard included)
    window_ms: float  # the batching window


@dataclass(frozen=True)
class Prices:
    """USD per hour, from tenfold.api.cost for the two specs."""

    naive_replica: float
    tenfold_replica: float  # Triton and the cache sidecar
    tenfold_fixed: float  # the managed Redis


@dataclass(frozen=True)
class DayRun:
    """One configuration over the day."""

    step: Step
    requests: float
    within_slo: float
    minutes: int
    minutes_within_slo: int
    replicas: list[int]
    cost_usd: float

    @property
    def window_attainment(self) -> float:
        """Share of one-minute windows whose p95 is within the SLO."""
        return self.minutes_within_slo / self.minutes if self.minutes else 0.0


def peak_replicas(peak_rps: float, capacity_rps: float) -> int:
    """Replicas a static deployment needs for the peak at the planned utilization."""
    return max(1, math.ceil(peak_rps / (capacity_rps * UTILIZATION) - 1e-9))


def miss_rates(rows: Sequence[TraceRow], hits_per_repeat: float) -> list[float]:
    """Requests/s that reach Triton once the cache answers its share of the repeats."""
    return [row.rate * (1 - row.repeat_share * hits_per_repeat) for row in rows]


def run_day(
    rates: Sequence[float],
    served: Sequence[float],
    scaler: Scaler,
    model: ServiceModel,
    initial: int,
    fixed_per_hour: float,
    step: Step,
    seed: int = 7,
) -> DayRun:
    """`rates` arrive; `served` of them reach Triton (the rest are cache hits, answered
    within the SLO). A minute is within the SLO when at least 95 % of its requests are."""
    rng = random.Random(seed)
    cluster, meters = Cluster(model, ready=initial), Meters(ready=initial)
    requests = within = cost = 0.0
    minute_requests = minute_within = 0.0
    minutes = minutes_within = 0
    replicas = []
    for t, (rate, reaching) in enumerate(zip(rates, served, strict=True)):
        cluster.promote(t)
        noise = max(0.0, rng.gauss(1.0, 1 / math.sqrt(max(rate, 1.0))))
        outcome = serve_one_second(cluster, reaching * noise, meters)
        target = scaler.step(t, meters, cluster.provisioned)
        if target is not None and target != cluster.provisioned:
            cluster.scale(t, target)
        arrived = rate * noise
        ok = outcome.within_slo + (arrived - outcome.arrived)
        requests, within = requests + arrived, within + ok
        minute_requests, minute_within = minute_requests + arrived, minute_within + ok
        if (t + 1) % WINDOW_SECONDS == 0:
            minutes += 1
            minutes_within += minute_requests == 0 or minute_within / minute_requests >= 0.95
            minute_requests = minute_within = 0.0
        cost += cluster.provisioned * model.cost_per_replica_hour / 3600
        replicas.append(cluster.provisioned)
    cost += fixed_per_hour * len(rates) / 3600
    final = Step(step.lever, cost_per_1k(cost, requests), step.how)
    return DayRun(final, requests, within, minutes, minutes_within, replicas, cost)


def levers(
    rows: Sequence[TraceRow], measured: Measured, prices: Prices, slo_ms: float, seed: int = 7
) -> list[DayRun]:
    """Naive, then each lever added in turn: batching, precision, cache, autoscaling."""
    rates = [row.rate for row in rows]
    misses = miss_rates(rows, measured.hits_per_repeat)
    peak, peak_misses = max(rates), max(misses)

    def model(capacity: float, window_ms: float, price: float) -> ServiceModel:
        return ServiceModel(capacity, window_ms, measured.startup_s, price, slo_ms)

    def static(capacity: float, window_ms: float, price: float, load: float) -> tuple:
        return Static(), model(capacity, window_ms, price), peak_replicas(load, capacity)

    window, tenfold_rps = measured.window_ms, measured.tenfold_rps
    plans = [
        ("naive", "fp32, no batching, static for the peak", static(
            measured.naive_rps, 0.0, prices.naive_replica, peak), rates, 0.0),
        ("+ batching", "fp32 with the batching window, static", static(
            measured.batched_rps, window, prices.naive_replica, peak), rates, 0.0),
        ("+ precision", "the guarded precision, static", static(
            tenfold_rps, window, prices.naive_replica, peak), rates, 0.0),
        ("+ cache", "cache sidecar and Redis priced, static for the peak of misses", static(
            tenfold_rps, window, prices.tenfold_replica, peak_misses), misses,
            prices.tenfold_fixed),
    ]  # fmt: skip
    runs = []
    for lever, how, (scaler, service, initial), served, fixed in plans:
        runs.append(
            run_day(rates, served, scaler, service, initial, fixed, Step(lever, 0, how), seed)
        )
    static_cache = runs[-1]
    cap = static_cache.cost_usd / (len(rates) / 3600)  # the static deployment's hourly cost
    spec = AutoscalingSpec(min_replicas=1, max_replicas=1000, target_p95_latency_ms=slo_ms)
    service = model(tenfold_rps, window, prices.tenfold_replica)
    params = PolicyParams(tenfold_rps, UTILIZATION, measured.startup_s)
    scaler = Tenfold(spec, params, prices.tenfold_replica, cap - prices.tenfold_fixed)
    how = "tenfold's policy, budget = the static step's hourly cost"
    start = peak_replicas(misses[0], tenfold_rps)
    runs.append(
        run_day(
            rates, misses, scaler, service, start, prices.tenfold_fixed,
            Step("+ autoscaling", 0, how), seed,
        )
    )  # fmt: skip
    return runs

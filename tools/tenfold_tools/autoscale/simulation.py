"""A trace-driven simulation of one service under four ways of sizing it.

Time advances in 1 s steps. The service model (stated in docs/autoscaling.md):

- each ready replica serves up to `capacity_rps` requests/s (measured with real Triton);
- arrivals beyond the ready capacity wait in a fluid backlog (no request is dropped);
- below saturation each replica behaves as an M/M/1 queue at its share of the load, so a
  request's latency is the batching window + the backlog ahead of it + an exponential
  sojourn with rate capacity x (1 - utilization); that gives the share within the SLO;
- a new replica serves only `startup_seconds` after the decision (pod start + model load),
  but is paid for from the decision on; removed replicas stop costing at once.

The autoscalers only see what their real counterparts see: tenfold reads Triton's counters
through a 5 s scrape; the HPA reads CPU utilization (which saturates at 100 %) through
metrics-server; KEDA polls a request rate from Prometheus every 30 s and feeds the HPA.
Pure Python (no numpy), seeded, so the operator package needs nothing extra to run it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tenfold.api.cost import max_affordable_replicas
from tenfold.api.spec import AutoscalingSpec
from tenfold.autoscale.policy import History, PolicyParams, decide
from tenfold.autoscale.signals import ServiceSignals

# The most a replica's M/M/1 model is loaded with; at 1.0 its waiting time is infinite and
# the fluid backlog takes over instead.
MAX_MODEL_UTILIZATION = 0.99


@dataclass(frozen=True)
class ServiceModel:
    """The simulated service: capacity, latency, start-up time, price and SLO."""

    capacity_rps: float = 288.0
    batch_window_ms: float = 5.0
    startup_seconds: float = 30.0
    cost_per_replica_hour: float = 2 * 0.0336 + 4 * 0.0036  # cpu "2", memory "4Gi"
    slo_ms: float = 200.0


@dataclass(frozen=True)
class Trace:
    """Requests/s offered each second."""

    rates: tuple[float, ...]

    @property
    def peak(self) -> float:
        """The highest offered rate."""
        return max(self.rates)


def daily_trace(
    seed: int = 7,
    hours: float = 4.0,
    trough: float = 150.0,
    peak: float = 1500.0,
    spikes: int = 6,
) -> Trace:
    """A 24 h cycle compressed into `hours`: a night trough, a midday peak and `spikes`
    sudden bursts (x1.6 to x2.5 for 1 to 5 minutes) at seeded random times."""
    rng = random.Random(seed)
    seconds = int(hours * 3600)
    rates = [
        trough + (peak - trough) * (0.5 - 0.5 * math.cos(2 * math.pi * t / seconds)) ** 1.5
        for t in range(seconds)
    ]
    for _ in range(spikes):
        start, length = rng.randrange(seconds - 300), rng.randrange(60, 300)
        factor = rng.uniform(1.6, 2.5)
        for t in range(start, start + length):
            rates[t] *= factor
    return Trace(tuple(rates))


def step_trace(
    before: float = 200.0, after: float = 900.0, step_at: int = 120, seconds: int = 900
) -> Trace:
    """Constant load that steps up once, for measuring reaction time."""
    return Trace(tuple(before if t < step_at else after for t in range(seconds)))


@dataclass
class Meters:
    """What an exporter could show at one second: Triton's counters and gauges, and CPU."""

    success_total: float = 0.0
    queue_us_total: float = 0.0
    pending: float = 0.0
    cpu_utilization: float = 0.0
    ready: int = 0


class Scaler(Protocol):
    """An autoscaler under test: sees the meters each second, may return a new count."""

    name: str

    def step(self, t: int, meters: Meters, current: int) -> int | None:
        """The new replica count if this second is a decision time and it changes."""
        ...


@dataclass
class Cluster:
    """Replicas (ready and starting) and the backlog of one service."""

    model: ServiceModel
    ready: int
    starting: list[float] = field(default_factory=list)
    backlog: float = 0.0

    @property
    def provisioned(self) -> int:
        """Replicas paid for: ready plus starting."""
        return self.ready + len(self.starting)

    def scale(self, t: float, replicas: int) -> None:
        """Start new replicas (ready after the start-up time) or remove some, the starting
        ones first, as a ReplicaSet deletes not-ready pods first."""
        if replicas > self.provisioned:
            self.starting += [t + self.model.startup_seconds] * (replicas - self.provisioned)
            return
        surplus = self.provisioned - replicas
        dropped = min(surplus, len(self.starting))
        self.starting = self.starting[: len(self.starting) - dropped]
        self.ready -= surplus - dropped

    def promote(self, t: float) -> None:
        """Starting replicas whose start-up time passed become ready."""
        done = [s for s in self.starting if s <= t]
        self.ready += len(done)
        self.starting = [s for s in self.starting if s > t]


@dataclass(frozen=True)
class SecondOutcome:
    """Requests of one second: how many arrived and how many finished within the SLO."""

    arrived: float
    within_slo: float


def serve_one_second(cluster: Cluster, arrived: float, meters: Meters) -> SecondOutcome:
    """Advance the queueing model by one second and update the meters."""
    model = cluster.model
    capacity = cluster.ready * model.capacity_rps
    if capacity <= 0:
        cluster.backlog += arrived
        meters.pending, meters.cpu_utilization, meters.ready = cluster.backlog, 0.0, 0
        return SecondOutcome(arrived, 0.0)
    served = min(cluster.backlog + arrived, capacity)
    cluster.backlog += arrived - served
    rho = min(served / capacity, MAX_MODEL_UTILIZATION)
    backlog_wait = cluster.backlog / capacity
    window = model.batch_window_ms / 1000
    mm1_wait = rho / (model.capacity_rps * (1 - rho))
    slack = model.slo_ms / 1000 - window - backlog_wait
    within = 1 - math.exp(-model.capacity_rps * (1 - rho) * slack) if slack > 0 else 0.0
    meters.success_total += served
    meters.queue_us_total += served * (window + mm1_wait + backlog_wait) * 1e6
    meters.pending = cluster.backlog + cluster.ready * rho * rho / (1 - rho)
    meters.cpu_utilization = served / capacity
    meters.ready = cluster.ready
    return SecondOutcome(arrived, arrived * within)


@dataclass
class RunResult:
    """One autoscaler over one trace."""

    name: str
    provisioned: list[int]
    decisions: list[tuple[int, int]]
    cost_usd: float
    requests: float
    within_slo: float
    over_budget_seconds: int

    @property
    def slo_attainment(self) -> float:
        """Share of requests answered within the SLO."""
        return self.within_slo / self.requests if self.requests else 1.0


def simulate(
    trace: Trace,
    scaler: Scaler,
    model: ServiceModel,
    initial: int,
    hourly_cap: float | None,
    seed: int = 7,
) -> RunResult:
    """Run `scaler` against `trace`; arrivals get Poisson-like noise (normal approximation)."""
    rng = random.Random(seed)
    cluster, meters = Cluster(model, ready=initial), Meters(ready=initial)
    result = RunResult(scaler.name, [], [], 0.0, 0.0, 0.0, 0)
    for t, rate in enumerate(trace.rates):
        cluster.promote(t)
        outcome = serve_one_second(cluster, max(0.0, rng.gauss(rate, math.sqrt(rate))), meters)
        target = scaler.step(t, meters, cluster.provisioned)
        if target is not None and target != cluster.provisioned:
            cluster.scale(t, target)
            result.decisions.append((t, target))
        hourly = cluster.provisioned * model.cost_per_replica_hour
        result.cost_usd += hourly / 3600
        result.over_budget_seconds += hourly_cap is not None and hourly > hourly_cap + 1e-9
        result.requests += outcome.arrived
        result.within_slo += outcome.within_slo
        result.provisioned.append(cluster.provisioned)
    return result


@dataclass
class Static:
    """Provisioned once for the peak; never changes."""

    name: str = "static (peak)"

    def step(self, t: int, meters: Meters, current: int) -> int | None:
        """Never scales."""
        return None


@dataclass
class HpaRule:
    """Kubernetes HPA's algorithm: sync period, 10 % tolerance, default scale-up policy
    (the larger of +4 pods and +100 % per period) and a scale-down stabilization window."""

    min_replicas: int
    max_replicas: int
    sync_seconds: int = 15
    down_window_seconds: int = 300
    phase: int = 0
    recommendations: list[tuple[int, int]] = field(default_factory=list)

    def decide(self, t: int, current: int, ratio: float, desired: int) -> int:
        """Tolerance (on the usage ratio), stabilization, rate limit and bounds around a raw
        desired count."""
        if abs(ratio - 1) <= 0.1:
            desired = current
        self.recommendations = [
            (s, r) for s, r in self.recommendations if t - s <= self.down_window_seconds
        ] + [(t, desired)]
        if desired < current:
            desired = min(current, max(r for _, r in self.recommendations))
        desired = min(desired, max(current + 4, 2 * current))
        return max(self.min_replicas, min(self.max_replicas, desired))

    def due(self, t: int) -> bool:
        """True at every sync period."""
        return (t - self.phase) % self.sync_seconds == 0


@dataclass
class HpaCpu:
    """HPA on CPU utilization (target 80 %), read via metrics-server every 15 s."""

    hpa: HpaRule
    target: float = 0.8
    resolution_seconds: int = 15
    name: str = "HPA (CPU 80 %)"
    window: list[float] = field(default_factory=list)
    reading: tuple[float, int] = (0.0, 0)

    def step(self, t: int, meters: Meters, current: int) -> int | None:
        """metrics-server averages CPU over its resolution; the HPA acts on the last sample."""
        self.window.append(meters.cpu_utilization)
        if t % self.resolution_seconds == 0:
            self.reading = (sum(self.window) / len(self.window), meters.ready)
            self.window = []
        if not self.hpa.due(t):
            return None
        utilization, ready = self.reading
        # HPA counts not-yet-ready pods as 0 % when scaling up: usage over ready pods only.
        usage = ready * utilization / self.target
        return self.hpa.decide(t, current, usage / max(current, 1), math.ceil(usage - 1e-9))


@dataclass
class KedaRate:
    """KEDA's Prometheus scaler: polls rate(success[1m]) every 30 s (Prometheus scraping
    every 15 s) and hands it to the HPA as an AverageValue target per replica."""

    hpa: HpaRule
    per_replica_rps: float
    polling_seconds: int = 30
    scrape_seconds: int = 15
    rate_window: int = 60
    name: str = "KEDA (rate, 30 s poll)"
    samples: list[tuple[int, float]] = field(default_factory=list)
    value: float = 0.0

    def step(self, t: int, meters: Meters, current: int) -> int | None:
        """Scrape, poll, and sync on their own schedules."""
        if t % self.scrape_seconds == 0:
            self.samples = [s for s in self.samples if t - s[0] <= self.rate_window]
            self.samples.append((t, meters.success_total))
        if (t - self.hpa.phase) % self.polling_seconds == 0 and len(self.samples) > 1:
            (t0, v0), (t1, v1) = self.samples[0], self.samples[-1]
            self.value = (v1 - v0) / (t1 - t0)
        if not self.hpa.due(t):
            return None
        usage = self.value / self.per_replica_rps
        return self.hpa.decide(t, current, usage / max(current, 1), math.ceil(usage - 1e-9))


@dataclass
class Tenfold:
    """tenfold's policy and budget clamp on Triton's counters scraped every 5 s."""

    spec: AutoscalingSpec
    params: PolicyParams
    cost_per_replica_hour: float
    hourly_cap: float | None
    name: str = "tenfold"
    scrape_seconds: int = 5
    tick_seconds: int = 5
    rate_window: int = 15
    scrape_phase: int = 0
    tick_phase: int = 0
    samples: list[tuple[int, Meters]] = field(default_factory=list)
    history: History = field(default_factory=History)

    def step(self, t: int, meters: Meters, current: int) -> int | None:
        """Scrape on its schedule; on a tick, decide from the scraped samples."""
        if (t - self.scrape_phase) % self.scrape_seconds == 0:
            self.samples = [s for s in self.samples if t - s[0] <= self.rate_window]
            self.samples.append((t, Meters(**vars(meters))))
        if (t - self.tick_phase) % self.tick_seconds != 0:
            return None
        decision = decide(
            self.spec,
            current,
            self.signals(),
            now=t,
            history=self.history,
            params=self.params,
            affordable=max_affordable_replicas(self.hourly_cap, self.cost_per_replica_hour),
            ready=meters.ready,
        )
        self.history = decision.history
        return decision.replicas

    def signals(self) -> ServiceSignals | None:
        """What the PromQL of signals.py returns over the scraped samples."""
        if len(self.samples) < 2:
            return None
        (t0, first), (t1, last) = self.samples[0], self.samples[-1]
        served = last.success_total - first.success_total
        return ServiceSignals(
            observed_at=t1,
            request_rate=served / (t1 - t0),
            queue_time_ms=(last.queue_us_total - first.queue_us_total) / (1 + served) / 1000,
            pending_requests=last.pending,
            pending_growth=(last.pending - first.pending) / (t1 - t0),
        )


def reaction_seconds(result: RunResult, step_at: int) -> int | None:
    """Seconds from the load step to the first scale-up decision after it."""
    for t, _ in result.decisions:
        if t >= step_at and result.provisioned[t] > result.provisioned[step_at - 1]:
            return t - step_at
    return None


def needed_replicas(rates: Sequence[float], model: ServiceModel, utilization: float) -> list[int]:
    """Replicas each second's load needs at the planned utilization (the ideal curve)."""
    per_replica = model.capacity_rps * utilization
    return [math.ceil(rate / per_replica) for rate in rates]

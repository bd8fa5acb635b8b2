"""A trace-driven simulation of one service under several ways of sizing it.

Time advances in 1 s steps. The service model (stated in docs/autoscaling.md):

- each ready replica serves up to `capacity_rps` requests/s (evaluate reads it from a
  committed `tenfold-runtime bench` result);
- arrivals beyond the ready capacity wait in a fluid backlog (no request is dropped);
- below saturation each replica behaves as an M/M/1 queue at its share of the load, so a
  request's latency is the batching window + the backlog ahead of it + an exponential
  sojourn with rate capacity x (1 - utilization); that gives the share within the SLO;
- a new replica serves only `startup_seconds` after the decision (pod start + model load),
  but is paid for from the decision on; removed replicas stop costing at once.

The autoscalers only see what their real counterparts see, with their documented defaults:
tenfold reads Triton's counters through a 5 s scrape; the HPA reads CPU utilization (which
saturates at 100 %) through metrics-server, or Triton's queue time per request through
prometheus-adapter; KEDA queries Prometheus at every HPA sync and feeds the HPA; Knative's
KPA averages the requests in flight, sampled every second, over its stable and panic windows.
Pure Python (no numpy), seeded, so the operator package needs nothing extra to run it.
"""

from __future__ import annotations

import math
import random
import statistics
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
    concurrency: float = 0.0
    """Requests in flight (queued, batching or running): what Knative's queue-proxy counts."""


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
        meters.concurrency = cluster.backlog
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
    meters.concurrency = cluster.backlog + served * (window + 1 / (model.capacity_rps * (1 - rho)))
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


def hpa_pods_proposal(
    current: int, ready: int, starting: int, average: float, target: float, tolerance: float
) -> int:
    """The HPA's count for a per-pod metric (Resource utilization or a Pods metric with an
    AverageValue target), as `calcPlainMetricReplicas` computes it.

    Only ready pods report; starting pods are unready (pending). Within the tolerance the
    count holds. When scaling up with unready pods, those count as 0, and the count holds if
    that brings the ratio within the tolerance or flips its direction; unready pods never
    count when scaling down.
    """
    ratio = average / target
    if starting == 0 or ratio <= 1.0:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * ready - 1e-9)
    diluted = ratio * ready / (ready + starting)
    if abs(1.0 - diluted) <= tolerance or diluted < 1.0:
        return current
    proposal = math.ceil(diluted * (ready + starting) - 1e-9)
    return max(proposal, current)


def hpa_external_proposal(current: int, total: float, per_replica: float, tolerance: float) -> int:
    """The HPA's count for an External metric with an AverageValue target (what KEDA
    creates): usage ratio over the current replicas, ceil(total / per-replica target)."""
    if abs(1.0 - total / (per_replica * max(current, 1))) <= tolerance:
        return current
    return math.ceil(total / per_replica - 1e-9)


@dataclass
class HpaRule:
    """Kubernetes HPA's behavior with its defaults (autoscaling/v2 `behavior` unset): sync every
    15 s; scale up with no stabilization, by the larger of +4 pods and +100 % per 15 s; scale
    down to the highest recommendation of the last 300 s, by at most 100 % per 15 s.

    The order is the controller's: stabilize the recommendation
    (`stabilizeRecommendationWithBehaviors`), then limit the rate from the scale events of the
    policies' periods (`convertDesiredReplicasWithBehaviorRate`), then the bounds. The
    tolerance (10 %) belongs to the metric's proposal (`hpa_pods_proposal`,
    `hpa_external_proposal`).
    """

    min_replicas: int
    max_replicas: int
    sync_seconds: int = 15
    tolerance: float = 0.1
    up_window_seconds: int = 0
    down_window_seconds: int = 300
    up_pods: int = 4
    up_percent: int = 100
    up_period_seconds: int = 15
    down_percent: int = 100
    down_period_seconds: int = 15
    phase: int = 0
    seeded: bool = False
    recommendations: list[tuple[int, int]] = field(default_factory=list)
    events: list[tuple[int, int]] = field(default_factory=list)

    def decide(self, t: int, current: int, proposal: int) -> int:
        """Stabilization, rate limits and bounds around a metric's proposal."""
        if not self.seeded:
            # A new HPA's history starts with the current count: no scale-down at once.
            self.recommendations, self.seeded = [(t, current)], True
        keep = max(self.up_window_seconds, self.down_window_seconds)
        self.recommendations = [(s, r) for s, r in self.recommendations if t - s < keep]
        past = self.recommendations
        up = min([proposal] + [r for s, r in past if t - s < self.up_window_seconds])
        down = max([proposal] + [r for s, r in past if t - s < self.down_window_seconds])
        self.recommendations.append((t, proposal))
        desired = min(max(current, up), down)
        if desired > current:
            start = current - self._changed(t, self.up_period_seconds)
            limit = max(start + self.up_pods, math.ceil(start * (1 + self.up_percent / 100)))
            desired = min(desired, max(limit, current), self.max_replicas)
        elif desired < current:
            start = current - self._changed(t, self.down_period_seconds)
            limit = math.floor(start * (1 - self.down_percent / 100))
            desired = max(desired, min(limit, current), self.min_replicas)
        else:
            desired = max(self.min_replicas, min(self.max_replicas, desired))
        if desired != current:
            self.events.append((t, desired - current))
        return desired

    def _changed(self, t: int, period: int) -> int:
        """Net replicas added by this HPA's own scale events within the last `period` s."""
        return sum(change for s, change in self.events if t - s < period)

    def due(self, t: int) -> bool:
        """True at every sync period."""
        return (t - self.phase) % self.sync_seconds == 0


@dataclass
class HpaCpu:
    """HPA on CPU utilization (Resource metric, target 80 %), read via metrics-server, which
    samples every 15 s (its default resolution); the HPA acts on the last sample."""

    hpa: HpaRule
    target: float = 0.8
    resolution_seconds: int = 15
    name: str = "HPA (CPU 80 %)"
    window: list[float] = field(default_factory=list)
    reading: tuple[float, int] = (0.0, 0)

    def step(self, t: int, meters: Meters, current: int) -> int | None:
        """Average CPU over metrics-server's resolution; decide at the HPA's sync."""
        self.window.append(meters.cpu_utilization)
        if t % self.resolution_seconds == 0:
            self.reading = (sum(self.window) / len(self.window), meters.ready)
            self.window = []
        if not self.hpa.due(t):
            return None
        utilization, ready = self.reading
        if ready == 0:
            return None  # no pod reports: the HPA cannot compute a count
        proposal = hpa_pods_proposal(
            current, ready, max(0, current - ready), utilization, self.target, self.hpa.tolerance
        )
        return self.hpa.decide(t, current, proposal)


@dataclass
class Prometheus:
    """Samples of the meters, scraped every `scrape_seconds` at phase `phase`."""

    scrape_seconds: int = 5
    phase: int = 0
    retention_seconds: int = 60
    samples: list[tuple[int, Meters]] = field(default_factory=list)

    def scrape(self, t: int, meters: Meters) -> None:
        """Take a sample if this second is a scrape; forget samples past the retention."""
        if (t - self.phase) % self.scrape_seconds == 0:
            self.samples = [s for s in self.samples if t - s[0] <= self.retention_seconds]
            self.samples.append((t, Meters(**vars(meters))))

    def window(self, t: int, seconds: int) -> list[tuple[int, Meters]]:
        """The samples a range selector `[seconds]` evaluated at `t` sees."""
        return [s for s in self.samples if t - s[0] <= seconds]


def promql_signals(samples: Sequence[tuple[int, Meters]]) -> ServiceSignals | None:
    """What the PromQL of tenfold's signals.py returns over these samples (first to last)."""
    if len(samples) < 2:
        return None
    (t0, first), (t1, last) = samples[0], samples[-1]
    served = last.success_total - first.success_total
    return ServiceSignals(
        observed_at=t1,
        request_rate=served / (t1 - t0),
        queue_time_ms=(last.queue_us_total - first.queue_us_total) / (1 + served) / 1000,
        pending_requests=last.pending,
        pending_growth=(last.pending - first.pending) / (t1 - t0),
    )


def queue_time_ms_at(model: ServiceModel, utilization: float) -> float:
    """Queue time per request the service model shows at `utilization` (no backlog): what
    Triton's nv_inference_queue_duration_us counts, the batching window included."""
    rho = min(utilization, MAX_MODEL_UTILIZATION)
    return (model.batch_window_ms / 1000 + rho / (model.capacity_rps * (1 - rho))) * 1000


def concurrency_at(model: ServiceModel, utilization: float) -> float:
    """Requests in flight in one replica at `utilization` (no backlog), by Little's law."""
    rho = min(utilization, MAX_MODEL_UTILIZATION)
    sojourn = model.batch_window_ms / 1000 + 1 / (model.capacity_rps * (1 - rho))
    return rho * model.capacity_rps * sojourn


@dataclass
class HpaQueueTime:
    """HPA on Triton's queue time per request, the metric of Triton's own Kubernetes example
    (deploy/k8s-onprem: prometheus-adapter rule `avg_time_queue_us` =
    `delta(nv_inference_queue_duration_us[30s]) / (1 + delta(nv_inference_request_success[30s]))`
    as a Pods metric with an AverageValue target). prometheus-adapter queries Prometheus
    when the HPA asks, at every sync; Prometheus is tenfold's (5 s scrape).

    Triton's example targets 50 us; here the window alone is 5 ms of queue time, so the
    target is the queue time the service model shows at the planned utilization."""

    hpa: HpaRule
    target_ms: float
    prometheus: Prometheus = field(default_factory=Prometheus)
    window_seconds: int = 30
    name: str = "HPA (Triton queue time)"

    def step(self, t: int, meters: Meters, current: int) -> int | None:
        """Scrape; at the HPA's sync, read the per-pod queue time over the last 30 s."""
        self.prometheus.scrape(t, meters)
        if not self.hpa.due(t):
            return None
        signals = promql_signals(self.prometheus.window(t, self.window_seconds))
        if signals is None or signals.queue_time_ms is None or meters.ready == 0:
            return None
        proposal = hpa_pods_proposal(
            current,
            meters.ready,
            max(0, current - meters.ready),
            signals.queue_time_ms,
            self.target_ms,
            self.hpa.tolerance,
        )
        return self.hpa.decide(t, current, proposal)


@dataclass
class KedaPrometheus:
    """KEDA's Prometheus scaler on tenfold's own demand signal, into the HPA as an External
    metric with an AverageValue target of `per_replica_rps`.

    The query is the offered load of signals.py, tenfold's main demand signal:
    `sum(rate(nv_inference_request_success[15s])) +
    clamp_min(sum(deriv(nv_inference_pending_request_count[15s])), 0)`, on the same
    Prometheus (5 s scrape). The request rate alone stops at what the ready replicas serve;
    the pending growth adds what piles up beyond it, so this is the best single query a KEDA
    user could copy from tenfold (the queue-time and pending signals only push up and have
    no per-replica AverageValue meaning).

    KEDA's defaults: the HPA asks KEDA's metrics server at every sync (15 s) and KEDA
    queries Prometheus then (`useCachedMetrics: false`); `pollingInterval` (30 s) only drives
    activation from and to zero, which a service with minReplicas 1 never uses.
    """

    hpa: HpaRule
    per_replica_rps: float
    prometheus: Prometheus = field(default_factory=Prometheus)
    window_seconds: int = 15
    name: str = "KEDA (Prometheus, offered load)"
    reads: list[int] = field(default_factory=list)

    def step(self, t: int, meters: Meters, current: int) -> int | None:
        """Scrape; at each HPA sync, query Prometheus and decide."""
        self.prometheus.scrape(t, meters)
        if not self.hpa.due(t):
            return None
        self.reads.append(t)
        signals = promql_signals(self.prometheus.window(t, self.window_seconds))
        if signals is None:
            return None
        offered = signals.request_rate + max(0.0, signals.pending_growth or 0.0)
        proposal = hpa_external_proposal(current, offered, self.per_replica_rps, self.hpa.tolerance)
        return self.hpa.decide(t, current, proposal)


@dataclass
class Kpa:
    """Knative's Pod Autoscaler with its documented defaults (config-autoscaler): stable
    window 60 s, panic window 10 % of it (6 s), panic threshold 200 %, target utilization
    70 % of the concurrency target (container-concurrency-target-default 100, a soft
    limit), max-scale-up-rate 1000, max-scale-down-rate 2, scale-down-delay 0, a decision
    every 2 s (tick-interval) on concurrency sampled every second from the queue-proxies.

    The decision is Knative's `Scale`: desired pods from the stable and the panic averages,
    each bounded by the rates relative to the ready pods; panic starts when the panic
    window asks for at least twice the ready pods and ends a stable window after it last
    did; while panicking the count never goes down.
    """

    min_replicas: int
    max_replicas: int
    target_concurrency: float = 100.0
    target_utilization: float = 0.7
    stable_window_seconds: int = 60
    panic_window_percentage: float = 10.0
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    tick_seconds: int = 2
    phase: int = 0
    name: str = "Knative KPA"
    concurrency: list[float] = field(default_factory=list)
    panic_since: int | None = None
    max_panic_pods: int = 0

    @property
    def panic_window_seconds(self) -> int:
        """The panic window: a percentage of the stable window."""
        return max(1, round(self.stable_window_seconds * self.panic_window_percentage / 100))

    def step(self, t: int, meters: Meters, current: int) -> int | None:
        """Sample the concurrency each second; decide at every tick."""
        self.concurrency = self.concurrency[-(self.stable_window_seconds - 1) :] + [
            meters.concurrency
        ]
        if (t - self.phase) % self.tick_seconds != 0:
            return None
        return self.decide(t, meters.ready)

    def decide(self, t: int, ready: int) -> int:
        """Knative's scaling decision from the windows' average concurrency."""
        target = self.target_concurrency * self.target_utilization
        ready = max(ready, 1)
        stable = statistics.fmean(self.concurrency)
        panic = statistics.fmean(self.concurrency[-self.panic_window_seconds :])
        most = math.ceil(self.max_scale_up_rate * ready)
        least = math.floor(ready / self.max_scale_down_rate)
        stable_pods = min(max(math.ceil(stable / target - 1e-9), least), most)
        panic_pods = min(max(math.ceil(panic / target - 1e-9), least), most)
        over = panic / target / ready >= self.panic_threshold
        if over:
            self.panic_since = t
        elif self.panic_since is not None and t - self.panic_since > self.stable_window_seconds:
            self.panic_since, self.max_panic_pods = None, 0
        desired = stable_pods
        if self.panic_since is not None:
            self.max_panic_pods = max(self.max_panic_pods, stable_pods, panic_pods)
            desired = self.max_panic_pods
        return max(self.min_replicas, min(self.max_replicas, desired))


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
        return promql_signals(self.samples)


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

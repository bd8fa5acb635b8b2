"""What a replay measured, and what it costs: pure functions over request records.

Failed requests are counted apart and never as throughput; a window's p95 counts a failed
request as one that missed the SLO (its user got no answer in time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tenfold_tools.cache.bench import percentile

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Sample:
    """One request's outcome: when it was sent (s from the start), how long it took."""

    sent_s: float
    latency_s: float
    ok: bool
    repeat: bool = False


@dataclass(frozen=True)
class Latency:
    """Percentiles of the answered requests, ms."""

    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class ReplayStats:
    """One deployment under one replay."""

    requests: int
    failed: int
    latency: Latency
    windows: int
    windows_within_slo: int
    requests_within_slo: int

    @property
    def window_attainment(self) -> float:
        """Share of one-minute windows whose p95 (failures as misses) is within the SLO."""
        return self.windows_within_slo / self.windows if self.windows else 0.0

    @property
    def request_attainment(self) -> float:
        """Share of requests answered within the SLO."""
        return self.requests_within_slo / self.requests if self.requests else 0.0


def latency_ms(samples: Sequence[Sample]) -> Latency:
    """p50/p95/p99 of the answered requests, in ms (None when nothing was answered)."""
    answered = [s.latency_s * 1000 for s in samples if s.ok]
    p50, p95, p99 = (percentile(answered, q) for q in (50, 95, 99))
    return Latency(p50, p95, p99)


def window_p95s(samples: Sequence[Sample], window_s: int = WINDOW_SECONDS) -> list[float]:
    """The p95 latency (s) of each whole window by send time; a failed request counts as
    infinitely slow. A trailing part-window is left out."""
    if not samples:
        return []
    whole = int(max(s.sent_s for s in samples) // window_s)
    buckets: list[list[float]] = [[] for _ in range(whole)]
    for s in samples:
        index = int(s.sent_s // window_s)
        if index < whole:
            buckets[index].append(s.latency_s if s.ok else math.inf)
    return [percentile(b, 95) or 0.0 for b in buckets if b]


def replay_stats(samples: Sequence[Sample], slo_ms: float) -> ReplayStats:
    """Everything the page reports about one replay."""
    slo_s = slo_ms / 1000
    p95s = window_p95s(samples)
    return ReplayStats(
        requests=len(samples),
        failed=sum(not s.ok for s in samples),
        latency=latency_ms(samples),
        windows=len(p95s),
        windows_within_slo=sum(p <= slo_s for p in p95s),
        requests_within_slo=sum(s.ok and s.latency_s <= slo_s for s in samples),
    )


def cost_per_1k(cost_usd: float, requests: float) -> float:
    """USD per 1,000 requests."""
    return 1000 * cost_usd / requests if requests > 0 else math.inf


@dataclass(frozen=True)
class Step:
    """One bar of the waterfall: the cost per 1,000 requests once a lever is added."""

    lever: str
    cost_per_1k: float
    how: str


@dataclass(frozen=True)
class Saving:
    """What one lever saved, per 1,000 requests and as a share of the naive cost."""

    lever: str
    saved_per_1k: float
    share_of_naive: float
    factor: float


def waterfall(steps: Sequence[Step]) -> list[Saving]:
    """The saving of each lever after the first (the baseline), in the order given: the
    difference to the step before it, its share of the baseline, and its own factor."""
    if not steps:
        return []
    base = steps[0].cost_per_1k
    return [
        Saving(
            step.lever,
            before.cost_per_1k - step.cost_per_1k,
            (before.cost_per_1k - step.cost_per_1k) / base,
            before.cost_per_1k / step.cost_per_1k if step.cost_per_1k > 0 else math.inf,
        )
        for before, step in zip(steps, steps[1:], strict=False)
    ]


@dataclass(frozen=True)
class SweepPoint:
    """One closed-loop concurrency level against one deployment."""

    concurrency: int
    throughput_rps: float  # answered requests per second; failures excluded
    p95_ms: float | None
    failed: int


def capacity_at_slo(points: Sequence[SweepPoint], slo_ms: float) -> float:
    """The most answered requests/s of a level that failed nothing and kept its p95 within
    the SLO; 0 when no level did."""
    good = [
        p.throughput_rps
        for p in points
        if p.failed == 0 and p.p95_ms is not None and p.p95_ms <= slo_ms
    ]
    return max(good, default=0.0)

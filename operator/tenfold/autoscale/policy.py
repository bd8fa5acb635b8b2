"""The scaling policy: live signals in, one replica count out. Pure; no clock, no I/O.

Order of one decision, as Kubernetes' HPA does it, plus the budget:

1. demand: the most replicas any signal asks for (offered load against the measured
   capacity per replica, pending requests per replica, queue time per request);
2. stabilization: scale-up takes the lowest proposal of the up window (0 s: react at once),
   scale-down the highest of the down window (300 s by default: leave slowly);
3. step: at most maxScaleUpStep replicas added per decision;
4. bounds: [minReplicas, maxReplicas];
5. budget: never more replicas than the hourly cap pays for.

Steps 4 and 5 are limits.limit_replicas, the same function the controller applies.

Missing or stale metrics never scale down: the decision holds the current count (still
within bounds and budget) and says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tenfold.api.enums import AutoscalingMode
from tenfold.api.spec import AutoscalingSpec
from tenfold.autoscale.limits import limit_replicas
from tenfold.autoscale.signals import ServiceSignals, Unavailable


@dataclass(frozen=True)
class PolicyParams:
    """What the policy knows beyond the spec: the measured capacity of one replica."""

    capacity_per_replica: float
    """Requests/s one replica sustains (from the benchmark of this model on this hardware)."""
    target_utilization: float = 0.8
    """Share of that capacity a replica is planned to carry; the rest absorbs bursts."""
    replica_startup_seconds: float = 30.0
    """From a scale-up to a serving replica; a backlog that drains sooner needs no more."""


@dataclass(frozen=True)
class Proposal:
    """One past demand, kept for the stabilization windows."""

    time: float
    replicas: int
    seed: bool = False
    """A seed stands for the count found at start; it only delays scale-down."""


@dataclass(frozen=True)
class History:
    """Recent demands of one service, oldest first. Immutable: `record` returns a new one."""

    proposals: tuple[Proposal, ...] = ()

    @classmethod
    def seeded(cls, replicas: int, now: float) -> History:
        """A history for a service seen for the first time (or after an operator restart):
        the current count joins the scale-down window, so that window starts now instead of
        allowing an immediate scale-down; scale-up is not held back by it."""
        return cls((Proposal(now, replicas, seed=True),))

    def record(self, now: float, replicas: int, keep_seconds: float) -> History:
        """Add a proposal; forget the ones older than keep_seconds and the ones no window
        can need any more.

        The windows ask for the lowest (scale-up, seeds aside) and the highest (scale-down)
        proposal since some moment. A proposal with a later one at least as high never
        decides a highest, and one with a later non-seed one at least as low never decides
        a lowest: the later one is in every window the earlier one is. What is left is a
        falling and a rising run of replica counts, so the history holds at most about
        twice the number of distinct counts, whatever the windows (a 86,400 s window at a
        1 s tick once kept 86,400 proposals, copied every tick).
        """
        recent = [p for p in self.proposals if now - p.time <= keep_seconds]
        kept: list[Proposal] = []
        later_high, later_low = -1, None
        for proposal in reversed([*recent, Proposal(now, replicas)]):
            decides_high = proposal.replicas > later_high
            decides_low = not proposal.seed and (later_low is None or proposal.replicas < later_low)
            if decides_high or decides_low:
                kept.append(proposal)
            later_high = max(later_high, proposal.replicas)
            if not proposal.seed:
                later_low = (
                    proposal.replicas if later_low is None else min(later_low, proposal.replicas)
                )
        return History(tuple(reversed(kept)))

    def within(self, now: float, window_seconds: float, seeds: bool = True) -> list[int]:
        """Proposals made in the last window_seconds (without seeds if `seeds` is False)."""
        return [
            p.replicas
            for p in self.proposals
            if now - p.time <= window_seconds and (seeds or not p.seed)
        ]


@dataclass(frozen=True)
class Demand:
    """Replicas the signals ask for, and which signal asked for the most."""

    replicas: int
    reason: str


@dataclass(frozen=True)
class Decision:
    """The outcome of one tick for one service."""

    replicas: int
    """Replicas to run: after stabilization, step, bounds and the budget."""
    wanted: int
    """Replicas before the budget clamp (what demand and bounds alone would run)."""
    shortfall: int
    """wanted - replicas: how many replicas the budget refused (BudgetLimited)."""
    act: bool
    """True when the scale subresource should be patched (mode auto and a change)."""
    reason: str
    metrics_unavailable: Unavailable | None
    """Why the decision held for lack of metrics; None when metrics were usable."""
    history: History


def capacity_demand(rate: float, params: PolicyParams) -> int:
    """Replicas that carry `rate` requests/s at the planned utilization."""
    return math.ceil(rate / (params.capacity_per_replica * params.target_utilization) - 1e-9)


def demand(
    spec: AutoscalingSpec, ready: int, signals: ServiceSignals, params: PolicyParams
) -> Demand:
    """The largest replica count any signal asks for.

    The request rate says how many: served requests plus the growth of the queues is the
    offered load, even while the replicas are saturated. Pending requests and queue time
    say "more" when requests wait too long, but each adds at most maxScaleUpStep to the
    *ready* replicas: while new replicas start, a growing backlog must not compound into
    one scale-up per tick, and a backlog the ready replicas drain before a new one could
    start needs none. Queue time only ever pushes up: below saturation it stays near the
    batching window, so a low value says nothing about how few replicas would do.
    """
    per_replica = params.capacity_per_replica * params.target_utilization
    offered = signals.request_rate + max(0.0, signals.pending_growth or 0.0)
    candidates = [
        Demand(
            capacity_demand(offered, params),
            f"{offered:.1f} req/s offered at {per_replica:.0f} req/s per replica",
        )
    ]
    if draining_soon(signals, params):
        return candidates[0]
    ceiling = ready + spec.max_scale_up_step
    if signals.pending_requests is not None:
        candidates.append(
            Demand(
                min(
                    ceiling,
                    math.ceil(signals.pending_requests / spec.target_pending_per_replica - 1e-9),
                ),
                f"{signals.pending_requests:.0f} pending requests at "
                f"{spec.target_pending_per_replica:g} per replica",
            )
        )
    queue_target = spec.target_queue_share * spec.target_p95_latency_ms
    if signals.queue_time_ms is not None and signals.queue_time_ms > queue_target:
        candidates.append(
            Demand(
                min(ceiling, math.ceil(max(ready, 1) * signals.queue_time_ms / queue_target)),
                f"queue time {signals.queue_time_ms:.1f} ms per request over "
                f"{queue_target:.1f} ms target",
            )
        )
    return max(candidates, key=lambda d: d.replicas)


def draining_soon(signals: ServiceSignals, params: PolicyParams) -> bool:
    """True when the queues shrink fast enough to empty before a new replica could serve."""
    pending, growth = signals.pending_requests, signals.pending_growth
    if pending is None or growth is None or growth >= 0:
        return False
    return pending / -growth <= params.replica_startup_seconds


def stabilize(
    current: int, proposal: int, history: History, now: float, spec: AutoscalingSpec
) -> int:
    """HPA's stabilization: go up to the lowest proposal of the up window, down to the
    highest of the down window, else stay (`history` already holds `proposal`)."""
    up = min([proposal, *history.within(now, spec.scale_up_stabilization_seconds, seeds=False)])
    down = max([proposal, *history.within(now, spec.scale_down_stabilization_seconds)])
    if current < up:
        return up
    if current > down:
        return down
    return current


def _finish(
    spec: AutoscalingSpec,
    current: int,
    proposal: int,
    affordable: int | None,
    explain: Callable[[int], str],
    unavailable: Unavailable | None,
    history: History,
) -> Decision:
    """Apply the replica limits to `proposal`; `explain(wanted)` says why, before the budget."""
    limited = limit_replicas(proposal, spec, affordable)
    reason = explain(limited.wanted)
    if limited.limited:
        reason += f"; the budget pays for {affordable}, {limited.shortfall} short"
    act = spec.mode is AutoscalingMode.AUTO and limited.replicas != current
    return Decision(
        replicas=limited.replicas,
        wanted=limited.wanted,
        shortfall=limited.shortfall,
        act=act,
        reason=reason,
        metrics_unavailable=unavailable,
        history=history,
    )


def decide(
    spec: AutoscalingSpec,
    current: int,
    signals: ServiceSignals | None,
    *,
    now: float,
    history: History,
    params: PolicyParams,
    affordable: int | None,
    unavailable: Unavailable | None = None,
    ready: int | None = None,
) -> Decision:
    """One scaling decision for one service.

    `current` is the replica count the scale subresource holds; `signals` are the service's
    usable signals, or None with `unavailable` saying why (signals.availability);
    `affordable` is budget.max_affordable_replicas (None: no budget); `ready` is the
    replicas serving now (None: assume all of `current`).
    """
    if spec.mode is AutoscalingMode.OFF:
        return Decision(current, current, 0, False, "autoscaling is off", None, history)
    if signals is None or unavailable is not None:
        why = unavailable or Unavailable("NoSamples", "no metrics for this service")
        return _finish(
            spec,
            current,
            current,
            affordable,
            lambda held: f"holding {held}: {why.message}",
            why,
            history,
        )
    wish = demand(spec, current if ready is None else ready, signals, params)
    keep = max(spec.scale_up_stabilization_seconds, spec.scale_down_stabilization_seconds)
    history = history.record(now, wish.replicas, keep)
    stable = stabilize(current, wish.replicas, history, now, spec)
    stepped = min(stable, current + spec.max_scale_up_step)
    return _finish(
        spec,
        current,
        stepped,
        affordable,
        lambda wanted: _explain(wish, stable, stepped, wanted),
        None,
        history,
    )


def _explain(wish: Demand, stable: int, stepped: int, wanted: int) -> str:
    """Say which stage set the count, so `kubectl describe` shows why."""
    reason = f"{wish.reason}: {wish.replicas} wanted"
    if stable != wish.replicas:
        reason += f"; stabilization window keeps {stable}"
    if stepped != stable:
        reason += f"; step limit allows {stepped}"
    if wanted != stepped:
        reason += f"; replica bounds give {wanted}"
    return reason

"""The scaling policy: demand per signal, stabilization, step, bounds, budget, modes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tenfold.api.enums import AutoscalingMode
from tenfold.api.spec import AutoscalingSpec
from tenfold.autoscale.policy import (
    Decision,
    History,
    PolicyParams,
    Proposal,
    capacity_demand,
    decide,
    demand,
    stabilize,
)
from tenfold.autoscale.signals import ServiceSignals, Unavailable

PARAMS = PolicyParams(capacity_per_replica=100.0, target_utilization=0.8)
NOW = 1_000_000.0


def spec(**overrides: object) -> AutoscalingSpec:
    """An AutoscalingSpec with test-friendly defaults and the given overrides."""
    fields: dict[str, object] = {
        "min_replicas": 1,
        "max_replicas": 10,
        "target_p95_latency_ms": 200,
        "target_queue_share": 0.25,
        "target_pending_per_replica": 10,
        "scale_up_stabilization_seconds": 0,
        "scale_down_stabilization_seconds": 300,
        "max_scale_up_step": 4,
    }
    fields.update(overrides)
    return AutoscalingSpec.model_validate(fields)


def signals(
    rate: float, queue_ms: float | None = 5.0, pending: float | None = 0.0
) -> ServiceSignals:
    """Fresh signals observed at NOW."""
    return ServiceSignals(
        observed_at=NOW, request_rate=rate, queue_time_ms=queue_ms, pending_requests=pending
    )


def run(
    target: AutoscalingSpec,
    current: int,
    observed: ServiceSignals | None,
    history: History | None = None,
    affordable: int | None = None,
    now: float = NOW,
) -> Decision:
    """decide() with the shared parameters."""
    return decide(
        target,
        current,
        observed,
        now=now,
        history=history or History(),
        params=PARAMS,
        affordable=affordable,
        unavailable=None if observed else Unavailable("PrometheusUnreachable", "down"),
    )


def test_capacity_demand_plans_at_target_utilization() -> None:
    assert capacity_demand(0.0, PARAMS) == 0
    assert capacity_demand(80.0, PARAMS) == 1
    assert capacity_demand(80.1, PARAMS) == 2
    assert capacity_demand(400.0, PARAMS) == 5


def test_pending_per_replica_drives_demand() -> None:
    wish = demand(spec(), 2, signals(rate=10, pending=55), PARAMS)
    assert wish.replicas == 6
    assert "pending" in wish.reason


def test_queue_time_over_share_of_slo_scales_by_ratio() -> None:
    # target queue time = 0.25 x 200 ms = 50 ms; 150 ms at 2 replicas asks for 6.
    wish = demand(spec(), 2, signals(rate=10, queue_ms=150), PARAMS)
    assert wish.replicas == 6
    assert "queue time" in wish.reason


def test_low_queue_time_never_asks_for_fewer_replicas_by_itself() -> None:
    wish = demand(spec(), 4, signals(rate=300, queue_ms=1), PARAMS)
    assert wish.replicas == 4  # the capacity signal, not the queue, sets it


def test_queue_growth_counts_as_offered_load_while_saturated() -> None:
    saturated = ServiceSignals(observed_at=NOW, request_rate=100, pending_growth=300)
    assert demand(spec(), 1, saturated, PARAMS).replicas == 5  # 400 req/s at 80 per replica


def test_saturation_signals_add_at_most_a_step_over_ready_replicas() -> None:
    backlog = signals(rate=100, queue_ms=5000, pending=10_000)
    assert demand(spec(), 1, backlog, PARAMS).replicas == 5
    # replicas still starting (5 decided, 1 ready): the backlog does not compound
    decision = decide(
        spec(), 5, backlog, now=NOW, history=History(), params=PARAMS, affordable=None, ready=1
    )
    assert decision.replicas == 5 and not decision.act


def test_backlog_draining_before_a_replica_could_start_adds_none() -> None:
    draining = ServiceSignals(
        observed_at=NOW,
        request_rate=900,
        queue_time_ms=900,
        pending_requests=2000,
        pending_growth=-500,
    )  # empty in 4 s
    assert demand(spec(), 9, draining, PARAMS).replicas == 12  # 900 / 80: the rate alone
    slow = ServiceSignals(
        observed_at=NOW,
        request_rate=900,
        queue_time_ms=900,
        pending_requests=20_000,
        pending_growth=-100,
    )  # 200 s to empty
    assert demand(spec(), 9, slow, PARAMS).replicas == 13  # 9 ready + a step


def test_scale_up_is_immediate_but_bounded_by_step() -> None:
    decision = run(spec(), 1, signals(rate=800))  # wants 10
    assert decision.wanted == 5 and decision.replicas == 5 and decision.act
    assert "step limit" in decision.reason


def test_scale_up_window_takes_lowest_recent_proposal() -> None:
    target = spec(scale_up_stabilization_seconds=30)
    history = History().record(NOW - 10, 3, 300)
    decision = run(target, 2, signals(rate=700), history=history)  # wants 9, window min 3
    assert decision.replicas == 3


def test_scale_down_waits_for_the_window() -> None:
    target = spec()
    history = History().record(NOW - 100, 6, 300)
    held = run(target, 6, signals(rate=50), history=history)
    assert held.replicas == 6 and not held.act
    later = run(target, 6, signals(rate=50), history=held.history, now=NOW + 301)
    assert later.replicas == 1 and later.act


def test_stabilize_matches_hpa_rule() -> None:
    target = spec(scale_up_stabilization_seconds=60)
    history = History().record(NOW - 30, 2, 600).record(NOW, 8, 600)
    assert stabilize(5, 8, history, NOW, target) == 5  # up window min is 2 -> no scale-up
    assert stabilize(1, 8, history, NOW, target) == 2  # but from 1, up to the window's min


def test_bounds_apply() -> None:
    assert run(spec(min_replicas=3), 3, signals(rate=0)).replicas == 3
    assert run(spec(max_replicas=2), 2, signals(rate=10_000)).replicas == 2


def test_budget_caps_and_reports_shortfall() -> None:
    decision = run(spec(max_scale_up_step=10), 1, signals(rate=800), affordable=4)
    assert decision.wanted == 10 and decision.replicas == 4 and decision.shortfall == 6
    assert "budget pays for 4" in decision.reason


def test_missing_metrics_hold_and_say_why() -> None:
    decision = run(spec(), 5, None)
    assert decision.replicas == 5 and not decision.act
    assert decision.metrics_unavailable == Unavailable("PrometheusUnreachable", "down")
    assert decision.history == History()


def test_recommend_mode_decides_but_never_acts() -> None:
    decision = run(spec(mode=AutoscalingMode.RECOMMEND), 1, signals(rate=300))
    assert decision.replicas == 4 and not decision.act


def test_off_mode_leaves_replicas_alone() -> None:
    decision = run(spec(mode=AutoscalingMode.OFF), 7, signals(rate=10_000), affordable=2)
    assert decision.replicas == 7 and not decision.act and decision.shortfall == 0


def test_history_forgets_old_proposals() -> None:
    history = History().record(NOW - 400, 9, 300).record(NOW, 2, 300)
    assert history.within(NOW, 1000) == [2]


# Property tests: no input, however odd, breaks the hard limits.

specs = st.builds(
    lambda lo, span, up, down, step, mode: spec(
        min_replicas=lo,
        max_replicas=max(1, lo + span),
        scale_up_stabilization_seconds=up,
        scale_down_stabilization_seconds=down,
        max_scale_up_step=step,
        mode=mode,
    ),
    st.integers(0, 20),
    st.integers(0, 30),
    st.integers(0, 120),
    st.integers(0, 600),
    st.integers(1, 20),
    st.sampled_from([AutoscalingMode.AUTO, AutoscalingMode.RECOMMEND]),
)
maybe_signals = st.none() | st.builds(
    ServiceSignals,
    observed_at=st.just(NOW),
    request_rate=st.floats(0, 1e6, allow_nan=False),
    queue_time_ms=st.none() | st.floats(0, 1e7, allow_nan=False),
    pending_requests=st.none() | st.floats(0, 1e6, allow_nan=False),
    pending_growth=st.none() | st.floats(-1e6, 1e6, allow_nan=False),
)
histories = st.lists(
    st.tuples(st.floats(0, 900), st.integers(0, 100), st.booleans()), max_size=8
).map(
    lambda items: History(
        tuple(Proposal(NOW - age, n, seed) for age, n, seed in sorted(items, reverse=True))
    )
)


@given(
    specs,
    st.integers(0, 100),
    maybe_signals,
    histories,
    st.none() | st.integers(0, 60),
    st.none() | st.integers(0, 100),
)
def test_decision_respects_budget_bounds_and_holds(
    target: AutoscalingSpec,
    current: int,
    observed: ServiceSignals | None,
    history: History,
    affordable: int | None,
    ready: int | None,
) -> None:
    decision = decide(
        target,
        current,
        observed,
        now=NOW,
        history=history,
        params=PARAMS,
        affordable=affordable,
        ready=ready,
        unavailable=None if observed else Unavailable("PrometheusUnreachable", "down"),
    )
    if affordable is not None:
        assert decision.replicas <= affordable
        assert decision.replicas + decision.shortfall == decision.wanted
    if affordable is None or affordable >= target.min_replicas:
        assert decision.replicas >= target.min_replicas
    assert decision.replicas <= target.max_replicas
    assert decision.replicas <= max(current, target.min_replicas) + target.max_scale_up_step
    if observed is None:
        # never below the current count unless maxReplicas or the budget demand it
        budget = affordable if affordable is not None else current
        assert decision.replicas >= min(current, target.max_replicas, budget)
    if target.mode is AutoscalingMode.RECOMMEND:
        assert not decision.act


def test_seeded_history_delays_scale_down_but_not_scale_up() -> None:
    seeded = History.seeded(4, NOW)
    assert run(spec(), 4, signals(rate=10), history=seeded).replicas == 4
    assert (
        run(spec(scale_up_stabilization_seconds=60), 4, signals(rate=500), history=seeded).replicas
        == 7
    )


def _unbounded(history: History, now: float, replicas: int, keep: float) -> History:
    """What record kept before it forgot dominated proposals: every recent one."""
    recent = tuple(p for p in history.proposals if now - p.time <= keep)
    return History((*recent, Proposal(now, replicas)))


@given(
    st.lists(st.integers(0, 12), min_size=1, max_size=60),
    st.integers(1, 40),
    st.integers(0, 40),
    st.integers(0, 12),
)
def test_a_bounded_history_stabilizes_exactly_like_the_whole_one(
    demands: list[int], up_window: int, down_window: int, current: int
) -> None:
    target = spec(
        min_replicas=0,
        max_replicas=12,
        scale_up_stabilization_seconds=up_window,
        scale_down_stabilization_seconds=down_window,
    )
    keep = max(up_window, down_window)
    bounded = whole = History.seeded(current, 0.0)
    for tick, wish in enumerate(demands, start=1):
        bounded = bounded.record(float(tick), wish, keep)
        whole = _unbounded(whole, float(tick), wish, keep)
        assert stabilize(current, wish, bounded, float(tick), target) == stabilize(
            current, wish, whole, float(tick), target
        )
    # Falling and rising runs of at most 13 distinct counts each, whatever the windows.
    assert len(bounded.proposals) <= 2 * 13 + 1


def test_a_day_long_window_at_a_one_second_tick_keeps_a_short_history() -> None:
    history = History()
    for tick in range(86_400):
        history = history.record(float(tick), 3 + tick % 5, 86_400)
    assert len(history.proposals) <= 11

"""The report's pure parts: trace generation and files, the request schedule, the
accounting of a replay, the waterfall and the computed day."""

from __future__ import annotations

import math

import pytest

from tenfold_tools.report import day
from tenfold_tools.report.accounting import (
    Sample,
    Step,
    SweepPoint,
    capacity_at_slo,
    cost_per_1k,
    replay_stats,
    waterfall,
    window_p95s,
)
from tenfold_tools.report.trace import (
    TraceError,
    TraceRow,
    compressed,
    generate,
    new_text,
    read_csv,
    scaled,
    schedule,
    write_csv,
)


def test_a_generated_day_peaks_where_asked_and_repeats_rise_with_load() -> None:
    rows = generate(3600, 500.0, bursts=0, seed=1)
    assert len(rows) == 3600 and [r.second for r in rows] == list(range(3600))
    assert max(r.rate for r in rows) == pytest.approx(500.0)
    trough, noon = rows[0], rows[1800]
    assert trough.rate == pytest.approx(50.0) and noon.rate == pytest.approx(500.0)
    assert noon.repeat_share > trough.repeat_share
    assert all(0 <= r.repeat_share <= 0.9 for r in rows)


def test_the_same_seed_gives_the_same_day_and_bursts_rise_above_the_shape() -> None:
    assert generate(600, 100.0, seed=3) == generate(600, 100.0, seed=3)
    calm = generate(600, 100.0, bursts=0, seed=3)
    bursty = generate(600, 100.0, bursts=6, seed=3)
    # Scaled to the same peak, a burst makes the ordinary hours a smaller share of it.
    assert sum(r.rate for r in bursty) < sum(r.rate for r in calm)


def test_a_trace_file_round_trips() -> None:
    rows = [TraceRow(0, 1.5, 0.25), TraceRow(1, 0.0, 0.0), TraceRow(2, 12.0, 1.0)]
    assert read_csv(write_csv(rows)) == rows


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "row 1: the header must be second,rate,repeat_share"),
        ("second,rate\n0,1\n", "row 1: the header"),
        ("second,rate,repeat_share\n", "the trace has no rows"),
        ("second,rate,repeat_share\n0,1,0.5\n2,1,0.5\n", "row 3: second: expected 1"),
        ("second,rate,repeat_share\n0,fast,0.5\n", "row 2: rate: 'fast' is not a number"),
        ("second,rate,repeat_share\n0,-1,0.5\n", "row 2: rate: -1.0 is negative"),
        ("second,rate,repeat_share\n0,inf,0.5\n", "row 2: rate: 'inf' is not finite"),
        ("second,rate,repeat_share\n0,1,1.5\n", "row 2: repeat_share: 1.5 is not in [0, 1]"),
        ("second,rate,repeat_share\n0,1\n", "row 2: expected 3 columns"),
        ("second,rate,repeat_share\n0,0,0\n", "every rate is 0"),
    ],
)
def test_a_bad_trace_file_is_refused_naming_row_and_column(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message.replace("[", r"\[").replace("(", r"\(")):
        read_csv(text)


def test_scaling_and_compressing_keep_the_shape() -> None:
    rows = [TraceRow(t, float(t % 4), 0.5) for t in range(8)]
    assert max(r.rate for r in scaled(rows, 30.0)) == 30.0
    two = compressed(rows, 2)
    assert [r.rate for r in two] == [1.5, 1.5] and [r.second for r in two] == [0, 1]
    assert compressed(rows, 100) == rows


def test_new_texts_never_repeat_and_keep_real_lengths() -> None:
    texts = ["a b c d", "e f g h"]
    made = [new_text(texts, i) for i in range(6)]
    assert len(set(made)) == 6 and made[:2] == texts and made[2] == "a b c d (1)"


def test_the_schedule_follows_the_rate_and_the_repeat_share() -> None:
    rows = [TraceRow(t, 200.0, 0.4) for t in range(30)]
    texts = [f"sentence number {i} of the corpus" for i in range(5000)]
    requests = schedule(rows, texts, seed=5)
    assert len(requests) == pytest.approx(6000, rel=0.05)
    assert all(0 <= a.at_s < b.at_s < 30 for a, b in zip(requests, requests[1:], strict=False))
    assert sum(r.repeat for r in requests) / len(requests) == pytest.approx(0.4, abs=0.03)
    first_seen: set[str] = set()
    for request in requests:
        assert request.repeat == (request.text in first_seen)
        first_seen.add(request.text)
    assert schedule(rows, texts, seed=5) == requests


def test_no_repeats_and_no_requests_when_asked_for_none() -> None:
    texts = ["x y z w"]
    assert schedule([TraceRow(0, 0.0, 0.5)], texts) == []
    assert not any(r.repeat for r in schedule([TraceRow(0, 50.0, 0.0)], texts))


def sample(sent: float, ms: float, ok: bool = True) -> Sample:
    return Sample(sent, ms / 1000, ok)


def test_failed_requests_are_not_answers_but_miss_their_window() -> None:
    fast = [sample(t / 10, 10) for t in range(600)]  # minute 0: all within 200 ms
    mixed = [sample(60 + t / 10, 10, ok=t % 10 != 0) for t in range(600)]  # 10 % failed
    tail = [sample(121, 10)]  # a part-window is left out
    stats = replay_stats(fast + mixed + tail, slo_ms=200)
    assert stats.requests == 1201 and stats.failed == 60
    assert stats.latency.p95_ms == pytest.approx(10)
    assert (stats.windows, stats.windows_within_slo) == (2, 1)
    assert stats.window_attainment == 0.5
    assert stats.request_attainment == pytest.approx(1141 / 1201)
    assert window_p95s(fast + mixed + tail)[1] == math.inf


def test_slow_windows_miss_and_percentiles_are_nearest_rank() -> None:
    slow = [sample(t / 10, 300 if t % 10 == 0 else 50) for t in range(600)]
    stats = replay_stats(slow + [sample(60.5, 1)], slo_ms=200)
    assert stats.windows_within_slo == 0 and stats.latency.p95_ms == 300


def test_cost_per_1k_and_the_waterfall() -> None:
    assert cost_per_1k(2.0, 4000) == 0.5 and cost_per_1k(1.0, 0) == math.inf
    steps = [Step("naive", 10.0, ""), Step("+ a", 4.0, ""), Step("+ b", 1.0, "")]
    (a, b) = waterfall(steps)
    assert (a.lever, a.saved_per_1k, a.share_of_naive, a.factor) == ("+ a", 6.0, 0.6, 2.5)
    assert (b.saved_per_1k, b.share_of_naive, b.factor) == (3.0, 0.3, 4.0)
    assert waterfall([]) == []


def test_capacity_is_the_best_level_within_the_slo_that_failed_nothing() -> None:
    points = [
        SweepPoint(1, 50.0, 20.0, 0),
        SweepPoint(4, 150.0, 90.0, 0),
        SweepPoint(16, 180.0, 250.0, 0),  # over the SLO
        SweepPoint(8, 170.0, 150.0, 3),  # failed some
    ]
    assert capacity_at_slo(points, 200) == 150.0
    assert capacity_at_slo([SweepPoint(1, 9.0, None, 9)], 200) == 0.0


MEASURED = day.Measured(
    naive_rps=90, batched_rps=270, tenfold_rps=360, hits_per_repeat=0.9, startup_s=60,
    window_ms=5,
)  # fmt: skip
PRICES = day.Prices(naive_replica=0.036, tenfold_replica=0.040, tenfold_fixed=0.005)


def test_static_sizing_and_the_cache_share() -> None:
    assert day.peak_replicas(720, 90) == 10 and day.peak_replicas(1, 90) == 1
    assert day.miss_rates([TraceRow(0, 100.0, 0.5)], 0.9) == [pytest.approx(55.0)]


def test_each_lever_lowers_the_cost_and_the_day_is_priced_from_its_replicas() -> None:
    rows = generate(4 * 3600, 1000.0, seed=2)
    runs = day.levers(rows, MEASURED, PRICES, slo_ms=200, seed=2)
    assert [r.step.lever for r in runs] == [
        "naive", "+ batching", "+ precision", "+ cache", "+ autoscaling",
    ]  # fmt: skip
    costs = [r.step.cost_per_1k for r in runs]
    assert costs == sorted(costs, reverse=True)
    naive = runs[0]
    assert set(naive.replicas) == {day.peak_replicas(1000, 90)}
    assert naive.cost_usd == pytest.approx(14 * 0.036 * 4)
    assert naive.window_attainment == 1.0
    autoscaled = runs[-1]
    assert max(autoscaled.replicas) <= max(runs[-2].replicas)  # the budget: static's cost
    expected = sum(autoscaled.replicas) * 0.040 / 3600 + 0.005 * 4
    assert autoscaled.cost_usd == pytest.approx(expected)
    assert autoscaled.minutes == 4 * 60

"""The configuration search on synthetic objective surfaces: no server, milliseconds."""

from __future__ import annotations

import itertools
import math

import pytest

from tenfold.api.enums import Precision
from tenfold.tune.search import (
    Budget,
    Level,
    Mode,
    Objective,
    Outcome,
    at_slo,
    judge,
    quality,
    search,
    trials_to_reach,
)
from tenfold.tune.space import Candidate, SearchSpace

SPACE = SearchSpace(
    precisions=(Precision.INT8, Precision.MIXED, Precision.FP32),
    windows_us=(500, 1000, 2000, 5000, 10000),
    max_batch_sizes=(4, 8, 16, 32),
    instances=(1, 2, 3),
)
PRICE = 0.1  # USD per hour, the same for every candidate (one CPU replica)


def position(c: Candidate) -> tuple[int, ...]:
    """The candidate's indices along the four searched axes (the others hold one value)."""
    indices = tuple(axis.index(v) for axis, v in zip(SPACE.dimensions(), c.point(), strict=True))
    return indices[:4]


def smooth(peak: tuple[int, ...], width: float = 2.0):
    """A unimodal surface: throughput falls off smoothly with the distance to `peak`."""

    def evaluate(c: Candidate) -> Outcome:
        distance = sum((a - b) ** 2 for a, b in zip(position(c), peak, strict=True))
        throughput = 100.0 + 400.0 * math.exp(-distance / (2 * width**2))
        return Outcome(levels=(Level(16, throughput, 50.0),), accuracy=0.001)

    return evaluate


def run(evaluate, mode: Mode, **kwargs):
    return search(SPACE, evaluate, lambda c: PRICE, slo_ms=200.0, mode=mode, **kwargs)


def test_brute_measures_every_candidate_and_finds_the_optimum() -> None:
    peak = (1, 3, 2, 1)
    result = run(smooth(peak), Mode.BRUTE)
    assert result.measured() == SPACE.size()
    assert result.winner is not None and position(result.winner.candidate) == peak
    assert result.stopped == "every candidate measured"


PEAKS = [p for p in itertools.product(range(3), range(5), range(4), range(3))][::7]


@pytest.mark.parametrize("peak", PEAKS)
def test_quick_reaches_95_percent_of_brute_in_fewer_trials(peak: tuple[int, ...]) -> None:
    brute = run(smooth(peak), Mode.BRUTE)
    quick = run(smooth(peak), Mode.QUICK, start=SPACE.grid()[0])
    assert brute.winner is not None and quick.winner is not None
    assert quality(quick.winner, brute.winner, Objective.COST) >= 0.95
    reached = trials_to_reach(quick, brute.winner, Objective.COST, 0.95)
    assert reached is not None and reached < brute.measured()
    # Model Analyzer's claim for its quick mode: under 10% of the space... on a 180-point
    # grid the climb needs a few steps of at most 8 neighbours each; a third is a hard bound.
    assert quick.measured() < SPACE.size() / 3


def test_quick_stops_early_when_no_neighbour_improves() -> None:
    peak = (1, 2, 1, 1)
    start = Candidate(Precision.MIXED, 2000, 8, 2)
    result = run(smooth(peak), Mode.QUICK, start=start)
    # The start is the optimum: it and its 8 neighbours are measured, then the climb stops.
    assert result.measured() == 1 + 8
    assert result.winner is not None and result.winner.candidate == start
    assert "early stop" in result.stopped


def test_a_rejected_precision_refuses_its_candidates_with_the_reason_unmeasured() -> None:
    calls: list[Candidate] = []

    def evaluate(c: Candidate) -> Outcome:
        calls.append(c)
        if c.precision is Precision.INT8:
            return Outcome(rejected="accuracy guard: drop 0.053 > 0.01", precision_rejected=True)
        return smooth((2, 2, 2, 1))(c)

    result = run(evaluate, Mode.BRUTE)
    int8 = [t for t in result.trials if t.candidate.precision is Precision.INT8]
    assert len(int8) == 60 and all(t.reason == "accuracy guard: drop 0.053 > 0.01" for t in int8)
    assert sum(t.measured for t in int8) == 1
    assert sum(c.precision is Precision.INT8 for c in calls) == 1
    assert result.winner is not None and result.winner.candidate.precision is Precision.FP32


def test_quick_climbs_away_from_a_rejected_start() -> None:
    def evaluate(c: Candidate) -> Outcome:
        if c.precision is Precision.INT8:
            return Outcome(rejected="accuracy guard: drop 0.05", precision_rejected=True)
        return smooth((1, 3, 3, 1))(c)

    result = run(evaluate, Mode.QUICK, start=Candidate(Precision.INT8, 5000, 32, 1))
    assert result.trials[0].reason == "accuracy guard: drop 0.05"
    assert result.winner is not None and position(result.winner.candidate) == (1, 3, 3, 1)


def test_a_candidate_over_the_slo_is_refused_saying_so() -> None:
    def evaluate(c: Candidate) -> Outcome:
        p95 = 250.0 if c.instances == 3 else 80.0
        return Outcome(levels=(Level(1, 50.0, p95), Level(16, 400.0, p95 * 2)))

    result = run(evaluate, Mode.BRUTE)
    over = [t for t in result.trials if t.candidate.instances == 3]
    assert all(t.reason == "p95 above the SLO 200 ms (250.0 ms at best)" for t in over)
    ok = [t for t in result.trials if t.candidate.instances == 1]
    # 160 ms at concurrency 16 is within the SLO, so the throughput is that level's.
    assert all(t.accepted and t.throughput == 400.0 and t.p95_ms == 160.0 for t in ok)


def test_throughput_at_the_slo_is_the_best_level_within_it() -> None:
    levels = [Level(1, 50, 20), Level(4, 180, 60), Level(16, 300, 240)]
    assert at_slo(levels, 200) == Level(4, 180, 60)
    assert at_slo(levels, 10) is None


def test_cost_per_1k_is_the_replica_price_over_its_throughput() -> None:
    result = run(smooth((0, 0, 0, 0)), Mode.BRUTE, budget=Budget(max_trials=1))
    trial = result.trials[0]
    assert trial.cost_per_1k == pytest.approx(PRICE / (trial.throughput * 3600) * 1000, rel=1e-3)


@pytest.mark.parametrize("objective", list(Objective))
def test_each_objective_picks_its_own_best(objective: Objective) -> None:
    def evaluate(c: Candidate) -> Outcome:
        # More instances: more throughput, but a worse p95.
        return Outcome(levels=(Level(16, 100.0 * c.instances, 20.0 * c.instances),))

    result = run(evaluate, Mode.BRUTE, objective=objective)
    assert result.winner is not None
    assert result.winner.candidate.instances == (1 if objective is Objective.P95 else 3)


def test_the_trial_budget_stops_the_search() -> None:
    result = run(smooth((2, 4, 3, 2)), Mode.BRUTE, budget=Budget(max_trials=5))
    assert result.measured() == 5 and result.stopped == "budget spent"
    quick = run(smooth((2, 4, 3, 2)), Mode.QUICK, budget=Budget(max_trials=3))
    assert quick.measured() == 3 and quick.stopped == "budget spent"


def test_the_time_budget_stops_the_search() -> None:
    now = iter(range(0, 10_000, 30))  # each reading of the clock: 30 s later
    budget = Budget(minutes=2, clock=lambda: float(next(now)))
    result = run(smooth((2, 4, 3, 2)), Mode.BRUTE, budget=budget)
    assert result.stopped == "budget spent" and result.measured() < 10


@pytest.mark.parametrize("kwargs", [{"max_trials": 0}, {"minutes": 0}])
def test_a_budget_of_nothing_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="budget"):
        Budget(**kwargs)


def test_no_accepted_candidate_means_no_winner() -> None:
    result = run(lambda c: Outcome(rejected="measurement failed: boom"), Mode.BRUTE)
    assert result.winner is None
    assert all(t.reason == "measurement failed: boom" for t in result.trials)


def test_quick_walks_towards_the_slo_from_a_start_outside_it() -> None:
    def evaluate(c: Candidate) -> Outcome:
        # p95 falls with the window index; only the largest window meets the SLO.
        window = SPACE.windows_us.index(c.max_queue_delay_us)
        return Outcome(levels=(Level(16, 300.0, 400.0 - 60.0 * window),))

    result = run(evaluate, Mode.QUICK, start=Candidate(Precision.MIXED, 500, 8, 1))
    assert result.trials[0].reason is not None  # the start is over the SLO
    assert result.winner is not None and result.winner.candidate.max_queue_delay_us == 10000


def test_an_open_loop_level_counts_only_if_its_rate_was_answered() -> None:
    answered = Level(0, 97.0, 40.0, offered_rate=100.0)
    behind = Level(0, 150.0, 60.0, offered_rate=200.0)  # 75% of the rate: falling behind
    assert at_slo([answered, behind], 200.0) == answered
    candidate = Candidate(Precision.FP32, 5000, 8, 1)
    trial = judge(candidate, Outcome(levels=(behind,)), 200.0, 0.1)
    assert trial.reason == "sustained no offered rate (150.0 req/s answered of 200 offered)"
    assert judge(candidate, Outcome(levels=(answered, behind)), 200.0, 0.1).throughput == 97.0

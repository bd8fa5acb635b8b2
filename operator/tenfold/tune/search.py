"""The search: which candidates to measure, in what order, and which one wins.

brute   measures every candidate of the grid.
quick   hill climbing over the grid, as Triton Model Analyzer's quick mode: start from the
        service's own configuration (or the grid's first point), measure the neighbours one
        step away along each axis, move to the best one that improves the objective, and stop
        when none does (early stopping) or the budget (trials, minutes) is spent. Outside the
        constraints it moves towards them (`rank`): a start over the SLO still climbs.

The objective is computed here from what was measured, so the search, the table and the
winner agree: by default the cost per 1,000 requests at the SLO, that is the replica's price
(`api/cost.service_cost` of the candidate's own spec) over its throughput at the best
closed-loop level whose p95 is within `autoscaling.targetP95LatencyMs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tenfold.api.cost import cost_per_1k_requests
from tenfold.api.enums import Precision, TuningMode, TuningObjective
from tenfold.tune.space import Candidate, SearchSpace

# The InferenceTuning kind's own enums: one spelling for the API, the CLI and the search.
# cost: USD per 1,000 requests at the SLO, lower is better; throughput: requests/s at the
# SLO, higher is better; p95: latency (ms) of the level chosen, lower is better.
Objective = TuningObjective
Mode = TuningMode


@dataclass(frozen=True)
class Level:
    """One level as measured: a closed-loop concurrency, or an open-loop offered rate."""

    concurrency: int
    throughput: float  # requests per second answered
    p95_ms: float
    offered_rate: float | None = None  # requests/s offered (open loop); None: closed loop


# An open-loop level counts only if the candidate answered nearly all it was offered: a
# server that falls behind queues without bound, and its p95 over one window says little.
SUSTAINED_SHARE = 0.95


def sustained(level: Level) -> bool:
    """True for a closed-loop level, or an open-loop one answered at >= 95% of its rate."""
    return level.offered_rate is None or level.throughput >= SUSTAINED_SHARE * level.offered_rate


@dataclass(frozen=True)
class Outcome:
    """What measuring one candidate gave: its levels, or why it could not be measured.

    `precision_rejected` says the accuracy guard refused the candidate's precision: every
    other candidate of that precision is then refused with the same reason, unmeasured.
    """

    levels: tuple[Level, ...] = ()
    accuracy: float | None = None  # the guard's measured drop against fp32
    precision_served: Precision | None = None
    rejected: str | None = None
    precision_rejected: bool = False


@dataclass(frozen=True)
class Trial:
    """One row of the trials table."""

    candidate: Candidate
    outcome: Outcome
    hourly: float  # USD per hour of one replica of the candidate (and the fixed part)
    throughput: float | None = None  # at the SLO
    p95_ms: float | None = None  # of the level that throughput comes from
    cost_per_1k: float | None = None
    reason: str | None = None  # why it is not accepted; None: accepted
    measured: bool = True  # False: refused without running (its precision was rejected)
    seconds: float = 0.0  # wall time since the search started, when this trial ended

    @property
    def accepted(self) -> bool:
        """True when the trial meets every constraint."""
        return self.reason is None


def at_slo(levels: Sequence[Level], slo_ms: float) -> Level | None:
    """The level with the most throughput whose p95 is within the SLO (None: none is)."""
    within = [level for level in levels if level.p95_ms <= slo_ms and sustained(level)]
    return max(within, key=lambda level: level.throughput, default=None)


def judge(candidate: Candidate, outcome: Outcome, slo_ms: float, hourly: float) -> Trial:
    """The trial of a measured candidate: constraints first, then its figures at the SLO."""
    if outcome.rejected:
        return Trial(candidate, outcome, hourly, reason=outcome.rejected)
    level = at_slo(outcome.levels, slo_ms)
    if level is None:
        kept = [lv for lv in outcome.levels if sustained(lv)]
        if outcome.levels and not kept:
            best = max(outcome.levels, key=lambda lv: lv.throughput)
            return Trial(
                candidate,
                outcome,
                hourly,
                reason=f"sustained no offered rate ({best.throughput:.1f} req/s answered of "
                f"{best.offered_rate:g} offered)",
            )
        lowest = min((lv.p95_ms for lv in kept), default=None)
        seen = f"{lowest:.1f} ms at best" if lowest is not None else "nothing measured"
        return Trial(candidate, outcome, hourly, reason=f"p95 above the SLO {slo_ms:g} ms ({seen})")
    return Trial(
        candidate,
        outcome,
        hourly,
        throughput=level.throughput,
        p95_ms=level.p95_ms,
        cost_per_1k=cost_per_1k_requests(hourly, level.throughput),
    )


def score(trial: Trial, objective: Objective) -> float | None:
    """Higher is better; None for a trial that is not accepted."""
    if not trial.accepted or trial.throughput is None or trial.p95_ms is None:
        return None
    if objective is Objective.THROUGHPUT:
        return trial.throughput
    if objective is Objective.P95:
        return -trial.p95_ms
    # The price over the throughput, unrounded (cost_per_1k is rounded as the status is):
    # candidates a rounding digit apart must still rank.
    return -trial.hourly / trial.throughput if trial.throughput > 0 else -float("inf")


def quality(trial: Trial, best: Trial, objective: Objective) -> float:
    """How close `trial` comes to `best`, 1.0 meaning as good (for cost and p95: best / it)."""
    mine, top = score(trial, objective), score(best, objective)
    if mine is None or top is None:
        return 0.0
    if objective is Objective.THROUGHPUT:
        return mine / top if top else 0.0
    return top / mine if mine else 0.0  # both negative: |best| / |mine|


@dataclass
class Budget:
    """When to stop: a number of measured trials and a wall-clock limit."""

    max_trials: int | None = None
    minutes: float | None = None
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)

    def __post_init__(self) -> None:
        if self.max_trials is not None and self.max_trials < 1:
            raise ValueError("the search needs a budget of at least one trial")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError("the search needs a time budget above zero minutes")
        self.started = self.clock()

    def elapsed(self) -> float:
        """Seconds since the search started."""
        return self.clock() - self.started

    def spent(self, measured: int) -> bool:
        """True once either limit is reached."""
        if self.max_trials is not None and measured >= self.max_trials:
            return True
        return self.minutes is not None and self.elapsed() >= self.minutes * 60


@dataclass(frozen=True)
class Result:
    """The trials in the order they ran, the winner, and why the search stopped."""

    trials: tuple[Trial, ...]
    winner: Trial | None
    stopped: str

    def measured(self) -> int:
        """Trials that ran a measurement (refusals by a rejected precision are free)."""
        return sum(1 for t in self.trials if t.measured)


Evaluate = Callable[[Candidate], Outcome]
Price = Callable[[Candidate], float]


class _Run:
    """The state one search carries: trials so far, rejected precisions, the budget."""

    def __init__(
        self,
        evaluate: Evaluate,
        price: Price,
        slo_ms: float,
        objective: Objective,
        budget: Budget,
        refused: Mapping[Candidate, str],
    ) -> None:
        self.evaluate, self.price, self.slo_ms = evaluate, price, slo_ms
        self.objective, self.budget, self.refused = objective, budget, refused
        self.trials: dict[Candidate, Trial] = {}
        self.order: list[Trial] = []
        # guard rejections by Candidate.guard_key: precision, backend, engine
        self.rejected: dict[tuple[Any, ...], str] = {}

    def measured(self) -> int:
        return sum(1 for t in self.order if t.measured)

    def spent(self) -> bool:
        return self.budget.spent(self.measured())

    def trial(self, candidate: Candidate) -> Trial | None:
        """The candidate's trial, measured now if it was not yet; None once the budget is spent."""
        if candidate in self.trials:
            return self.trials[candidate]
        if candidate in self.refused:
            done = Trial(
                candidate,
                Outcome(rejected=self.refused[candidate]),
                0.0,  # no price: the rules refuse this spec, so it has none
                reason=self.refused[candidate],
                measured=False,
                seconds=self.budget.elapsed(),
            )
        elif candidate.guard_key() in self.rejected:
            outcome = Outcome(
                rejected=self.rejected[candidate.guard_key()], precision_rejected=True
            )
            done = Trial(
                candidate,
                outcome,
                self.price(candidate),
                reason=outcome.rejected,
                measured=False,
                seconds=self.budget.elapsed(),
            )
        else:
            if self.spent():
                return None
            outcome = self.evaluate(candidate)
            if outcome.precision_rejected and outcome.rejected:
                self.rejected[candidate.guard_key()] = outcome.rejected
            judged = judge(candidate, outcome, self.slo_ms, self.price(candidate))
            done = replace(judged, seconds=self.budget.elapsed())
        self.trials[candidate] = done
        self.order.append(done)
        return done

    def best(self) -> Trial | None:
        scored = [(score(t, self.objective), t) for t in self.order]
        ranked = [(s, t) for s, t in scored if s is not None]
        return max(ranked, key=lambda pair: pair[0])[1] if ranked else None


def neighbours(space: SearchSpace, candidate: Candidate) -> list[Candidate]:
    """The candidates one step away along one axis of the grid."""
    axes = space.dimensions()
    point = candidate.point()
    found = []
    for axis, values in enumerate(axes):
        index = values.index(point[axis])
        for step in (-1, 1):
            if 0 <= index + step < len(values):
                moved: list[Any] = list(point)
                moved[axis] = values[index + step]
                found.append(Candidate(*moved))
    return found


def search(
    space: SearchSpace,
    evaluate: Evaluate,
    price: Price,
    *,
    slo_ms: float,
    mode: Mode = Mode.QUICK,
    objective: Objective = Objective.COST,
    budget: Budget | None = None,
    start: Candidate | None = None,
    refused: Mapping[Candidate, str] | None = None,
) -> Result:
    """Search `space`, measuring candidates with `evaluate` and pricing them with `price`;
    `refused` combinations (validate_space) are shown, never measured."""
    grid = space.grid()
    if not grid:
        raise ValueError("the search space is empty")
    run = _Run(evaluate, price, slo_ms, objective, budget or Budget(), refused or {})
    if mode is Mode.BRUTE:
        stopped = "every candidate measured"
        for candidate in grid:
            if run.trial(candidate) is None:
                stopped = "budget spent"
                break
        return Result(tuple(run.order), run.best(), stopped)
    return _climb(space, run, start if start in grid else grid[0])


def rank(trial: Trial, objective: Objective) -> tuple[int, float]:
    """How the climb compares trials: any accepted one above any refused one; among refused
    ones, those measured closer to the SLO (lowest p95) first, so that a climb that starts
    outside the SLO walks towards it instead of stopping; unmeasurable ones last."""
    mine = score(trial, objective)
    if mine is not None:
        return (1, mine)
    if trial.outcome.levels:
        return (0, -min(level.p95_ms for level in trial.outcome.levels))
    return (-1, 0.0)


def _climb(space: SearchSpace, run: _Run, start: Candidate) -> Result:
    current = run.trial(start)
    if current is None:
        return Result(tuple(run.order), run.best(), "budget spent")
    while True:
        here = rank(current, run.objective)
        best_next: Trial | None = None
        for candidate in neighbours(space, current.candidate):
            trial = run.trial(candidate)
            if trial is None:
                return Result(tuple(run.order), run.best(), "budget spent")
            if best_next is None or rank(trial, run.objective) > rank(best_next, run.objective):
                best_next = trial
        if best_next is None or rank(best_next, run.objective) <= here:
            return Result(tuple(run.order), run.best(), "no neighbour improves (early stop)")
        current = best_next


def trials_to_reach(result: Result, best: Trial, objective: Objective, share: float) -> int | None:
    """Measured trials until one came within `share` of `best`'s objective (None: never)."""
    count = 0
    for trial in result.trials:
        count += trial.measured
        if quality(trial, best, objective) >= share:
            return count
    return None

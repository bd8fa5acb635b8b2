"""How much of a grid the quick search measures, on synthetic surfaces: `python -m
tenfold_tools.tune_surface`.

Model Analyzer claims its quick mode reaches over 95% of the best configuration while
searching under 10% of the space. On one machine a real grid is small (docs/tuning.md), so
this puts the same search code (`tenfold.tune.search`) on smooth single-peaked surfaces over
larger grids, with the peak at every point in turn (or a seeded sample of points), and prints
for each grid: the share of the grid quick measures, on average and at worst, how often it
ends on the peak, and after how many trials it is within 95% of it. Synthetic: it says how
the search scales with the grid, not what a configuration serves.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
from collections.abc import Callable, Sequence

from tenfold.api.enums import Engine, Precision
from tenfold.tune.search import Level, Mode, Objective, Outcome, search, trials_to_reach
from tenfold.tune.space import Candidate, SearchSpace

GRIDS = {
    "180 points (3 precisions x 5 windows x 4 batch limits x 3 instance counts)": SearchSpace(
        (Precision.INT8, Precision.MIXED, Precision.FP32),
        (500, 1000, 2000, 5000, 10000),
        (4, 8, 16, 32),
        (1, 2, 3),
    ),
    "1,080 points (the same x 2 engines x 3 preferred-batch lists)": SearchSpace(
        (Precision.INT8, Precision.MIXED, Precision.FP32),
        (500, 1000, 2000, 5000, 10000),
        (4, 8, 16, 32),
        (1, 2, 3),
        preferred_batch_sizes=((), (4, 8), (8, 16, 32)),
        engines=(Engine.TORCH, Engine.ONNXRUNTIME),
    ),
}


def indices(space: SearchSpace, candidate: Candidate) -> tuple[int, ...]:
    """The candidate's index along each axis."""
    pairs = zip(space.dimensions(), candidate.point(), strict=True)
    return tuple(axis.index(value) for axis, value in pairs)


def surface(space: SearchSpace, peak: Sequence[int]) -> Callable[[Candidate], Outcome]:
    """Throughput falling off smoothly with the distance (in axis steps) to `peak`."""

    def evaluate(candidate: Candidate) -> Outcome:
        distance = sum((a - b) ** 2 for a, b in zip(indices(space, candidate), peak, strict=True))
        throughput = 100.0 + 400.0 * math.exp(-distance / 8.0)
        return Outcome(levels=(Level(16, throughput, 50.0),), accuracy=0.001)

    return evaluate


def measure(space: SearchSpace, peaks: Sequence[tuple[int, ...]]) -> dict[str, float]:
    """Quick against the known peak, from the grid's first point, over `peaks`."""
    shares, reached, to_95 = [], 0, []
    for peak in peaks:
        evaluate = surface(space, peak)
        result = search(space, evaluate, lambda c: 0.1, slo_ms=200.0, mode=Mode.QUICK)
        shares.append(result.measured() / space.size())
        best = result.winner
        reached += best is not None and indices(space, best.candidate) == tuple(peak)
        brute = search(space, evaluate, lambda c: 0.1, slo_ms=200.0, mode=Mode.BRUTE)
        assert brute.winner is not None
        needed = trials_to_reach(result, brute.winner, Objective.COST, 0.95)
        if needed is not None:
            to_95.append(needed / space.size())
    return {
        "peaks": len(peaks),
        "mean share measured": statistics.mean(shares),
        "worst share measured": max(shares),
        "ended on the peak": reached / len(peaks),
        "mean share measured when within 95%": statistics.mean(to_95) if to_95 else math.nan,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table for every grid."""
    parser = argparse.ArgumentParser(prog="python -m tenfold_tools.tune_surface")
    parser.add_argument("--peaks", type=int, default=120, help="peaks sampled per grid")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    print("| grid | peaks | quick measures (mean / worst) | ends on the peak | within 95% after |")
    print("|---|---:|---:|---:|---:|")
    for name, space in GRIDS.items():
        every = list(itertools.product(*(range(len(axis)) for axis in space.dimensions())))
        peaks = every if len(every) <= args.peaks else rng.sample(every, args.peaks)
        row = measure(space, peaks)
        print(
            f"| {name} | {row['peaks']} | {row['mean share measured']:.1%} / "
            f"{row['worst share measured']:.1%} | {row['ended on the peak']:.0%} | "
            f"{row['mean share measured when within 95%']:.1%} of the grid |"
        )
    print(
        f"\ncommand: python -m tenfold_tools.tune_surface --peaks {args.peaks} --seed {args.seed}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

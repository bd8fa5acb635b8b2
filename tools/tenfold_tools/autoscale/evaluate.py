"""Evaluate tenfold's autoscaler against the anchors on a simulated day and a load step.

    python -m tenfold_tools.autoscale.evaluate            # writes docs/img/autoscaling-*.png and
                                                    # the results block of docs/autoscaling.md

Compares static provisioning for the peak, the HPA (on CPU, and on Triton's queue time),
KEDA's Prometheus scaler, Knative's KPA, all with their documented defaults, and tenfold
(5 s scrape, policy + budget clamp) with and without a budget. The capacity per replica is
read from a committed benchmark result (docs/data/bench-minilm-cpu.json, `tenfold-runtime
bench`). The model is stated in simulation.py and docs/autoscaling.md.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tenfold.api.spec import AutoscalingSpec
from tenfold.autoscale.policy import PolicyParams
from tenfold_tools.autoscale.simulation import (
    HpaCpu,
    HpaQueueTime,
    HpaRule,
    KedaPrometheus,
    Kpa,
    Prometheus,
    RunResult,
    Scaler,
    ServiceModel,
    Static,
    Tenfold,
    Trace,
    concurrency_at,
    daily_trace,
    needed_replicas,
    queue_time_ms_at,
    reaction_seconds,
    simulate,
    step_trace,
)

BEGIN, END = "<!-- evaluate:begin -->", "<!-- evaluate:end -->"
UTILIZATION = 0.8  # the planned utilization every scaler's target is set to
BENCH = Path("docs/data/bench-minilm-cpu.json")
BENCH_VARIANT = "minilm-batched"  # fp32 with the 5 ms batching window the model assumes
BENCH_CONCURRENCY = 16
# Knative's default target utilization (target-utilization-percentage 70).
KPA_UTILIZATION = 0.7


@dataclass(frozen=True)
class Capacity:
    """Requests/s one replica sustains, and where the figure comes from."""

    rps: float
    source: str


def bench_capacity(path: Path, variant: str, concurrency: int) -> Capacity:
    """The throughput of `variant` at `concurrency` in a `tenfold-runtime bench` result."""
    data = json.loads(path.read_text())
    for point in data["points"]:
        if point["variant"] == variant and point["concurrency"] == concurrency:
            return Capacity(
                float(point["throughput"]),
                f"`{data['command']}`, {variant} at concurrency {concurrency}, measured "
                f"{data['measured']} ({path})",
            )
    raise SystemExit(f"{path}: no {variant} point at concurrency {concurrency}")


@dataclass(frozen=True)
class Setup:
    """One evaluation: the service, its bounds and budget, the day's trace parameters."""

    model: ServiceModel
    min_replicas: int
    max_replicas: int
    budget_replicas: int
    seed: int
    hours: float

    @property
    def hourly_cap(self) -> float:
        """The budget, USD/h: the price of `budget_replicas` replicas."""
        return self.budget_replicas * self.model.cost_per_replica_hour

    def autoscaling(self) -> AutoscalingSpec:
        """tenfold's spec for the service (defaults otherwise)."""
        return AutoscalingSpec(
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            target_p95_latency_ms=self.model.slo_ms,
        )


def scalers(setup: Setup, trace: Trace, rng: random.Random) -> list[tuple[Scaler, int]]:
    """Every scaler under test with its initial replica count; schedules get random phases."""
    params = PolicyParams(setup.model.capacity_rps, UTILIZATION)
    per_replica = setup.model.capacity_rps * UTILIZATION
    start = max(setup.min_replicas, needed_replicas(trace.rates[:1], setup.model, UTILIZATION)[0])
    peak = min(setup.max_replicas, math.ceil(trace.peak / per_replica))

    def hpa(max_replicas: int = setup.max_replicas) -> HpaRule:
        return HpaRule(setup.min_replicas, max_replicas, phase=rng.randrange(15))

    def prometheus() -> Prometheus:
        return Prometheus(scrape_seconds=5, phase=rng.randrange(5))

    def kpa(target: float, name: str) -> Kpa:
        return Kpa(
            setup.min_replicas,
            setup.max_replicas,
            target_concurrency=target,
            name=name,
            phase=rng.randrange(2),
        )

    def tenfold(name: str, cap: float | None) -> Tenfold:
        return Tenfold(
            setup.autoscaling(),
            params,
            setup.model.cost_per_replica_hour,
            cap,
            name=name,
            scrape_phase=rng.randrange(5),
            tick_phase=rng.randrange(5),
        )

    queue_target = queue_time_ms_at(setup.model, UTILIZATION)
    kpa_target = kpa_concurrency_target(setup.model)
    return [
        (Static(), peak),
        (HpaCpu(hpa(), target=UTILIZATION), start),
        # What an HPA user can do about cost: maxReplicas set to what the budget pays for.
        (HpaCpu(hpa(setup.budget_replicas), UTILIZATION, name="HPA (CPU, max = budget)"), start),
        (
            HpaQueueTime(
                hpa(), queue_target, prometheus(), name=f"HPA (queue time {queue_target:.1f} ms)"
            ),
            start,
        ),
        (KedaPrometheus(hpa(), per_replica, prometheus()), start),
        (kpa(100.0, "Knative KPA (target 100, default)"), start),
        (kpa(kpa_target, f"Knative KPA (target {kpa_target:g})"), start),
        (tenfold("tenfold (no budget)", None), start),
        (tenfold("tenfold (budget)", setup.hourly_cap), start),
    ]


def kpa_concurrency_target(model: ServiceModel) -> float:
    """The soft concurrency target (autoscaling.knative.dev/target) that puts Knative's 70 %
    target utilization at the planned utilization of the service model: a replica with
    Triton's dynamic batching has its throughput at a handful of requests in flight, so the
    default 100 (70 in flight) is reached only deep in overload."""
    return float(round(concurrency_at(model, UTILIZATION) / KPA_UTILIZATION))


def run_day(setup: Setup) -> tuple[Trace, list[RunResult]]:
    """Every scaler over the same compressed day (same arrivals noise)."""
    trace = daily_trace(seed=setup.seed, hours=setup.hours)
    rng = random.Random(setup.seed)
    return trace, [
        simulate(trace, scaler, setup.model, initial, setup.hourly_cap, seed=setup.seed)
        for scaler, initial in scalers(setup, trace, rng)
    ]


def run_steps(setup: Setup, runs: int) -> tuple[dict[str, list[int | None]], list[RunResult]]:
    """Reaction times to a load step over `runs` random schedule phases; also the first
    run's results for the plot."""
    trace = step_trace()
    rng = random.Random(setup.seed)
    reactions: dict[str, list[int | None]] = {}
    first: list[RunResult] = []
    for run in range(runs):
        results = [
            simulate(trace, scaler, setup.model, 1, setup.hourly_cap, seed=setup.seed + run)
            for scaler, _ in scalers(setup, trace, rng)[1:]
        ]
        first = first or results
        for result in results:
            reactions.setdefault(result.name, []).append(reaction_seconds(result, 120))
    return reactions, first


def _reaction_text(times: Sequence[int | None]) -> str:
    seen = [t for t in times if t is not None]
    if not seen:
        return "none"
    missed = f", {len(times) - len(seen)} runs none" if len(seen) < len(times) else ""
    return f"{statistics.median(seen):.0f} s / {max(seen)} s{missed}"


def markdown_table(
    setup: Setup, results: Sequence[RunResult], reactions: dict[str, list[int | None]]
) -> str:
    """The results table: cost, SLO attainment, budget violations, reaction time."""
    rows = [
        "| sizing | cost (USD, simulated day) | USD per 1k requests | mean replicas | "
        "requests within p95 SLO | time over budget | reaction to step (median / max) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        reaction = _reaction_text(reactions[result.name]) if result.name in reactions else "n/a"
        over = result.over_budget_seconds
        rows.append(
            f"| {result.name} | {result.cost_usd:.3f} | "
            f"{result.cost_usd / result.requests * 1000:.7f} | "
            f"{statistics.fmean(result.provisioned):.2f} | {100 * result.slo_attainment:.2f} % | "
            f"{over} s ({100 * over / len(result.provisioned):.1f} %) | {reaction} |"
        )
    return "\n".join(rows)


def plot_day(setup: Setup, trace: Trace, results: Sequence[RunResult], path: Path) -> None:
    """Replicas of each scaler over the day, with the ideal count and the budget line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [t / 60 for t in range(len(trace.rates))]
    figure, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    axes[0].plot(minutes, trace.rates, color="black", linewidth=0.6)
    axes[0].set_ylabel("offered load (req/s)")
    ideal = needed_replicas(trace.rates, setup.model, UTILIZATION)
    axes[1].plot(minutes, ideal, color="grey", linewidth=0.6, label="needed at 80 %")
    for result in results:
        axes[1].step(minutes, result.provisioned, linewidth=1.0, where="post", label=result.name)
    axes[1].axhline(setup.budget_replicas, color="red", linestyle="--", label="budget")
    axes[1].set_ylabel("replicas")
    axes[1].set_xlabel(f"minute of the simulated day ({setup.hours:g} h = 24 h)")
    axes[1].legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_step(results: Sequence[RunResult], path: Path) -> None:
    """Replicas after a 200 -> 900 req/s step at t = 120 s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4))
    for result in results:
        axis.step(
            range(len(result.provisioned)), result.provisioned, where="post", label=result.name
        )
    axis.axvline(120, color="black", linestyle=":", label="load step 200 -> 900 req/s")
    axis.set_xlabel("second")
    axis.set_ylabel("replicas provisioned")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def replace_block(text: str, block: str) -> str:
    """Put `block` between the evaluate markers of a document (appending them if absent)."""
    if BEGIN not in text or END not in text:
        return f"{text.rstrip()}\n\n{BEGIN}\n{block}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{rest.split(END, 1)[1]}"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options; every default is the documented setup."""
    parser = argparse.ArgumentParser(
        prog="python -m tenfold_tools.autoscale.evaluate", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--bench",
        type=Path,
        default=BENCH,
        help="a `tenfold-runtime bench` result (results.json) to read the capacity from",
    )
    parser.add_argument("--bench-variant", default=BENCH_VARIANT)
    parser.add_argument("--bench-concurrency", type=int, default=BENCH_CONCURRENCY)
    parser.add_argument(
        "--capacity",
        type=float,
        default=None,
        help="req/s one replica sustains; overrides the benchmark result",
    )
    parser.add_argument(
        "--startup",
        type=float,
        default=ServiceModel.startup_seconds,
        help="seconds from scale decision to a ready replica",
    )
    parser.add_argument("--budget-replicas", type=int, default=8)
    parser.add_argument("--max-replicas", type=int, default=16)
    parser.add_argument("--hours", type=float, default=4.0, help="simulated length of the day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--step-runs", type=int, default=20)
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation, print the table and update docs/ (plots and results block)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    capacity = (
        Capacity(args.capacity, "given with --capacity")
        if args.capacity is not None
        else bench_capacity(args.bench, args.bench_variant, args.bench_concurrency)
    )
    model = ServiceModel(capacity_rps=capacity.rps, startup_seconds=args.startup)
    setup = Setup(model, 1, args.max_replicas, args.budget_replicas, args.seed, args.hours)
    trace, results = run_day(setup)
    reactions, step_results = run_steps(setup, args.step_runs)
    module = "tenfold_tools.autoscale.evaluate"
    command = shlex.join(["python", "-m", module, *(argv or sys.argv[1:])])
    block = (
        f"Produced by `{command}` (seed {setup.seed}; capacity {model.capacity_rps:g} req/s "
        f"per replica, from {capacity.source}; start-up {model.startup_seconds:g} s; "
        f"budget {setup.budget_replicas} "
        f"replicas = {setup.hourly_cap:.4f} USD/h; maxReplicas {setup.max_replicas}; "
        f"{sum(trace.rates):,.0f} requests offered).\n\n"
        f"{markdown_table(setup, results, reactions)}\n\n"
        "![replicas over the simulated day](img/autoscaling-day.png)\n\n"
        "![reaction to a load step](img/autoscaling-step.png)"
    )
    print(block)
    images = args.docs / "img"
    images.mkdir(parents=True, exist_ok=True)
    plot_day(setup, trace, results, images / "autoscaling-day.png")
    plot_step(step_results, images / "autoscaling-step.png")
    doc = args.docs / "autoscaling.md"
    doc.write_text(replace_block(doc.read_text() if doc.exists() else "", block))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

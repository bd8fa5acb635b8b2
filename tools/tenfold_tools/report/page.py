"""The report's page: Markdown with the figures and how each was obtained, and PNG plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tenfold_tools.report.accounting import ReplayStats, Sample, waterfall, window_p95s
from tenfold_tools.report.day import DayRun

MEASURED, COMPUTED = "measured", "computed from measured parts"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


REPLAY_HEADER = (
    "deployment", "requests", "failed", "p50 ms", "p95 ms", "p99 ms",
    "one-minute windows with p95 within the SLO", "requests within the SLO",
    "CPU-seconds per 1,000 answered (all the service's pods)",
)  # fmt: skip
DAY_HEADER = (
    "configuration", "how", "replicas (max)", "USD per day", "USD per 1,000 requests",
    "x cheaper than naive", "saved by this lever (share of naive)",
    "one-minute windows within the SLO", "requests within the SLO",
)  # fmt: skip


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def replay_table(stats: dict[str, ReplayStats], costs: dict[str, float]) -> str:
    """The replay on the real node, one row per deployment."""
    rows = [
        (
            name, s.requests, s.failed, _ms(s.latency.p50_ms), _ms(s.latency.p95_ms),
            _ms(s.latency.p99_ms),
            f"{s.windows_within_slo}/{s.windows} ({s.window_attainment:.0%})",
            f"{s.request_attainment:.1%}", f"{costs[name]:.1f}",
        )
        for name, s in stats.items()
    ]  # fmt: skip
    return table(REPLAY_HEADER, rows)


def day_table(runs: Sequence[DayRun]) -> str:
    """The computed day, one row per lever added, with the waterfall's savings."""
    savings = {s.lever: s for s in waterfall([r.step for r in runs])}
    base = runs[0].step.cost_per_1k
    rows = []
    for run in runs:
        saving = savings.get(run.step.lever)
        saved = (
            "-" if saving is None else f"{saving.saved_per_1k:.6f} ({saving.share_of_naive:.0%})"
        )
        rows.append((
            run.step.lever, run.step.how, max(run.replicas), f"{run.cost_usd:.2f}",
            f"{run.step.cost_per_1k:.6f}", f"{base / run.step.cost_per_1k:.1f}", saved,
            f"{run.window_attainment:.1%}", f"{run.within_slo / run.requests:.2%}",
        ))  # fmt: skip
    return table(DAY_HEADER, rows)


PEAK_HEADER = (
    "peak req/s", "naive replicas", "tenfold replicas (max)", "x cheaper than naive",
    "one-minute windows within the SLO, naive / tenfold",
)  # fmt: skip


def peak_table(by_peak: Sequence[tuple[float, Sequence[DayRun]]]) -> str:
    """The same day at other peaks: how much replica granularity moves the factor."""
    rows = [
        (
            f"{peak:,.0f}", max(runs[0].replicas), max(runs[-1].replicas),
            f"{runs[0].step.cost_per_1k / runs[-1].step.cost_per_1k:.1f}",
            f"{runs[0].window_attainment:.1%} / {runs[-1].window_attainment:.1%}",
        )
        for peak, runs in by_peak
    ]  # fmt: skip
    return table(PEAK_HEADER, rows)


def plot(
    runs: Sequence[DayRun],
    day_rates: Sequence[float],
    replays: dict[str, list[Sample]],
    slo_ms: float,
    directory: Path,
) -> list[Path]:
    """Replicas over the day, the waterfall, and the replay's p95 per 10 s window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"report-{n}.png" for n in ("day", "waterfall", "replay")]
    hours = [t / 3600 for t in range(len(day_rates))]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(hours, day_rates, lw=0.6, color="grey")
    top.set_ylabel("requests/s")
    for run in (runs[0], runs[-1]):
        price = run.cost_usd / max(1, sum(run.replicas)) * 3600
        bottom.plot(hours, [r * price for r in run.replicas], lw=0.9, label=run.step.lever)
    bottom.set_ylabel("USD per hour (replicas)")
    bottom.set_xlabel("hour of the trace")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, axis = plt.subplots(figsize=(8, 4))
    axis.bar([r.step.lever for r in runs], [r.step.cost_per_1k * 1000 for r in runs])
    axis.set_ylabel("USD per 1,000,000 requests")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    fig, axis = plt.subplots(figsize=(8, 4))
    for name, samples in replays.items():
        p95s = window_p95s(samples, 10)
        axis.plot([10 * i for i in range(len(p95s))], [p * 1000 for p in p95s], label=name)
    axis.axhline(slo_ms, color="red", ls="--", lw=0.8, label="SLO")
    axis.set_yscale("log")
    axis.set_xlabel("s of the replay")
    axis.set_ylabel("p95 per 10 s window, ms")
    axis.legend()
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths


def measured_table(m: dict[str, Any]) -> str:
    """The parts measured on the real node."""
    rows = [
        ("capacity per replica at the SLO, naive", f"{m['naive_rps']:.1f} req/s", m["sweep_how"]),
        ("capacity per replica at the SLO, batching window (fp32)",
         f"{m['batched_rps']:.1f} req/s", "same"),
        (f"capacity per replica at the SLO, tenfold (served precision: {m['precision']})",
         f"{m['tenfold_rps']:.1f} req/s", "same, at Triton's port (the cache is measured apart)"),
        ("cache hits per repeated request", f"{m['hits_per_repeat']:.3f}",
         "the sidecar's `tenfold_cache_hits_total` over the replay's repeated requests"),
        ("tenfold pod start, created to Ready", f"{m['startup_s']:.0f} s",
         "pod status (the init container's guard included)"),
    ]  # fmt: skip
    return table(("part", f"figure ({MEASURED})", "how"), rows)


def render(results: dict[str, Any], replay: str, day: str, images: Sequence[str]) -> str:
    """The whole page."""
    m = results["measured"]
    verdict = results["verdict"]
    lines = [
        "# The tenfold report",
        "",
        f"Command: `{results['command']}` ({results['date']}, {results['wall_s']:.0f} s on "
        f"this {results['cpus']}-core machine, no GPU).",
        "",
        f"**{verdict}**",
        "",
        "## The workload",
        "",
        results["workload"],
        "",
        "## Measured on the real node",
        "",
        "Each deployment is an InferenceService applied to the test bed's real kubelet node "
        "(containerd, real Triton in the pod), loaded from the host at the pod's address.",
        "",
        measured_table(m),
        "",
        "The replay: the trace compressed into "
        f"{results['replay_seconds']} s and scaled so its peak is what one naive replica "
        "carries at the planned utilization (80 %), sent open-loop to one replica of each:",
        "",
        replay,
        "",
        f"## A day at {results['peak']:.0f} requests/s peak ({COMPUTED})",
        "",
        "The same trace at production scale; replicas from the measured capacities above "
        "through the autoscaler evaluation's queueing model, prices from tenfold's cost code "
        "(`tenfold.api.cost`: the pod's requests at the catalog's CPU prices, the sidecar with "
        "each replica, the managed Redis once). Each row adds one lever to the row above.",
        "",
        day,
        "",
        "The same trace and measured parts at other peaks (computed): a small deployment "
        "rounds each step up to whole replicas, which a large one does not.",
        "",
        results["peaks"],
        "",
        *[f"![{name}]({name})" for name in images],
        "",
        "## How to read it",
        "",
        *results["notes"],
        "",
    ]  # fmt: skip
    return "\n".join(lines)

"""The tenfold report: one workload, served naively and by tenfold, priced end to end.

    python -m tenfold_tools.report [--trace FILE.csv] [--peak 1000] [--replay-seconds 240]
    make report

On the test bed's real node (started here, after `make demo`'s setup has built it):
1. `naive` (fp32, batch of one, no cache) and `batched-fp32` (the example's batching window)
   are applied; each is swept closed-loop at rising concurrency with new real sentences,
   giving its capacity per replica at the SLO. The trace, compressed into
   --replay-seconds and scaled to what one naive replica carries, is replayed open-loop
   against naive.
2. They are deleted; `tenfold` (examples/minilm-local.yaml: guarded precision, batching
   window, autoscaler under its budget, with the managed Redis cache) is applied, swept at
   Triton's port, and the same replay is sent through its cache sidecar.
3. A day of the trace at --peak requests/s is computed from those measured parts (day.py),
   lever by lever, and the page goes to docs/report.md with its plots in docs/img/.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenfold.api.catalog import load_catalog
from tenfold.api.cost import service_cost
from tenfold.api.resource import parse_spec
from tenfold.constants import CACHE_HTTP_PORT, TRITON_HTTP_PORT
from tenfold_tools.corpus import lee_sentences
from tenfold_tools.report import bed, day, load, page
from tenfold_tools.report.accounting import (
    ReplayStats,
    Sample,
    SweepPoint,
    capacity_at_slo,
    replay_stats,
    waterfall,
)
from tenfold_tools.report.trace import TraceRow, compressed, generate, read_csv, scaled, schedule
from tenfold_tools.testbed import down as testbed_down
from tenfold_tools.testbed import up as testbed_up
from tenfold_tools.testbed.layout import REPO_ROOT
from tenfold_tools.testbed.workloads import install_operator, node_images, sidecar_counts

TESTBED = "report"
DAY_SECONDS = 86_400


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tenfold_tools.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trace", type=Path, help="CSV: second,rate,repeat_share (one row per "
                        "second); default: a generated day")  # fmt: skip
    parser.add_argument("--peak", type=float, default=1000.0,
                        help="requests/s at the busiest second of the computed day")  # fmt: skip
    parser.add_argument("--replay-seconds", type=int, default=240)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "report.md")
    parser.add_argument("--keep", action="store_true", help="leave the test bed running")
    return parser.parse_args(argv)


def day_trace(args: argparse.Namespace) -> tuple[list[TraceRow], str]:
    """The day to replay and price, and a sentence saying what it is."""
    if args.trace:
        rows = scaled(read_csv(args.trace.read_text()), args.peak)
        return rows, f"`{args.trace}` ({len(rows)} s), scaled to a peak of {args.peak:.0f} req/s"
    rows = generate(DAY_SECONDS, args.peak, seed=args.seed)
    return rows, (
        f"A generated day (seed {args.seed}): a night trough at 10 % of the peak, a midday peak "
        f"of {args.peak:.0f} requests/s and six bursts (x1.5-2.5); repeats average "
        f"{sum(r.repeat_share for r in rows) / len(rows):.0%} of requests and rise with the load, "
        "drawn by Zipf popularity from the texts seen so far. New texts are sentences of the Lee "
        "news corpus (2,530 real sentences, median 22 words; after the first pass they come again "
        "with a round number appended, so they stay new to a cache)."
    )


class ReplicaSampler:
    """Serving pods counted from the apiserver every 5 s while a replay runs."""

    def __init__(self, kubectl: Any, name: str) -> None:
        self.kubectl, self.name = kubectl, name
        self.counts: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.counts.append(
                (time.monotonic() - started, bed.replicas_now(self.kubectl, self.name))
            )
            self._stop.wait(5)

    def __enter__(self) -> ReplicaSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure_replay(
    kubectl: Any, name: str, url: str, requests: list, slo_ms: float
) -> tuple[list[Sample], ReplayStats, float, list[tuple[float, int]]]:
    """Replay against one service: samples, stats, pod CPU-s per 1,000 answered, replicas."""
    pods = bed.service_pods(kubectl, name)
    cpu_before = bed.cpu_seconds(kubectl, pods)
    with ReplicaSampler(kubectl, name) as sampler:
        samples = load.replay(url, requests)
    cpu = bed.cpu_seconds(kubectl, pods) - cpu_before
    stats = replay_stats(samples, slo_ms)
    answered = stats.requests - stats.failed
    return samples, stats, 1000 * cpu / max(answered, 1), sampler.counts


def prices() -> day.Prices:
    """Per-hour prices of the naive and tenfold pods from the operator's cost code."""
    catalog = load_catalog()
    naive = service_cost(parse_spec(bed.naive()["spec"]), catalog)
    tenfold = service_cost(parse_spec(bed.tenfold()["spec"]), catalog)
    return day.Prices(naive.per_replica, tenfold.per_replica, tenfold.fixed)


def run(args: argparse.Namespace, command: str) -> int:
    """Everything; returns the exit code."""
    started = time.monotonic()
    texts = list(lee_sentences())
    rows, workload = day_trace(args)
    spec = bed.example()["spec"]
    slo_ms = float(spec["autoscaling"]["targetP95LatencyMs"])
    window_ms = spec["batching"]["maxQueueDelayMicroseconds"] / 1000
    results: dict[str, Any] = {"command": command, "slo_ms": slo_ms}
    workdir = Path(tempfile.mkdtemp(prefix="tenfold-report-"))
    with ExitStack() as stack:
        print("report: starting the test bed with its real node", flush=True)
        testbed = testbed_up(TESTBED)
        if not args.keep:
            stack.callback(testbed_down, TESTBED)
        kubectl = testbed.kubectl
        install_operator(testbed, node_images(testbed))
        bed.ensure_namespace(kubectl)
        naive, batched = bed.naive(), bed.batched_fp32()
        for document in (naive, batched):
            bed.apply(kubectl, document)
        for document in (naive, batched):
            bed.wait_ready(kubectl, document["metadata"]["name"])
        sweeps: dict[str, list] = {}
        model = spec["model"]["name"]
        for document in (naive, batched):
            name = document["metadata"]["name"]
            ip = bed.one_pod(kubectl, name)["status"]["podIP"]
            print(f"report: sweeping {name} at concurrency {args.levels}", flush=True)
            sweeps[name] = load.perf_sweep(
                f"{ip}:{TRITON_HTTP_PORT}", model, texts, args.levels, workdir / name
            )
            report_sweep(name, sweeps[name], slo_ms)
        naive_rps = capacity_at_slo(sweeps["naive"], slo_ms)
        bed.delete(kubectl, "batched-fp32")  # nothing but naive on the node while it replays
        replay_rows = scaled(compressed(rows, args.replay_seconds), naive_rps * day.UTILIZATION)
        requests = schedule(replay_rows, texts, seed=args.seed)
        print(f"report: replaying {len(requests)} requests against naive", flush=True)
        ip = bed.one_pod(kubectl, "naive")["status"]["podIP"]
        url = f"http://{ip}:{TRITON_HTTP_PORT}/v2/models/{model}/infer"
        replays: dict[str, Any] = {"naive": measure_replay(kubectl, "naive", url, requests, slo_ms)}
        bed.delete(kubectl, "naive")

        print("report: applying tenfold (the example with the managed Redis)", flush=True)
        tenfold = bed.tenfold()
        bed.apply(kubectl, tenfold)
        bed.wait_ready(kubectl, "tenfold")
        pod = bed.one_pod(kubectl, "tenfold")
        ip = pod["status"]["podIP"]
        print(f"report: sweeping tenfold at concurrency {args.levels}", flush=True)
        sweeps["tenfold"] = load.perf_sweep(
            f"{ip}:{TRITON_HTTP_PORT}", model, texts, args.levels, workdir / "tenfold"
        )
        report_sweep("tenfold", sweeps["tenfold"], slo_ms)
        print(f"report: replaying {len(requests)} requests through tenfold's sidecar", flush=True)
        before = sidecar_counts(ip)
        url = f"http://{ip}:{CACHE_HTTP_PORT}/v2/models/{model}/infer"
        replays["tenfold"] = measure_replay(kubectl, "tenfold", url, requests, slo_ms)
        after = sidecar_counts(ip)
        repeats = sum(r.repeat for r in requests)
        measured = day.Measured(
            naive_rps=naive_rps,
            batched_rps=capacity_at_slo(sweeps["batched-fp32"], slo_ms),
            tenfold_rps=capacity_at_slo(sweeps["tenfold"], slo_ms),
            hits_per_repeat=min(1.0, (after["hits"] - before["hits"]) / max(repeats, 1)),
            startup_s=bed.start_seconds(pod),
            window_ms=window_ms,
        )
        precision = bed.served_precision(pod)
    priced = prices()
    runs = day.levers(rows, measured, priced, slo_ms, seed=args.seed)
    results["peaks"] = page.peak_table(other_peaks(rows, measured, slo_ms, args, runs))
    results.update(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        wall_s=time.monotonic() - started,
        cpus=os.cpu_count(),
        peak=args.peak,
        replay_seconds=args.replay_seconds,
        workload=workload,
        sweeps={k: [asdict(p) for p in v] for k, v in sweeps.items()},
        measured={
            **asdict(measured),
            "precision": precision,
            "sweep_how": sweep_how(args, slo_ms),
            "cache_hits": after["hits"] - before["hits"],
            "repeats": repeats,
        },  # fmt: skip
        replay={
            k: {"stats": asdict(v[1]), "cpu_s_per_1k": v[2], "replicas": v[3]}
            for k, v in replays.items()
        },  # fmt: skip
        day=[
            {
                "step": asdict(r.step),
                "cost_usd": r.cost_usd,
                "max_replicas": max(r.replicas),
                "window_attainment": r.window_attainment,
                "request_attainment": r.within_slo / r.requests,
            }
            for r in runs
        ],  # fmt: skip
        prices=asdict(priced),
    )
    results["verdict"] = verdict(runs)
    results["notes"] = notes(measured, replays, runs)
    write_page(args, results, runs, rows, {k: v[0] for k, v in replays.items()}, replays)
    print(f"report: {results['verdict']}")
    print(f"report: wrote {args.out}; command: {command}")
    return 0


def report_sweep(name: str, points: list[SweepPoint], slo_ms: float) -> None:
    """Print a sweep; stop when no level met the SLO (a
    capacity of 0 would price nothing)."""
    for p in points:
        print(f"  {name} c={p.concurrency}: {p.throughput_rps:.1f} req/s, p95 {p.p95_ms} ms, "
              f"{p.failed} failed", flush=True)  # fmt: skip
    if capacity_at_slo(points, slo_ms) <= 0:
        raise SystemExit(
            f"report: no concurrency level of {name} answered within {slo_ms:.0f} ms without "
            "failures (perf_analyzer's own output is under the run's temporary folder)"
        )


def other_peaks(
    rows: list[TraceRow],
    measured: day.Measured,
    slo_ms: float,
    args: argparse.Namespace,
    runs: list[day.DayRun],
) -> list[tuple[float, list[day.DayRun]]]:
    """The day at a tenth and ten times the peak, beside the page's own."""

    def at(peak: float) -> list[day.DayRun]:
        return day.levers(scaled(rows, peak), measured, prices(), slo_ms, seed=args.seed)

    return [
        (args.peak / 10, at(args.peak / 10)),
        (args.peak, runs),
        (args.peak * 10, at(args.peak * 10)),
    ]


def sweep_how(args: argparse.Namespace, slo_ms: float) -> str:
    """How capacity was measured, for the page."""
    return (
        f"perf_analyzer from the host at concurrency {args.levels} (windows of "
        f"{load.PERF_WINDOW_MS / 1000:.0f} s until two agree), cycling the Lee sentences; the "
        f"most requests/s of a level with p95 <= {slo_ms:.0f} ms"
    )


def verdict(runs: list[day.DayRun]) -> str:
    """The headline: the factor at the attainment, against the 10x goal."""
    naive, best = runs[0], runs[-1]
    factor = naive.step.cost_per_1k / best.step.cost_per_1k
    equal = best.window_attainment >= naive.window_attainment
    goal = "met" if factor >= 10 and equal else "missed"
    return (
        f"tenfold served the day at {factor:.1f}x lower cost per 1,000 requests than naive "
        f"({best.step.cost_per_1k * 1000:.3f} vs {naive.step.cost_per_1k * 1000:.3f} USD per "
        f"million), with {best.window_attainment:.1%} of one-minute windows within the SLO "
        f"against naive's {naive.window_attainment:.1%}: the 10x goal at equal or better "
        f"attainment is {goal}."
    )


def lever_factors(runs: list[day.DayRun]) -> str:
    """Each lever's own factor, in the order added: '+ batching 1.3x, ...'."""
    return ", ".join(f"{s.lever} {s.factor:.1f}x" for s in waterfall([r.step for r in runs]))


def notes(measured: day.Measured, replays: dict[str, Any], runs: list[day.DayRun]) -> list[str]:
    """What each figure is, and where it falls short."""
    factor = runs[0].step.cost_per_1k / runs[-1].step.cost_per_1k
    naive_replay: ReplayStats = replays["naive"][1]
    lines = [
        f"- The levers, each on top of the ones before: {lever_factors(runs)}."
        + ("" if factor >= 10 else f" Ten times needs a further {10 / factor:.2f}x."),
        "- Measured: capacities, the cache's hits per repeat, the pod start time, and the "
        "replay's latencies, failures and CPU (the kubelet's summary API, every pod of the "
        "service: Triton, the sidecar and Redis). Computed: the day's replicas and cost, from "
        "those through the autoscaler evaluation's model (docs/autoscaling.md states it) and "
        "tenfold's real policy.",
        "- On this machine each replay holds one replica per deployment (two cores), so the "
        "replay's cost is the CPU its pods used, not replica-hours; the load client shares the "
        "cores with the pods, which lowers every measured capacity (not necessarily alike).",
        "- Static steps are sized for the trace's peak at 80 % of the capacity at the SLO, the "
        "same planned utilization the autoscaler uses; naive gets no worse treatment.",
        f"- The cache answered {measured.hits_per_repeat:.1%} of the repeated requests; the day "
        "assumes that share holds at scale, which a shared Redis (mode `redis`) makes "
        "plausible and a per-replica memory cache would not.",
    ]
    if naive_replay.window_attainment < runs[0].window_attainment:
        lines.append(
            "- The day's queueing model is kinder to naive than the real node was: at the same "
            f"80 % of its capacity the replay measured {naive_replay.window_attainment:.0%} of "
            f"one-minute windows within the SLO where the model gives "
            f"{runs[0].window_attainment:.0%}, so the day's attainment columns flatter naive."
        )
    return lines


def write_page(
    args: argparse.Namespace,
    results: dict[str, Any],
    runs: list[day.DayRun],
    rows: list[TraceRow],
    samples: dict[str, list[Sample]],
    replays: dict[str, Any],
) -> None:
    """docs/report.md, its plots, and the raw results beside them."""
    images = page.plot(runs, [r.rate for r in rows], samples, results["slo_ms"],
                       args.out.parent / "img")  # fmt: skip
    names = [str(path.relative_to(args.out.parent)) for path in images]
    replay = page.replay_table({k: v[1] for k, v in replays.items()},
                               {k: v[2] for k, v in replays.items()})  # fmt: skip
    text = page.render(results, replay, page.day_table(runs), names)
    args.out.write_text(text)
    bed.save_json(args.out.parent / "data" / "report.json", results)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run(args, shlex.join(["python", "-m", "tenfold_tools.report", *argv]))


if __name__ == "__main__":
    sys.exit(main())

"""`tenfold-runtime bench`: what batching and the guarded int8 model buy on real Triton.

One tritonserver serves three variants of the packaged MiniLM model side by side:

    naive     fp32, no dynamic batching (each request runs alone)
    batched   fp32, dynamic batching window
    int8      guarded int8 (the guard may serve mixed), dynamic batching window

Triton's own load generator, perf_analyzer (`hack/perf-analyzer.sh`), sweeps the concurrency
over HTTP on loopback, the client on the same host as in Triton's docs. The in-process torch
throughput at the same batch size is the ceiling that no server can beat on these cores.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tenfold.api.enums import Precision, Task
from tenfold_runtime import examples
from tenfold_runtime.calibration import builtin_calibration
from tenfold_runtime.local import start_triton
from tenfold_runtime.prepare import prepare

log = logging.getLogger(__name__)

# AWS m6i.large (2 vCPU, 8 GiB), Linux on-demand, us-east-1: the published list price when
# this default was set. A 2-vCPU general-purpose VM is the machine these figures come from.
DEFAULT_PRICE_PER_HOUR = 0.096
DEFAULT_PRICE_SOURCE = "AWS m6i.large on-demand, us-east-1, Linux (list price)"
# perf_analyzer gives up on a level whose windows disagree; on a busy host, try again.
PERF_ATTEMPTS = 3
PERF_ANALYZER_SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "perf-analyzer.sh"


@dataclass(frozen=True)
class Variant:
    """One model in the bench repository."""

    name: str
    label: str
    precision: Precision
    batching: bool


VARIANTS = (
    Variant("minilm-naive", "naive (fp32, no batching)", Precision.FP32, batching=False),
    Variant("minilm-batched", "batching window (fp32)", Precision.FP32, batching=True),
    Variant("minilm-int8", "batching + guarded int8", Precision.INT8, batching=True),
)


@dataclass(frozen=True)
class Point:
    """One measured concurrency level of one variant."""

    variant: str
    concurrency: int
    throughput: float  # requests per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cost_per_1k: float  # dollars per 1,000 requests at the stated price
    offered_rate: float | None = None  # requests/s offered (a request-rate run), else None


def cost_per_thousand(throughput: float, price_per_hour: float) -> float:
    """Dollars per 1,000 requests for a machine that costs `price_per_hour` when saturated."""
    if throughput <= 0:
        return float("inf")
    return price_per_hour / (throughput * 3600.0) * 1000.0


def parse_perf_csv(text: str, variant: str, price_per_hour: float) -> list[Point]:
    """Points from perf_analyzer's `-f` CSV (latencies there are in microseconds)."""
    points = []
    for row in csv.DictReader(text.splitlines()):
        throughput = float(row["Inferences/Second"])
        # A request-rate run's first column is the offered rate, not a concurrency.
        offered = float(row["Request Rate"]) if "Request Rate" in row else None
        points.append(
            Point(
                variant=variant,
                concurrency=int(row["Concurrency"]) if "Concurrency" in row else 0,
                offered_rate=offered,
                throughput=throughput,
                p50_ms=float(row["p50 latency"]) / 1000.0,
                p95_ms=float(row["p95 latency"]) / 1000.0,
                p99_ms=float(row["p99 latency"]) / 1000.0,
                cost_per_1k=cost_per_thousand(throughput, price_per_hour),
            )
        )
    return points


def perf_input_data(texts: Sequence[str]) -> dict[str, object]:
    """perf_analyzer's --input-data JSON: one request per text, cycled by the client."""
    return {"data": [{"TEXT": {"content": [text], "shape": [1]}} for text in texts]}


def perf_command(
    binary: str,
    model: str,
    url: str,
    concurrency: float,
    data: Path,
    csv_path: Path,
    window_ms: int,
    *,
    request_rate: bool = False,
) -> list[str]:
    """The perf_analyzer call for one level: bounded windows, results as CSV.

    `request_rate`: the level is an open-loop rate (requests/s) instead of a closed-loop
    concurrency."""
    load = (
        f"--request-rate-range={concurrency:g}:{concurrency:g}"
        if request_rate
        else f"--concurrency-range={int(concurrency)}:{int(concurrency)}"
    )
    return [
        binary,
        "-m",
        model,
        "-u",
        url,
        "-i",
        "http",
        load,
        "--input-data",
        str(data),
        "--measurement-interval",
        str(window_ms),
        "--max-trials",
        "6",
        # This 2-core machine is shared (load is recorded with the results): with Triton's
        # default 10% band a level may never settle, so the band is wide and trials bounded.
        "--stability-percentage",
        "100",
        "-f",
        str(csv_path),
    ]


def summarize(points: Sequence[Point], ceilings: dict[str, float]) -> dict[str, float | None]:
    """The ratios the targets talk about (None where a point is missing).

    The ceiling ratio compares the fastest Triton point with the in-process throughput of
    the same model (same precision, same batch size).
    """
    by_key = {(p.variant, p.concurrency): p.throughput for p in points}

    def ratio(numerator: float | None, denominator: float | None) -> float | None:
        return numerator / denominator if numerator and denominator else None

    best = max(points, key=lambda p: p.throughput, default=None)
    return {
        "batching_vs_naive_c16": ratio(
            by_key.get(("minilm-batched", 16)), by_key.get(("minilm-naive", 16))
        ),
        "int8_vs_batching_c16": ratio(
            by_key.get(("minilm-int8", 16)), by_key.get(("minilm-batched", 16))
        ),
        "best_triton_vs_ceiling": ratio(
            best.throughput if best else None, ceilings.get(best.variant) if best else None
        ),
    }


def prepare_repository(
    repository: Path, window_us: int, max_drop: float, preferred_batch_sizes: Sequence[int] = ()
) -> dict[str, dict]:
    """Prepare the three variants (prepare skips those already built from the same spec)."""
    manifests = {}
    for variant in VARIANTS:
        text = examples.config_pbtxt(
            variant.name,
            max_queue_delay_microseconds=window_us if variant.batching else None,
            preferred_batch_size=preferred_batch_sizes if variant.batching else (),
        )
        spec = examples.minilm_spec(variant.name, variant.precision, text, max_drop=max_drop)
        manifests[variant.name] = prepare(spec, repository)
    return manifests


def torch_ceiling(
    version_dir: Path, texts: Sequence[str], batch_size: int, seconds: float
) -> float:
    """Requests per second of the served artefact called in-process, `batch_size` at a time.

    Tokenization is included, as it is in the Triton model, so only serving overhead differs.
    """
    import torch
    from transformers import AutoTokenizer

    from tenfold_runtime.modeling import embed

    model = torch.load(version_dir / "model.pt", weights_only=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(version_dir / "tokenizer")
    batches = [
        [texts[(start + i) % len(texts)] for i in range(batch_size)]
        for start in range(0, len(texts), batch_size)
    ]
    embed(model, tokenizer, batches[0], batch_size=batch_size)  # warm-up
    done, started, index = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        embed(model, tokenizer, batches[index % len(batches)], batch_size=batch_size)
        done, index = done + batch_size, index + 1
    return done / (time.perf_counter() - started)


def run_perf_analyzer(
    http_url: str,
    variant: str,
    levels: Sequence[float],
    *,
    binary: str,
    data: Path,
    workdir: Path,
    window_ms: int,
    price_per_hour: float,
    request_rate: bool = False,
) -> list[Point]:
    """perf_analyzer once per level (a concurrency, or with `request_rate` an offered rate in
    requests/s) against Triton's HTTP `host:port`; each run bounded by a timeout."""
    points = []
    for level in levels:
        csv_path = workdir / f"{variant}-{'r' if request_rate else 'c'}{level:g}.csv"
        command = perf_command(
            binary, variant, http_url, level, data, csv_path, window_ms, request_rate=request_rate
        )
        log.info("bench: %s", shlex.join(command))
        for _ in range(PERF_ATTEMPTS):
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=60 + 8 * window_ms / 1000
            )
            csv_path.with_suffix(".log").write_text(result.stdout + result.stderr)
            if result.returncode == 0 and csv_path.exists():
                break
            log.warning("bench: %s level %g not stable, measuring again", variant, level)
        if result.returncode != 0 or not csv_path.exists():
            raise RuntimeError(
                f"perf_analyzer failed for {variant} level {level:g}:\n"
                f"{result.stdout}{result.stderr}"
            )
        points += parse_perf_csv(csv_path.read_text(), variant, price_per_hour)
    return points


def perf_analyzer_binary(explicit: str | None) -> str:
    """The binary named on the command line, the one on PATH (the runtime image's), or the
    one hack/perf-analyzer.sh provides (a checkout)."""
    if explicit:
        return explicit
    if on_path := shutil.which("perf_analyzer"):
        return on_path
    result = subprocess.run(["bash", str(PERF_ANALYZER_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"hack/perf-analyzer.sh failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def markdown_table(
    points: Sequence[Point],
    ceilings: dict[str, float],
    summary: dict[str, float | None],
    price_per_hour: float,
) -> str:
    """The results as the Markdown that docs/benchmarks.md quotes."""
    labels = {v.name: v.label for v in VARIANTS}
    lines = [
        "| variant | concurrency | req/s | p50 ms | p95 ms | p99 ms | $ per 1k req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {labels[p.variant]} | {p.concurrency} | {p.throughput:.1f} | {p.p50_ms:.1f} | "
            f"{p.p95_ms:.1f} | {p.p99_ms:.1f} | {p.cost_per_1k:.5f} |"
        )
    lines += ["", "| in-process torch ceiling | req/s |", "|---|---:|"]
    lines += [f"| {labels[name]} model | {value:.1f} |" for name, value in ceilings.items()]
    lines += ["", f"Price: ${price_per_hour}/hour.", ""]
    lines += [f"- {key}: {'n/a' if v is None else f'{v:.2f}'}" for key, v in summary.items()]
    return "\n".join(lines) + "\n"


def plot(points: Sequence[Point], output: Path) -> list[Path]:
    """throughput.png and p95.png against concurrency, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    labels = {v.name: v.label for v in VARIANTS}
    written = []
    for field_name, ylabel, filename in (
        ("throughput", "requests / second", "throughput.png"),
        ("p95_ms", "p95 latency (ms)", "p95.png"),
    ):
        figure, axes = plt.subplots(figsize=(6, 4))
        for variant in VARIANTS:
            mine = [p for p in points if p.variant == variant.name]
            axes.plot(
                [p.concurrency for p in mine],
                [getattr(p, field_name) for p in mine],
                marker="o",
                label=labels[variant.name],
            )
        axes.set_xscale("log", base=2)
        axes.set_xlabel("concurrency (closed-loop clients)")
        axes.set_ylabel(ylabel)
        axes.legend()
        axes.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(output / filename, dpi=120)
        plt.close(figure)
        written.append(output / filename)
    return written


@dataclass(frozen=True)
class BenchOptions:
    """What `tenfold-runtime bench` was asked to do."""

    output: Path
    levels: tuple[int, ...] = (1, 4, 16)
    naive_levels: tuple[int, ...] = (1, 16)
    window_us: int = 5000
    preferred_batch_sizes: tuple[int, ...] = ()
    window_ms: int = 5000
    ceiling_batch: int = 16
    ceiling_seconds: float = 10.0
    price_per_hour: float = DEFAULT_PRICE_PER_HOUR
    max_drop: float = 0.01
    perf_analyzer: str | None = None


def single_model_repository(repository: Path, model: str, root: Path) -> Path:
    """A repository holding only `model` (a link to the prepared one), as in a pod.

    One Triton per variant: models loaded beside it would keep Python-backend stubs with
    their own thread pools on the same 2 CPUs, and no tenfold pod serves two models.
    """
    target = root / model
    target.mkdir(parents=True, exist_ok=True)
    link = target / model
    if not link.is_symlink():
        link.symlink_to((repository / model).resolve(), target_is_directory=True)
    return target


def run_bench(
    options: BenchOptions, command_line: str, progress: Callable[[str], None] = print
) -> dict[str, object]:
    """Prepare, measure the ceilings, sweep Triton, and write JSON, Markdown and plots."""
    output = options.output
    repository, workdir = output / "repository", output / "runs"
    workdir.mkdir(parents=True, exist_ok=True)
    binary = perf_analyzer_binary(options.perf_analyzer)
    texts = builtin_calibration(Task.EMBEDDING)
    data = workdir / "input-data.json"
    data.write_text(json.dumps(perf_input_data(texts)))
    load_before = os.getloadavg()

    progress("bench: preparing the naive, batched and int8 models")
    manifests = prepare_repository(
        repository, options.window_us, options.max_drop, options.preferred_batch_sizes
    )
    points: list[Point] = []
    ceilings: dict[str, float] = {}
    load: dict[str, list[float]] = {}
    for variant in VARIANTS:
        # The ceiling is measured right before its variant's sweep, with no Triton running,
        # so both see the same machine; on a 2-core host that matters more than anything.
        progress(f"bench: {variant.label}: in-process ceiling at batch {options.ceiling_batch}")
        ceilings[variant.name] = torch_ceiling(
            repository / variant.name / "1",
            texts,
            options.ceiling_batch,
            options.ceiling_seconds,
        )
        levels = options.levels if variant.batching else options.naive_levels
        progress(f"bench: {variant.label} at concurrency {list(levels)}")
        before = os.getloadavg()[0]
        single = single_model_repository(repository, variant.name, output / "serving")
        log_path = output / f"tritonserver-{variant.name}.log"
        with start_triton(single, log_path=log_path) as handle:
            points += run_perf_analyzer(
                handle.http_url,
                variant.name,
                levels,
                binary=binary,
                data=data,
                workdir=workdir,
                window_ms=options.window_ms,
                price_per_hour=options.price_per_hour,
            )
        load[variant.name] = [before, os.getloadavg()[0]]
    summary = summarize(points, ceilings)
    results = {
        "command": command_line,
        "price_per_hour": options.price_per_hour,
        "price_source": DEFAULT_PRICE_SOURCE
        if options.price_per_hour == DEFAULT_PRICE_PER_HOUR
        else "given on the command line",
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "load1_per_variant": load,
            "python": sys.version.split()[0],
        },
        "served": {name: m.get("precision_served") for name, m in manifests.items()},
        "accuracy": {name: m.get("accuracy") for name, m in manifests.items()},
        "points": [asdict(p) for p in points],
        "ceilings": ceilings,
        "summary": summary,
    }
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown_table(points, ceilings, summary, options.price_per_hour)
    (output / "results.md").write_text(f"Command: `{command_line}`\n\n{table}")
    plot(points, output)
    progress(table)
    progress(f"bench: wrote {output}/results.json, results.md, throughput.png, p95.png")
    progress(f"bench: command: {command_line}")
    return results

"""Loopback benchmark of the cache sidecar against Triton alone.

    python -m tenfold_tools.cache.bench [--model minilm|standin] [--requests N]
        [--concurrency C] [--repeat 0.3 0.8] [--spec examples/minilm-cpu.yaml]

Starts Triton serving the real MiniLM exactly as the operator would for `--spec` (its
prepare spec and config.pbtxt from `tenfold.plan`, built by `tenfold_runtime.prepare` into
`--repository`, kept between runs) or, with `--model standin`, the stand-in embedding model
(its `--cost-us-per-item` burns CPU per text in place of a real encoder), Redis with
append-only persistence, and one fresh sidecar per workload (a new digest each time, so
every run starts from an empty namespace). Each workload is a fixed sequence of one-text
JSON embedding requests whose new texts are sentences of the Lee news corpus (real lengths)
and of which a share repeats an earlier text; the same sequence is sent to Triton directly
and through the sidecar at the same concurrency. Throughput counts answered requests only;
failures are counted apart. The added latency on a miss is measured serially (concurrency
1, all texts new), so queueing does not hide or inflate it.

Cost per 1,000 answered requests prices one replica of `--spec` with the operator's own
cost code (`tenfold.api.cost.service_cost`, catalog prices): Triton alone is the spec with
`cache.mode: none`; with the cache, the same pod plus the sidecar's requests and, for
Redis, the managed Redis's requests. Results go to `results/cache-bench/<time>.json`; the
command line, the machine's load and a Markdown table are printed and recorded.
"""

import argparse
import asyncio
import functools
import json
import math
import os
import random
import shlex
import signal
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tenfold.api.catalog import load_catalog
from tenfold.api.cost import ServiceCost, service_cost
from tenfold.api.enums import CacheMode
from tenfold.api.resource import parse_inference_service, parse_spec
from tenfold.api.sidecar import SidecarSettings
from tenfold.plan.prepare_spec import build_prepare_spec
from tenfold_runtime.local import TritonHandle, free_port, start_triton
from tenfold_tools.cache import processes
from tenfold_tools.corpus import lee_sentences

MINILM = "minilm"
STANDIN = "standin"
# The example served and priced by default; tools/ only runs from a checkout.
DEFAULT_SPEC = Path(__file__).resolve().parents[3] / "examples" / "minilm-cpu.yaml"
# A request still unanswered after this long counts as failed, not as a slow answer.
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Sample:
    """One request's outcome; `error` says why a failed one failed."""

    latency_s: float
    ok: bool
    repeat: bool
    error: str = ""


@dataclass(frozen=True)
class RunStats:
    """What one load run measured. Throughput and latencies are of answered requests only;
    `failed` (and `errors`, by reason) are counted apart."""

    requests: int
    failed: int
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    hit_p50_ms: float | None
    hit_p95_ms: float | None
    miss_p50_ms: float | None
    miss_p95_ms: float | None
    answered: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    # The tail: what the slowest requests of a fault (waiting out a timeout) paid.
    p99_ms: float | None = None
    max_ms: float | None = None


@functools.cache
def default_corpus() -> tuple[str, ...]:
    """The new texts of a workload: the Lee corpus's sentences, read once."""
    return lee_sentences()


def make_workload(
    count: int, repeat_share: float, seed: int, corpus: Sequence[str] | None = None
) -> list[tuple[str, bool]]:
    """`count` texts, each (text, is_repeat); a repeat picks an earlier text uniformly, a new
    text is the next of `corpus` (default: the Lee sentences) in a seeded order."""
    rng = random.Random(seed)
    fresh = list(default_corpus() if corpus is None else corpus)
    rng.shuffle(fresh)
    seen: list[str] = []
    workload = []
    for _ in range(count):
        if seen and rng.random() < repeat_share:
            workload.append((rng.choice(seen), True))
            continue
        if len(seen) == len(fresh):
            raise ValueError(
                f"the workload needs more than the corpus's {len(fresh)} distinct texts: "
                "ask for fewer requests or a higher repeat share"
            )
        text = fresh[len(seen)]
        seen.append(text)
        workload.append((text, False))
    return workload


def request_body(text: str) -> bytes:
    """A one-text JSON embedding request."""
    doc = {"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1, 1], "data": [text]}]}
    return json.dumps(doc).encode()


def infer_path(model: str) -> str:
    """The KServe v2 infer path of `model`."""
    return f"/v2/models/{model}/infer"


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of `values`, None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def cost_per_1k(price_per_hour: float, throughput_rps: float) -> float | None:
    """Dollars per 1,000 answered requests for pods at `price_per_hour` answering
    `throughput_rps`; None when nothing was answered."""
    if throughput_rps <= 0:
        return None
    return price_per_hour / (throughput_rps * 3.6)


def summarise(samples: list[Sample], elapsed_s: float) -> RunStats:
    """Throughput and latency percentiles (ms) of the answered requests, hit/miss split by
    repeat; failed requests counted apart, by reason."""

    def ms(values: list[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * 1000, 3)

    answered = [s for s in samples if s.ok]
    every = [s.latency_s for s in answered]
    hits = [s.latency_s for s in answered if s.repeat]
    misses = [s.latency_s for s in answered if not s.repeat]
    return RunStats(
        requests=len(samples),
        failed=len(samples) - len(answered),
        throughput_rps=round(len(answered) / elapsed_s, 1),
        p50_ms=ms(every, 50) or 0.0,
        p95_ms=ms(every, 95) or 0.0,
        hit_p50_ms=ms(hits, 50),
        hit_p95_ms=ms(hits, 95),
        miss_p50_ms=ms(misses, 50),
        miss_p95_ms=ms(misses, 95),
        answered=len(answered),
        errors=dict(Counter(s.error for s in samples if not s.ok)),
        p99_ms=ms(every, 99),
        max_ms=ms(every, 100),
    )


async def run_load(
    base_url: str,
    workload: list[tuple[str, bool]],
    concurrency: int,
    limit_s: float,
    model: str = processes.STANDIN_MODEL,
) -> RunStats:
    """Send the workload in order with `concurrency` workers; stop early after `limit_s`."""
    samples: list[Sample] = []
    position = 0
    started = time.perf_counter()
    url = base_url + infer_path(model)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal position
        while position < len(workload) and time.perf_counter() - started < limit_s:
            text, repeat = workload[position]
            position += 1
            sent = time.perf_counter()
            error = ""
            try:
                async with session.post(url, data=request_body(text)) as response:
                    await response.read()
                    if response.status != 200:
                        error = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as failure:
                error = type(failure).__name__
            samples.append(Sample(time.perf_counter() - sent, not error, repeat, error))

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return summarise(samples, time.perf_counter() - started)


def load_service_spec(path: Path) -> dict[str, Any]:
    """The `spec` of the InferenceService manifest at `path`."""
    document = yaml.safe_load(path.read_text())
    return dict(document["spec"])


def with_cache_mode(spec: dict[str, Any], mode: CacheMode) -> dict[str, Any]:
    """`spec` with its cache in `mode`; `none` drops the cache's other fields."""
    if mode is CacheMode.NONE:
        return {**spec, "cache": {"mode": mode.value}}
    return {**spec, "cache": {**spec.get("cache", {}), "mode": mode.value}}


@dataclass(frozen=True)
class Prices:
    """USD per hour of one replica of the service, without and with the cache."""

    alone: float
    cached: float
    source: str


def price_service(spec: dict[str, Any], backend: CacheMode) -> Prices:
    """One replica's hourly price as the operator prices it (api.cost.service_cost, catalog
    prices): `cache.mode: none` for Triton alone; `backend` for the cache, which adds the
    sidecar's CPU and memory requests per replica and, for redis, the managed Redis's."""
    catalog = load_catalog()

    def hourly(mode: CacheMode) -> float:
        cost: ServiceCost = service_cost(parse_spec(with_cache_mode(spec, mode)), catalog)
        return cost.hourly(1)

    source = (
        f"tenfold.api.cost.service_cost, one replica, cache.mode none vs {backend.value}; "
        f"catalog: {catalog.source}"
    )
    return Prices(hourly(CacheMode.NONE), hourly(backend), source)


class Bench:
    """The processes of one benchmark: Triton, Redis, and a sidecar per run."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.triton: TritonHandle | None = None
        self.redis: processes.Proc | None = None
        self.redis_port = free_port()
        self.sidecar: processes.Proc | None = None
        self.metrics_url = ""
        self.runs = 0
        self.model = processes.STANDIN_MODEL
        self.manifest: dict[str, Any] = {}

    def start(self) -> None:
        """Triton (after preparing the real model, if asked) and Redis."""
        if getattr(self.args, "model", STANDIN) == MINILM:
            repository = self.prepare_minilm()
        else:
            repository = processes.write_standin_repository(
                self.workdir / "repo", self.args.cost_us_per_item
            )
        self.triton = start_triton(repository, log_path=self.workdir / "triton.log")
        if self.args.backend == CacheMode.REDIS.value:
            self.redis = processes.start_redis(self.redis_port, self.workdir / "redis", "everysec")

    def prepare_minilm(self) -> Path:
        """The repository the operator's init container would build for `--spec`, in
        `--repository` (prepare skips a model already built from the same spec)."""
        from tenfold_runtime.prepare import prepare  # torch and transformers: this mode only

        service = parse_inference_service(yaml.safe_load(self.args.spec.read_text()))
        repository = self.args.repository.resolve()
        spec = build_prepare_spec(service.name, service.spec)
        spec = spec.model_copy(update={"repository": str(repository)})
        self.manifest = prepare(spec, repository)
        self.model = spec.model_name
        return repository

    @property
    def triton_url(self) -> str:
        """Triton's HTTP endpoint (after start())."""
        assert self.triton is not None, "start() first"
        return f"http://{self.triton.http_url}"

    def fresh_sidecar(self, redis_port: int | None = None) -> str:
        """A sidecar over an empty namespace (a new digest); returns its URL. `redis_port`:
        reach Redis there instead (a proxy in front of it)."""
        self.stop_sidecar()
        self.runs += 1
        manifest = self.workdir / f"manifest-{self.runs}.json"
        identity = {
            "model_name": self.model,
            "model_version": "1",
            "source_digest": f"sha256:bench-{time.time_ns()}",
            "precision_served": self.manifest.get("precision_served", "fp32"),
            "runtime_version": "bench",
        }
        manifest.write_text(json.dumps(identity))
        port = free_port()
        self.metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        settings = SidecarSettings(
            listen=f"127.0.0.1:{port}",
            upstream=self.triton_url,
            metrics_listen=self.metrics_url.removeprefix("http://").removesuffix("/metrics"),
            backend=CacheMode(self.args.backend),
            redis_url=f"redis://127.0.0.1:{redis_port or self.redis_port}/0"
            if self.redis
            else None,
            manifest=str(manifest),
            service_namespace="bench",
            service_name=self.model,
        )
        log = self.workdir / f"sidecar-{self.runs}.log"
        self.sidecar = processes.start_sidecar(settings.to_args(), log, port)
        return f"http://127.0.0.1:{port}"

    def hit_ratio(self) -> float:
        """The running sidecar's own hit ratio (hits over lookups)."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("tenfold_cache_hit_ratio "):
                    return round(float(line.split()[1]), 3)
        return 0.0

    def stop_sidecar(self) -> None:
        if self.sidecar is not None:
            self.sidecar.stop()
            self.sidecar = None

    def stop(self) -> None:
        """Everything this bench started."""
        self.stop_sidecar()
        if self.redis is not None:
            self.redis.stop(signal.SIGKILL)
        if self.triton is not None:
            self.triton.stop()


def rounded(value: float | None) -> float | None:
    """A dollar figure to eight places, a cent per million requests (None stays None)."""
    return None if value is None else round(value, 8)


def workload_report(
    prices: Prices, direct: RunStats, cached: RunStats, share: float, hit_ratio: float
) -> dict:
    """Figures of one workload: both runs, and each one's cost per 1,000 answered requests
    at its own price (Triton's pod alone; with the sidecar and Redis added)."""
    alone = cost_per_1k(prices.alone, direct.throughput_rps)
    with_cache = cost_per_1k(prices.cached, cached.throughput_rps)
    return {
        "repeat_share": share,
        "sidecar_hit_ratio": hit_ratio,
        "triton_alone": asdict(direct),
        "through_sidecar": asdict(cached),
        "cost_per_1k_answered_usd": {
            "triton_alone": rounded(alone),
            "with_cache": rounded(with_cache),
        },
        "throughput_gain": round(cached.throughput_rps / direct.throughput_rps, 2)
        if direct.throughput_rps
        else None,
        "cost_ratio": round(with_cache / alone, 3) if alone and with_cache else None,
    }


async def measure(bench: Bench, args: argparse.Namespace) -> dict:
    """The serial miss overhead, then each workload direct and through the sidecar."""
    model = bench.model
    misses = make_workload(args.overhead_requests, 0.0, seed=1)
    await run_load(bench.triton_url, misses[:20], 1, args.limit_s, model)  # warm Triton up
    direct_serial = await run_load(bench.triton_url, misses, 1, args.limit_s, model)
    sidecar_serial = await run_load(
        bench.fresh_sidecar(),
        make_workload(args.overhead_requests, 0.0, seed=2),
        1,
        args.limit_s,
        model,
    )
    added = round(sidecar_serial.p50_ms - direct_serial.p50_ms, 3)
    prices = price_service(load_service_spec(args.spec), CacheMode(args.backend))
    workloads = []
    for index, share in enumerate(args.repeat):
        workload = make_workload(args.requests, share, seed=100 + index)
        direct = await run_load(bench.triton_url, workload, args.concurrency, args.limit_s, model)
        cached = await run_load(
            bench.fresh_sidecar(), workload, args.concurrency, args.limit_s, model
        )
        workloads.append(workload_report(prices, direct, cached, share, bench.hit_ratio()))
    return {
        "model": served_model(bench, args),
        "prices_per_hour_usd": asdict(prices),
        "miss_overhead": {
            "triton_alone": asdict(direct_serial),
            "through_sidecar": asdict(sidecar_serial),
            "added_p50_ms": added,
            "target_ms": round(max(1.0, 0.1 * direct_serial.p50_ms), 3),
        },
        "workloads": workloads,
    }


def served_model(bench: Bench, args: argparse.Namespace) -> dict[str, object]:
    """What Triton served: the real model's manifest figures, or the stand-in's cost."""
    if args.model == STANDIN:
        return {"kind": STANDIN, "cost_us_per_item": args.cost_us_per_item}
    manifest = bench.manifest
    return {
        "kind": MINILM,
        "spec": str(args.spec),
        "name": bench.model,
        "precision_served": manifest.get("precision_served"),
        "source_digest": manifest.get("source_digest"),
    }


def dollars(value: float | None) -> str:
    """A cost per 1,000 requests as the table prints it."""
    return "–" if value is None else f"{value:.7f}"


def markdown_table(report: dict) -> str:
    """One row per workload: throughput, failures, latency and cost, alone vs with cache."""
    lines = [
        "| repeats | Triton alone req/s | with cache req/s | failed (alone / cache) "
        "| p50 / p95 ms alone | p50 / p95 ms with cache | hit ratio "
        "| $ per 1k answered alone | with cache |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["workloads"]:
        alone, cached = row["triton_alone"], row["through_sidecar"]
        cost = row["cost_per_1k_answered_usd"]
        lines.append(
            f"| {row['repeat_share']:.0%} | {alone['throughput_rps']} "
            f"| {cached['throughput_rps']} (×{row['throughput_gain']}) "
            f"| {alone['failed']} / {cached['failed']} "
            f"| {alone['p50_ms']:.1f} / {alone['p95_ms']:.1f} "
            f"| {cached['p50_ms']:.1f} / {cached['p95_ms']:.1f} "
            f"| {row['sidecar_hit_ratio']} | {dollars(cost['triton_alone'])} "
            f"| {dollars(cost['with_cache'])} |"
        )
    return "\n".join(lines)


def build_parser(default_model: str = STANDIN) -> argparse.ArgumentParser:
    """The benchmark's flags. The default model is the stand-in because redis_faults.py
    builds on this parser and measures the sidecar's own faults on it on purpose; this
    benchmark's main() makes the real MiniLM its default."""
    parser = argparse.ArgumentParser(prog="python -m tenfold_tools.cache.bench")
    parser.add_argument(
        "--model", choices=[MINILM, STANDIN], default=default_model,
        help="the real MiniLM of --spec, or the stand-in that burns --cost-us-per-item",
    )  # fmt: skip
    parser.add_argument("--requests", type=int, default=2000, help="requests per workload run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=float, nargs="+", default=[0.3, 0.8])
    parser.add_argument("--limit-s", type=float, default=60.0, help="time cap per run")
    parser.add_argument("--overhead-requests", type=int, default=300)
    parser.add_argument("--backend", choices=["memory", "redis"], default="redis")
    parser.add_argument(
        "--cost-us-per-item", type=float, default=3000.0,
        help="CPU the stand-in model burns per text (MiniLM fp32 here: about 2.5-12 ms)",
    )  # fmt: skip
    parser.add_argument(
        "--spec", type=Path, default=DEFAULT_SPEC,
        help="the InferenceService served (minilm) and priced (both models)",
    )  # fmt: skip
    parser.add_argument(
        "--repository", type=Path, default=Path("results/cache-bench/repository"),
        help="where the real model is prepared (kept: prepare skips an unchanged spec)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("results/cache-bench"))
    return parser


def run_with_bench(
    args: argparse.Namespace,
    measure: Callable[[Bench, argparse.Namespace], Coroutine[Any, Any, dict]],
) -> dict:
    """Start Triton and Redis, run `measure` on them, and stop everything it started."""
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            bench.start()
            return asyncio.run(measure(bench, args))
        finally:
            bench.stop()


def main(argv: list[str]) -> int:
    """Run the benchmark, print and save its figures."""
    args = build_parser(default_model=MINILM).parse_args(argv)
    command = shlex.join(["python", "-m", "tenfold_tools.cache.bench", *argv])
    print(command, flush=True)
    load_before = os.getloadavg()
    report = run_with_bench(args, measure)
    report = {
        "command": command,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        **report,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(markdown_table(report))
    failed = sum(
        row[run]["failed"]
        for row in report["workloads"]
        for run in ("triton_alone", "through_sidecar")
    )
    print(f"failed requests: {failed} (not counted in throughput)")
    print(f"price source: {report['prices_per_hour_usd']['source']}")
    print(f"load average before {report['loadavg_before']} after {report['loadavg_after']}")
    print(f"command: {command}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

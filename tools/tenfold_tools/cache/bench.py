"""Loopback benchmark of the cache sidecar against Triton alone.

    python -m tenfold_tools.cache.bench [--requests N] [--concurrency C] [--repeat 0.3 0.8]

Starts Triton with the stand-in embedding model (its `--cost-us-per-item` burns CPU per
text in place of a real encoder), Redis with append-only persistence, and one fresh
sidecar per workload (a new digest each time, so every run starts from an empty
namespace). Each workload is a fixed sequence of one-text JSON embedding requests in which
a share of requests repeats an earlier text; the same sequence is sent to Triton directly
and through the sidecar at the same concurrency. The added latency on a miss is measured
serially (concurrency 1, all texts new), so queueing does not hide or inflate it. Results
go to `results/cache-bench/<time>.json`; the command line is printed and recorded.
"""

import argparse
import asyncio
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
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tenfold.api.enums import CacheMode
from tenfold.api.sidecar import SidecarSettings
from tenfold_runtime.local import TritonHandle, free_port, start_triton
from tenfold_tools.cache import processes

INFER = f"/v2/models/{processes.STANDIN_MODEL}/infer"


@dataclass(frozen=True)
class Sample:
    """One request's outcome."""

    latency_s: float
    ok: bool
    repeat: bool


@dataclass(frozen=True)
class RunStats:
    """What one load run measured."""

    requests: int
    failed: int
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    hit_p50_ms: float | None
    hit_p95_ms: float | None
    miss_p50_ms: float | None
    miss_p95_ms: float | None


def make_workload(count: int, repeat_share: float, seed: int) -> list[tuple[str, bool]]:
    """`count` texts, each (text, is_repeat); a repeat picks an earlier text uniformly."""
    rng = random.Random(seed)
    seen: list[str] = []
    workload = []
    for index in range(count):
        if seen and rng.random() < repeat_share:
            workload.append((rng.choice(seen), True))
        else:
            text = f"document {seed}-{index}: " + " ".join(str(rng.random()) for _ in range(4))
            seen.append(text)
            workload.append((text, False))
    return workload


def request_body(text: str) -> bytes:
    """A one-text JSON embedding request."""
    doc = {"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1, 1], "data": [text]}]}
    return json.dumps(doc).encode()


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of `values`, None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def cost_per_1k(price_per_hour: float, throughput_rps: float) -> float:
    """Dollars per 1,000 requests for a pod at `price_per_hour` serving `throughput_rps`."""
    return price_per_hour / (throughput_rps * 3.6)


def summarise(samples: list[Sample], elapsed_s: float) -> RunStats:
    """Throughput and latency percentiles (ms) of a run; hit/miss split by repeat."""

    def ms(values: list[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * 1000, 3)

    every = [s.latency_s for s in samples]
    hits = [s.latency_s for s in samples if s.repeat]
    misses = [s.latency_s for s in samples if not s.repeat]
    return RunStats(
        requests=len(samples),
        failed=sum(not s.ok for s in samples),
        throughput_rps=round(len(samples) / elapsed_s, 1),
        p50_ms=ms(every, 50) or 0.0,
        p95_ms=ms(every, 95) or 0.0,
        hit_p50_ms=ms(hits, 50),
        hit_p95_ms=ms(hits, 95),
        miss_p50_ms=ms(misses, 50),
        miss_p95_ms=ms(misses, 95),
    )


async def run_load(
    base_url: str, workload: list[tuple[str, bool]], concurrency: int, limit_s: float
) -> RunStats:
    """Send the workload in order with `concurrency` workers; stop early after `limit_s`."""
    samples: list[Sample] = []
    position = 0
    started = time.perf_counter()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal position
        while position < len(workload) and time.perf_counter() - started < limit_s:
            text, repeat = workload[position]
            position += 1
            sent = time.perf_counter()
            try:
                async with session.post(base_url + INFER, data=request_body(text)) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            samples.append(Sample(time.perf_counter() - sent, ok, repeat))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return summarise(samples, time.perf_counter() - started)


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

    def start(self) -> None:
        """Triton and Redis."""
        repository = processes.write_standin_repository(
            self.workdir / "repo", self.args.cost_us_per_item
        )
        self.triton = start_triton(repository, log_path=self.workdir / "triton.log")
        if self.args.backend == CacheMode.REDIS.value:
            self.redis = processes.start_redis(self.redis_port, self.workdir / "redis", "everysec")

    @property
    def triton_url(self) -> str:
        """Triton's HTTP endpoint (after start())."""
        assert self.triton is not None, "start() first"
        return f"http://{self.triton.http_url}"

    def fresh_sidecar(self) -> str:
        """A sidecar over an empty namespace (a new digest); returns its URL."""
        self.stop_sidecar()
        self.runs += 1
        manifest = self.workdir / f"manifest-{self.runs}.json"
        identity = {
            "model_name": processes.STANDIN_MODEL,
            "model_version": "1",
            "source_digest": f"sha256:bench-{time.time_ns()}",
            "precision_served": "fp32",
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
            redis_url=f"redis://127.0.0.1:{self.redis_port}/0" if self.redis else None,
            manifest=str(manifest),
            service_namespace="bench",
            service_name=processes.STANDIN_MODEL,
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


def workload_report(
    args, direct: RunStats, cached: RunStats, share: float, hit_ratio: float
) -> dict:
    """Figures of one workload: both runs, and the cost per 1,000 requests of each."""
    return {
        "repeat_share": share,
        "sidecar_hit_ratio": hit_ratio,
        "triton_alone": asdict(direct),
        "through_sidecar": asdict(cached),
        "cost_per_1k_usd": {
            "triton_alone": round(cost_per_1k(args.price_per_hour, direct.throughput_rps), 6),
            "through_sidecar": round(cost_per_1k(args.price_per_hour, cached.throughput_rps), 6),
        },
        "throughput_gain": round(cached.throughput_rps / direct.throughput_rps, 2),
    }


async def measure(bench: Bench, args: argparse.Namespace) -> dict:
    """The serial miss overhead, then each workload direct and through the sidecar."""
    misses = make_workload(args.overhead_requests, 0.0, seed=1)
    await run_load(bench.triton_url, misses[:20], 1, args.limit_s)  # warm Triton up
    direct_serial = await run_load(bench.triton_url, misses, 1, args.limit_s)
    sidecar_serial = await run_load(
        bench.fresh_sidecar(), make_workload(args.overhead_requests, 0.0, seed=2), 1, args.limit_s
    )
    added = round(sidecar_serial.p50_ms - direct_serial.p50_ms, 3)
    workloads = []
    for index, share in enumerate(args.repeat):
        workload = make_workload(args.requests, share, seed=100 + index)
        direct = await run_load(bench.triton_url, workload, args.concurrency, args.limit_s)
        cached = await run_load(bench.fresh_sidecar(), workload, args.concurrency, args.limit_s)
        workloads.append(workload_report(args, direct, cached, share, bench.hit_ratio()))
    return {
        "miss_overhead": {
            "triton_alone": asdict(direct_serial),
            "through_sidecar": asdict(sidecar_serial),
            "added_p50_ms": added,
            "target_ms": round(max(1.0, 0.1 * direct_serial.p50_ms), 3),
        },
        "workloads": workloads,
    }


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's flags."""
    parser = argparse.ArgumentParser(prog="python -m tenfold_tools.cache.bench")
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
    parser.add_argument("--price-per-hour", type=float, default=1.0, help="$/hour of the pod")
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
    args = build_parser().parse_args(argv)
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
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

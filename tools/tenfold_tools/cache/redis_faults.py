"""The cache sidecar when its Redis dies or hangs under load: failed requests and the latency
it adds, against Triton alone on the same requests.

    python -m tenfold_tools.cache.redis_faults [--requests N] [--concurrency C] [--repeat S]

bench.py's processes: Triton with the stand-in embedding model (a fixed CPU cost per text,
so the differences below are the sidecar's own and not a real encoder's spread), Redis with
`appendfsync everysec`, and a fresh sidecar per phase (an empty namespace). Each phase sends
its own sequence of one-text JSON requests (a share S repeating an earlier text) at
concurrency C:

1. Triton alone;
2. through the sidecar, Redis healthy;
3. through the sidecar, Redis killed (SIGKILL) just before the phase: connections refused;
4. through the sidecar, Redis hung (SIGSTOP) just before the phase: connections accepted
   by the kernel and never answered, the worse failure.

Phases 3 and 4 are compared with phase 1 (the same misses, no cache); phase 2 shows what
the cache saves when it works. Figures as JSON, with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from dataclasses import asdict

from tenfold_tools.cache import processes
from tenfold_tools.cache.bench import (
    Bench,
    RunStats,
    build_parser,
    make_workload,
    run_load,
    run_with_bench,
)


def added_ms(faulty: RunStats, alone: RunStats) -> dict[str, float | None]:
    """p50 and p95 of a faulty phase minus Triton alone's, in ms."""

    def minus(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(a - b, 2)

    return {"p50": minus(faulty.p50_ms, alone.p50_ms), "p95": minus(faulty.p95_ms, alone.p95_ms)}


async def phases(bench: Bench, args: argparse.Namespace) -> dict[str, object]:
    """The four phases, each on its own workload of the same shape."""

    def workload(seed: int) -> list[tuple[str, bool]]:
        return make_workload(args.requests, args.repeat[0], seed=seed)

    await run_load(bench.triton_url, workload(1)[:20], 1, args.limit_s)  # warm Triton up
    alone = await run_load(bench.triton_url, workload(10), args.concurrency, args.limit_s)
    healthy = await run_load(bench.fresh_sidecar(), workload(11), args.concurrency, args.limit_s)
    url = bench.fresh_sidecar()
    assert bench.redis is not None
    bench.redis.stop(signal.SIGKILL)
    down = await run_load(url, workload(12), args.concurrency, args.limit_s)
    bench.redis = processes.start_redis(bench.redis_port, bench.workdir / "redis2", "everysec")
    url = bench.fresh_sidecar()
    os.kill(bench.redis.popen.pid, signal.SIGSTOP)
    try:
        hung = await run_load(url, workload(13), args.concurrency, args.limit_s)
    finally:
        os.kill(bench.redis.popen.pid, signal.SIGCONT)
    return {
        "triton_alone": asdict(alone),
        "sidecar_redis_healthy": asdict(healthy),
        "sidecar_redis_killed": asdict(down),
        "sidecar_redis_hung": asdict(hung),
        "added_vs_triton_alone_ms": {
            "killed": added_ms(down, alone),
            "hung": added_ms(hung, alone),
        },
    }


def main(argv: list[str]) -> int:
    """Run the four phases, print the figures and the command."""
    args = build_parser().parse_args(argv)
    command = shlex.join(["python", "-m", "tenfold_tools.cache.redis_faults", *argv])
    report = run_with_bench(args, phases)
    print(json.dumps({"command": command, "loadavg": os.getloadavg(), **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The cache sidecar when its Redis dies or hangs under load: failed requests and the latency
it adds, against Triton alone on the same requests.

    python -m tenfold_tools.cache.redis_faults [--requests N] [--concurrency C] [--repeat S]
        [--slow-ms 10,200]

bench.py's processes: Triton with the stand-in embedding model (a fixed CPU cost per text,
so the differences below are the sidecar's own and not a real encoder's spread), Redis with
`appendfsync everysec`, and a fresh sidecar per phase (an empty namespace). Each phase sends
its own sequence of one-text JSON requests (a share S repeating an earlier text) at
concurrency C:

1. Triton alone;
2. through the sidecar, Redis healthy;
3. through the sidecar, Redis killed (SIGKILL) just before the phase: connections refused;
4. through the sidecar, Redis hung (SIGSTOP) just before the phase: connections accepted
   by the kernel and never answered, the worse failure;
5. through the sidecar, Redis slow: every reply held SLOW ms by a proxy (slow_link.py),
   once per --slow-ms value (by default 10 ms, under the sidecar's 50 ms Redis timeout, and
   200 ms, over it).

Phases 3 to 5 are compared with phase 1 (the same misses, no cache); phase 2 shows what
the cache saves when it works. Each phase reports p99 and the slowest request too: the
requests that wait out a Redis timeout before the circuit breaker opens are the tail, not
the median. Figures as JSON, with the command.
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
from tenfold_tools.cache.slow_link import SlowLink


def added_ms(faulty: RunStats, alone: RunStats) -> dict[str, float | None]:
    """p50, p95, p99 and the slowest request of a faulty phase minus Triton alone's, in ms."""

    def minus(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(a - b, 2)

    return {
        "p50": minus(faulty.p50_ms, alone.p50_ms),
        "p95": minus(faulty.p95_ms, alone.p95_ms),
        "p99": minus(faulty.p99_ms, alone.p99_ms),
        "max": minus(faulty.max_ms, alone.max_ms),
    }


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
    slow = {}
    for index, delay_ms in enumerate(args.slow_ms):
        with SlowLink(bench.redis_port, delay_ms / 1000) as port:
            url = bench.fresh_sidecar(redis_port=port)
            slow[delay_ms] = await run_load(
                url, workload(14 + index), args.concurrency, args.limit_s
            )
    return {
        "triton_alone": asdict(alone),
        "sidecar_redis_healthy": asdict(healthy),
        "sidecar_redis_killed": asdict(down),
        "sidecar_redis_hung": asdict(hung),
        **{f"sidecar_redis_slow_{ms}ms": asdict(stats) for ms, stats in slow.items()},
        "added_vs_triton_alone_ms": {
            "killed": added_ms(down, alone),
            "hung": added_ms(hung, alone),
            **{f"slow_{ms}ms": added_ms(stats, alone) for ms, stats in slow.items()},
        },
    }


def main(argv: list[str]) -> int:
    """Run the four phases, print the figures and the command."""
    parser = build_parser()
    parser.add_argument(
        "--slow-ms",
        type=lambda text: tuple(int(v) for v in text.split(",") if v),
        default=(10, 200),
        help="delays (ms) of the slow-Redis phases, comma separated",
    )
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "tenfold_tools.cache.redis_faults", *argv])
    report = run_with_bench(args, phases)
    print(json.dumps({"command": command, "loadavg": os.getloadavg(), **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

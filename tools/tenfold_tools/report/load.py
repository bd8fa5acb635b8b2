"""Load from the host to a pod's address: a perf_analyzer sweep and an open-loop replay.

Every replayed request is one text as a KServe v2 JSON request (the sidecar caches per
text; Triton takes the same body). A request's latency runs from the moment it was due, so
a client that falls behind charges its own delay to the latency, never hides it; a request
that errs or takes longer than REQUEST_TIMEOUT_S is failed and is not counted as throughput.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from tenfold_runtime.bench import perf_analyzer_binary, perf_input_data, run_perf_analyzer
from tenfold_tools.cache.bench import request_body
from tenfold_tools.report.accounting import Sample, SweepPoint
from tenfold_tools.report.trace import Request

REQUEST_TIMEOUT_S = 10.0
# perf_analyzer's measurement window per trial (it repeats until two agree, at most 6).
PERF_WINDOW_MS = 4000
# Connections the client keeps open; more than any sweep level or replay needs at once.
MAX_CONNECTIONS = 256


async def _send(session: aiohttp.ClientSession, url: str, text: str) -> bool:
    try:
        async with session.post(url, data=request_body(text)) as response:
            await response.read()
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    )


def perf_sweep(
    http_url: str, model: str, texts: Sequence[str], levels: Sequence[int], workdir: Path
) -> list[SweepPoint]:
    """perf_analyzer (C++, far lighter than a Python client on the same two cores) at each
    concurrency against Triton's `host:port`, one request per Lee sentence cycled; a level
    that errs fails the whole sweep with perf_analyzer's output."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "input-data.json"
    data.write_text(json.dumps(perf_input_data(texts)))
    points = run_perf_analyzer(
        http_url, model, levels, binary=perf_analyzer_binary(None), data=data, workdir=workdir,
        window_ms=PERF_WINDOW_MS, price_per_hour=0.0,
    )  # fmt: skip
    return [SweepPoint(p.concurrency, p.throughput, p.p95_ms, 0) for p in points]


async def _replay(url: str, requests: Sequence[Request]) -> list[Sample]:
    samples: list[Sample] = []
    async with _session() as session:
        started = time.perf_counter()

        async def one(request: Request) -> None:
            ok = await _send(session, url, request.text)
            latency = time.perf_counter() - started - request.at_s
            samples.append(Sample(request.at_s, latency, ok, request.repeat))

        tasks = []
        for request in requests:
            delay = request.at_s - (time.perf_counter() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(request)))
        await asyncio.gather(*tasks)
    return sorted(samples, key=lambda s: s.sent_s)


def replay(url: str, requests: Sequence[Request]) -> list[Sample]:
    """Send each request when it is due (open loop, as users do: a slow server does not
    slow the arrivals) and record its outcome."""
    return asyncio.run(_replay(url, requests))

"""Load from the host to a pod's address: a closed-loop sweep and an open-loop replay.

Every request is one text as a KServe v2 JSON request (the sidecar caches per text; Triton
takes the same body). A request's latency runs from the moment it was due, so a client that
falls behind charges its own delay to the latency, never hides it; a request that errs or
takes longer than REQUEST_TIMEOUT_S is failed and is not counted as throughput.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import aiohttp

from tenfold_tools.cache.bench import request_body
from tenfold_tools.report.accounting import Sample, SweepPoint, latency_ms
from tenfold_tools.report.trace import Request, new_text

REQUEST_TIMEOUT_S = 10.0
# Connections the client keeps open; more than any sweep level or replay needs at once.
MAX_CONNECTIONS = 256


# The first errors seen, for the operator of the report to read when a sweep fails.
ERRORS: list[str] = []


async def _send(session: aiohttp.ClientSession, url: str, text: str) -> bool:
    try:
        async with session.post(url, data=request_body(text)) as response:
            body = await response.read()
            if response.status != 200 and len(ERRORS) < 5:
                ERRORS.append(f"{url}: HTTP {response.status}: {body[:300]!r}")
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError) as error:
        if len(ERRORS) < 5:
            ERRORS.append(f"{url}: {type(error).__name__}: {error}")
        return False


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    )


async def _closed_loop(
    url: str, texts: Sequence[str], concurrency: int, seconds: float, first: int
) -> SweepPoint:
    counter = first
    samples: list[Sample] = []
    started = time.perf_counter()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal counter
        while time.perf_counter() - started < seconds:
            text = new_text(texts, counter)
            counter += 1
            sent = time.perf_counter()
            ok = await _send(session, url, text)
            samples.append(Sample(sent - started, time.perf_counter() - sent, ok))

    async with _session() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    answered = sum(s.ok for s in samples)
    return SweepPoint(
        concurrency, answered / elapsed, latency_ms(samples).p95_ms, len(samples) - answered
    )


def sweep(
    url: str, texts: Sequence[str], levels: Sequence[int], seconds: float, warmup_s: float = 3.0
) -> list[SweepPoint]:
    """Closed loop at each concurrency for `seconds`, all texts new (nothing to cache);
    a short untimed warm-up first, so the first level does not pay for cold buffers."""
    asyncio.run(_closed_loop(url, texts, max(levels), warmup_s, first=0))
    points = []
    offset = 1_000_000  # past the warm-up's texts
    for level in levels:
        points.append(asyncio.run(_closed_loop(url, texts, level, seconds, first=offset)))
        offset += 1_000_000
    return points


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

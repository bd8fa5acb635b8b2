"""Single flight: concurrent identical misses make one call."""

import asyncio

import pytest

from tenfold_runtime.cache.flight import SingleFlight


async def test_concurrent_callers_share_one_fetch():
    flight = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def fetch():
        nonlocal calls
        calls += 1
        await release.wait()
        return "answer"

    waiters = [asyncio.create_task(flight.do("k", fetch)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == ["answer"] * 10
    assert calls == 1
    assert len(flight) == 0


async def test_key_is_held_until_the_write_ends():
    flight = SingleFlight()
    stored = asyncio.Event()
    calls = 0

    async def fetch():
        nonlocal calls
        calls += 1
        return calls

    async def after(_value):
        await stored.wait()

    assert await flight.do("k", fetch, after) == 1
    assert await flight.do("k", fetch, after) == 1  # joins: the write is still running
    stored.set()
    await flight.drain()
    assert await flight.do("k", fetch) == 2


async def test_failure_reaches_every_caller_and_frees_the_key():
    flight = SingleFlight()

    async def boom():
        await asyncio.sleep(0)
        raise RuntimeError("upstream down")

    results = await asyncio.gather(
        flight.do("k", boom), flight.do("k", boom), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(flight) == 0


async def test_a_cancelled_leader_does_not_cancel_followers():
    flight = SingleFlight()
    release = asyncio.Event()

    async def fetch():
        await release.wait()
        return "answer"

    leader = asyncio.create_task(flight.do("k", fetch))
    follower = asyncio.create_task(flight.do("k", fetch))
    await asyncio.sleep(0)
    leader.cancel()
    release.set()
    assert await follower == "answer"
    with pytest.raises(asyncio.CancelledError):
        await leader

"""The in-memory LRU and the fail-open guard."""

import asyncio
import tracemalloc

import pytest

from tenfold_runtime.cache.breaker import CircuitBreaker
from tenfold_runtime.cache.metrics import CacheMetrics
from tenfold_runtime.cache.store import ENTRY_OVERHEAD_BYTES, GuardedCache, MemoryBackend

ENTRY = 10 + ENTRY_OVERHEAD_BYTES  # the cost of a 1-byte key with a 9-byte value


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lru_stays_within_its_byte_bound_and_evicts_least_recent():
    lru = MemoryBackend(max_bytes=3 * ENTRY, ttl_seconds=60)
    lru.put("a", b"x" * 9)
    lru.put("b", b"x" * 9)
    lru.put("c", b"x" * 9)
    assert lru.get("a") is not None  # a is now the most recent
    lru.put("d", b"x" * 9)
    assert lru.get("b") is None and lru.get("a") is not None
    assert lru.resident_bytes == 3 * ENTRY


def test_lru_refuses_values_larger_than_the_bound():
    lru = MemoryBackend(max_bytes=ENTRY, ttl_seconds=60)
    lru.put("a", b"x")
    lru.put("big", b"x" * 100)
    assert lru.get("big") is None and lru.get("a") == b"x"


def test_lru_replacing_a_key_keeps_the_count_right():
    lru = MemoryBackend(max_bytes=100 + ENTRY, ttl_seconds=60)
    lru.put("a", b"x" * 10)
    lru.put("a", b"x" * 20)
    assert lru.resident_bytes == 21 + ENTRY_OVERHEAD_BYTES and len(lru) == 1


@pytest.mark.parametrize("value_size", [8, 1580, 16_000])
def test_lru_holds_no_more_memory_than_max_bytes(value_size):
    """Filled (and overfilled) with keys of the real length, what the entries allocate
    stays within max_bytes, small values included (there the overhead dominates)."""
    max_bytes = 16 << 20
    key_of = "tenfold:cache:team-a/embed:embed:0123456789abcdef01234567:i:{:064x}".format
    lru = MemoryBackend(max_bytes=max_bytes, ttl_seconds=60)
    tracemalloc.start()
    try:
        for i in range(2 * max_bytes // (value_size + 124)):
            lru.put(key_of(i), bytes(value_size))
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lru.resident_bytes > max_bytes - (value_size + 124 + ENTRY_OVERHEAD_BYTES)
    assert allocated <= max_bytes


def test_lru_entries_expire():
    clock = Clock()
    lru = MemoryBackend(max_bytes=100 + ENTRY, ttl_seconds=5, clock=clock)
    lru.put("a", b"x")
    clock.now = 5.0
    assert lru.get("a") is None and lru.resident_bytes == 0


class DeadBackend:
    """A backend whose calls hang, like a Redis that stopped answering."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_many(self, keys):
        self.calls += 1
        await asyncio.sleep(10)

    async def set_many(self, items):
        self.calls += 1
        await asyncio.sleep(10)

    async def connect(self):
        pass

    async def close(self):
        pass


class SlowToConnectBackend:
    """A backend whose connections take longer to open than a lookup may take, and whose
    lookups are quick once connected (a Redis a few milliseconds away)."""

    def __init__(self) -> None:
        self.connected = False

    async def connect(self):
        await asyncio.sleep(0.05)
        self.connected = True

    async def get_many(self, keys):
        if not self.connected:  # a lookup that must open its own connection first
            await self.connect()
        return [b"v"] * len(keys)

    async def close(self):
        pass


async def test_guard_fails_open_within_the_timeout_and_then_stops_calling():
    backend = DeadBackend()
    metrics = CacheMetrics()
    guard = GuardedCache(backend, 0.01, metrics, CircuitBreaker(threshold=2, cooldown=60))
    assert await guard.get_many(["a", "b"]) == [None, None]
    await guard.set_many({"a": b"1"})
    assert backend.calls == 2
    for _ in range(5):
        assert await guard.get_many(["a"]) == [None]
    assert backend.calls == 2  # the open circuit answers without calling
    assert metrics.backend_errors.labels("get")._value.get() == 1
    assert metrics.breaker_open._value.get() == 1
    assert metrics.stored_bytes._value.get() == 0


async def test_guard_counts_stored_bytes():
    metrics = CacheMetrics()
    guard = GuardedCache(MemoryBackend(1000, 60), 0.1, metrics)
    await guard.set_many({"k": b"12345"})
    assert await guard.get_many(["k", "z"]) == [b"12345", None]
    assert metrics.stored_bytes._value.get() == 6


async def test_a_cancelled_probe_does_not_hold_the_circuit_open():
    backend = DeadBackend()
    breaker = CircuitBreaker(threshold=1, cooldown=0.0)
    guard = GuardedCache(backend, 5.0, CacheMetrics(), breaker)
    breaker.record_failure()  # open, cooldown over: the next call probes
    probe = asyncio.create_task(guard.get_many(["a"]))
    await asyncio.sleep(0)
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    assert breaker.allow()


async def test_connections_open_outside_the_lookups_timeout():
    backend = SlowToConnectBackend()
    guard = GuardedCache(backend, 0.01, CacheMetrics(), CircuitBreaker(threshold=1, cooldown=0))
    assert await guard.get_many(["a"]) == [None]  # had to connect: cut off by the timeout
    await asyncio.sleep(0.1)  # the guard opened a connection in the background meanwhile
    assert await guard.get_many(["a"]) == [b"v"]
    await guard.close()


async def test_close_stops_a_connect_under_way():
    backend = SlowToConnectBackend()
    guard = GuardedCache(backend, 0.01, CacheMetrics())
    guard.warm()
    await guard.close()
    await asyncio.sleep(0.1)
    assert not backend.connected

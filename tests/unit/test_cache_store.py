"""The in-memory LRU and the fail-open guard."""

import asyncio

from tenfold_runtime.cache.breaker import CircuitBreaker
from tenfold_runtime.cache.metrics import CacheMetrics
from tenfold_runtime.cache.store import GuardedCache, MemoryBackend


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lru_stays_within_its_byte_bound_and_evicts_least_recent():
    lru = MemoryBackend(max_bytes=30, ttl_seconds=60)
    lru.put("a", b"x" * 9)  # 10 bytes with its key
    lru.put("b", b"x" * 9)
    lru.put("c", b"x" * 9)
    assert lru.get("a") is not None  # a is now the most recent
    lru.put("d", b"x" * 9)
    assert lru.get("b") is None and lru.get("a") is not None
    assert lru.resident_bytes == 30


def test_lru_refuses_values_larger_than_the_bound():
    lru = MemoryBackend(max_bytes=10, ttl_seconds=60)
    lru.put("a", b"x")
    lru.put("big", b"x" * 100)
    assert lru.get("big") is None and lru.get("a") == b"x"


def test_lru_replacing_a_key_keeps_the_count_right():
    lru = MemoryBackend(max_bytes=100, ttl_seconds=60)
    lru.put("a", b"x" * 10)
    lru.put("a", b"x" * 20)
    assert lru.resident_bytes == 21 and len(lru) == 1


def test_lru_entries_expire():
    clock = Clock()
    lru = MemoryBackend(max_bytes=100, ttl_seconds=5, clock=clock)
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

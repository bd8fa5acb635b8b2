"""Cache backends (in-memory LRU, Redis) and the fail-open guard in front of them."""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tenfold.api.sidecar import REDIS_PASSWORD_ENV, REDIS_USERNAME_ENV
from tenfold_runtime.cache.breaker import CircuitBreaker
from tenfold_runtime.cache.keys import family_pattern
from tenfold_runtime.cache.metrics import CacheMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

# What one entry of MemoryBackend costs beyond its key's and value's lengths: the str and
# bytes object headers, the (value, expiry) tuple and its float, the OrderedDict slot and
# link, and the allocator's own headers. tracemalloc saw 228-253 bytes per entry (key 124
# bytes, values of 8 B to 16 kB); 320 leaves room for the allocator headers it cannot see
# and the dict's growth steps. See docs/cache.md for the command and the process's RSS.
ENTRY_OVERHEAD_BYTES = 320
# Connections a Redis backend keeps open and idle for lookups (RedisBackend.connect): each
# request in flight makes its own lookup, and a replica's sidecar sees tens at once.
WARM_CONNECTIONS = 32
# How long opening those connections may take before the attempt is given up (and made
# again after the next failed call): a connect's own bound, apart from a lookup's timeout.
CONNECT_TIMEOUT_S = 2.0


class Backend(Protocol):
    """What the sidecar needs from a store."""

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """Values of `keys`, None where absent."""

    async def set_many(self, items: dict[str, bytes]) -> None:
        """Store `items` with the backend's TTL."""

    async def drop_family(self, family: str, keep: str, limit: int) -> int:
        """Delete up to `limit` keys under prefix `family` outside prefix `keep`; the count."""

    async def connect(self) -> None:
        """Open connections ahead of the calls that will need them."""

    async def close(self) -> None:
        """Release connections."""


def entry_bytes(key: str, value: bytes) -> int:
    """The memory one MemoryBackend entry is counted for: key, value and overhead."""
    return len(key) + len(value) + ENTRY_OVERHEAD_BYTES


class MemoryBackend:
    """An LRU bounded by the memory its entries take (key, value and per-entry overhead),
    with a TTL per entry."""

    def __init__(
        self, max_bytes: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.resident_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        """The live value of `key`, now most recently used."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: str, value: bytes) -> None:
        """Store `value`, evicting least recently used entries to stay within max_bytes."""
        size = entry_bytes(key, value)
        if key in self._entries:
            self._remove(key)
        if size > self.max_bytes:
            return  # would evict everything and still not fit
        while self.resident_bytes + size > self.max_bytes:
            self._remove(next(iter(self._entries)))
        self._entries[key] = (value, self._clock() + self.ttl)
        self.resident_bytes += size

    def _remove(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self.resident_bytes -= entry_bytes(key, value)

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """Values of `keys`, None where absent or expired."""
        return [self.get(key) for key in keys]

    async def set_many(self, items: dict[str, bytes]) -> None:
        """Store every item."""
        for key, value in items.items():
            self.put(key, value)

    async def drop_family(self, family: str, keep: str, limit: int) -> int:
        """Nothing to drop: memory starts empty with each process."""
        return 0

    async def connect(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class RedisCredentials:
    """Redis AUTH: a password, and a username for Redis 6 ACL users (api.sidecar's
    REDIS_PASSWORD_ENV and REDIS_USERNAME_ENV)."""

    password: str
    username: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RedisCredentials | None":
        """The credentials the pod was given; None when it was given none."""
        password = env.get(REDIS_PASSWORD_ENV)
        if not password:
            return None
        return cls(password=password, username=env.get(REDIS_USERNAME_ENV) or None)

    def as_options(self) -> dict[str, str]:
        """Keyword arguments of redis-py's from_url."""
        options = {"password": self.password}
        if self.username:
            options["username"] = self.username
        return options


class RedisBackend:
    """Redis with a TTL on every entry; persistence is the Redis server's own (AOF)."""

    def __init__(
        self,
        url: str,
        ttl_seconds: int,
        timeout_s: float,
        max_connections: int = 64,
        credentials: RedisCredentials | None = None,
        warm_connections: int = WARM_CONNECTIONS,
    ):
        # One immediate retry replaces a pooled connection that a Redis restart closed; the
        # guard's timeout bounds the whole call, so no more retries than that.
        retry = Retry(NoBackoff(), 1)
        # Credentials in the URL, if any, lose to the Secret's: the URL is in the spec.
        login = credentials.as_options() if credentials else {}
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            **login,
            max_connections=max_connections,
            timeout=None,
            socket_connect_timeout=max(timeout_s, 0.5),
            retry=retry,
        )
        self._pool = pool
        self._redis = aioredis.Redis(connection_pool=pool, retry=retry)
        self.ttl = ttl_seconds
        self.warm_connections = min(warm_connections, max_connections)

    async def connect(self) -> None:
        """Fill the pool with up to `warm_connections` connected, idle connections.

        A new connection costs a TCP handshake, AUTH and redis-py's CLIENT SETINFO: four
        round trips, 43 ms through a 10 ms link, so a lookup that had to open one could
        miss its 50 ms timeout on a Redis that answers each command well within it. The
        guard connects here, outside any lookup's timeout (GuardedCache.warm).
        """
        connections = await asyncio.gather(
            *(self._pool.get_connection() for _ in range(self.warm_connections)),
            return_exceptions=True,
        )
        for connection in connections:
            if not isinstance(connection, BaseException):
                await self._pool.release(connection)
        for failure in connections:
            if isinstance(failure, BaseException):
                raise failure

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """One MGET round trip."""
        # The client is built without decode_responses, so values are bytes, never str.
        return [
            value if isinstance(value, bytes) else None for value in await self._redis.mget(keys)
        ]

    async def set_many(self, items: dict[str, bytes]) -> None:
        """One pipelined round trip of SET ... EX ttl."""
        pipe = self._redis.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(key, value, ex=self.ttl)
        await pipe.execute()

    async def drop_family(self, family: str, keep: str, limit: int) -> int:
        """SCAN the key family and UNLINK keys outside `keep`, at most `limit`."""
        dropped = 0
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=family_pattern(family), count=1000):
            if key.decode(errors="replace").startswith(keep):
                continue
            batch.append(key)
            if len(batch) >= 1000 or dropped + len(batch) >= limit:
                dropped += await self._redis.unlink(*batch)
                batch = []
            if dropped >= limit:
                break
        if batch:
            dropped += await self._redis.unlink(*batch)
        return dropped

    async def close(self) -> None:
        """Close the pool."""
        await self._redis.aclose()


class GuardedCache:
    """Fail-open access to a backend: every call is bounded by a timeout, failures are
    counted and trip a circuit breaker, and a failed read is just a miss."""

    def __init__(
        self,
        backend: Backend,
        timeout_s: float,
        metrics: CacheMetrics,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.backend = backend
        self.timeout_s = timeout_s
        self.metrics = metrics
        self.breaker = breaker or CircuitBreaker()
        self._connecting: asyncio.Task[None] | None = None

    def warm(self) -> None:
        """Open the backend's connections in the background, unless that is under way.

        Called at start and after every failed call: a call cut off by the timeout loses
        its connection, and one opened inside a lookup would count its setup against the
        lookup's timeout, so a Redis slow but alive could keep the breaker open for good.
        """
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._connect())

    async def close(self) -> None:
        """Stop opening connections and close the backend's."""
        if self._connecting is not None:
            self._connecting.cancel()
        await self.backend.close()

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self.backend.connect()
        except Exception as exc:  # a dead Redis: the next failed call tries again
            log.debug("cache connect failed: %r", exc)

    async def _call(self, op: str, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        """`call()` within the timeout, or `fallback` if the circuit is open or it fails."""
        if not self.breaker.allow():
            return fallback
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await call()
        except asyncio.CancelledError:
            self.breaker.release()  # a probe cut short must not hold the circuit open
            raise
        except Exception as exc:  # any backend failure degrades to "no cache"
            self.metrics.backend_errors.labels(op).inc()
            self.breaker.record_failure()
            self.metrics.breaker_open.set(int(self.breaker.is_open))
            log.debug("cache %s failed: %r", op, exc)
            self.warm()
            return fallback
        self.breaker.record_success()
        self.metrics.breaker_open.set(0)
        return result

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """Values of `keys`; all None when the backend is unavailable."""
        return await self._call("get", lambda: self.backend.get_many(keys), [None] * len(keys))

    async def set_many(self, items: dict[str, bytes]) -> None:
        """Store `items` if the backend is available; a failure only loses the write."""

        async def write() -> bool:
            await self.backend.set_many(items)
            return True

        if await self._call("set", write, False):
            self.metrics.stored_bytes.inc(sum(len(k) + len(v) for k, v in items.items()))

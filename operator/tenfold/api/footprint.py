"""CPU and memory of the pods' parts besides Triton: the one home of those requests.

The plan renders them into the pods (plan/deployment.py: the cache sidecar; plan/redis.py:
the managed Redis) and the budget prices them (api/cost.py), so what runs and what the cap
pays for can never disagree.

This module imports no other api model at run time (cost.py imports it, spec.py imports
cost.py), so the spec type is named for annotations only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenfold.api.enums import CacheMode

if TYPE_CHECKING:
    from tenfold.api.spec import InferenceServiceSpec

MI = 1024 * 1024
# The cache sidecar's own footprint besides its in-memory LRU, whose maxBytes counts each
# entry's per-entry overhead too. Measured (tests/e2e/test_cache_memory.py): 68 MiB idle,
# and a peak of 75 MiB above maxBytes when filled to 256 MiB and churned by as many
# evictions again.
SIDECAR_OVERHEAD_BYTES = 128 * MI
# Room for Redis itself, client buffers and the copy-on-write of AOF rewrites.
REDIS_OVERHEAD_BYTES = 128 * MI
# Both mostly wait on the network: a tenth of a core each.
SIDECAR_CPU_MILLICORES = 100
REDIS_CPU_MILLICORES = 100


@dataclass(frozen=True)
class Footprint:
    """What one container requests: millicores and memory (whole MiB), limited to that memory."""

    millicores: int
    memory_bytes: int

    @classmethod
    def of(cls, millicores: int, memory_bytes: int) -> Footprint:
        """Memory rounded up to whole MiB, as the container's request states it."""
        return cls(millicores, -(-memory_bytes // MI) * MI)

    @property
    def cpu_cores(self) -> float:
        """Requested vCPUs."""
        return self.millicores / 1000

    def resources(self) -> dict[str, Any]:
        """The container's `resources`: requests, and a memory limit equal to the request
        (no CPU limit: throttling only adds latency)."""
        memory = f"{self.memory_bytes // MI}Mi"
        return {
            "requests": {"cpu": f"{self.millicores}m", "memory": memory},
            "limits": {"memory": memory},
        }


def wants_managed_redis(spec: InferenceServiceSpec) -> bool:
    """True when the operator must run a Redis for this service."""
    return spec.cache.mode is CacheMode.REDIS and not spec.cache.redis.url


def cache_sidecar(spec: InferenceServiceSpec) -> Footprint | None:
    """The cache sidecar of each replica (None without one): its LRU's bound in memory mode,
    plus its own overhead."""
    if spec.cache.mode is CacheMode.NONE:
        return None
    held = spec.cache.max_bytes if spec.cache.mode is CacheMode.MEMORY else 0
    return Footprint.of(SIDECAR_CPU_MILLICORES, held + SIDECAR_OVERHEAD_BYTES)


def managed_redis(spec: InferenceServiceSpec) -> Footprint | None:
    """The operator-managed Redis (one pod per service; None without one): maxmemory plus
    Redis's own overhead."""
    if not wants_managed_redis(spec):
        return None
    return Footprint.of(REDIS_CPU_MILLICORES, spec.cache.max_bytes + REDIS_OVERHEAD_BYTES)

"""The sidecar's Prometheus metrics, in a registry of their own."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Hits answer in well under a millisecond; misses take Triton's time: cover both ranges.
LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
)  # fmt: skip


class CacheMetrics:
    """Counters, gauges and histograms of one sidecar process.

    `path` is `whole` (a whole request is one entry) or `item` (one text of a batched
    embedding request); `result` is `hit` (no Triton call), `miss` (Triton called) or
    `bypass` (not cacheable, passed through).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.hits = Counter(
            "tenfold_cache_hits", "Lookups answered by the cache.", ["path"], registry=r
        )
        self.misses = Counter(
            "tenfold_cache_misses", "Lookups not in the cache.", ["path"], registry=r
        )
        self.hit_ratio = Gauge(
            "tenfold_cache_hit_ratio", "Hits over lookups since start, both paths.", registry=r
        )
        self.stored_bytes = Counter(
            "tenfold_cache_stored_bytes", "Bytes written to the cache backend.", registry=r
        )
        self.resident_bytes = Gauge(
            "tenfold_cache_resident_bytes", "Bytes held by the in-memory backend.", registry=r
        )
        self.latency = Histogram(
            "tenfold_cache_request_duration_seconds",
            "Inference request latency through the sidecar.",
            ["result"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_errors = Counter(
            "tenfold_cache_backend_errors", "Failed or timed-out backend calls.", ["op"], registry=r
        )
        self.upstream_errors = Counter(
            "tenfold_cache_upstream_errors", "Requests Triton could not be reached for.", registry=r
        )
        self.breaker_open = Gauge(
            "tenfold_cache_breaker_open", "1 while backend calls are skipped.", registry=r
        )
        self._hits = 0
        self._lookups = 0

    def record_lookups(self, path: str, hits: int, misses: int) -> None:
        """Count hits and misses of one request and refresh the hit ratio."""
        if hits:
            self.hits.labels(path).inc(hits)
        if misses:
            self.misses.labels(path).inc(misses)
        self._hits += hits
        self._lookups += hits + misses
        if self._lookups:
            self.hit_ratio.set(self._hits / self._lookups)

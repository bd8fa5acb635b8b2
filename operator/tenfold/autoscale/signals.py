"""Live signals of every service, read from Prometheus with one query per signal.

Each query aggregates `by (namespace, service)`: the labels a ServiceMonitor puts on every
scraped series (the Service is named after the InferenceService). One round of queries thus
serves every InferenceService in the cluster, however many there are.

The PromQL builders are pure; `PrometheusSignalSource` is the only I/O here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

ServiceKey = tuple[str, str]
"""(namespace, service name); the service name is the InferenceService name."""

GROUP_LABELS = ("namespace", "service")

# Triton's metric names (docs: user_guide/metrics.md). The summary needs
# `--metrics-config summary_latencies=true`; without it p95 is simply absent.
TRITON_SUCCESS = "nv_inference_request_success"
TRITON_QUEUE_US = "nv_inference_queue_duration_us"
TRITON_PENDING = "nv_inference_pending_request_count"
TRITON_LATENCY_SUMMARY_US = "nv_inference_request_summary_us"
TRITON_GPU_UTILIZATION = "nv_gpu_utilization"
# The cache sidecar's counters (tenfold-runtime cache).
CACHE_HITS = "tenfold_cache_hits_total"
CACHE_MISSES = "tenfold_cache_misses_total"


class SignalsUnavailableError(RuntimeError):
    """Prometheus could not be read; the message says why."""


@dataclass(frozen=True)
class ServiceSignals:
    """What one service looked like at `observed_at` (Unix seconds of the newest sample)."""

    observed_at: float
    request_rate: float
    queue_time_ms: float | None = None
    pending_requests: float | None = None
    pending_growth: float | None = None
    """Requests/s by which the queues grow: arrivals beyond what the replicas serve."""
    p95_latency_ms: float | None = None
    cache_hit_ratio: float | None = None
    gpu_utilization: float | None = None
    infinite: tuple[str, ...] = ()
    """Signals Prometheus answered with ±Inf: none of them is trusted, and the count holds."""


def by_service(expression: str) -> str:
    """Wrap an expression in the grouping every signal query shares."""
    return f"sum by ({', '.join(GROUP_LABELS)}) ({expression})"


def request_rate_query(window: str) -> str:
    """Successful requests per second over the window, summed over pods and models."""
    return by_service(f"rate({TRITON_SUCCESS}[{window}])")


def queue_time_query(window: str) -> str:
    """Mean queue time per request in ms: Triton's HPA example formula, per service.

    `increase` replaces the example's `delta` because both series are counters: `increase`
    survives a Triton restart (counter reset) where `delta` would go negative.
    """
    queued = by_service(f"increase({TRITON_QUEUE_US}[{window}])")
    served = by_service(f"increase({TRITON_SUCCESS}[{window}])")
    return f"({queued}) / (1 + {served}) / 1000"


def pending_query() -> str:
    """Requests waiting in Triton's queues right now, summed over pods and models."""
    return by_service(TRITON_PENDING)


def pending_growth_query(window: str) -> str:
    """How fast the pending requests grow, per second (least squares over the window).

    Served requests (the success counter) stop at the ready replicas' capacity; what arrives
    beyond it piles up here, so rate + growth estimates demand even while saturated.
    """
    return by_service(f"deriv({TRITON_PENDING}[{window}])")


def p95_latency_query() -> str:
    """The worst pod's p95 request latency in ms, from Triton's latency summary."""
    labels = ", ".join(GROUP_LABELS)
    return f'max by ({labels}) ({TRITON_LATENCY_SUMMARY_US}{{quantile="0.95"}}) / 1000'


def cache_hit_ratio_query(window: str) -> str:
    """Share of cache sidecar lookups that hit, over the window; absent without lookups
    (the `> 0` filter drops the series instead of reporting a 0 % hit ratio)."""
    hits = by_service(f"increase({CACHE_HITS}[{window}])")
    misses = by_service(f"increase({CACHE_MISSES}[{window}])")
    return f"({hits}) / (({hits}) + ({misses}) > 0)"


def gpu_utilization_query() -> str:
    """Mean GPU utilization (0..1) of the service's pods, where DCGM/Triton exports it."""
    return f"avg by ({', '.join(GROUP_LABELS)}) ({TRITON_GPU_UTILIZATION})"


def freshness_query() -> str:
    """Unix time of the newest success-counter sample per service (staleness check)."""
    return f"max by ({', '.join(GROUP_LABELS)}) (timestamp({TRITON_SUCCESS}))"


def signal_queries(window: str) -> dict[str, str]:
    """Every query of one round, keyed by the ServiceSignals field it fills."""
    return {
        "observed_at": freshness_query(),
        "request_rate": request_rate_query(window),
        "queue_time_ms": queue_time_query(window),
        "pending_requests": pending_query(),
        "pending_growth": pending_growth_query(window),
        "p95_latency_ms": p95_latency_query(),
        "cache_hit_ratio": cache_hit_ratio_query(window),
        "gpu_utilization": gpu_utilization_query(),
    }


def parse_vector(result: Iterable[Mapping[str, Any]]) -> dict[ServiceKey, float]:
    """Turn an instant-vector result into {(namespace, service): value}, dropping NaN (which
    Prometheus answers where there is no data, e.g. a latency summary with no requests).
    ±Inf is kept for `assemble` to refuse.

    Series without both grouping labels are dropped: they cannot be tied to a service.
    """
    values: dict[ServiceKey, float] = {}
    for sample in result:
        metric = sample.get("metric", {})
        if not all(label in metric for label in GROUP_LABELS):
            continue
        value = float(sample["value"][1])
        if not math.isnan(value):
            values[(metric["namespace"], metric["service"])] = value
    return values


def assemble(vectors: Mapping[str, Mapping[ServiceKey, float]]) -> dict[ServiceKey, ServiceSignals]:
    """Join the per-signal vectors into one ServiceSignals per service.

    A service is present only if both its freshness timestamp and its request rate are: the
    success counter is the signal every Triton exports, so without it nothing is known.
    """
    observed, rates = vectors["observed_at"], vectors["request_rate"]
    optional = [name for name in vectors if name not in ("observed_at", "request_rate")]

    def finite(value: float | None) -> float | None:
        return value if value is None or math.isfinite(value) else None

    assembled = {}
    for key in observed.keys() & rates.keys():
        values = {name: vectors[name].get(key) for name in vectors}
        assembled[key] = ServiceSignals(
            observed_at=finite(observed[key]) or 0.0,
            request_rate=finite(rates[key]) or 0.0,
            **{name: finite(values[name]) for name in optional},
            infinite=tuple(n for n, v in values.items() if v is not None and math.isinf(v)),
        )
    return assembled


@dataclass(frozen=True)
class Unavailable:
    """Why a service has no usable signals: a CamelCase reason and a message."""

    reason: str
    message: str


# What changes on every try in a transport error's text: urllib3 names the connection
# object's address and the URL, whose query carries the evaluation time.
_CHANGING_PARTS = (
    (re.compile(r" (object )?at 0x[0-9a-fA-F]+"), ""),
    (re.compile(r"url: \S+"), "url: (the query)"),
)


def steady_text(error: str) -> str:
    """An error message without what changes on every try, so one lasting outage is one
    status (and one status write), not a write per tick."""
    for pattern, replacement in _CHANGING_PARTS:
        error = pattern.sub(replacement, error)
    return error


def availability(
    signals: ServiceSignals | None, fetch_error: str | None, now: float, max_age_seconds: float
) -> Unavailable | None:
    """None when the signals are usable; otherwise why not (Prometheus down, a signal that is
    ±Inf, no series for the service, or its newest sample older than max_age_seconds)."""
    if fetch_error is not None:
        return Unavailable("PrometheusUnreachable", fetch_error)
    if signals is not None and signals.infinite:
        return Unavailable(
            "InfiniteSamples",
            f"Prometheus answered +Inf or -Inf for {', '.join(signals.infinite)}; no decision "
            "rests on an infinite signal, so the replicas hold (as for NaN)",
        )
    if signals is None:
        return Unavailable(
            "NoSamples",
            "Prometheus has no Triton samples labelled with this namespace and "
            "service (is the ServiceMonitor or scrape config in place?)",
        )
    age = now - signals.observed_at
    if age > max_age_seconds:
        # The sample's own time, not its age: the same stale sample gives the same message
        # on every tick, so the status is not rewritten each tick while it lasts.
        taken = datetime.fromtimestamp(signals.observed_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Unavailable(
            "StaleSamples",
            f"newest sample is from {taken}, older than the bound of {max_age_seconds:g} s",
        )
    return None


Query = Callable[[str, float], list[dict[str, Any]]]


def prometheus_session(ca_file: str | None) -> requests.Session:
    """The HTTP session of the Prometheus client: TLS certificates always verified, against
    `ca_file` when given (a private CA) and the system's trust store otherwise; there is no
    setting that turns verification off.

    No retries: the caller's next tick is the retry, and a dead Prometheus must be reported
    within one tick rather than after urllib3's backoff.
    """
    session = requests.Session()
    session.verify = ca_file or True
    adapter = HTTPAdapter(max_retries=Retry(total=0))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class PrometheusSignalSource:
    """Reads every service's signals from one Prometheus, one query per signal."""

    def __init__(
        self,
        url: str,
        window: str = "15s",
        timeout_seconds: float = 3.0,
        query: Query | None = None,
        ca_file: str | None = None,
    ) -> None:
        """`window` is the rate window (at least two scrape intervals); `ca_file` is a CA
        bundle to trust for an https URL (None: the system's); `query` replaces the HTTP
        client in tests of the assembly logic."""
        self.url = url
        self.window = window
        self._query = query or self._client_query(url, timeout_seconds, ca_file)

    @staticmethod
    def _client_query(url: str, timeout_seconds: float, ca_file: str | None) -> Query:
        # PrometheusConnect mounts its own adapter on the URL, with three retries and a
        # backoff (seven seconds a tick against a Prometheus that is down) unless told.
        client = PrometheusConnect(
            url=url, session=prometheus_session(ca_file), retry=Retry(total=0)
        )

        def run(promql: str, at: float) -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = client.custom_query(
                promql, params={"time": at}, timeout=timeout_seconds
            )
            return result

        return run

    def fetch_all(self, at: float) -> dict[ServiceKey, ServiceSignals]:
        """Every service's signals, all queries evaluated at the same instant `at`.

        Raises SignalsUnavailableError when Prometheus cannot answer a query.
        """
        vectors = {}
        for name, promql in signal_queries(self.window).items():
            try:
                vectors[name] = parse_vector(self._query(promql, at))
            except Exception as error:  # any transport or API failure means "unavailable"
                raise SignalsUnavailableError(
                    f"Prometheus at {self.url} did not answer the {name} query: "
                    f"{steady_text(str(error))}"
                ) from error
        return assemble(vectors)

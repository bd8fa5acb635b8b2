"""The operator's own Prometheus metrics: reconcile outcomes and per-service cost.

Served on the configured metrics port (TENFOLD_METRICS_PORT, 9102 by default), the port the
Helm chart's Service and ServiceMonitor scrape. Triton and the cache sidecar export serving
metrics themselves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter(
    "tenfold_operator_reconcile_total",
    "Plan applications by outcome (applied, invalid, retry, repaired: after drift).",
    ["result"],
)
COST_PER_HOUR = Gauge(
    "tenfold_service_cost_per_hour_usd",
    "USD per hour the service's running replicas cost.",
    ["namespace", "name"],
)
BUDGET_PER_HOUR = Gauge(
    "tenfold_service_budget_per_hour_usd",
    "The service's hourly cost cap (absent without a budget).",
    ["namespace", "name"],
)
STATUS_TICK_SECONDS = Histogram(
    "tenfold_operator_status_tick_seconds",
    "How long one service's status tick took (observe, autoscale, resync check), from the "
    "start of its round: the ticks of a round run concurrently.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STATUS_TICK_PERIOD_SECONDS = Histogram(
    "tenfold_operator_status_tick_period_seconds",
    "Seconds between the starts of two status ticks of one service: the tick interval "
    "while ticks keep up, more when they fall behind.",
    buckets=(0.5, 1, 2, 5, 5.5, 6, 7.5, 10, 15, 30, 60, 120),
)
STATUS_ROUND_SECONDS = Histogram(
    "tenfold_operator_status_round_seconds",
    "How long one round of the status loop took: every service's tick, run concurrently "
    "(a round longer than the tick interval skips the next).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 30),
)
REPLICAS = Gauge("tenfold_service_replicas", "Replicas running.", ["namespace", "name"])
READY_REPLICAS = Gauge("tenfold_service_ready_replicas", "Replicas ready.", ["namespace", "name"])


def serve(port: int) -> None:
    """Start the metrics endpoint in a background thread."""
    start_http_server(port)


def record_status(namespace: str, name: str, status: Mapping[str, Any], cap: float | None) -> None:
    """Export the cost and replica figures of one service's status."""
    COST_PER_HOUR.labels(namespace, name).set(float(status.get("costPerHour") or 0.0))
    REPLICAS.labels(namespace, name).set(int(status.get("replicas") or 0))
    READY_REPLICAS.labels(namespace, name).set(int(status.get("readyReplicas") or 0))
    if cap is not None:
        BUDGET_PER_HOUR.labels(namespace, name).set(cap)


_TICK_STARTS: dict[tuple[str, str], float] = {}


@contextmanager
def timed_tick(namespace: str, name: str) -> Iterator[None]:
    """Observe one status tick of a service: its duration, and the period since the
    service's previous tick began (none for its first)."""
    started = time.monotonic()
    previous = _TICK_STARTS.get((namespace, name))
    if previous is not None:
        STATUS_TICK_PERIOD_SECONDS.observe(started - previous)
    _TICK_STARTS[(namespace, name)] = started
    try:
        yield
    finally:
        STATUS_TICK_SECONDS.observe(time.monotonic() - started)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted service's series so dashboards do not show it forever."""
    _TICK_STARTS.pop((namespace, name), None)
    for gauge in (COST_PER_HOUR, BUDGET_PER_HOUR, REPLICAS, READY_REPLICAS):
        try:
            gauge.remove(namespace, name)
        except KeyError:
            pass

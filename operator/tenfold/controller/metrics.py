"""The operator's own Prometheus metrics: reconcile outcomes and per-service cost.

Served on the configured metrics port (TENFOLD_METRICS_PORT, 9102 by default), the port the
Helm chart's Service and ServiceMonitor scrape. Triton and the cache sidecar export serving
metrics themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, start_http_server

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


def forget(namespace: str, name: str) -> None:
    """Drop a deleted service's series so dashboards do not show it forever."""
    for gauge in (COST_PER_HOUR, BUDGET_PER_HOUR, REPLICAS, READY_REPLICAS):
        try:
            gauge.remove(namespace, name)
        except KeyError:
            pass

"""The prometheus-operator ServiceMonitor `<name>` (monitoring.serviceMonitor only)."""

from __future__ import annotations

from typing import Any

from tenfold.api.enums import CacheMode
from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan.labels import common_labels, object_meta, selector_labels


def build_service_monitor(
    name: str, namespace: str, spec: InferenceServiceSpec
) -> dict[str, Any] | None:
    """Scrape Triton's metrics (and the sidecar's); None when monitoring is off."""
    if not spec.monitoring.service_monitor:
        return None
    interval = f"{spec.monitoring.scrape_interval_seconds}s"
    ports = ["metrics"]
    if spec.cache.mode is not CacheMode.NONE:
        ports.append("cache-metrics")
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": object_meta(name, namespace, common_labels(name, spec)),
        "spec": {
            "selector": {"matchLabels": selector_labels(name)},
            "endpoints": [
                {"port": port, "path": "/metrics", "interval": interval} for port in ports
            ],
        },
    }

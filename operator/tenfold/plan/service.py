"""The Service `<name>`: Triton's ports, plus the cache sidecar's when it runs."""

from __future__ import annotations

from typing import Any

from tenfold.api.enums import CacheMode
from tenfold.api.spec import InferenceServiceSpec
from tenfold.constants import (
    CACHE_HTTP_PORT,
    CACHE_METRICS_PORT,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
)
from tenfold.plan.labels import common_labels, object_meta, selector_labels


def service_ports(spec: InferenceServiceSpec) -> list[dict[str, Any]]:
    """Named ports; their names are what the ServiceMonitor and clients refer to."""
    ports = [
        ("http", TRITON_HTTP_PORT),
        ("grpc", TRITON_GRPC_PORT),
        ("metrics", TRITON_METRICS_PORT),
    ]
    if spec.cache.mode is not CacheMode.NONE:
        ports += [("cache-http", CACHE_HTTP_PORT), ("cache-metrics", CACHE_METRICS_PORT)]
    return [
        {"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}
        for port_name, port in ports
    ]


def build_service(name: str, namespace: str, spec: InferenceServiceSpec) -> dict[str, Any]:
    """ClusterIP Service `<name>` selecting the inference pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(name, namespace, common_labels(name, spec)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name),
            "ports": service_ports(spec),
        },
    }

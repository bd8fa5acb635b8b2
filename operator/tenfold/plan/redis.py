"""The operator-managed Redis behind the cache sidecar (cache.mode redis without a URL)."""

from __future__ import annotations

from typing import Any

from tenfold.api.enums import CacheMode
from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan.labels import object_meta, redis_labels, redis_name, redis_selector_labels
from tenfold.plan.security import (
    container_security_context,
    pod_security_context,
    tmp_mount,
    tmp_volume,
)

# The default managed Redis; the operator's TENFOLD_REDIS_IMAGE (chart: redisImage) wins.
REDIS_IMAGE = "redis:7.4"
REDIS_PORT = 6379
# The official image's `redis` user.
REDIS_UID = 999
DATA_VOLUME = "data"
_MI = 1024 * 1024
# Room for Redis itself, client buffers and the copy-on-write of AOF rewrites.
_OVERHEAD_BYTES = 128 * _MI


def wants_managed_redis(spec: InferenceServiceSpec) -> bool:
    """True when the operator must run a Redis for this service."""
    return spec.cache.mode is CacheMode.REDIS and not spec.cache.redis.url


def cache_redis_url(name: str, spec: InferenceServiceSpec) -> str | None:
    """Redis URL the sidecar uses: the user's, the managed one, or None (no Redis)."""
    if spec.cache.mode is not CacheMode.REDIS:
        return None
    if spec.cache.redis.url:
        return spec.cache.redis.url
    # Same namespace as the pods, so the short Service name resolves.
    return f"redis://{redis_name(name)}:{REDIS_PORT}/0"


def build_redis_service(name: str, namespace: str, spec: InferenceServiceSpec) -> dict[str, Any]:
    """ClusterIP Service `<name>-redis`; a stable virtual IP survives Redis pod restarts."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(redis_name(name), namespace, redis_labels(name)),
        "spec": {
            "type": "ClusterIP",
            "selector": redis_selector_labels(name),
            "ports": [
                {"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}
            ],
        },
    }


def build_redis_statefulset(
    name: str, namespace: str, spec: InferenceServiceSpec, image: str = REDIS_IMAGE
) -> dict[str, Any]:
    """StatefulSet `<name>-redis`: one Redis with appendonly persistence on its own volume."""
    labels = redis_labels(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(redis_name(name), namespace, labels),
        "spec": {
            "replicas": 1,
            "serviceName": redis_name(name),
            "selector": {"matchLabels": redis_selector_labels(name)},
            # The cache is disposable: its volume goes with the service.
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Delete",
                "whenScaled": "Delete",
            },
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(REDIS_UID),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [_redis_container(spec, image)],
                    "volumes": [tmp_volume("64Mi")],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": DATA_VOLUME, "labels": dict(labels)},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": spec.cache.redis.storage}},
                    },
                }
            ],
        },
    }


def redis_args(spec: InferenceServiceSpec) -> list[str]:
    """redis-server flags: AOF persistence, an LRU memory bound, reachable from the pods."""
    return [
        *("--port", str(REDIS_PORT)),
        *("--dir", "/data"),
        *("--appendonly", "yes"),
        *("--appendfsync", "everysec"),
        *("--maxmemory", str(spec.cache.max_bytes)),
        *("--maxmemory-policy", "allkeys-lru"),
        # Without a bind address Redis 7 refuses non-loopback clients in protected mode.
        *("--protected-mode", "no"),
    ]


def _redis_container(spec: InferenceServiceSpec, image: str) -> dict[str, Any]:
    memory = f"{(spec.cache.max_bytes + _OVERHEAD_BYTES + _MI - 1) // _MI}Mi"
    ping = {"exec": {"command": ["redis-cli", "-p", str(REDIS_PORT), "ping"]}}
    return {
        "name": "redis",
        "image": image,
        "command": ["redis-server"],
        "args": redis_args(spec),
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "readinessProbe": {**ping, "periodSeconds": 5, "timeoutSeconds": 2},
        "livenessProbe": {
            "tcpSocket": {"port": "redis"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": memory},
            "limits": {"memory": memory},
        },
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": DATA_VOLUME, "mountPath": "/data"}, tmp_mount()],
    }

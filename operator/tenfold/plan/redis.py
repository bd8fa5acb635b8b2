"""The operator-managed Redis behind the cache sidecar (cache.mode redis without a URL)."""

from __future__ import annotations

from typing import Any

from tenfold.api.enums import CacheMode
from tenfold.api.footprint import managed_redis, wants_managed_redis
from tenfold.api.sidecar import REDIS_PASSWORD_ENV, REDIS_USERNAME_ENV
from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan.labels import (
    object_meta,
    redis_labels,
    redis_name,
    redis_selector_labels,
    selector_labels,
)
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
AUTH_VOLUME = "auth"
AUTH_DIR = "/etc/tenfold/redis"
# Keys of the managed Redis's Secret: the password (for the sidecar and redis-cli) and a
# config file that sets it, so it never appears in redis-server's argv.
PASSWORD_KEY = "password"
USERNAME_KEY = "username"
CONFIG_KEY = "auth.conf"


def redis_auth_secret_name(name: str) -> str:
    """The Secret holding the managed Redis's generated password."""
    return f"{redis_name(name)}-auth"


def build_redis_auth_secret(name: str, namespace: str, password: str) -> dict[str, Any]:
    """The managed Redis's Secret. The controller creates it once, with a password it
    generates, and never reads or rewrites it; it goes with the InferenceService."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(redis_auth_secret_name(name), namespace, redis_labels(name)),
        "type": "Opaque",
        "stringData": {PASSWORD_KEY: password, CONFIG_KEY: f"requirepass {password}\n"},
    }


def redis_credentials_env(name: str, spec: InferenceServiceSpec) -> list[dict[str, Any]]:
    """The sidecar's Redis login, from the managed Redis's Secret or the user's
    `cache.redis.credentialsSecret`; none for an external Redis without one."""
    if not wants_managed_redis(spec) and not spec.cache.redis.credentials_secret:
        return []
    secret = spec.cache.redis.credentials_secret or redis_auth_secret_name(name)

    def from_secret(variable: str, key: str, optional: bool) -> dict[str, Any]:
        ref = {"name": secret, "key": key, "optional": optional}
        return {"name": variable, "valueFrom": {"secretKeyRef": ref}}

    env = [from_secret(REDIS_PASSWORD_ENV, PASSWORD_KEY, False)]
    if spec.cache.redis.credentials_secret:
        env.append(from_secret(REDIS_USERNAME_ENV, USERNAME_KEY, True))
    return env


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


def build_redis_network_policy(name: str, namespace: str) -> dict[str, Any]:
    """NetworkPolicy `<name>-redis`: only the service's own serving pods reach its Redis,
    on the Redis port; every other pod, of any namespace, is refused (where the cluster's
    network enforces NetworkPolicies)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(redis_name(name), namespace, redis_labels(name)),
        "spec": {
            "podSelector": {"matchLabels": redis_selector_labels(name)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": selector_labels(name)}}],
                    "ports": [{"protocol": "TCP", "port": REDIS_PORT}],
                }
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
                    "containers": [_redis_container(name, spec, image)],
                    "volumes": [
                        tmp_volume("64Mi"),
                        {
                            "name": AUTH_VOLUME,
                            "secret": {
                                "secretName": redis_auth_secret_name(name),
                                "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
                                # Read by the pod's group (its fsGroup), nobody else.
                                "defaultMode": 0o440,
                            },
                        },
                    ],
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
    """redis-server's arguments: the config file that sets the password, then AOF
    persistence and an LRU memory bound. With a password, Redis's protected mode lets the
    pods in (it refuses remote clients only when no password is set)."""
    return [
        f"{AUTH_DIR}/{CONFIG_KEY}",
        *("--port", str(REDIS_PORT)),
        *("--dir", "/data"),
        *("--appendonly", "yes"),
        *("--appendfsync", "everysec"),
        *("--maxmemory", str(spec.cache.max_bytes)),
        *("--maxmemory-policy", "allkeys-lru"),
    ]


def _redis_container(name: str, spec: InferenceServiceSpec, image: str) -> dict[str, Any]:
    footprint = managed_redis(spec)
    assert footprint is not None, "a managed Redis for a spec that wants none"
    ping = {"exec": {"command": ["redis-cli", "-p", str(REDIS_PORT), "ping"]}}
    return {
        "name": "redis",
        "image": image,
        "command": ["redis-server"],
        "args": redis_args(spec),
        # redis-cli (the readiness probe) reads its password from REDISCLI_AUTH.
        "env": [
            {
                "name": "REDISCLI_AUTH",
                "valueFrom": {
                    "secretKeyRef": {"name": redis_auth_secret_name(name), "key": PASSWORD_KEY}
                },
            }
        ],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "readinessProbe": {**ping, "periodSeconds": 5, "timeoutSeconds": 2},
        "livenessProbe": {
            "tcpSocket": {"port": "redis"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        # Priced once per service (api/cost.py), so the budget pays for what runs.
        "resources": footprint.resources(),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": "/data"},
            {"name": AUTH_VOLUME, "mountPath": AUTH_DIR, "readOnly": True},
            tmp_mount(),
        ],
    }

"""plan: pure builders from an InferenceService spec to the Kubernetes objects it needs.

Nothing here talks to a cluster; the same input gives byte-identical output.
"""

from __future__ import annotations

from typing import Any

from tenfold.api.catalog import GpuCatalog, load_catalog
from tenfold.api.spec import InferenceServiceSpec
from tenfold.constants import LABEL_COMPONENT
from tenfold.plan.configmap import build_config_data, build_config_map, config_hash
from tenfold.plan.deployment import DEFAULT_RUNTIME_IMAGE, build_deployment
from tenfold.plan.labels import COMPONENT_INFERENCE, child_selector, pod_selector, with_owner
from tenfold.plan.pdb import build_pdb
from tenfold.plan.prepare_spec import build_prepare_spec
from tenfold.plan.redis import (
    REDIS_IMAGE,
    build_redis_network_policy,
    build_redis_service,
    build_redis_statefulset,
    wants_managed_redis,
)
from tenfold.plan.render import render_yaml
from tenfold.plan.service import build_service
from tenfold.plan.service_monitor import build_service_monitor
from tenfold.plan.triton_config import build_triton_config

__all__ = [
    "CHILD_KINDS",
    "DEFAULT_RUNTIME_IMAGE",
    "REDIS_IMAGE",
    "apply_stages",
    "build_config_data",
    "build_plan",
    "build_prepare_spec",
    "build_triton_config",
    "child_selector",
    "config_hash",
    "pod_selector",
    "render_yaml",
]

# Every (apiVersion, kind) build_plan may return; the controller prunes only these kinds.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
)


# What no serving pod needs before it starts: applied together with the Deployment, not
# ahead of it. The pods never call their own Service, and a Service's creation waits on the
# apiserver's ClusterIP allocation: 2 s at the median in a burst of 200 creations, where
# each other kind took 0.2 s (docs/reliability.md, scale).
BESIDE_THE_PODS = frozenset({"Service", "Deployment", "PodDisruptionBudget", "ServiceMonitor"})


def apply_stages(objects: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The plan (build_plan's order) in stages, each applied once the one before it was,
    the objects of one stage at once: first what the serving pods mount or call (their
    ConfigMap, a managed Redis), then the Deployment with what only its clients read."""

    def beside_the_pods(obj: dict[str, Any]) -> bool:
        component = obj["metadata"].get("labels", {}).get(LABEL_COMPONENT)
        return obj["kind"] in BESIDE_THE_PODS and component == COMPONENT_INFERENCE

    first = [obj for obj in objects if not beside_the_pods(obj)]
    return [stage for stage in (first, [o for o in objects if beside_the_pods(o)]) if stage]


def build_plan(
    name: str,
    namespace: str,
    spec: InferenceServiceSpec,
    *,
    replicas: int,
    surge: int = 1,
    uid: str | None = None,
    catalog: GpuCatalog | None = None,
    default_image: str = DEFAULT_RUNTIME_IMAGE,
    redis_image: str = REDIS_IMAGE,
) -> list[dict[str, Any]]:
    """Every object of InferenceService `name`, in apply order.

    Order: ConfigMap, [Redis NetworkPolicy, Service, StatefulSet], Service, Deployment,
    PodDisruptionBudget, [ServiceMonitor]; what the pods mount or call comes first.
    With `uid`, each object is owned by the InferenceService. `surge`: the pods a rollout
    may start beside `replicas` (autoscale.limits.rollout_surge: 0 at the budget's cap).
    """
    catalog = catalog or load_catalog()
    config_map = build_config_map(name, namespace, spec)
    objects = [config_map]
    if wants_managed_redis(spec):
        objects += [
            build_redis_network_policy(name, namespace),
            build_redis_service(name, namespace, spec),
            build_redis_statefulset(name, namespace, spec, redis_image),
        ]
    objects += [
        build_service(name, namespace, spec),
        build_deployment(
            name,
            namespace,
            spec,
            replicas=replicas,
            surge=surge,
            catalog=catalog,
            hash_of_config=config_hash(config_map["data"]),
            default_image=default_image,
        ),
        build_pdb(name, namespace, spec),
    ]
    monitor = build_service_monitor(name, namespace, spec)
    if monitor is not None:
        objects.append(monitor)
    return [with_owner(obj, name, uid) for obj in objects]

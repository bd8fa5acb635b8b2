"""Reconcile one InferenceService: plan, apply, and report.

The actions call these functions; these functions decide nothing that the pure layers (api,
plan, autoscale.limits, controller.conditions) do not already decide. Side effects go through
apply.py and observe.py.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Generic, TypeVar

from tenfold.api.catalog import load_catalog
from tenfold.api.cost import ClusterPrices, parse_cluster_prices, service_cost
from tenfold.api.resource import InferenceService, parse_inference_service
from tenfold.autoscale.limits import replicas_to_run
from tenfold.controller import apply, conditions, observe
from tenfold.controller.config import OperatorConfig
from tenfold.plan import apply_stages, build_plan, pod_selector
from tenfold.plan.labels import with_owner
from tenfold.plan.redis import build_redis_auth_secret, wants_managed_redis

T = TypeVar("T")


def now_rfc3339() -> str:
    """Current time as Kubernetes writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Expiring(Generic[T]):
    """One value, fetched again only when older than `ttl` seconds (thread-safe).

    Handlers run on kopf's thread pool, so the lock also keeps concurrent callers from
    fetching the same value at once.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        # (value, fetched at) in one attribute, so that `fresh` reads both without the lock.
        self._state: tuple[T | None, float] = (None, -math.inf)

    @property
    def held(self) -> T | None:
        """The value last fetched, fresh or not (None before the first fetch)."""
        return self._state[0]

    def fresh(self) -> T | None:
        """The held value while fresh, else None: no fetch, no lock, no thread needed."""
        value, fetched_at = self._state
        return value if self._clock() - fetched_at < self.ttl else None

    def get(self, fetch: Callable[[], T]) -> T:
        """The held value while fresh, else `fetch()` (an error is raised, not held)."""
        with self._lock:
            value, fetched_at = self._state
            now = self._clock()
            if value is None or now - fetched_at >= self.ttl:
                value = fetch()
                self._state = (value, now)
            return value


@cache
def _held_prices(config: OperatorConfig) -> Expiring[ClusterPrices]:
    # The price ConfigMap was read once per service per status tick; once per tick will do.
    return Expiring(config.tick_seconds)


def cluster_prices(config: OperatorConfig) -> ClusterPrices:
    """The cluster's price overrides (the operator's price ConfigMap), at most a tick old.

    A refused price keeps the last good one in force (api.cost.parse_cluster_prices); the
    refusal rides along for the status and an Event.
    """
    held = _held_prices(config)

    def fetch() -> ClusterPrices:
        data = observe.cluster_price_data(config.namespace, config.prices_configmap)
        return parse_cluster_prices(data, held.held.prices if held.held else {})

    return held.get(fetch)


def fresh_cluster_prices(config: OperatorConfig) -> ClusterPrices | None:
    """cluster_prices while the held value is fresh, else None (the caller fetches)."""
    return _held_prices(config).fresh()


# The last version parsed of each service, by uid: one version of an object is one spec,
# and an idle service's status tick finds its version unchanged, so validating its spec again
# (the serving table's rules and all) was a fifth of what the operator did at rest. One
# entry per service (about 11 kB each, traced): keyed by version, the entries of every
# status write piled up until the bound.
PARSED_KEPT = 4096
_PARSED: dict[str, tuple[str, InferenceService]] = {}
_PARSED_LOCK = threading.Lock()


def parse_body(body: Mapping[str, Any]) -> InferenceService:
    """The typed service from a kopf body (raises InvalidSpecError; a refusal is not kept)."""
    metadata = body.get("metadata") or {}
    uid, version = metadata.get("uid"), str(metadata.get("resourceVersion") or "")
    kept = _PARSED.get(str(uid)) if uid and version else None
    if kept is not None and kept[0] == version:
        return kept[1]
    service = parse_inference_service(
        {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": dict(metadata),
            "spec": dict(body.get("spec") or {}),
        }
    )
    if uid and version:
        with _PARSED_LOCK:
            _PARSED.pop(str(uid), None)  # re-inserted last: the oldest entries go first
            _PARSED[str(uid)] = (version, service)
            if len(_PARSED) > PARSED_KEPT:
                del _PARSED[next(iter(_PARSED))]
    return service


@dataclass(frozen=True)
class Desired:
    """What one reconcile writes: `create_once` is created when absent and then left alone
    (the managed Redis's Secret, with a fresh password), `objects` are server-side applied
    in order, and `status` holds the status fields the reconcile settles."""

    create_once: list[dict[str, Any]]
    objects: list[dict[str, Any]]
    status: dict[str, Any]


def desired(
    service: InferenceService, config: OperatorConfig, prices: Mapping[str, float]
) -> Desired:
    """Everything a reconcile of `service` writes, decided without touching the cluster;
    `prices` are the cluster's price overrides (cluster_prices)."""
    catalog = load_catalog()
    to_run = replicas_to_run(service.spec, service_cost(service.spec, catalog, prices))
    objects = build_plan(
        service.name,
        service.namespace,
        service.spec,
        replicas=to_run.replicas,
        surge=to_run.surge,
        uid=service.uid,
        catalog=catalog,
        default_image=config.runtime_image,
        redis_image=config.redis_image,
    )
    once: list[dict[str, Any]] = []
    if wants_managed_redis(service.spec):
        secret = build_redis_auth_secret(service.name, service.namespace, secrets.token_urlsafe(32))
        once.append(with_owner(secret, service.name, service.uid))
    status = {
        "observedGeneration": service.generation,
        "desiredReplicas": to_run.replicas,
        "selector": pod_selector(service.name),
        "endpoints": conditions.endpoints(service.name, service.namespace, service.spec),
    }
    return Desired(once, objects, status)


def child_names(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """The plan's children as sorted `Kind/name` (status.children)."""
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)


def recorded_children(body: Mapping[str, Any]) -> list[str] | None:
    """status.children of a service body: what its last applied plan held (None: unknown)."""
    children = (body.get("status") or {}).get("children")
    return list(children) if isinstance(children, list) else None


def needs_prune(previous: Sequence[str] | None, planned: Sequence[str], generation: int) -> bool:
    """Whether a reconcile must look for children its plan no longer holds.

    Only a plan whose children differ from the last applied one can leave any behind; so
    the 7 LISTs of a prune are spent only then, not on every reconcile (they were the main
    apiserver cost per service at scale). With nothing recorded, a first generation has no
    earlier plan (children of a deleted namesake belong to another uid and are the garbage
    collector's); a later one may (an operator that never recorded them), so it prunes.
    """
    if previous is None:
        return generation > 1
    return set(previous) != set(planned)


def reconcile(
    service: InferenceService, config: OperatorConfig, previous_children: Sequence[str] | None
) -> dict[str, Any]:
    """Apply the plan for the service; returns the status fields it settles.

    A Secret created once keeps its first password: Redis and the sidecars already use it.
    `previous_children` is status.children (recorded_children), which decides the prune.
    """
    wanted = desired(service, config, cluster_prices(config).prices)
    for obj in wanted.create_once:
        apply.create_once(obj)
    apply.apply_objects(apply_stages(wanted.objects))
    planned = child_names(wanted.objects)
    if needs_prune(previous_children, planned, service.generation):
        apply.prune_children(service.name, service.namespace, wanted.objects)
    return {**wanted.status, "children": planned}


def observed_status(
    service: InferenceService,
    previous: Mapping[str, Any],
    deployments: Mapping[Any, Any],
    pods: Mapping[Any, Any],
) -> dict[str, Any]:
    """Status fields computed from the running Deployment and pods (the watch-fed indexes
    `deployments` and `pods`, see observe.observed).

    The cost fields are the autoscaler's to write (autoscale.report, from api.cost), in the
    same status patch.
    """
    seen = observe.observed(service.name, service.namespace, deployments, pods)
    desired = int(previous.get("desiredReplicas") or 0)
    before = previous.get("conditions") or []
    updates = conditions.with_refusal(
        conditions.deployment_conditions(seen.deployment, seen.pods, desired),
        previous.get("applyError"),
        before,
    )
    merged = conditions.merge_conditions(before, updates, service.generation, now_rfc3339())
    deployment_status = (seen.deployment or {}).get("status") or {}
    report = conditions.prepared_model(seen.pods)
    return {
        "conditions": merged,
        "replicas": int(deployment_status.get("replicas") or 0),
        "readyReplicas": int(deployment_status.get("readyReplicas") or 0),
        **conditions.precision_status(report),
        "accuracy": conditions.accuracy_status(report),
    }


def invalid_status(message: str, previous: Mapping[str, Any], generation: int) -> dict[str, Any]:
    """Status for a spec the operator refuses to act on."""
    return {
        "observedGeneration": generation,
        "conditions": conditions.merge_conditions(
            previous.get("conditions") or [],
            conditions.invalid_spec_conditions(message),
            generation,
            now_rfc3339(),
        ),
    }


def changed_fields(previous: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """Only the status fields whose values differ, so an idle tick writes nothing."""
    return {key: value for key, value in current.items() if previous.get(key) != value}

"""The actions behind each kopf handler, in kopf's error vocabulary; handlers.py only registers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import kopf
from kubernetes.client.exceptions import ApiException

from tenfold.api.resource import InferenceService, InvalidSpecError
from tenfold.autoscale.loop import Emit, default_autoscaler
from tenfold.controller import conditions, drift, kube, metrics, resync, status_loop
from tenfold.controller import reconcile as rc
from tenfold.controller.apply import MissingApiError
from tenfold.controller.config import OperatorConfig

CONFLICT_RETRY_SECONDS = 2
API_ERROR_RETRY_SECONDS = 10
MISSING_API_RETRY_SECONDS = 60
# A refusal (403 Forbidden, 422 Invalid, ...) does not go away by asking again in seconds:
# it waits for a person (a quota raised, a right granted), or for a new spec, which runs the
# handler at once anyway.
REFUSED_RETRY_SECONDS = 300
# Statuses that mean "this request, as it is, will not be accepted"; everything else (409,
# 429, 5xx, a dropped connection) is transient.
REFUSAL_STATUSES = frozenset({400, 403, 405, 413, 415, 422})

_log = logging.getLogger(__name__)
T = TypeVar("T")
# Generations of the children seen on the watch (controller/drift.py).
_SEEN_CHILDREN = drift.SeenGenerations()


def apiserver_message(error: ApiException) -> str:
    """The apiserver's own words from an error (its Status message), else the HTTP reason."""
    try:
        status = json.loads(error.body or "")
    except (TypeError, ValueError):
        status = None
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    return f"{error.status} {error.reason}"


def retry_for(error: ApiException) -> kopf.TemporaryError:
    """kopf's retry for an apiserver error: soon when transient, slowly when refused."""
    # 409: someone wrote the object between our read and write; the next pass wins.
    delay = CONFLICT_RETRY_SECONDS if error.status == 409 else API_ERROR_RETRY_SECONDS
    if error.status in REFUSAL_STATUSES:
        delay = REFUSED_RETRY_SECONDS
    return kopf.TemporaryError(f"API error {error.status}: {apiserver_message(error)}", delay=delay)


def apply_service(body: Mapping[str, Any], patch: kopf.Patch, config: OperatorConfig) -> None:
    """Validate the body, apply its plan, and record the outcome in the status patch."""
    previous = body.get("status") or {}
    metadata = body.get("metadata") or {}
    generation = int(metadata.get("generation") or 0)
    # kopf runs this after every index's initial listing: the status ticks may read them.
    status_loop.note_handled(str(metadata.get("namespace")), str(metadata.get("name")))
    try:
        service = rc.parse_body(body)
    except InvalidSpecError as invalid:
        metrics.RECONCILES.labels("invalid").inc()
        patch.status.update(rc.invalid_status(str(invalid), previous, generation))
        raise kopf.PermanentError(str(invalid)) from None
    try:
        settled = rc.reconcile(service, config, rc.recorded_children(body))
    except ApiException as error:
        metrics.RECONCILES.labels("retry").inc()
        if error.status in REFUSAL_STATUSES:
            # The status tick turns this into Degraded/ApiRefused (conditions.with_refusal).
            patch.status["applyError"] = apiserver_message(error)[: conditions.MESSAGE_LIMIT]
        raise retry_for(error) from error
    except MissingApiError as missing:
        metrics.RECONCILES.labels("retry").inc()
        patch.status.update(rc.invalid_status(str(missing), previous, generation))
        raise kopf.TemporaryError(str(missing), delay=MISSING_API_RETRY_SECONDS) from None
    metrics.RECONCILES.labels("applied").inc()
    if previous.get("applyError"):
        settled["applyError"] = None  # a merge patch's null removes the field
    patch.status.update(rc.changed_fields(previous, settled))


async def repair_drift(
    event_type: str | None,
    child: Mapping[str, Any],
    services: Mapping[Any, Any],
    config: OperatorConfig,
) -> bool:
    """Apply the owner's plan again when a child was deleted or edited; True if it did.

    `services` is the services_by_name index: (namespace, name) -> a store of one body.
    The check runs in the loop (most events are no drift); only the apply takes a thread.
    """
    if not drift.is_drift(event_type, child, _SEEN_CHILDREN):
        return False
    metadata = child.get("metadata") or {}
    found = list(services.get((metadata.get("namespace"), drift.owner_of(child)), ()))
    owner = found[0] if found else None
    if owner is None or not drift.may_repair(owner):
        return False
    return await asyncio.to_thread(apply_repair, event_type, child, owner, config)


def apply_repair(
    event_type: str | None,
    child: Mapping[str, Any],
    owner: Mapping[str, Any],
    config: OperatorConfig,
) -> bool:
    """Apply the owner's plan again after a drift of `child`; True if it applied.

    Errors are logged, not retried: the next event, spec change or restart applies again.
    """
    metadata = child.get("metadata") or {}
    owner_name = drift.owner_of(child)
    try:
        rc.reconcile(rc.parse_body(owner), config, rc.recorded_children(owner))
        # The children exist again: the resync's held listing must not apply them once more.
        resync.note_applied(str(metadata.get("namespace")), str(owner_name))
    except (InvalidSpecError, ApiException, MissingApiError) as error:
        _log.warning("repairing %s/%s failed: %s", metadata.get("namespace"), owner_name, error)
        return False
    metrics.RECONCILES.labels("repaired").inc()
    _log.info(
        "repaired %s/%s: %s %s %s",
        metadata.get("namespace"),
        owner_name,
        child.get("kind"),
        metadata.get("name"),
        (event_type or "").lower(),
    )
    return True


def missing_at_resync(
    body: Mapping[str, Any], service: InferenceService, held: resync.Listing
) -> list[str]:
    """The always-planned kinds the namespace's periodic listing lacks for the service."""
    present = held.kinds_by_owner.get(service.name, set())
    return drift.missing_after_listing(body, present, held.listed_at)


def repair_missing(
    body: Mapping[str, Any], service: InferenceService, config: OperatorConfig, missing: list[str]
) -> None:
    """Apply the plan again: the resync's listing lacks the `missing` children (resync.py)."""
    rc.reconcile(service, config, rc.recorded_children(body))
    resync.note_applied(service.namespace, service.name)
    metrics.RECONCILES.labels("repaired").inc()
    _log.info("repaired %s/%s: %s missing at the resync", service.namespace, service.name, missing)


# The status ticks' occasional I/O (a namespace's listing every resync, the price ConfigMap
# every tick interval, a repair) runs on a pool of its own. On kopf's pool, which the apply
# handlers share, every tick's hop waited behind a burst of creations applying their plans,
# so the ticks fell behind exactly when many services were new (docs/reliability.md, scale).
_TICK_IO = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tenfold-tick")


async def in_tick_thread(call: Callable[..., T], *args: Any) -> T:
    """`call(*args)` on the ticks' own threads."""
    return await asyncio.get_running_loop().run_in_executor(_TICK_IO, partial(call, *args))


async def refresh_status(
    body: Mapping[str, Any],
    config: OperatorConfig,
    deployments: Mapping[Any, Any],
    pods: Mapping[Any, Any],
    emit: Emit,
) -> dict[str, Any]:
    """Observe the children, let the autoscaler decide; return the status fields that changed.

    One tick does both so that a single patch writes `conditions`: the autoscaler's
    BudgetLimited and MetricsUnavailable are merged into the observed list, not raced.
    `body` is the services index's entry; `emit` posts an Event on the service.
    """
    metadata = body.get("metadata") or {}
    with metrics.timed_tick(str(metadata.get("namespace")), str(metadata.get("name"))):
        return await _refresh_status(body, config, deployments, pods, emit)


async def _refresh_status(
    body: Mapping[str, Any], config: OperatorConfig, deployments: Any, pods: Any, emit: Emit
) -> dict[str, Any]:
    previous = dict(body.get("status") or {})
    try:
        service = rc.parse_body(body)
    except InvalidSpecError:
        return {}  # the apply handler already reported it
    try:
        # Both are held between ticks: most ticks find them fresh and need no thread.
        namespace, age = service.namespace, config.resync_seconds
        held = resync.fresh(namespace, age)
        if held is None:
            held = await in_tick_thread(resync.listing, namespace, age)
        if missing := missing_at_resync(body, service, held):
            await in_tick_thread(repair_missing, body, service, config, missing)
        prices = rc.fresh_cluster_prices(config)
        if prices is None:
            prices = await in_tick_thread(rc.cluster_prices, config)
    except ApiException as error:
        raise retry_for(error) from error  # the status loop rests the service for its delay
    observed = rc.observed_status(service, previous, deployments, pods)
    scaling = await default_autoscaler(config.autoscale, kube.custom()).tick(
        service.namespace,
        service.name,
        service.spec,
        {**previous, **observed},
        emit=emit,
        generation=service.generation,
        cluster_prices=prices.prices,
    )
    current = {**observed, **scaling}
    # A refused cluster price: the last good one stays in force (rc.cluster_prices); the
    # service says so in a condition, and once in an Event naming the key.
    refusal, before = prices.refusal(), previous.get("conditions") or []
    if (warning := conditions.price_refusal_event(refusal, before)) is not None:
        emit("Warning", "PriceRefused", warning)
    current["conditions"] = conditions.merge_conditions(
        current.get("conditions") or before,
        conditions.price_conditions(refusal, before),
        service.generation,
        rc.now_rfc3339(),
    )
    metrics.record_status(
        service.namespace, service.name, {**previous, **current}, service.spec.budget.hourly_cap()
    )
    return rc.changed_fields(previous, current)


def forget_service(namespace: str, name: str, config: OperatorConfig) -> None:
    """A service is gone: drop its metric series, its status ticks and scaling history."""
    metrics.forget(namespace, name)
    status_loop.forget(namespace, name)
    default_autoscaler(config.autoscale, kube.custom()).forget(namespace, name)

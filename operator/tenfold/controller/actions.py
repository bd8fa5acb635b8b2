"""The actions behind each kopf handler, in kopf's error vocabulary; handlers.py only registers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from tenfold.api.resource import InvalidSpecError
from tenfold.autoscale.loop import default_autoscaler
from tenfold.controller import conditions, kube, metrics
from tenfold.controller import reconcile as rc
from tenfold.controller.apply import MissingApiError
from tenfold.controller.config import OperatorConfig

CONFLICT_RETRY_SECONDS = 2
API_ERROR_RETRY_SECONDS = 10
MISSING_API_RETRY_SECONDS = 60


def _retry_for(error: ApiException) -> kopf.TemporaryError:
    # 409: someone wrote the object between our read and write; the next pass wins.
    delay = CONFLICT_RETRY_SECONDS if error.status == 409 else API_ERROR_RETRY_SECONDS
    return kopf.TemporaryError(f"API error {error.status}: {error.reason}", delay=delay)


def apply_service(body: Mapping[str, Any], patch: kopf.Patch, config: OperatorConfig) -> None:
    """Validate the body, apply its plan, and record the outcome in the status patch."""
    previous = body.get("status") or {}
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    try:
        service = rc.parse_body(body)
    except InvalidSpecError as invalid:
        metrics.RECONCILES.labels("invalid").inc()
        patch.status.update(rc.invalid_status(str(invalid), previous, generation))
        raise kopf.PermanentError(str(invalid)) from None
    try:
        settled = rc.reconcile(service, config)
    except ApiException as error:
        metrics.RECONCILES.labels("retry").inc()
        raise _retry_for(error) from error
    except MissingApiError as missing:
        metrics.RECONCILES.labels("retry").inc()
        patch.status.update(rc.invalid_status(str(missing), previous, generation))
        raise kopf.TemporaryError(str(missing), delay=MISSING_API_RETRY_SECONDS) from None
    metrics.RECONCILES.labels("applied").inc()
    patch.status.update(rc.changed_fields(previous, settled))


async def refresh_status(body: kopf.Body, patch: kopf.Patch, config: OperatorConfig) -> None:
    """Observe the children, let the autoscaler decide, write only what changed.

    One timer does both so that a single patch writes `conditions`: the autoscaler's
    BudgetLimited and MetricsUnavailable are merged into the observed list, not raced.
    """
    previous = dict(body.get("status") or {})
    try:
        service = rc.parse_body(body)
    except InvalidSpecError:
        return  # the apply handler already reported it
    try:
        prices = await asyncio.to_thread(rc.cluster_prices, config)
        observed = await asyncio.to_thread(rc.observed_status, service, previous)
    except ApiException as error:
        raise _retry_for(error) from error

    def emit(kind: str, reason: str, message: str) -> None:
        kopf.event(body, type=kind, reason=reason, message=message)

    scaling = await default_autoscaler(config.autoscale, kube.custom()).tick(
        service.namespace,
        service.name,
        body["spec"],
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
    patch.status.update(rc.changed_fields(previous, current))


def forget_service(namespace: str, name: str, config: OperatorConfig) -> None:
    """A service is gone: drop its metric series and its scaling history."""
    metrics.forget(namespace, name)
    default_autoscaler(config.autoscale, kube.custom()).forget(namespace, name)

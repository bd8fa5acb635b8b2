"""One status loop over every InferenceService, instead of a kopf timer per service.

A kopf timer is per object, and kopf blocks the deletion of every object with a timer by a
finalizer of its own: one more write per new service before its create handler may run (a
burst of creations waits for it), a task and a kept copy of the latest body per service,
and a finalizer to remove before any deletion. One loop walks the services index every
tick instead, on a grid (a status at most one tick old), and writes only what changed.

kopf schedules its handlers after every index has its initial listing, and on one peering
replica only. The loop keeps both rules: a service joins it once its spec handler has run in
this process (note_handled: the create or resume handler, which kopf runs after the
listing), and a round runs only where the peering's rule says this replica acts
(leadership.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tenfold import constants
from tenfold.autoscale.loop import Emit
from tenfold.controller import kube, metrics
from tenfold.controller.leadership import Leadership

_log = logging.getLogger(__name__)

# The status writes and Events of a round. A burst of new services writes hundreds at once;
# their answers are the apiserver's pace, not these threads'.
_WRITES = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tenfold-status")
# kopf's own limit on an Event's message.
EVENT_MESSAGE_LIMIT = 1024
# Services whose spec handler has run in this process (namespace, name).
_HANDLED: set[tuple[str, str]] = set()
# Services whose last tick was refused, and the loop time before which they are not ticked
# again (actions.retry_for's delay: slow for a refusal, soon for a transient error).
_RESTING: dict[tuple[str, str], float] = {}

Refresh = Callable[[Mapping[str, Any], Emit], Awaitable[dict[str, Any]]]
"""refresh(service body, emit): the status fields that changed (actions.refresh_status)."""


def note_handled(namespace: str, name: str) -> None:
    """The service's spec handler ran: its status ticks may begin."""
    _HANDLED.add((namespace, name))


def forget(namespace: str, name: str) -> None:
    """The service is gone."""
    _HANDLED.discard((namespace, name))
    _RESTING.pop((namespace, name), None)


def next_round(first: float, now: float, interval: float) -> float:
    """The first instant of the grid `first + k * interval` that is after `now`: a round
    that overran its interval skips the instants it missed instead of running late ones."""
    return first + (math.floor((now - first) / interval) + 1) * interval


def due(
    services: Mapping[Any, Any],
    handled: set[tuple[str, str]],
    resting: Mapping[tuple[str, str], float],
    now: float,
) -> Iterator[dict[str, Any]]:
    """The services index's bodies that a round refreshes: handled in this process, not
    resting after a refusal until after `now`, and not being deleted. Entries of services
    gone from the index are dropped from `handled`."""
    present = set()
    for (namespace, name), store in list(services.items()):
        present.add((namespace, name))
        found = list(store)
        if not found or (namespace, name) not in handled:
            continue
        if resting.get((namespace, name), now) > now:
            continue
        body = found[0]
        if not (body.get("metadata") or {}).get("deletionTimestamp"):
            yield body
    handled.intersection_update(present)


def write_status(body: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
    """Merge-patch the changed status fields (None removes one); a service deleted since
    the round began is not an error."""
    metadata = body.get("metadata") or {}
    try:
        kube.custom().patch_namespaced_custom_object_status(
            constants.API_GROUP,
            constants.API_VERSION,
            str(metadata.get("namespace")),
            constants.PLURAL,
            str(metadata.get("name")),
            {"status": dict(changes)},
        )
    except ApiException as error:
        if error.status != 404:
            raise


def post_event(body: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
    """A core/v1 Event on the service, as kopf posts them for its handlers."""
    metadata, now = body.get("metadata") or {}, datetime.now(UTC)
    namespace = str(metadata.get("namespace"))
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{metadata.get('name')}.", namespace=namespace),
        involved_object=client.V1ObjectReference(
            api_version=body.get("apiVersion"),
            kind=body.get("kind"),
            name=metadata.get("name"),
            namespace=namespace,
            uid=metadata.get("uid"),
        ),
        type=kind,
        reason=reason,
        message=message[:EVENT_MESSAGE_LIMIT],
        source=client.V1EventSource(component=constants.MANAGED_BY),
        reporting_component=constants.MANAGED_BY,
        first_timestamp=now,
        last_timestamp=now,
        count=1,
    )
    kube.core().create_namespaced_event(namespace, event)


async def _in_writer(call: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_WRITES, partial(call, *args))


async def refresh_one(body: Mapping[str, Any], refresh: Refresh) -> None:
    """One service's tick: compute, then write what changed. Errors are logged: the next
    round tries again."""
    metadata = body.get("metadata") or {}
    posted: list[asyncio.Future[Any]] = []

    def emit(kind: str, reason: str, message: str) -> None:
        posted.append(asyncio.ensure_future(_in_writer(post_event, body, kind, reason, message)))

    try:
        changes = await refresh(body, emit)
        if changes:
            await _in_writer(write_status, body, changes)
        for outcome in await asyncio.gather(*posted, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome
    except kopf.TemporaryError as error:
        key = (str(metadata.get("namespace")), str(metadata.get("name")))
        _RESTING[key] = asyncio.get_running_loop().time() + float(error.delay or 0)
        _log.warning("status of %s/%s: %s (again in %s s)", *key, error, error.delay)
    except ApiException as error:
        _log.warning("status of %s/%s: %s", metadata.get("namespace"), metadata.get("name"), error)
    except Exception:  # noqa: BLE001  (one service's failure must not end every service's ticks)
        _log.exception("status of %s/%s failed", metadata.get("namespace"), metadata.get("name"))


async def acting(leadership: Leadership) -> bool:
    """Whether this replica acts now; only a peering's read leaves the loop for a thread."""
    if leadership.peering is None:
        return True
    return await asyncio.get_running_loop().run_in_executor(_WRITES, leadership.check)


async def run(
    services: Mapping[Any, Any], refresh: Refresh, leadership: Leadership, interval: float
) -> None:
    """Refresh every due service each `interval` seconds, while this replica acts."""
    loop = asyncio.get_running_loop()
    first = loop.time()
    while True:
        try:
            if await acting(leadership):
                with metrics.STATUS_ROUND_SECONDS.time():
                    bodies = due(services, _HANDLED, _RESTING, loop.time())
                    await asyncio.gather(*(refresh_one(body, refresh) for body in bodies))
        except Exception:  # noqa: BLE001  (the loop outlives a failed round: the next one retries)
            _log.exception("status round failed")
        await asyncio.sleep(max(0.0, next_round(first, loop.time(), interval) - loop.time()))

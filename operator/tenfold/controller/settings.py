"""Every kopf setting in one place, applied by the startup handler."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Collection

import kopf

from tenfold import constants

APPLY_WORKERS = 8
# Objects per page of kopf's initial listings (the apiserver's `limit`).
LIST_CHUNK_SIZE = 100


def configure(settings: kopf.OperatorSettings) -> None:
    """Store kopf's bookkeeping under tenfold's own annotations and bound every wait.

    Annotations, not status: the CRD's structural schema would prune a `status.kopf` field,
    and status belongs to the conditions users and GitOps tools read.
    """
    prefix = constants.ANNOTATION_PREFIX
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{prefix}/finalizer"
    # Server-side watch timeouts make a silently dropped connection come back within minutes.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.posting.level = logging.WARNING
    # The apply handlers' threads. 32 instead of 8 did not shorten a burst of 200 creations:
    # the apiserver's answers, not free threads, set its pace (docs/reliability.md, scale).
    settings.execution.max_workers = APPLY_WORKERS
    settings.batching.error_delays = (1, 2, 5, 10, 30)
    # A deletion waits for running timers to notice it; kopf's default check is every 60 s.
    settings.background.cancellation_polling = 1
    # After its own patch kopf waits this long for the patched version before it treats an
    # older event's body as current; at kopf's 5 s a busy operator (200 services created at
    # once) ran creation handlers again for events that predated its own annotations: 242-529
    # runs for 200 services, 200 with 60 s (docs/reliability.md, scale).
    settings.persistence.consistency_timeout = 60
    # kopf lists each watched kind in one response by default; pages bound each answer, on
    # the apiserver's side and ours. They did not lower the operator's peak at a restart
    # with 1,000 services: kopf queues every listed body before it handles them
    # (docs/reliability.md, scale).
    settings.watching.chunk_size = LIST_CHUNK_SIZE


def scope(settings: kopf.OperatorSettings, namespaces: Collection[str]) -> None:
    """Confine a namespaced operator (`tenfold run --namespace`) to its namespaces.

    kopf otherwise lists and watches Namespaces and CRDs cluster-wide to follow them; a
    namespaced install grants neither (charts/tenfold: watchNamespaces), so it serves exactly
    the namespaces named and the resources the API's discovery shows at start. Set before
    kopf starts: its observers read it before any startup handler runs.
    """
    settings.scanning.disabled = bool(namespaces)


# How long a replica's peering record stays valid without a keep-alive (kopf's default is
# 60 s): the time a standby waits before it takes over from a replica that died.
PEERING_LIFETIME_SECONDS = 15
# Replicas draw their priority from this range when none is given (see peering_priority).
PRIORITY_DRAW_RANGE = 1_000_000_000


def peering_priority(
    given: int | None,
    peering: str | None,
    draw: Callable[[int], int] = secrets.randbelow,
) -> int:
    """The kopf peering priority of this replica.

    kopf runs only the highest-priority live operator of a peering, and when two share the
    highest priority it pauses all of them ("leaving the cluster unserved"). The chart's
    replicas run the same command, so without a priority of their own they would all
    freeze: each replica draws one at start instead, and the highest live one acts.
    """
    if given is not None or peering is None:
        return given or 0
    return 1 + draw(PRIORITY_DRAW_RANGE)


def peering(settings: kopf.OperatorSettings) -> None:
    """Hand over within PEERING_LIFETIME_SECONDS of a replica's death (set before start:
    kopf's keep-alive reads the lifetime when it begins)."""
    settings.peering.lifetime = PEERING_LIFETIME_SECONDS

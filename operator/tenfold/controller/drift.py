"""Which changes to a child are drift that the plan must undo (pure, no cluster access).

The operator watches the children it makes, as controllers built on controller-runtime do
with `Owns()`: a child deleted or edited by hand is applied again from the owner's plan.
Not every watch event is drift: a Deployment's status moves on every pod change, and the
operator's own apply produces events too. A Deployment's spec edits bump its
`metadata.generation`; Services, ConfigMaps and StatefulSets here carry no status that
churns, so any modification of theirs is worth one (idempotent) server-side apply.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from tenfold import constants

# The kinds whose events are watched (apiVersion group, version, plural) and their
# apiVersion/kind for logs. The PodDisruptionBudget, NetworkPolicy and ServiceMonitor come
# back on the next spec change or restart; the objects a service cannot serve without are
# watched.
WATCHED_CHILDREN: tuple[tuple[str, str, str], ...] = (
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
)
# Kinds whose status is written by another controller all the time: only a new generation
# (a spec edit) counts as drift for them.
GENERATION_TRACKED_KINDS = frozenset({"Deployment", "StatefulSet"})


def owner_of(child: Mapping[str, Any], kind: str = constants.KIND) -> str | None:
    """The name of the tenfold object of `kind` (an InferenceService by default)
    controlling this child, or None."""
    for reference in (child.get("metadata") or {}).get("ownerReferences") or []:
        if (
            reference.get("controller")
            and reference.get("kind") == kind
            and str(reference.get("apiVersion", "")).startswith(f"{constants.API_GROUP}/")
        ):
            return str(reference.get("name"))
    return None


class SeenGenerations:
    """The last generation seen per child uid (thread-safe: handlers run on a pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}

    def update(self, uid: str, generation: int) -> int | None:
        """Record `generation` for `uid`; returns the one recorded before (None: first)."""
        with self._lock:
            before = self._seen.get(uid)
            self._seen[uid] = generation
            return before

    def forget(self, uid: str) -> None:
        """The child is gone; stop remembering it."""
        with self._lock:
            self._seen.pop(uid, None)


def is_drift(event_type: str | None, child: Mapping[str, Any], seen: SeenGenerations) -> bool:
    """True when this watch event means the child no longer matches the plan.

    `event_type` is the watch's ADDED/MODIFIED/DELETED, or None for the initial listing (at
    start the resume handler applies every plan anyway, so the listing only primes `seen`).
    """
    metadata = child.get("metadata") or {}
    uid = str(metadata.get("uid") or "")
    if event_type == "DELETED":
        seen.forget(uid)
        return True
    generation = int(metadata.get("generation") or 0)
    before = seen.update(uid, generation)
    if event_type != "MODIFIED":
        return False  # listed at start, or just created (by the plan itself)
    if child.get("kind") in GENERATION_TRACKED_KINDS:
        return before is not None and generation != before
    return True


# The children every plan has (the Deployment serves, the Service routes, the ConfigMap holds
# the prepare spec): a listing without one of them means it is gone.
ALWAYS_PLANNED: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
)
# A service created this close to a listing may have been applied after it.
LISTING_SLACK = timedelta(seconds=5)


def kinds_by_owner(children: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, set[str]]:
    """(kind, child) pairs of one namespace's listing, grouped: owner name -> kinds present."""
    found: dict[str, set[str]] = {}
    for kind, child in children:
        owner = owner_of(child)
        if owner is not None:
            found.setdefault(owner, set()).add(kind)
    return found


def missing_after_listing(
    owner: Mapping[str, Any], present: Collection[str], listed_at: datetime
) -> list[str]:
    """The always-planned kinds a listing did not find for `owner`: level-triggered, for a
    deletion the watch missed (made while the watch was reconnecting after an apiserver
    restart: kopf re-lists, and a re-list carries no tombstone for what vanished).

    Nothing while the apiserver refuses the plan (`status.applyError`: it retries slowly on
    its own schedule), while the owner may not be repaired (deleting, or its spec handler is
    about to apply), or when the owner is younger than the listing (applied after it).
    """
    metadata, status = owner.get("metadata") or {}, owner.get("status") or {}
    if status.get("applyError") or not may_repair(owner):
        return []
    created = _timestamp(metadata.get("creationTimestamp"))
    if created is None or created > listed_at - LISTING_SLACK:
        return []
    return [kind for _, kind in ALWAYS_PLANNED if kind not in present]


def _timestamp(text: object) -> datetime | None:
    """An RFC 3339 timestamp of the API (`...Z`), or None."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def may_repair(owner: Mapping[str, Any]) -> bool:
    """Whether the owner's plan may be applied again for a drifted child: the owner is not
    being deleted, and its spec handler has applied its current generation (else
    that handler is about to apply, and a repair from the older body would undo it)."""
    metadata = owner.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return False
    observed = (owner.get("status") or {}).get("observedGeneration")
    return observed is not None and int(observed) == int(metadata.get("generation") or 0)

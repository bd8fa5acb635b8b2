"""The level-triggered safety net under the drift watch: a periodic listing of the children.

A watch that reconnects after an apiserver restart re-lists, and a re-list carries no
tombstone for an object deleted in the gap, so the watch (and the kopf index fed by it) can
keep a deleted child forever. Every `resync_seconds` the status tick lists the
always-planned children of its namespace once (shared by every service there, from the
apiserver's watch cache) and applies the plan of a service whose child is missing
(drift.missing_after_listing). Run from the timer, it pauses with the handlers under peering.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from tenfold.controller import apply, drift


@dataclass(frozen=True)
class Listing:
    """One namespace's always-planned children by owner, and when they were listed."""

    listed_at: datetime
    kinds_by_owner: dict[str, set[str]]
    taken: float  # time.monotonic() of the listing, for its age


_LOCK = threading.Lock()
_LISTINGS: dict[str, Listing] = {}


def fresh(namespace: str, max_age: float) -> Listing | None:
    """The namespace's held listing if younger than `max_age` seconds, without I/O or the
    lock (a dict read is atomic), so a tick that needs no listing costs no thread."""
    held = _LISTINGS.get(namespace)
    if held is not None and time.monotonic() - held.taken < max_age:
        return held
    return None


def listing(namespace: str, max_age: float) -> Listing:
    """The namespace's listing, taken again when older than `max_age` seconds."""
    with _LOCK:
        held = _LISTINGS.get(namespace)
        if held is not None and time.monotonic() - held.taken < max_age:
            return held
        listed_at, taken = datetime.now(UTC), time.monotonic()
        children = [
            (kind, child)
            for api_version, kind in drift.ALWAYS_PLANNED
            for child in apply.list_managed(namespace, api_version, kind)
        ]
        fresh = Listing(listed_at, drift.kinds_by_owner(children), taken)
        _LISTINGS[namespace] = fresh
        return fresh


def note_applied(namespace: str, owner: str) -> None:
    """The plan of `owner` was applied again: its children exist now, so the held listing
    must not report them missing once more before it is taken again."""
    with _LOCK:
        held = _LISTINGS.get(namespace)
        if held is not None:
            held.kinds_by_owner[owner] = {kind for _, kind in drift.ALWAYS_PLANNED}

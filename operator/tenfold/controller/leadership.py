"""Whether this replica acts: kopf's peering rule, for the work kopf does not schedule itself.

kopf pauses the handlers of every replica but the highest-priority live one of a peering
(settings.peering_priority). The status loop (status_loop.py) is not a kopf handler, so it
asks the same question of the same record each round: the ClusterKopfPeering's status,
where every replica keeps `{identity: {priority, lifetime, lastseen}}` alive.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from tenfold.controller import kube

PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"
CLUSTER_PEERINGS = "clusterkopfpeerings"


def own_identity(environ: Mapping[str, str] = os.environ) -> str:
    """This replica's peering identity: the pod's name where the chart sets POD_ID (kopf's
    own convention), else one unique to this process."""
    unique = f"tenfold@{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(2)}"
    return environ.get("POD_ID") or unique


def _lastseen(text: object, now: datetime) -> datetime:
    """A peer's keep-alive time; kopf counts a record without one as just seen."""
    try:
        seen = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return now
    return seen if seen.tzinfo else seen.replace(tzinfo=UTC)


def acts(peers: Mapping[str, Any], identity: str, priority: int, now: datetime) -> bool:
    """kopf's rule: act unless another live peer has a higher priority or the same one.

    `peers` is the peering object's status; a peer is live until `lastseen + lifetime`.
    """
    for peer, record in peers.items():
        if peer == identity or not isinstance(record, Mapping):
            continue
        lifetime = timedelta(seconds=int(record.get("lifetime", 60)))
        if _lastseen(record.get("lastseen"), now) + lifetime <= now:
            continue  # dead: kopf forgets it too
        if int(record.get("priority", 0)) >= priority:
            return False
    return True


@dataclass
class Leadership:
    """The peering this replica belongs to (None: standalone, always acts), and the last
    answer, kept while the peering cannot be read (an apiserver restart must not hand two
    replicas the work, nor take it from the only one)."""

    peering: str | None
    identity: str
    priority: int
    acting: bool = True

    @classmethod
    def alone(cls) -> Leadership:
        """A replica without a peering: it always acts."""
        return cls(None, own_identity(), 0)

    def check(self) -> bool:
        """Read the peering object and decide again (blocking: call it off the loop)."""
        if self.peering is None:
            return True
        try:
            body: Any = kube.custom().get_cluster_custom_object(
                PEERING_GROUP, PEERING_VERSION, CLUSTER_PEERINGS, self.peering
            )
        except ApiException as error:
            if error.status == 404:
                # kopf acts without the object too (nothing can rank it below a peer).
                self.acting = True
            return self.acting
        peers = (body or {}).get("status") or {}
        self.acting = acts(peers, self.identity, self.priority, datetime.now(UTC))
        return self.acting

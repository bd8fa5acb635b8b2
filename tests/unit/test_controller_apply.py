"""Kind lookups in the dynamic client: serialized across kopf's handler threads, misses cached."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from tenfold.controller import apply


class DiscoveryStandIn:
    """Counts lookups and how many run at once; knows only Deployment."""

    def __init__(self) -> None:
        self.calls = 0
        self.active = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def get(self, api_version: str, kind: str) -> str:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
        time.sleep(0.01)  # a rebuild of the discovery cache takes a while
        with self._lock:
            self.active -= 1
        if kind != "Deployment":
            raise ResourceNotFoundError(f"no {kind}")
        return f"{api_version}/{kind}"


@pytest.fixture
def discovery(monkeypatch: pytest.MonkeyPatch) -> DiscoveryStandIn:
    stand_in = DiscoveryStandIn()
    client = type("Client", (), {"resources": stand_in})()
    monkeypatch.setattr(apply, "dynamic_client", lambda: client)
    monkeypatch.setattr(apply, "_missing_until", {})
    return stand_in


def test_lookups_from_many_threads_never_overlap(discovery):
    kinds = ["Deployment", "ServiceMonitor"] * 8

    def lookup(kind: str) -> str:
        try:
            return apply._resource("v1", kind)
        except apply.MissingApiError as missing:
            return str(missing)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lookup, kinds))
    assert discovery.most_at_once == 1
    assert results.count("v1/Deployment") == 8


def test_a_missing_kind_is_not_rediscovered_within_the_ttl(discovery, monkeypatch):
    for _ in range(3):
        with pytest.raises(apply.MissingApiError, match="ServiceMonitor"):
            apply._resource("monitoring.coreos.com/v1", "ServiceMonitor")
    assert discovery.calls == 1
    later = time.monotonic() + apply.MISSING_KIND_TTL_SECONDS + 1
    monkeypatch.setattr(apply.time, "monotonic", lambda: later)
    with pytest.raises(apply.MissingApiError):
        apply._resource("monitoring.coreos.com/v1", "ServiceMonitor")
    assert discovery.calls == 2

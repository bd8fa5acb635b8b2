"""The operator's applies reuse their TLS connections to the real apiserver.

An apply's answer is streamed and not needed; unread, it kept its connection out of the
client's pool, so every apply opened a TLS connection of its own (4,001 for the 4,000
applies of a restart with 1,000 services, docs/reliability.md). In process, against the
test bed's apiserver, through controller/apply.py and the operator's own client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tenfold.controller import apply, kube
from tenfold_tools.testbed import Testbed

OBJECTS = 20
ROUNDS = 3


@pytest.fixture
def operator_client(testbed: Testbed, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """kube.api_client() on the test bed's kubeconfig (KUBECONFIG is read at import)."""
    load = kube.config.load_kube_config
    monkeypatch.setattr(
        kube.config, "load_kube_config", lambda: load(config_file=str(testbed.kubeconfig))
    )
    kube.api_client.cache_clear()
    kube.dynamic_client.cache_clear()
    yield
    kube.api_client.cache_clear()
    kube.dynamic_client.cache_clear()


def connections_opened() -> int:
    """TLS connections the operator's client has opened to the apiserver so far."""
    client = kube.api_client()
    return client.rest_client.pool_manager.connection_from_url(
        client.configuration.host
    ).num_connections


def config_maps(namespace: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"reuse-{n}", "namespace": namespace},
            "data": {"n": str(n)},
        }
        for n in range(OBJECTS)
    ]


def test_applies_reuse_their_connections(operator_client: None, namespace: str):
    objects = config_maps(namespace)
    apply.apply_object(objects[0])  # discovery, then the first apply
    before = connections_opened()
    for obj in objects:
        apply.apply_object(obj)
    one_at_a_time = connections_opened() - before
    for _ in range(ROUNDS):
        apply.apply_objects([objects])  # all at once, on the apply threads
    at_once = connections_opened() - before - one_at_a_time
    print(f"connections opened: {one_at_a_time} for {OBJECTS} applies one at a time, "
          f"{at_once} for {ROUNDS} rounds of {OBJECTS} at once")  # fmt: skip
    assert one_at_a_time == 0
    # At most one per apply running at once; without reuse, one per apply.
    assert at_once <= OBJECTS

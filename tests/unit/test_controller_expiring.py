"""Expiring: the price ConfigMap is read at most once per tick, whatever the service count."""

from __future__ import annotations

import pytest

from tenfold.controller.reconcile import Expiring


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_fetches_once_per_ttl():
    clock, fetches = Clock(), []
    held = Expiring[dict](5.0, clock)

    def fetch() -> dict:
        fetches.append(clock.now)
        return {"T4": 0.35}

    for _ in range(10):  # ten services in one tick
        assert held.get(fetch) == {"T4": 0.35}
    clock.now += 5.0
    held.get(fetch)
    assert fetches == [100.0, 105.0]


def test_a_failed_fetch_is_raised_and_retried_next_call():
    held = Expiring[dict](5.0, Clock())

    def broken() -> dict:
        raise ConnectionError("apiserver down")

    with pytest.raises(ConnectionError):
        held.get(broken)
    assert held.get(lambda: {"cpu": 0.05}) == {"cpu": 0.05}

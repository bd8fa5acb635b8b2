"""The status loop's pure parts and its round, without a cluster (the integration and node
suites run it against the real apiserver: every status there is its work)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from tenfold.controller import status_loop
from tenfold.controller.leadership import Leadership, acts, own_identity

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def peer(priority: int, seen_ago: float, lifetime: int = 15) -> dict[str, Any]:
    lastseen = (NOW - timedelta(seconds=seen_ago)).isoformat()
    return {"priority": priority, "lifetime": lifetime, "lastseen": lastseen}


def test_the_highest_live_priority_acts() -> None:
    peers = {"me": peer(50, 1), "other": peer(10, 1)}
    assert acts(peers, "me", 50, NOW)
    assert not acts(peers, "other", 10, NOW)


def test_a_dead_peer_does_not_hold_the_work() -> None:
    assert acts({"me": peer(10, 1), "gone": peer(99, 16)}, "me", 10, NOW)
    assert not acts({"me": peer(10, 1), "alive": peer(99, 14)}, "me", 10, NOW)


def test_an_equal_priority_pauses_both_as_kopf_does() -> None:
    peers = {"a": peer(7, 1), "b": peer(7, 1)}
    assert not acts(peers, "a", 7, NOW)
    assert not acts(peers, "b", 7, NOW)


def test_alone_in_the_peering_or_standalone_acts() -> None:
    assert acts({"me": peer(1, 1)}, "me", 1, NOW)
    assert acts({}, "me", 0, NOW)
    assert Leadership.alone().check()


def test_the_pod_name_is_the_identity_where_the_chart_sets_it() -> None:
    assert own_identity({"POD_ID": "tenfold-abc"}) == "tenfold-abc"
    assert own_identity({}) != own_identity({})  # unique per process start


@pytest.mark.parametrize(
    ("now", "expected"), [(0.0, 5.0), (4.9, 5.0), (5.0, 10.0), (12.3, 15.0), (31.0, 35.0)]
)
def test_rounds_stay_on_the_grid_and_skip_what_an_overrun_missed(now, expected) -> None:
    assert status_loop.next_round(0.0, now, 5.0) == expected


def body(name: str, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"namespace": "ns", "name": name}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    return {"metadata": metadata}


def test_a_round_takes_handled_services_that_are_not_being_deleted() -> None:
    services = {
        ("ns", "a"): [body("a")],
        ("ns", "b"): [body("b")],  # its spec handler has not run yet
        ("ns", "c"): [body("c", deleting=True)],
        ("ns", "d"): [],
    }
    handled = {("ns", "a"), ("ns", "c"), ("ns", "d"), ("ns", "gone")}
    names = [b["metadata"]["name"] for b in status_loop.due(services, handled, {}, 100.0)]
    assert names == ["a"]
    assert handled == {("ns", "a"), ("ns", "c"), ("ns", "d")}  # "gone" left the index


class Standby(Leadership):
    def check(self) -> bool:
        return False


def run_rounds(leadership: Leadership, fail: bool = False) -> list[str]:
    """The loop over one handled service for 0.3 s of 0.05 s rounds: the services it refreshed."""
    refreshed: list[str] = []

    async def refresh(entry: Any, emit: Any) -> dict[str, Any]:
        refreshed.append(entry["metadata"]["name"])
        if fail:
            raise RuntimeError("a bug in one service's tick")
        return {}

    async def main() -> None:
        status_loop.note_handled("ns", "a")
        task = asyncio.create_task(
            status_loop.run({("ns", "a"): [body("a")]}, refresh, leadership, 0.05)
        )
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        status_loop.forget("ns", "a")

    asyncio.run(main())
    return refreshed


def test_a_replica_that_does_not_act_refreshes_nothing() -> None:
    assert run_rounds(Standby("ha", "standby", 0)) == []  # a peering member ranked below
    assert run_rounds(Leadership.alone()).count("a") >= 2


def test_one_failing_service_does_not_stop_the_rounds() -> None:
    assert len(run_rounds(Leadership.alone(), fail=True)) >= 2


def test_a_refused_service_rests_until_its_delay_is_over() -> None:
    services = {("ns", "a"): [body("a")]}
    handled, resting = {("ns", "a")}, {("ns", "a"): 400.0}
    assert list(status_loop.due(services, handled, resting, 100.0)) == []
    assert len(list(status_loop.due(services, handled, resting, 400.0))) == 1


def test_a_refusal_puts_the_service_to_rest_for_the_retry_delay() -> None:
    async def refused(entry: Any, emit: Any) -> dict[str, Any]:
        raise kopf.TemporaryError("API error 403: forbidden", delay=300)

    async def main() -> float:
        await status_loop.refresh_one(body("r"), refused)
        return status_loop._RESTING[("ns", "r")] - asyncio.get_running_loop().time()

    try:
        assert 299 < asyncio.run(main()) <= 300
    finally:
        status_loop.forget("ns", "r")

"""Two operator replicas on one peering, as the chart runs them (replicaCount > 1).

Exactly one acts; killing it (SIGKILL, no goodbye) hands over to the other within the
peering lifetime. The handover time is printed (`-s`); docs/reliability.md quotes it.
Its own operators: a standalone one (the shared fixture) would act beside them.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenfold.controller.settings import PEERING_LIFETIME_SECONDS
from tenfold_tools.testbed import Kubectl, wait_established
from tests.integration.operator_support import (
    REPO_ROOT,
    PeeringOperator,
    apply_manifest,
    get_json_or_none,
    load_manifest,
    wait_for,
)

PEERING = "tenfold-ha-test"
PEERING_CRD = REPO_ROOT / "manifests" / "crds" / "kopf.dev_clusterkopfpeerings.yaml"


@pytest.fixture(scope="module")
def replicas(crd: None, kubectl: Kubectl, tmp_path_factory) -> Iterator[list[PeeringOperator]]:
    """Two replicas on a ClusterKopfPeering of their own."""
    kubectl("apply", "--server-side", "-f", str(PEERING_CRD))
    wait_established(kubectl, "crd/clusterkopfpeerings.kopf.dev")
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
               "metadata": {"name": PEERING}}  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(peering))
    logs = tmp_path_factory.mktemp("peering")
    started = [
        PeeringOperator(Path(logs / f"replica-{i}.log"), {"POD_ID": f"replica-{i}"}, PEERING)
        .start()
        for i in range(2)
    ]  # fmt: skip
    yield started
    for replica in started:
        replica.stop()
    kubectl("delete", "clusterkopfpeering", PEERING, check=False)


def metric(replica: PeeringOperator, series: str) -> float:
    """One series' value on this replica's own metrics endpoint (0 before it exists)."""
    text = urllib.request.urlopen(replica.metrics_url, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def applied(replica: PeeringOperator) -> float:
    """How many plans this replica applied (its own tenfold_operator_reconcile_total)."""
    return metric(replica, 'tenfold_operator_reconcile_total{result="applied"}')


def ticks(replica: PeeringOperator) -> float:
    """How many status ticks this replica's status loop ran (not a kopf handler: its
    peering check is its own, controller/leadership.py)."""
    return metric(replica, "tenfold_operator_status_tick_seconds_count")


def quiet_counts(replicas: list[PeeringOperator], still_for: int = 5) -> dict[int, float]:
    """Each replica's applied count, once no count has moved for `still_for` seconds."""
    history: list[dict[int, float]] = []

    def still() -> dict[int, float] | None:
        history.append({id(r): applied(r) for r in replicas})
        recent = history[-still_for * 2 :]
        return (
            history[-1]
            if len(recent) == still_for * 2 and all(h == recent[0] for h in recent)
            else None
        )

    found: dict[int, float] = wait_for(still, "both replicas idle", timeout=120)
    return found


def children_of(kubectl: Kubectl, namespace: str, name: str) -> dict | None:
    return get_json_or_none(kubectl, namespace, "deployment", name)


def test_one_replica_acts_and_a_killed_one_hands_over(
    replicas: list[PeeringOperator], kubectl: Kubectl, namespace: str
):
    # Both have announced themselves and settled who is highest before the first service.
    wait_for(
        lambda: len(
            json.loads(kubectl("get", "clusterkopfpeering", PEERING, "-o", "json").stdout)
             .get("status") or {}
        ) == 2,
        "both replicas in the peering",
    )  # fmt: skip
    # Until they have seen each other, both may resume services left by other tests (an
    # idempotent apply, twice); once their counts stand still, one acts.
    baseline = quiet_counts(replicas)
    manifest = REPO_ROOT / "examples" / "minilm-cpu.yaml"
    apply_manifest(kubectl, namespace, load_manifest(manifest, "first"))
    wait_for(lambda: children_of(kubectl, namespace, "first"), "the first service's children")
    wait_for(
        lambda: sum(applied(r) - baseline[id(r)] for r in replicas) >= 1,
        "the apply handler's end",
    )
    acting = [r for r in replicas if applied(r) > baseline[id(r)]]
    assert len(acting) == 1, [r.log_text()[-2000:] for r in replicas]
    (leader,) = acting
    (standby,) = [r for r in replicas if r is not leader]
    assert applied(standby) == baseline[id(standby)]
    # The status loop acts on the leader only: over two ticks' worth, the standby runs none.
    standby_ticks, leader_ticks = ticks(standby), ticks(leader)
    wait_for(lambda: ticks(leader) >= leader_ticks + 2, "the leader's status ticks")
    assert ticks(standby) == standby_ticks
    assert leader._process is not None
    os.killpg(leader._process.pid, signal.SIGKILL)
    killed = time.monotonic()
    apply_manifest(kubectl, namespace, load_manifest(manifest, "second"))
    wait_for(
        lambda: children_of(kubectl, namespace, "second"),
        "the standby to take over",
        timeout=PEERING_LIFETIME_SECONDS + 30,
    )
    handover = time.monotonic() - killed
    wait_for(lambda: applied(standby) > baseline[id(standby)], "the standby's apply handler's end")
    wait_for(lambda: ticks(standby) > standby_ticks, "the standby's status ticks")
    print(f"peering: leader SIGKILLed, the standby applied a new service {handover:.1f} s later")

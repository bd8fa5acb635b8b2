"""SIGKILL at random points while the operator reconciles 100 InferenceServices.

Creates, spec edits and deletes are mixed with three kills (a seeded schedule, so every
run is the same fault); after the last restart every live service converges, no child is
left without a live owner and none is duplicated. The convergence time is printed (`-s`);
docs/reliability.md quotes it with this command. Its own operator process: the shared one
would act beside it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

from tenfold_tools.testbed import Kubectl
from tenfold_tools.testbed.layout import TestbedError
from tests.integration.operator_support import (
    REPO_ROOT,
    OperatorProcess,
    get_json_or_none,
    load_manifest,
    wait_for,
)

SERVICES = 100
KILLS = 3
EDITS_PER_ROUND = 10
DELETES_PER_ROUND = 5
# A tick per service every 5 s: 100 services at the 1 s the other tests use would make the
# status ticks, not the faults, what this test measures.
TICK_SECONDS = "5"
CONVERGE_TIMEOUT = 300.0
CHILD_KINDS = ("deployments", "services", "configmaps", "poddisruptionbudgets")
SELECTOR = "app.kubernetes.io/managed-by=tenfold"


def service(name: str) -> dict:
    return load_manifest(REPO_ROOT / "examples" / "minilm-cpu.yaml", name)


def kubectl_apply(kubectl: Kubectl, namespace: str, documents: list[dict]) -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": documents}
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(listing), timeout=300)


def items(kubectl: Kubectl, namespace: str, kind: str, selector: str | None = None) -> list:
    args = ["get", kind, "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(kubectl(*args, timeout=120).stdout)["items"]


def kill(operator: OperatorProcess) -> None:
    assert operator._process is not None
    os.killpg(operator._process.pid, signal.SIGKILL)
    operator._process.wait()


def problems(kubectl: Kubectl, namespace: str, windows: dict[str, int]) -> list[str]:
    """What keeps the namespace from the converged state (empty when converged)."""
    live = {s["metadata"]["name"]: s for s in items(kubectl, namespace, "inferenceservices")}
    found = []
    for name, body in live.items():
        if body["metadata"].get("deletionTimestamp"):
            found.append(f"{name}: still being deleted")
        elif (body.get("status") or {}).get("observedGeneration") != body["metadata"]["generation"]:
            found.append(f"{name}: generation {body['metadata']['generation']} not applied")
    uids = {body["metadata"]["uid"] for body in live.values()}
    for kind in CHILD_KINDS:
        owners = Counter()
        for child in items(kubectl, namespace, kind, SELECTOR):
            refs = child["metadata"].get("ownerReferences") or []
            owner = next((r for r in refs if r.get("controller")), None)
            if owner is None or owner["uid"] not in uids:
                found.append(f"{kind}/{child['metadata']['name']}: orphaned")
            else:
                owners[owner["name"]] += 1
        found += [f"{name}: {count} {kind}" for name, count in owners.items() if count != 1]
        found += [f"{name}: no {kind}" for name in live if owners[name] == 0]
    for name, window in windows.items():
        if name in live:
            config = get_json_or_none(kubectl, namespace, "configmap", f"{name}-config") or {}
            texts = (config.get("data") or {}).values()
            if not any(f"max_queue_delay_microseconds: {window}" in text for text in texts):
                found.append(f"{name}: ConfigMap without its edited window {window}")
    return found


def test_sigkill_while_reconciling_leaves_no_orphan_and_converges(
    crd: None, kubectl: Kubectl, namespace: str, tmp_path: Path
):
    schedule = random.Random(20261201)
    env = {"TENFOLD_TICK_SECONDS": TICK_SECONDS}
    operator = OperatorProcess(tmp_path / "operator.log", env).start()
    names = [f"svc-{i:03d}" for i in range(SERVICES)]
    kubectl_apply(kubectl, namespace, [service(n) for n in names])
    alive, windows = list(names), {}
    try:
        for _ in range(KILLS):
            time.sleep(schedule.uniform(0.5, 4.0))  # a random point of the reconcile
            kill(operator)
            edited = schedule.sample(alive, EDITS_PER_ROUND)
            for name in edited:
                windows[name] = schedule.randrange(1000, 20000)
            kubectl_apply(kubectl, namespace, [
                {**service(n), "spec": {**service(n)["spec"], "batching": {
                    **service(n)["spec"]["batching"], "maxQueueDelayMicroseconds": windows[n]}}}
                for n in edited
            ])  # fmt: skip
            gone = schedule.sample([n for n in alive if n not in edited], DELETES_PER_ROUND)
            kubectl("delete", "-n", namespace, "inferenceservice", *gone, "--wait=false")
            alive = [n for n in alive if n not in gone]
            for name in gone:
                windows.pop(name, None)
            operator = OperatorProcess(tmp_path / "operator.log", env).start()
        restarted = time.monotonic()
        remaining: list[str] = []

        def converged_now() -> bool:
            remaining[:] = problems(kubectl, namespace, windows)
            return not remaining

        try:
            wait_for(converged_now, "every service converged, no orphan, no duplicate",
                     timeout=CONVERGE_TIMEOUT)  # fmt: skip
        except TestbedError as error:
            raise AssertionError(f"{error}; still: {remaining[:20]}") from None
        converged = time.monotonic() - restarted
        live = {s["metadata"]["name"] for s in items(kubectl, namespace, "inferenceservices")}
        assert live == set(alive)
    finally:
        # While the operator runs, so kopf's finalizers go with the services and no later
        # operator of the session inherits 95 of them from a terminating namespace.
        kubectl("delete", "inferenceservices", "--all", "-n", namespace, "--wait=true",
                "--timeout=120s", check=False, timeout=150)  # fmt: skip
        operator.stop()
    print(
        f"kills: {KILLS} SIGKILLs among {SERVICES} services ({KILLS * EDITS_PER_ROUND} edits, "
        f"{KILLS * DELETES_PER_ROUND} deletes): converged {converged:.1f} s after the last "
        "restart"
    )

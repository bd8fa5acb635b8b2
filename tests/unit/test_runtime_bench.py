"""Parsing perf_analyzer output and the bench arithmetic."""

import pytest

from tenfold_runtime import bench

CSV = (
    "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
    "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
    "p50 latency,p90 latency,p95 latency,p99 latency\n"
    "16,300.5,103,316,43,24,39763,256,0,52000,60000,65000,90000\n"
)


def test_parse_perf_csv_converts_microseconds_and_prices_requests():
    (point,) = bench.parse_perf_csv(CSV, "minilm-batched", price_per_hour=0.096)
    assert point.concurrency == 16
    assert point.throughput == pytest.approx(300.5)
    assert (point.p50_ms, point.p95_ms, point.p99_ms) == (52.0, 65.0, 90.0)
    assert point.cost_per_1k == pytest.approx(0.096 / (300.5 * 3600) * 1000)


def test_cost_of_a_dead_server_is_infinite():
    assert bench.cost_per_thousand(0.0, 1.0) == float("inf")


def test_input_data_is_one_request_per_text_with_an_explicit_shape():
    data = bench.perf_input_data(["a", "b"])
    assert data == {
        "data": [
            {"TEXT": {"content": ["a"], "shape": [1]}},
            {"TEXT": {"content": ["b"], "shape": [1]}},
        ]
    }


def _point(variant, concurrency, throughput):
    return bench.Point(variant, concurrency, throughput, 1.0, 2.0, 3.0, 0.0)


def test_summary_ratios_follow_the_targets():
    points = [
        _point("minilm-naive", 16, 50),
        _point("minilm-batched", 16, 300),
        _point("minilm-int8", 16, 450),
    ]
    summary = bench.summarize(points, {"minilm-batched": 400, "minilm-int8": 500})
    assert summary["batching_vs_naive_c16"] == pytest.approx(6.0)
    assert summary["int8_vs_batching_c16"] == pytest.approx(1.5)
    assert summary["best_triton_vs_ceiling"] == pytest.approx(0.9)


def test_summary_leaves_missing_points_empty():
    summary = bench.summarize([_point("minilm-batched", 4, 100)], {})
    assert summary == {
        "batching_vs_naive_c16": None,
        "int8_vs_batching_c16": None,
        "best_triton_vs_ceiling": None,
    }


def test_perf_command_bounds_the_run_and_writes_csv(tmp_path):
    command = bench.perf_command(
        "pa", "m", "127.0.0.1:1", 4, tmp_path / "d.json", tmp_path / "o.csv", 3000
    )
    assert "--concurrency-range=4:4" in command
    assert command[command.index("--max-trials") + 1] == "6"
    assert command[command.index("-f") + 1] == str(tmp_path / "o.csv")


def test_a_request_rate_run_offers_a_rate_and_reads_it_back(tmp_path):
    command = bench.perf_command(
        "pa", "m", "127.0.0.1:1", 50.5, tmp_path / "d.json", tmp_path / "o.csv", 3000,
        request_rate=True,
    )  # fmt: skip
    assert "--request-rate-range=50.5:50.5" in command
    assert not any(arg.startswith("--concurrency-range") for arg in command)
    csv_text = (
        "Request Rate,Inferences/Second,Client Send,p50 latency,p90 latency,p95 latency,"
        "p99 latency\n50.5,49.8,30,11000,15000,18000,25000\n"
    )
    (point,) = bench.parse_perf_csv(csv_text, "m", 1.0)
    assert (point.offered_rate, point.concurrency, point.throughput) == (50.5, 0, 49.8)
    assert point.p95_ms == 18.0

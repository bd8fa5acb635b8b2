"""The benchmark's pure parts: workloads, percentiles, cost."""

import pytest

from tenfold_tools.cache.bench import Sample, cost_per_1k, make_workload, percentile, summarise


@pytest.mark.parametrize("share", [0.3, 0.8])
def test_workload_repeats_the_asked_share_of_earlier_texts(share):
    workload = make_workload(4000, share, seed=7)
    repeats = [text for text, repeat in workload if repeat]
    assert abs(len(repeats) / len(workload) - share) < 0.03
    seen: set[str] = set()
    for text, repeat in workload:
        assert repeat == (text in seen)
        seen.add(text)


def test_workload_is_deterministic():
    assert make_workload(50, 0.5, seed=1) == make_workload(50, 0.5, seed=1)


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([], 50) is None


def test_cost_per_1k():
    # 1 $/h at 1000 req/s is 3.6 M requests per dollar.
    assert cost_per_1k(1.0, 1000.0) == pytest.approx(1 / 3600)


def test_summary_splits_hits_from_misses():
    samples = [Sample(0.001, True, True), Sample(0.010, True, False), Sample(0.020, False, False)]
    stats = summarise(samples, elapsed_s=1.0)
    assert stats.failed == 1 and stats.throughput_rps == 3.0
    assert stats.hit_p50_ms == 1.0 and stats.miss_p50_ms == 10.0

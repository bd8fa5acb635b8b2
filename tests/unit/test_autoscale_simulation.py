"""The evaluation's simulation: queueing model, scalers, and the doc block it writes."""

from __future__ import annotations

import random
from pathlib import Path

from tenfold_tools.autoscale.evaluate import (
    BEGIN,
    BENCH,
    BENCH_CONCURRENCY,
    BENCH_VARIANT,
    END,
    Setup,
    bench_capacity,
    replace_block,
    scalers,
)
from tenfold_tools.autoscale.simulation import (
    Cluster,
    HpaRule,
    KedaPrometheus,
    Kpa,
    Meters,
    Prometheus,
    ServiceModel,
    Static,
    concurrency_at,
    daily_trace,
    hpa_external_proposal,
    hpa_pods_proposal,
    reaction_seconds,
    serve_one_second,
    simulate,
    step_trace,
)

MODEL = ServiceModel()
SETUP = Setup(MODEL, min_replicas=1, max_replicas=16, budget_replicas=5, seed=3, hours=0.5)


def test_light_load_meets_the_slo_and_overload_builds_a_backlog() -> None:
    cluster, meters = Cluster(MODEL, ready=2), Meters()
    light = serve_one_second(cluster, 300.0, meters)
    assert light.within_slo / light.arrived > 0.99 and cluster.backlog == 0
    heavy = serve_one_second(cluster, 1000.0, meters)
    assert cluster.backlog == 1000 - 2 * 288 and meters.pending >= cluster.backlog
    assert heavy.within_slo < heavy.arrived


def test_new_replicas_serve_only_after_startup_and_starting_ones_go_first() -> None:
    cluster = Cluster(MODEL, ready=1)
    cluster.scale(0, 3)
    cluster.promote(29)
    assert (cluster.ready, cluster.provisioned) == (1, 3)
    cluster.promote(30)
    assert cluster.ready == 3
    cluster.scale(31, 5)
    cluster.scale(32, 2)
    assert (cluster.ready, cluster.provisioned) == (2, 2)


def test_tenfold_with_budget_never_exceeds_it_and_reacts_within_ten_seconds() -> None:
    day = daily_trace(seed=SETUP.seed, hours=SETUP.hours, spikes=3)
    rng = random.Random(1)
    budgeted = scalers(SETUP, day, rng)[-1][0]
    result = simulate(day, budgeted, MODEL, 1, SETUP.hourly_cap)
    assert result.over_budget_seconds == 0 and max(result.provisioned) <= 5
    step = step_trace()
    reacting = scalers(SETUP, step, rng)[-1][0]
    reaction = reaction_seconds(simulate(step, reacting, MODEL, 1, SETUP.hourly_cap), 120)
    assert reaction is not None and reaction <= 10


def test_static_never_scales() -> None:
    result = simulate(step_trace(), Static(), MODEL, 4, None)
    assert set(result.provisioned) == {4} and result.decisions == []


def test_results_block_replaced_between_markers() -> None:
    doc = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert replace_block(doc, "new") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"
    assert replace_block("intro", "new") == f"intro\n\n{BEGIN}\nnew\n{END}\n"


def test_hpa_holds_within_its_ten_percent_tolerance() -> None:
    # Pods metric, AverageValue: 6 % over target holds, 12.5 % over scales to ceil(1.125 x 4)
    assert hpa_pods_proposal(4, 4, 0, 0.85, 0.8, 0.1) == 4
    assert hpa_pods_proposal(4, 4, 0, 0.9, 0.8, 0.1) == 5
    assert hpa_pods_proposal(4, 4, 0, 0.6, 0.8, 0.1) == 3
    # External metric, AverageValue (KEDA): the ratio is over the current replicas
    assert hpa_external_proposal(4, 4 * 256 * 1.05, 256, 0.1) == 4
    assert hpa_external_proposal(4, 4 * 256 * 1.2, 256, 0.1) == 5


def test_hpa_counts_starting_pods_as_zero_when_scaling_up() -> None:
    # 2 ready at 125 % of target, 2 starting: diluted to 62.5 %, the direction flips: hold
    assert hpa_pods_proposal(4, 2, 2, 1.0, 0.8, 0.1) == 4
    # 2 ready at 250 %: diluted 125 % over 4 pods -> 5
    assert hpa_pods_proposal(4, 2, 2, 2.0, 0.8, 0.1) == 5
    # scaling down, starting pods are ignored: ceil(0.5 x 2) = 1
    assert hpa_pods_proposal(4, 2, 2, 0.4, 0.8, 0.1) == 1


def test_hpa_scale_down_waits_out_the_300_s_stabilization_window() -> None:
    rule = HpaRule(1, 16)
    for t in range(0, 300, 15):  # the history starts with the current count at t = 0
        assert rule.decide(t, 10, 4) == 10
    assert rule.decide(300, 10, 4) == 4  # 100 % per 15 s allows any step down


def test_hpa_scale_up_takes_the_larger_of_four_pods_and_double_per_15_s() -> None:
    rule = HpaRule(1, 40)
    assert rule.decide(0, 2, 40) == 6  # +4 pods beats x2
    assert rule.decide(15, 6, 40) == 12  # x2 beats +4; the last event left the period
    assert rule.decide(20, 12, 40) == 12  # the +6 of t = 15 is still in the period
    assert rule.decide(30, 12, 40) == 24


def test_keda_queries_prometheus_at_every_hpa_sync() -> None:
    keda = KedaPrometheus(HpaRule(1, 16, phase=3), 256.0, Prometheus(scrape_seconds=5))
    simulate(step_trace(seconds=200), keda, MODEL, 1, None)
    assert keda.reads == list(range(3, 200, 15))  # every 15 s, not every 30 s poll


def test_kpa_panics_at_twice_the_ready_pods_and_never_scales_down_while_panicking() -> None:
    kpa = Kpa(1, 16, target_concurrency=10.0)  # 7 in flight per pod at 70 %
    kpa.concurrency = [7.0] * 60
    assert kpa.decide(0, ready=1) == 1 and kpa.panic_since is None
    kpa.concurrency = [7.0] * 54 + [70.0] * 6  # the 6 s panic window asks for 10 pods
    assert kpa.decide(2, ready=1) == 10 and kpa.panic_since == 2
    kpa.concurrency = [7.0] * 60  # the burst is gone: no scale-down while panicking
    assert kpa.decide(4, ready=10) == 10
    assert kpa.decide(62, ready=10) == 10 and kpa.panic_since == 2  # 60 s not yet passed
    # a stable window after the last panic: back to stable mode, at most halving per tick
    assert kpa.decide(64, ready=10) == 5 and kpa.panic_since is None


def test_kpa_panic_threshold_is_twice_the_ready_pods() -> None:
    below, at = Kpa(1, 16, target_concurrency=10.0), Kpa(1, 16, target_concurrency=10.0)
    below.concurrency = [0.0] * 54 + [27.0] * 6  # 27 / 7 = 3.9 pods for 2 ready
    at.concurrency = [0.0] * 54 + [28.0] * 6  # 28 / 7 = 4 pods: 200 % of 2 ready
    below.decide(0, ready=2)
    at.decide(0, ready=2)
    assert below.panic_since is None and at.panic_since == 0


def test_kpa_default_target_waits_for_seventy_requests_in_flight() -> None:
    kpa = Kpa(1, 16)
    assert kpa.panic_window_seconds == 6
    kpa.concurrency = [69.0] * 60
    assert kpa.decide(0, ready=1) == 1
    # the model's replica holds about 5 requests at 80 % utilization: 100 is far off
    assert concurrency_at(ServiceModel(capacity_rps=320.2), 0.8) < 6


def test_capacity_comes_from_the_committed_benchmark() -> None:
    path = Path(__file__).resolve().parents[2] / BENCH
    capacity = bench_capacity(path, BENCH_VARIANT, BENCH_CONCURRENCY)
    assert capacity.rps == 320.2
    assert "tenfold-runtime bench" in capacity.source and str(path) in capacity.source

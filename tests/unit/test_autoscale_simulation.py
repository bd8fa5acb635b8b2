"""The evaluation's simulation: queueing model, scalers, and the doc block it writes."""

from __future__ import annotations

import random

from tenfold_tools.autoscale.evaluate import BEGIN, END, Setup, replace_block, scalers
from tenfold_tools.autoscale.simulation import (
    Cluster,
    Meters,
    ServiceModel,
    Static,
    daily_trace,
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

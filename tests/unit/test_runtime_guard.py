"""The accuracy guard's metrics and ladder decisions (pure, no torch)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tenfold.api.enums import GuardMetric, Precision
from tenfold_runtime import guard


def test_cosine_of_identical_rows_is_one_and_of_opposite_rows_minus_one():
    a = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    assert guard.cosine_scores(a, a) == pytest.approx([1.0, 1.0])
    assert guard.cosine_scores(a, -a) == pytest.approx([-1.0, -1.0])


def test_cosine_scores_a_zero_vector_as_no_agreement():
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert guard.cosine_scores(a, b) == pytest.approx([0.0, 1.0])


def test_cosine_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        guard.cosine_scores(np.zeros((2, 3)), np.zeros((2, 4)))


@given(
    arrays(np.float64, (4, 8), elements=st.floats(-10, 10)).filter(
        lambda a: np.all(np.linalg.norm(a, axis=1) > 1e-3)
    ),
    st.floats(0.01, 100),
)
def test_cosine_ignores_scale(vectors, scale):
    assert guard.cosine_scores(vectors, vectors * scale) == pytest.approx(np.ones(4))


def test_measure_cosine_reports_mean_min_and_drop():
    ref = np.array([[1.0, 0.0], [1.0, 0.0]])
    cand = np.array([[1.0, 0.0], [0.0, 1.0]])
    acc = guard.measure(GuardMetric.COSINE, ref, cand)
    assert (acc.mean, acc.min, acc.samples) == (pytest.approx(0.5), pytest.approx(0.0), 2)
    assert acc.drop == pytest.approx(0.5)


def test_measure_top1_agreement_counts_matching_argmax():
    ref = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    cand = np.array([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9], [0.9, 0.1]])
    acc = guard.measure(GuardMetric.TOP1_AGREEMENT, ref, cand)
    assert acc.mean == pytest.approx(0.75)
    assert acc.min == 0.0
    assert acc.drop == pytest.approx(0.25)


def test_measure_logit_mse_uses_the_error_itself_as_drop_and_worst_as_min():
    ref = np.array([[0.0, 0.0], [0.0, 0.0]])
    cand = np.array([[1.0, 1.0], [0.0, 0.0]])
    acc = guard.measure(GuardMetric.LOGIT_MSE, ref, cand)
    assert acc.mean == pytest.approx(0.5)
    assert acc.min == pytest.approx(1.0)
    assert acc.drop == pytest.approx(0.5)


def test_verdict_accepts_at_the_limit_and_rejects_above_with_a_reason():
    at_limit = guard.Accuracy(GuardMetric.COSINE, mean=0.99, min=0.98, samples=4)
    below = guard.Accuracy(GuardMetric.COSINE, mean=0.947, min=0.92, samples=4)
    assert guard.verdict(at_limit, 0.01)[0] is True
    accepted, reason = guard.verdict(below, 0.01)
    assert accepted is False
    assert "0.0530 > max_drop 0.0100" in reason


def test_ladder_starts_with_the_request_and_drops_duplicates():
    order = guard.ladder(Precision.INT8, [Precision.MIXED, Precision.INT8, Precision.FP32])
    assert order == [Precision.INT8, Precision.MIXED, Precision.FP32]


def _trier(results):
    def attempt(precision):
        accepted = results[precision]
        return guard.Attempt(precision, accepted, "ok" if accepted else "too lossy")

    return attempt


def test_walk_ladder_stops_at_the_first_accepted_precision_and_keeps_every_attempt():
    results = {Precision.INT8: False, Precision.MIXED: True, Precision.FP32: True}
    decision = guard.walk_ladder(list(results), _trier(results))
    assert decision.ok
    assert decision.served is Precision.MIXED
    assert [a.precision for a in decision.attempts] == [Precision.INT8, Precision.MIXED]


def test_walk_ladder_serves_nothing_when_every_precision_fails():
    results = {Precision.INT8: False, Precision.FP16: False}
    decision = guard.walk_ladder(list(results), _trier(results))
    assert not decision.ok
    assert decision.served is None
    assert len(decision.attempts) == 2


def test_attempt_json_carries_precision_accuracy_and_drop():
    acc = guard.Accuracy(GuardMetric.COSINE, mean=0.98, min=0.96, samples=64)
    data = guard.Attempt(Precision.INT8, False, "too lossy", acc, {"k": 1}).to_json()
    assert data["precision"] == "int8"
    assert data["accuracy"]["metric"] == "cosine"
    assert data["accuracy"]["drop"] == pytest.approx(0.02)
    assert data["details"] == {"k": 1}


def test_calibration_is_dealt_into_disjoint_halves_of_whole_groups():
    from tenfold_runtime.calibration import split_calibration

    texts = [f"t{i}" for i in range(8)]
    assert split_calibration(texts) == (texts[0::2], texts[1::2])
    pairs = [f"q{q}\td{d}" for q in range(5) for d in range(2)]
    selection, held_out = split_calibration(pairs, 2)
    assert selection == pairs[0:2] + pairs[4:6] + pairs[8:10]
    assert held_out == pairs[2:4] + pairs[6:8]
    assert not set(selection) & set(held_out)
    # One group: nothing can be held out, both halves are it.
    assert split_calibration(texts[:1]) == (texts[:1], texts[:1])


def test_the_tail_is_bounded_when_asked():
    accuracy = guard.Accuracy(GuardMetric.COSINE, mean=0.995, min=0.95, samples=32)
    assert guard.verdict(accuracy, 0.01) == (True, "drop 0.0050 <= max_drop 0.0100")
    accepted, reason = guard.verdict(accuracy, 0.01, max_worst_drop=0.02)
    assert not accepted
    assert reason == "drop 0.0050 <= max_drop 0.0100, worst 0.0500 > max_worst_drop 0.0200"
    mse = guard.Accuracy(GuardMetric.LOGIT_MSE, mean=0.001, min=0.004, samples=8)
    assert mse.worst_drop == 0.004 and guard.verdict(mse, 0.01, 0.005)[0]


def on_circle(degrees: list[float]) -> np.ndarray:
    """Unit vectors at these angles: cosine similarity falls with the angle between them."""
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


# No two gaps from one point are equal, so every neighbour below is worked out by hand.
ANGLES = [0.0, 10.0, 30.0, 70.0, 100.0]


def test_a_text_is_never_its_own_neighbour():
    # Nearest other point: 0->10, 10->0, 30->10, 70->100, 100->70.
    assert guard.nearest_neighbours(on_circle(ANGLES), 1)[:, 0].tolist() == [1, 0, 1, 4, 3]
    everyone_else = guard.nearest_neighbours(on_circle(ANGLES), 4)
    assert all(row not in others for row, others in enumerate(everyone_else.tolist()))


def test_equal_similarities_go_to_the_lower_index():
    # The point at 0 degrees is exactly as close to -10 (row 0) as to 10 (row 2).
    assert guard.nearest_neighbours(on_circle([-10.0, 0.0, 10.0]), 1).tolist() == [[1], [0], [1]]


@given(arrays(np.float64, (12, 4), elements=st.floats(-10, 10)), st.integers(1, 11))
def test_a_model_agrees_with_itself(vectors, k):
    agreement = guard.neighbour_agreement(vectors, vectors.copy(), k)
    assert (agreement.mean, agreement.p5, agreement.worst, agreement.queries) == (1, 1, 1, 12)


def test_neighbours_ignore_the_embeddings_scale():
    scaled = guard.neighbour_agreement(on_circle(ANGLES), on_circle(ANGLES) * 3.7, 2)
    assert (scaled.mean, scaled.p5, scaled.worst) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("candidate_angles", "k", "shares", "mean"),
    [
        # Rows 0 and 4 trade places (100 and 0 degrees): nearest others become 3, 4, 1, 0, 1
        # against 1, 0, 1, 4, 3; only row 2 keeps its neighbour.
        ([100.0, 10.0, 30.0, 70.0, 0.0], 1, [0.0, 0.0, 1.0, 0.0, 0.0], 0.2),
        # Row 2 moves from 30 to 80 degrees. Top-2 before: {1,2} {0,2} {0,1} {2,4} {2,3};
        # after: {1,3} {0,3} {3,4} {2,4} {2,3}: shared 1, 1, 0, 2, 2 of 2.
        ([0.0, 10.0, 80.0, 70.0, 100.0], 2, [0.5, 0.5, 0.0, 1.0, 1.0], 0.6),
    ],
    ids=["swap-two-texts", "move-one-text"],
)
def test_moved_texts_cost_exactly_the_neighbours_worked_out_by_hand(
    candidate_angles, k, shares, mean
):
    candidate = on_circle(candidate_angles)
    assert guard.neighbour_overlap(on_circle(ANGLES), candidate, k).tolist() == shares
    agreement = guard.neighbour_agreement(on_circle(ANGLES), candidate, k)
    assert agreement.mean == pytest.approx(mean)
    assert (agreement.k, agreement.p5, agreement.worst, agreement.queries) == (k, 0.0, 0.0, 5)


def test_the_fifth_percentile_is_an_observed_query_score():
    # 40 points on an arc with widening gaps: each point's nearest other is the one before
    # it (point 0's: point 1). Moving point 0 far away costs queries 0 and 1 their neighbour
    # and no other: 2 of 40 score 0, so the 5th percentile is 0 (interpolated, it would be
    # 0.95, a share no query has).
    reference = on_circle([i + 0.01 * i * i for i in range(40)])
    candidate = reference.copy()
    candidate[0] = on_circle([170.0])[0]
    overlap = guard.neighbour_overlap(reference, candidate, 1)
    assert np.flatnonzero(overlap == 0).tolist() == [0, 1]
    agreement = guard.neighbour_agreement(reference, candidate, 1)
    assert agreement.mean == pytest.approx(38 / 40)
    assert agreement.p5 == agreement.worst == 0.0


def test_neighbours_are_the_same_in_chunks(monkeypatch):
    vectors = np.random.default_rng(7).normal(size=(50, 6))
    whole = guard.nearest_neighbours(vectors, 5)
    monkeypatch.setattr(guard, "NEIGHBOUR_CHUNK", 7)
    assert np.array_equal(guard.nearest_neighbours(vectors, 5), whole)


def test_neighbour_agreement_rejects_bad_k_and_shapes():
    with pytest.raises(ValueError, match="k must be"):
        guard.nearest_neighbours(on_circle(ANGLES), 5)
    with pytest.raises(ValueError, match="shape"):
        guard.neighbour_overlap(np.zeros((5, 2)), np.zeros((5, 3)), 1)

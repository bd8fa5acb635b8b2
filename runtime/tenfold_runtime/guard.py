"""The accuracy guard: pure metrics and the fallback-ladder decision.

Nothing here imports torch, so the rules that decide what gets served are unit-tested in
milliseconds. The I/O side (running models on calibration inputs) lives in `prepare`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from tenfold.api.enums import GuardMetric, Precision


@dataclass(frozen=True)
class Accuracy:
    """How close a candidate model is to the full-precision reference.

    `mean` and `min` are per-sample scores where 1.0 means identical (cosine similarity,
    top-1 agreement, rank agreement), except for logitMSE where 0.0 means identical.
    """

    metric: GuardMetric
    mean: float
    min: float
    samples: int

    @property
    def drop(self) -> float:
        """The loss against the reference that the guard compares with `max_drop`."""
        if self.metric is GuardMetric.LOGIT_MSE:
            return self.mean
        return 1.0 - self.mean

    @property
    def worst_drop(self) -> float:
        """The loss of the worst sample (the tail), compared with `max_worst_drop`."""
        if self.metric is GuardMetric.LOGIT_MSE:
            return self.min  # for an error, `min` holds the largest one
        return 1.0 - self.min


@dataclass(frozen=True)
class Attempt:
    """One precision the guard tried, what it measured and why it was accepted or not."""

    precision: Precision
    accepted: bool
    reason: str
    accuracy: Accuracy | None = None
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The attempt as the manifest records it."""
        data = asdict(self)
        data["precision"] = str(self.precision)
        if self.accuracy is not None:
            data["accuracy"] = {**asdict(self.accuracy), "drop": self.accuracy.drop}
            data["accuracy"]["metric"] = str(self.accuracy.metric)
        return data


def cosine_scores(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [n, d] arrays (they need not be normalized)."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape or ref.ndim != 2:
        raise ValueError(f"expected two [n, d] arrays of one shape, got {ref.shape}, {cand.shape}")
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    # A zero vector on either side shares no direction with anything: score it 0.
    safe = np.where(norms == 0, 1.0, norms)
    return np.where(norms == 0, 0.0, np.sum(ref * cand, axis=1) / safe)


def rank_scores(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Row-wise Spearman correlation of two [n, k] arrays: per query (a row), how alike the
    two orders of its k documents are; 1 is the same order, -1 the reverse."""
    ref, cand = (
        np.argsort(np.argsort(np.asarray(a), axis=1), axis=1) for a in (reference, candidate)
    )
    k = ref.shape[1]
    if k < 2:
        raise ValueError("rank agreement needs at least two documents per query")
    squared = np.sum((ref - cand).astype(np.float64) ** 2, axis=1)
    return 1.0 - 6.0 * squared / (k * (k * k - 1))


def measure(
    metric: GuardMetric,
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    group: int | None = None,
) -> Accuracy:
    """Score `candidate` outputs against `reference` outputs (both [n, d]) with `metric`.

    With `group`, consecutive rows form one sample (a query's documents, one score each):
    the outputs are compared as [n / group, group], per query.
    """
    if group is not None:
        reference, candidate = (np.reshape(a, (-1, group)) for a in (reference, candidate))
    if metric is GuardMetric.COSINE:
        scores = cosine_scores(reference, candidate)
    elif metric is GuardMetric.RANK_AGREEMENT:
        scores = rank_scores(reference, candidate)
    elif metric is GuardMetric.TOP1_AGREEMENT:
        scores = (np.argmax(reference, axis=1) == np.argmax(candidate, axis=1)).astype(float)
    else:
        diff = np.asarray(reference, dtype=np.float64) - np.asarray(candidate, dtype=np.float64)
        scores = np.mean(diff * diff, axis=1)
    if metric is GuardMetric.LOGIT_MSE:
        # For an error the worst sample is the largest one; keep "min" meaning "worst".
        worst = float(np.max(scores))
    else:
        worst = float(np.min(scores))
    return Accuracy(metric=metric, mean=float(np.mean(scores)), min=worst, samples=len(scores))


@dataclass(frozen=True)
class NeighbourAgreement:
    """How far a candidate model keeps each text's top-k nearest neighbours of the reference.

    Per query, the share of the reference's k nearest texts that the candidate also ranks
    among its k nearest (1.0: the same set, order aside); `p5` and `worst` are the tail.
    """

    k: int
    mean: float
    p5: float
    worst: float
    queries: int


# Rows of the similarity matrix computed at once: bounds memory on a large corpus.
NEIGHBOUR_CHUNK = 1024


def nearest_neighbours(embeddings: np.ndarray, k: int) -> np.ndarray:
    """The k nearest other rows of each row of an [n, d] array by cosine similarity ([n, k]
    indices, nearest first). A row is never its own neighbour; equal similarities go to the
    lower index, so the answer does not depend on the sort's whims."""
    vectors = np.asarray(embeddings, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"expected an [n, d] array, got shape {vectors.shape}")
    n = vectors.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and {n - 1} (the other rows), got {k}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # A zero vector shares no direction with anything: cosine 0 to every row, as in scoring.
    unit = vectors / np.where(norms == 0, 1.0, norms)
    neighbours = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, NEIGHBOUR_CHUNK):
        rows = np.arange(start, min(start + NEIGHBOUR_CHUNK, n))
        similarity = unit[rows] @ unit.T
        similarity[np.arange(len(rows)), rows] = -np.inf
        # A stable sort of the negated similarity keeps ties in index order.
        neighbours[rows] = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return neighbours


def neighbour_overlap(reference: np.ndarray, candidate: np.ndarray, k: int) -> np.ndarray:
    """Per query (a row), |N_ref ∩ N_cand| / k: the share of its k nearest neighbours under
    the reference embeddings that the candidate embeddings also put among its k nearest."""
    ref, cand = np.asarray(reference), np.asarray(candidate)
    if ref.shape != cand.shape:
        raise ValueError(f"expected two arrays of one shape, got {ref.shape}, {cand.shape}")
    ref_neighbours = nearest_neighbours(ref, k)
    cand_neighbours = nearest_neighbours(cand, k)
    shared = [
        len(np.intersect1d(r, c, assume_unique=True))
        for r, c in zip(ref_neighbours, cand_neighbours, strict=True)
    ]
    return np.asarray(shared, dtype=np.float64) / k


def neighbour_agreement(
    reference: np.ndarray, candidate: np.ndarray, k: int = 10
) -> NeighbourAgreement:
    """The top-k neighbour overlap of `candidate` against `reference` (rows: one corpus's
    texts), each text a query against all the others: mean, 5th percentile and worst.

    The 5th percentile is an observed query's score (the lower one, not interpolated): at
    least 95% of the queries keep that share of their neighbours or more.
    """
    scores = neighbour_overlap(reference, candidate, k)
    return NeighbourAgreement(
        k=k,
        mean=float(np.mean(scores)),
        p5=float(np.percentile(scores, 5, method="lower")),
        worst=float(np.min(scores)),
        queries=len(scores),
    )


def passes(accuracy: Accuracy, max_drop: float) -> bool:
    """Whether the measured drop is within the allowed one (a tiny float slack)."""
    return accuracy.drop <= max_drop + 1e-9


def ladder(requested: Precision, fallback: Sequence[Precision]) -> list[Precision]:
    """The precisions to try in order: the requested one, then the fallback list.

    Duplicates are dropped, so a ladder never measures one precision twice.
    """
    order: list[Precision] = []
    for precision in (requested, *fallback):
        if precision not in order:
            order.append(precision)
    return order


@dataclass(frozen=True)
class Decision:
    """The guard's verdict: what to serve (None: nothing passed) and every attempt made."""

    served: Precision | None
    attempts: tuple[Attempt, ...]

    @property
    def ok(self) -> bool:
        """True when some precision passed the guard."""
        return self.served is not None


def walk_ladder(
    order: Sequence[Precision], try_precision: Callable[[Precision], Attempt]
) -> Decision:
    """Try each precision in `order` until one is accepted.

    `try_precision` does the work (quantize, measure, judge) and returns the attempt; keeping
    it a parameter leaves the walk itself free of I/O and easy to test.
    """
    attempts: list[Attempt] = []
    for precision in order:
        attempt = try_precision(precision)
        attempts.append(attempt)
        if attempt.accepted:
            return Decision(served=precision, attempts=tuple(attempts))
    return Decision(served=None, attempts=tuple(attempts))


def verdict(
    accuracy: Accuracy, max_drop: float, max_worst_drop: float | None = None
) -> tuple[bool, str]:
    """Accept or reject a measured accuracy (its mean drop, and its worst sample's when that
    is bounded too), with the reason written for humans."""
    mean_ok = passes(accuracy, max_drop)
    reason = f"drop {accuracy.drop:.4f} {'<=' if mean_ok else '>'} max_drop {max_drop:.4f}"
    if max_worst_drop is None:
        return mean_ok, reason
    worst_ok = accuracy.worst_drop <= max_worst_drop + 1e-9
    sign = "<=" if worst_ok else ">"
    reason += f", worst {accuracy.worst_drop:.4f} {sign} max_worst_drop {max_worst_drop:.4f}"
    return mean_ok and worst_ok, reason

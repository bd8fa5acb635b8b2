"""The guard's calibration inputs: the spec's own, or the set shipped for the task."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from tenfold.api.enums import Task
from tenfold.api.prepare import PrepareSpec
from tenfold_runtime.errors import PrepareError
from tenfold_runtime.modeling import split_pair


def builtin_calibration(task: Task) -> list[str]:
    """The calibration inputs shipped with the runtime for `task` (one file per task)."""
    text = resources.files("tenfold_runtime").joinpath(f"data/calibration_{task}.txt")
    if not text.is_file():
        raise PrepareError(f"no built-in calibration set for task {task}; set calibrationInputs")
    return [line for line in text.read_text().splitlines() if line.strip()]


def calibration_inputs(spec: PrepareSpec) -> list[str]:
    """The spec's inputs (or the built-in set), cut to calibration_samples (a reranker's: to
    whole queries, every query with as many documents)."""
    inputs = list(spec.guard.calibration_inputs) or builtin_calibration(spec.task)
    group = query_group(inputs) if spec.task is Task.RERANKING else 1
    return inputs[: max(group, spec.guard.calibration_samples // group * group)]


def split_calibration(texts: Sequence[str], group: int = 1) -> tuple[list[str], list[str]]:
    """(selection, held_out): the calibration inputs dealt alternately, whole groups at a time
    (a reranker's queries), so both halves span the whole set. What the guard chooses (mixed's
    fp32 layers) it chooses on the selection half; every rung is judged on the held-out half
    only. With a single group there is nothing to hold out: both are that group."""
    groups = [list(texts[start : start + group]) for start in range(0, len(texts), group)]
    if len(groups) < 2:
        return list(texts), list(texts)
    selection = [text for chunk in groups[0::2] for text in chunk]
    held_out = [text for chunk in groups[1::2] for text in chunk]
    return selection, held_out


def query_group(pairs: Sequence[str]) -> int:
    """How many documents each query has in a reranker's calibration pairs (query<TAB>doc,
    one query's documents together): the rank agreement compares each query's order."""
    sizes: dict[str, int] = {}
    order: list[str] = []
    for pair in pairs:
        try:
            query = split_pair(pair)[0]
        except ValueError as error:
            raise PrepareError(f"reranking calibration inputs: {error}") from None
        if query not in sizes:
            order.append(query)
        elif order[-1] != query:
            raise PrepareError(f"reranking calibration inputs: the pairs of {query!r} are apart")
        sizes[query] = sizes.get(query, 0) + 1
    counts = set(sizes.values())
    if len(counts) != 1 or min(counts) < 2:
        raise PrepareError(
            "reranking calibration inputs need the same number (at least 2) of documents for "
            f"every query; found {sorted(counts)}"
        )
    return counts.pop()

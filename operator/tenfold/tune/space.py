"""The search space of one InferenceService: its candidates, each a valid spec of its own.

A candidate changes only the tuned fields of the service (precision, batching window, largest
batch, instances per replica); everything else stays as the user wrote it. Each candidate is
validated with the same rules the apiserver and the operator apply (`parse_spec`), so the
search never proposes a configuration the service could not be given.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tenfold.api.enums import Precision
from tenfold.api.prepare import PrepareSpec
from tenfold.api.resource import FieldError, InvalidSpecError, parse_spec
from tenfold.api.spec import InferenceServiceSpec
from tenfold.api.tuning import TuningSearchSpace
from tenfold.plan.prepare_spec import build_prepare_spec


@dataclass(frozen=True, order=True)
class Candidate:
    """One point of the grid: the values of the tuned fields."""

    precision: Precision
    max_queue_delay_us: int
    max_batch_size: int
    instances: int

    def label(self) -> str:
        """A short name for tables and logs."""
        return (
            f"{self.precision} window={self.max_queue_delay_us}us "
            f"batch={self.max_batch_size} instances={self.instances}"
        )


@dataclass(frozen=True)
class SearchSpace:
    """The values of each tuned field; the grid is their product, in this order."""

    precisions: tuple[Precision, ...]
    windows_us: tuple[int, ...]
    max_batch_sizes: tuple[int, ...]
    instances: tuple[int, ...]

    def dimensions(self) -> tuple[tuple[Any, ...], ...]:
        """The axes of the grid; neighbours differ by one step along one axis."""
        return (self.precisions, self.windows_us, self.max_batch_sizes, self.instances)

    def grid(self) -> list[Candidate]:
        """Every candidate, precision first (the order brute force measures them in)."""
        return [Candidate(*point) for point in itertools.product(*self.dimensions())]

    def size(self) -> int:
        """How many candidates the grid holds."""
        return (
            len(self.precisions)
            * len(self.windows_us)
            * len(self.max_batch_sizes)
            * len(self.instances)
        )


class SearchSpaceError(ValueError):
    """The search space cannot be searched: empty, or a candidate the service's rules refuse."""


def guard_ladder(spec: InferenceServiceSpec) -> tuple[Precision, ...]:
    """The precisions the service's guard may serve: the requested one, then its fallback."""
    ladder: list[Precision] = []
    for precision in (spec.quantization.precision, *spec.quantization.guard.fallback):
        if precision not in ladder:
            ladder.append(precision)
    return tuple(ladder)


def default_space(spec: InferenceServiceSpec) -> SearchSpace:
    """A small grid for one machine: the guard's ladder x 3 windows x 2 batch limits x 2 counts.

    The windows straddle the service's own (half, as written, four times) within its SLO.
    """
    window = spec.batching.max_queue_delay_microseconds or 5000
    slo_us = int(spec.autoscaling.target_p95_latency_ms * 1000)
    windows = sorted({max(500, window // 4), window, min(window * 4, slo_us // 2)})
    batch = spec.batching.max_batch_size or 32
    return SearchSpace(
        precisions=guard_ladder(spec),
        windows_us=tuple(windows),
        max_batch_sizes=tuple(sorted({max(1, batch // 4), batch})),
        instances=(1, 2),
    )


def tuning_space(spec: InferenceServiceSpec, axes: TuningSearchSpace) -> SearchSpace:
    """An InferenceTuning's search space: its axes, each one it leaves empty the default's."""
    default = default_space(spec)
    return SearchSpace(
        precisions=tuple(axes.precisions) or default.precisions,
        windows_us=tuple(axes.max_queue_delay_microseconds) or default.windows_us,
        max_batch_sizes=tuple(axes.max_batch_sizes) or default.max_batch_sizes,
        instances=tuple(axes.instances_per_replica) or default.instances,
    )


def candidate_document(spec: Mapping[str, Any], candidate: Candidate) -> dict[str, Any]:
    """The service's spec (as written) with the candidate's values in the tuned fields.

    Preferred batch sizes above the candidate's largest batch are dropped (Triton refuses
    them); the guard keeps its ladder, so a patched service is still protected.
    """
    document = copy.deepcopy(dict(spec))
    quantization = document.setdefault("quantization", {})
    quantization["precision"] = str(candidate.precision)
    batching = document.setdefault("batching", {})
    batching["maxQueueDelayMicroseconds"] = candidate.max_queue_delay_us
    batching["maxBatchSize"] = candidate.max_batch_size
    preferred = [
        s for s in batching.get("preferredBatchSizes", []) if s <= candidate.max_batch_size
    ]
    if "preferredBatchSizes" in batching:
        batching["preferredBatchSizes"] = preferred
    document.setdefault("runtime", {})["instancesPerReplica"] = candidate.instances
    return document


def candidate_spec(spec: Mapping[str, Any], candidate: Candidate) -> InferenceServiceSpec:
    """The candidate's validated spec; InvalidSpecError names the field the rules refuse."""
    return parse_spec(candidate_document(spec, candidate))


def validate_space(spec: Mapping[str, Any], space: SearchSpace) -> dict[Candidate, Any]:
    """Every candidate's validated spec, or SearchSpaceError naming each refused field."""
    if space.size() == 0:
        empty = [n for n, axis in zip(_AXES, space.dimensions(), strict=True) if not axis]
        raise SearchSpaceError(f"the search space is empty: no value for {', '.join(empty)}")
    specs: dict[Candidate, Any] = {}
    refused: list[str] = []
    for candidate in space.grid():
        try:
            specs[candidate] = candidate_spec(spec, candidate)
        except InvalidSpecError as error:
            refused.append(f"{candidate.label()}: {_fields(error.errors)}")
    if refused:
        raise SearchSpaceError(
            "the search space holds candidates the service's rules refuse:\n  "
            + "\n  ".join(refused)
        )
    return specs


_AXES = ("precision", "maxQueueDelayMicroseconds", "maxBatchSize", "instancesPerReplica")


def _fields(errors: Sequence[FieldError]) -> str:
    return "; ".join(str(e) for e in errors)


def precision_prepare_spec(name: str, spec: Mapping[str, Any], candidate: Candidate) -> PrepareSpec:
    """The prepare spec of the candidate's precision alone (no fallback): the guard accepts
    exactly that precision or rejects it, so each precision is prepared and judged once."""
    document = candidate_document(spec, candidate)
    document["quantization"].setdefault("guard", {})["fallback"] = []
    return build_prepare_spec(name, parse_spec(document))


def candidate_config(name: str, spec: Mapping[str, Any], candidate: Candidate) -> str:
    """config.pbtxt the operator renders for the candidate (the runtime adds the width)."""
    return build_prepare_spec(name, candidate_spec(spec, candidate)).config_pbtxt

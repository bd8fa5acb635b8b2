"""The search space of one InferenceService: its candidates, each a valid spec of its own.

A candidate changes only the tuned fields of the service (precision, batching window, largest
batch, instances per replica); everything else stays as the user wrote it. Each candidate is
validated with the same rules the apiserver and the operator apply (`parse_spec`), so the
search never proposes a configuration the service could not be given.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tenfold.api.enums import Backend, Engine, Precision
from tenfold.api.prepare import PrepareSpec
from tenfold.api.resource import FieldError, InvalidSpecError, parse_spec
from tenfold.api.spec import InferenceServiceSpec
from tenfold.api.tuning import TuningSearchSpace
from tenfold.plan.prepare_spec import build_prepare_spec

# The value of a list axis that leaves the field as the service has it.
AS_WRITTEN = None


@dataclass(frozen=True)
class Candidate:
    """One point of the grid: the values of the tuned fields.

    The list-valued fields are None (AS_WRITTEN) unless the tuning searches them.
    """

    precision: Precision
    max_queue_delay_us: int
    max_batch_size: int
    instances: int
    preferred_batch_sizes: tuple[int, ...] | None = AS_WRITTEN
    sequence_buckets: tuple[int, ...] | None = AS_WRITTEN
    backend: Backend | None = AS_WRITTEN
    engine: Engine | None = AS_WRITTEN

    def point(self) -> tuple[Any, ...]:
        """The values in the order of SearchSpace.dimensions()."""
        return (
            self.precision,
            self.max_queue_delay_us,
            self.max_batch_size,
            self.instances,
            self.preferred_batch_sizes,
            self.sequence_buckets,
            self.backend,
            self.engine,
        )

    def label(self) -> str:
        """A short name for tables and logs."""
        text = (
            f"{self.precision} window={self.max_queue_delay_us}us "
            f"batch={self.max_batch_size} instances={self.instances}"
        )
        return f"{text} {self.extras()}".strip()

    def extras(self) -> str:
        """The values of the axes beyond the four scalar ones that this candidate sets ("" when
        it leaves them as written)."""
        parts = []
        if self.preferred_batch_sizes is not None:
            parts.append(f"preferred={list(self.preferred_batch_sizes)}")
        if self.sequence_buckets is not None:
            parts.append(f"buckets={list(self.sequence_buckets)}")
        if self.backend is not None:
            parts.append(f"backend={self.backend}")
        if self.engine is not None:
            parts.append(f"engine={self.engine}")
        return " ".join(parts)

    def guard_key(self) -> tuple[Any, ...]:
        """What the accuracy guard's verdict depends on: the precision and what runs it (an
        int8 torch rejects may pass as onnxruntime's int8)."""
        return (self.precision, self.backend, self.engine)

    def prepare_key(self) -> tuple[Any, ...]:
        """What the prepared model depends on: candidates equal in it share one prepare (the
        batching and instances are config.pbtxt only; buckets shape the exported model, the
        backend and engine what is exported)."""
        return (self.precision, self.sequence_buckets, self.backend, self.engine)


@dataclass(frozen=True)
class SearchSpace:
    """The values of each tuned field; the grid is their product, in this order."""

    precisions: tuple[Precision, ...]
    windows_us: tuple[int, ...]
    max_batch_sizes: tuple[int, ...]
    instances: tuple[int, ...]
    preferred_batch_sizes: tuple[tuple[int, ...] | None, ...] = (AS_WRITTEN,)
    sequence_buckets: tuple[tuple[int, ...] | None, ...] = (AS_WRITTEN,)
    backends: tuple[Backend | None, ...] = (AS_WRITTEN,)
    engines: tuple[Engine | None, ...] = (AS_WRITTEN,)

    def dimensions(self) -> tuple[tuple[Any, ...], ...]:
        """The axes of the grid; neighbours differ by one step along one axis."""
        return (
            self.precisions,
            self.windows_us,
            self.max_batch_sizes,
            self.instances,
            self.preferred_batch_sizes,
            self.sequence_buckets,
            self.backends,
            self.engines,
        )

    def grid(self) -> list[Candidate]:
        """Every candidate, precision first (the order brute force measures them in)."""
        return [Candidate(*point) for point in itertools.product(*self.dimensions())]

    def size(self) -> int:
        """How many candidates the grid holds."""
        return math.prod(len(axis) for axis in self.dimensions())


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
        preferred_batch_sizes=tuple(tuple(s) for s in axes.preferred_batch_sizes)
        or default.preferred_batch_sizes,
        sequence_buckets=tuple(tuple(b) for b in axes.sequence_buckets) or default.sequence_buckets,
        backends=tuple(axes.backends) or default.backends,
        engines=tuple(axes.engines) or default.engines,
    )


def start_candidate(spec: InferenceServiceSpec, space: SearchSpace) -> Candidate:
    """Where the quick search starts: the service's own value on every axis that holds it,
    else that axis's first value."""
    own: tuple[Any, ...] = (
        spec.quantization.precision,
        spec.batching.max_queue_delay_microseconds,
        spec.batching.max_batch_size,
        spec.runtime.instances_per_replica,
        tuple(spec.batching.preferred_batch_sizes),
        tuple(spec.batching.sequence_buckets),
        spec.runtime.backend,
        spec.runtime.engine,
    )
    point: list[Any] = [
        value if value in axis else (AS_WRITTEN if AS_WRITTEN in axis else axis[0])
        for value, axis in zip(own, space.dimensions(), strict=True)
    ]
    return Candidate(*point)


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
    if candidate.preferred_batch_sizes is not AS_WRITTEN:
        batching["preferredBatchSizes"] = list(candidate.preferred_batch_sizes)
    if candidate.sequence_buckets is not AS_WRITTEN:
        batching["sequenceBuckets"] = list(candidate.sequence_buckets)
    preferred = [
        s for s in batching.get("preferredBatchSizes", []) if s <= candidate.max_batch_size
    ]
    if "preferredBatchSizes" in batching:
        batching["preferredBatchSizes"] = preferred
    runtime = document.setdefault("runtime", {})
    runtime["instancesPerReplica"] = candidate.instances
    if candidate.backend is not AS_WRITTEN:
        runtime["backend"] = str(candidate.backend)
    if candidate.engine is not AS_WRITTEN:
        runtime["engine"] = str(candidate.engine)
    return document


def candidate_spec(spec: Mapping[str, Any], candidate: Candidate) -> InferenceServiceSpec:
    """The candidate's validated spec; InvalidSpecError names the field the rules refuse."""
    return parse_spec(candidate_document(spec, candidate))


@dataclass(frozen=True)
class CheckedSpace:
    """A space checked against the service's rules: the candidates it may measure, and the
    combinations of axis values the rules refuse (each with the fields and why)."""

    specs: dict[Candidate, InferenceServiceSpec]
    refused: dict[Candidate, str]


def validate_space(spec: Mapping[str, Any], space: SearchSpace) -> CheckedSpace:
    """Every candidate checked by the service's rules.

    A combination the rules refuse (mixed precision with the onnxruntime engine) is left out
    of the search and shown as refused; a value that no combination can use (a window longer
    than the SLO) means the space was written wrong, and it is refused whole, naming the
    field: SearchSpaceError.
    """
    if space.size() == 0:
        empty = [n for n, axis in zip(_AXES, space.dimensions(), strict=True) if not axis]
        raise SearchSpaceError(f"the search space is empty: no value for {', '.join(empty)}")
    specs: dict[Candidate, InferenceServiceSpec] = {}
    refused: dict[Candidate, str] = {}
    for candidate in space.grid():
        try:
            specs[candidate] = candidate_spec(spec, candidate)
        except InvalidSpecError as error:
            refused[candidate] = f"the service's rules refuse it: {_fields(error.errors)}"
    dead = []
    for index, (name, axis) in enumerate(zip(_AXES, space.dimensions(), strict=True)):
        for value in axis:
            if not any(c.point()[index] == value for c in specs):
                example = next(c for c in refused if c.point()[index] == value)
                shown = list(value) if isinstance(value, tuple) else value
                dead.append(f"{name} {shown}: {refused[example]} ({example.label()})")
    if dead:
        raise SearchSpaceError(
            "the search space holds values the service's rules refuse in every combination:"
            "\n  " + "\n  ".join(dead)
        )
    return CheckedSpace(specs, refused)


_AXES = (
    "precision",
    "maxQueueDelayMicroseconds",
    "maxBatchSize",
    "instancesPerReplica",
    "preferredBatchSizes",
    "sequenceBuckets",
    "backend",
    "engine",
)


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

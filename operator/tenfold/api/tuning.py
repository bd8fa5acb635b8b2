"""The InferenceTuning kind (issue 15): a configuration search over one InferenceService.

It names the service, the search space (each axis empty means the service's own default grid,
`tenfold.tune.space.default_space`), the load, the objective, the search budget and what to do
with the winner. The operator runs each generation of a tuning as a Job of the runtime image
(`tenfold.plan.tuning`), which runs `tenfold-runtime tune` and reports through its termination
message (`tenfold.tune.summary`); the status below holds what it found.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from tenfold.api.enums import (
    Backend,
    Engine,
    Precision,
    TuningAction,
    TuningMode,
    TuningObjective,
)
from tenfold.api.spec import MAX_QUEUE_DELAY_US, ApiModel, DnsLabel
from tenfold.api.status import Condition

QueueDelay = Annotated[int, Field(ge=0, le=MAX_QUEUE_DELAY_US)]
BatchLimit = Annotated[int, Field(ge=0, le=4096)]
Instances = Annotated[int, Field(ge=1, le=16)]
BatchSize = Annotated[int, Field(ge=1, le=4096)]
Bucket = Annotated[int, Field(ge=1, le=65536)]
Concurrency = Annotated[int, Field(ge=1, le=1024)]
# The apiserver refuses a repeated value in a list typed as a set; the validator below says
# the same in Python.
_SET: dict = {"x-kubernetes-list-type": "set"}


def _axis(description: str, max_length: int = 16, list_type: str = "set") -> Any:
    """One axis of the search space: a list of the values tried, empty for the default.

    Scalar axes are sets (the apiserver refuses a repeated value, as does the validator
    below); axes whose values are lists themselves are atomic lists, checked below alone."""
    return Field(
        default_factory=list,
        max_length=max_length,
        json_schema_extra={"x-kubernetes-list-type": list_type},
        description=description,
    )


class TuningSearchSpace(ApiModel):
    """The values tried for each tuned field; the grid is their product."""

    precisions: list[Precision] = _axis(
        "Precisions tried, each prepared once and judged by the service's own accuracy guard "
        "(a precision it rejects is no candidate). Empty: the service's guard ladder (its "
        "precision, then its fallback).",
        max_length=7,
    )
    max_queue_delay_microseconds: list[QueueDelay] = _axis(
        "Batching windows tried. Empty: a quarter of the service's, its own, and four times "
        "it (at most half the p95 SLO)."
    )
    max_batch_sizes: list[BatchLimit] = _axis(
        "maxBatchSize values tried. Empty: the service's and a quarter of it."
    )
    instances_per_replica: list[Instances] = _axis("Instance counts tried. Empty: 1 and 2.")
    preferred_batch_sizes: list[Annotated[list[BatchSize], Field(max_length=16)]] = _axis(
        "batching.preferredBatchSizes lists tried (each one list; [] is none, sizes above a "
        "candidate's maxBatchSize are dropped). Empty: the service's own.",
        max_length=8,
        list_type="atomic",
    )
    sequence_buckets: list[Annotated[list[Bucket], Field(max_length=16)]] = _axis(
        "batching.sequenceBuckets lists tried (token lengths inputs are padded to; each "
        "bucket set is prepared once). Empty: the service's own.",
        max_length=8,
        list_type="atomic",
    )
    backends: list[Backend] = _axis(
        "runtime.backend values tried (each prepared once; a backend the serving image lacks "
        "is refused with tritonserver's reason). Empty: the service's.",
        max_length=5,
    )
    engines: list[Engine] = _axis(
        "runtime.engine values tried with the Python backend: torch, or onnxruntime on the "
        "exported ONNX model, each prepared once. Empty: the service's.",
        max_length=2,
    )


# A ConfigMap data key: what the apiserver accepts for one.
ConfigMapKey = Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]


class TuningInputs(ApiModel):
    """Requests of the team's own, from a ConfigMap in the tuning's namespace."""

    config_map_name: DnsLabel = Field(description="The ConfigMap holding the inputs.")
    key: ConfigMapKey = Field(
        description="Its key: one request per line (a reranker's: query<TAB>document)."
    )


RequestRate = Annotated[float, Field(gt=0, le=100_000)]


class TuningLoad(ApiModel):
    """The load each candidate is measured under (perf_analyzer): closed-loop concurrency
    levels, or open-loop request rates."""

    concurrency: list[Concurrency] = Field(
        default_factory=lambda: [4, 16],
        min_length=1,
        max_length=16,
        description="Concurrency levels swept; a candidate's throughput is its best level "
        "whose p95 is within the service's autoscaling.targetP95LatencyMs.",
        json_schema_extra={"default": [4, 16]},
    )
    request_rates: list[RequestRate] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=_SET,
        description="Open-loop rates (requests/s) offered instead of the concurrency levels "
        "(the traffic a team expects); a candidate's throughput is the highest rate it "
        "answers at >= 95% with its p95 within the SLO.",
    )
    measurement_milliseconds: int = Field(
        2000, ge=500, le=60_000, description="perf_analyzer's measurement window per level."
    )
    inputs: TuningInputs | None = Field(
        None,
        description="The requests sent, cycled. Unset: the runtime's built-in calibration "
        "set for the service's task (what its accuracy guard measures on).",
    )


class TuningBudget(ApiModel):
    """When the search stops: whichever limit comes first."""

    max_trials: int | None = Field(
        None, ge=1, le=1000, description="Most candidates measured; unset: no limit."
    )
    minutes: float | None = Field(
        None, gt=0, le=1440, description="Most minutes spent searching; unset: no limit."
    )


class InferenceTuningSpec(ApiModel):
    """What to search, how, and what to do with the winner."""

    service_name: DnsLabel = Field(
        description="The InferenceService to tune, in the tuning's namespace."
    )
    search_space: TuningSearchSpace = Field(
        default_factory=TuningSearchSpace, description="The values tried per field."
    )
    mode: TuningMode = Field(
        TuningMode.QUICK,
        description="quick: hill climbing over the grid from the service's own configuration, "
        "stopping when no neighbour improves; brute: every candidate.",
    )
    objective: TuningObjective = Field(
        TuningObjective.COST,
        description="cost: USD per 1,000 requests at the SLO (the replica's price over its "
        "throughput at the SLO); throughput: requests/s at the SLO; p95: latency.",
    )
    load: TuningLoad = Field(default_factory=TuningLoad, description="The load measured under.")
    budget: TuningBudget = Field(default_factory=TuningBudget, description="The search budget.")
    action: TuningAction = Field(
        TuningAction.RECOMMEND,
        description="recommend: the winner and its patch go to status only; apply: the "
        "service is patched too, if it is annotated tenfold.dev/tuning-apply=allowed (GitOps "
        "users keep recommend and commit the patch).",
    )

    @model_validator(mode="after")
    def _no_repeats(self) -> InferenceTuningSpec:
        space = self.search_space
        for name, values in (
            ("precisions", space.precisions),
            ("maxQueueDelayMicroseconds", space.max_queue_delay_microseconds),
            ("maxBatchSizes", space.max_batch_sizes),
            ("instancesPerReplica", space.instances_per_replica),
            ("preferredBatchSizes", [tuple(v) for v in space.preferred_batch_sizes]),
            ("sequenceBuckets", [tuple(v) for v in space.sequence_buckets]),
            ("backends", space.backends),
            ("engines", space.engines),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"spec.searchSpace.{name}: a value is listed twice")
        if len(set(self.load.request_rates)) != len(self.load.request_rates):
            raise ValueError("spec.load.requestRates: a value is listed twice")
        return self


class TuningTrial(ApiModel):
    """One row of the trials table: a candidate and what measuring it gave."""

    precision: Precision = Field(description="The precision asked of the guard.")
    max_queue_delay_microseconds: int = Field(description="The batching window.")
    max_batch_size: int = Field(description="The largest batch.")
    instances_per_replica: int = Field(description="Model instances in one replica.")
    preferred_batch_sizes: list[int] | None = Field(
        None, description="The preferred batch sizes, when the search varies them."
    )
    sequence_buckets: list[int] | None = Field(
        None, description="The sequence buckets, when the search varies them."
    )
    backend: Backend | None = Field(None, description="The backend, when the search varies it.")
    engine: Engine | None = Field(None, description="The engine, when the search varies it.")
    throughput: float | None = Field(
        None, description="Requests/s at the best level whose p95 is within the SLO."
    )
    p95_ms: float | None = Field(None, description="p95 latency (ms) of that level.")
    accuracy_drop: float | None = Field(
        None, description="The guard's measured drop against fp32 for this precision."
    )
    cost_per_1k_requests: float | None = Field(
        None,
        alias="costPer1kRequests",
        description="USD per 1,000 requests at the SLO (the replica's price / throughput).",
    )
    accepted: bool = Field(description="True when the candidate meets every constraint.")
    reason: str | None = Field(None, max_length=512, description="Why it is not accepted.")
    measured: bool = Field(
        True, description="False: refused unmeasured (its precision was rejected by the guard)."
    )


class InferenceTuningStatus(ApiModel):
    """Observed state of an InferenceTuning: the search's Job, its trials and its winner."""

    observed_generation: int | None = Field(None, description="Last spec generation acted on.")
    job: str | None = Field(None, description="The Job running this generation's search.")
    service_generation: int | None = Field(
        None,
        description="The service's generation the search started from; apply refuses to "
        "patch a service edited since.",
    )
    started_at: str | None = Field(None, description="When the Job was created (RFC 3339).")
    finished_at: str | None = Field(None, description="When the Job ended (RFC 3339).")
    grid: int | None = Field(None, description="Candidates in the search space.")
    stopped: str | None = Field(None, description="Why the search stopped.")
    trials: list[TuningTrial] = Field(
        default_factory=list, description="Every trial in the order it ran."
    )
    trials_omitted: int = Field(
        0, description="Rows the Job's report had no room for (refused ones first)."
    )
    winner: TuningTrial | None = Field(None, description="The accepted trial ranked first.")
    patch: str | None = Field(
        None,
        description="A merge patch of the InferenceService (YAML) giving it the winner's "
        "configuration; commit it, or `kubectl patch tfis NAME --type merge --patch-file`.",
    )
    applied: bool = Field(False, description="True once action apply patched the service.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Progressing while the search runs, Ready once it has a winner, Degraded "
        "when it cannot (no such service, a space the service's rules refuse, a failed Job).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )

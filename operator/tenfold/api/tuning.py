"""The InferenceTuning kind (issue 15): a configuration search over one InferenceService.

It names the service, the search space (each axis empty means the service's own default grid,
`tenfold.tune.space.default_space`), the load, the objective, the search budget and what to do
with the winner. The operator runs each generation of a tuning as a Job of the runtime image
(`tenfold.plan.tuning`), which runs `tenfold-runtime tune` and reports through its termination
message (`tenfold.tune.summary`); the status below holds what it found.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from tenfold.api.enums import Precision, TuningAction, TuningMode, TuningObjective
from tenfold.api.spec import MAX_QUEUE_DELAY_US, ApiModel, DnsLabel
from tenfold.api.status import Condition

QueueDelay = Annotated[int, Field(ge=0, le=MAX_QUEUE_DELAY_US)]
BatchLimit = Annotated[int, Field(ge=0, le=4096)]
Instances = Annotated[int, Field(ge=1, le=16)]
Concurrency = Annotated[int, Field(ge=1, le=1024)]
# The apiserver refuses a repeated value in a list typed as a set; the validator below says
# the same in Python.
_SET: dict = {"x-kubernetes-list-type": "set"}


class TuningSearchSpace(ApiModel):
    """The values tried for each tuned field; the grid is their product."""

    precisions: list[Precision] = Field(
        default_factory=list,
        max_length=7,
        json_schema_extra=_SET,
        description="Precisions tried, each prepared once and judged by the service's own "
        "accuracy guard (a precision it rejects is no candidate). Empty: the service's guard "
        "ladder (its precision, then its fallback).",
    )
    max_queue_delay_microseconds: list[QueueDelay] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=_SET,
        description="Batching windows tried. Empty: a quarter of the service's, its own, and "
        "four times it (at most half the p95 SLO).",
    )
    max_batch_sizes: list[BatchLimit] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=_SET,
        description="maxBatchSize values tried. Empty: the service's and a quarter of it.",
    )
    instances_per_replica: list[Instances] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=_SET,
        description="Instance counts tried. Empty: 1 and 2.",
    )


class TuningLoad(ApiModel):
    """The closed-loop load each candidate is measured under (perf_analyzer)."""

    concurrency: list[Concurrency] = Field(
        default_factory=lambda: [4, 16],
        min_length=1,
        max_length=16,
        description="Concurrency levels swept; a candidate's throughput is its best level "
        "whose p95 is within the service's autoscaling.targetP95LatencyMs.",
        json_schema_extra={"default": [4, 16]},
    )
    measurement_milliseconds: int = Field(
        2000, ge=500, le=60_000, description="perf_analyzer's measurement window per level."
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
        "service is patched too (GitOps users keep recommend and commit the patch).",
    )

    @model_validator(mode="after")
    def _no_repeats(self) -> InferenceTuningSpec:
        space = self.search_space
        for name, values in (
            ("precisions", space.precisions),
            ("maxQueueDelayMicroseconds", space.max_queue_delay_microseconds),
            ("maxBatchSizes", space.max_batch_sizes),
            ("instancesPerReplica", space.instances_per_replica),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"spec.searchSpace.{name}: a value is listed twice")
        return self


class TuningTrial(ApiModel):
    """One row of the trials table: a candidate and what measuring it gave."""

    precision: Precision = Field(description="The precision asked of the guard.")
    max_queue_delay_microseconds: int = Field(description="The batching window.")
    max_batch_size: int = Field(description="The largest batch.")
    instances_per_replica: int = Field(description="Model instances in one replica.")
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

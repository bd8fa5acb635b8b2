"""The InferenceTuning kind (issue 15): a configuration search over one InferenceService.

It names the service, the search space (each axis empty means the service's own default grid,
`tenfold.tune.space.default_space`), the load, the objective, the search budget and what to do
with the winner. The operator does not reconcile it yet: the kind is generated, validated and
documented from these models so that `tenfold-runtime tune` and the Job to come read one
contract; `docs/tuning.md` says what is missing.
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


class InferenceTuningStatus(ApiModel):
    """Observed state of an InferenceTuning (written once the operator runs tunings)."""

    observed_generation: int | None = Field(None, description="Last spec generation acted on.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Progressing while the search runs, Ready once it has a winner, Degraded "
        "when it cannot (no such service, a space the service's rules refuse, a failed Job).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )

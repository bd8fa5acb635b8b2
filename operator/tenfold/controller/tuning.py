"""InferenceTuning: what to run for a generation, and what its finished Job means.

Pure functions over the tuning, the service and the Job's and pod's bodies; the kopf
actions (controller/actions.py) do the reads and writes around them.

A generation starts one Job (plan/tuning.py) unless it is refused first, without touching
the cluster beyond its own status: a service that does not exist (retried: it may be created
after the tuning), a tuning or service the API rules refuse, a search space holding a
candidate the service's rules refuse. When the Job ends, its pod's termination message
(tune/summary.py) gives the trials, the winner and the patch; a Job that died gives the
reason the Job controller and the kubelet recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from tenfold import constants
from tenfold.api.catalog import CPU
from tenfold.api.resource import (
    InferenceService,
    InvalidSpecError,
    parse_inference_service,
    parse_tuning_spec,
)
from tenfold.api.status import ConditionType
from tenfold.api.tuning import InferenceTuningSpec
from tenfold.controller.conditions import ConditionUpdate, condition, refusal_conditions
from tenfold.plan.tuning import build_tuning_config_map, build_tuning_job, tuning_job_name
from tenfold.tune.space import SearchSpaceError, tuning_space, validate_space
from tenfold.tune.summary import SummaryError, decode

# The field manager of the patches `action: apply` makes, so `managedFields` tells a person
# (and GitOps diffs) that the tuning, not the operator's reconcile or a human, set them.
TUNING_FIELD_MANAGER = "tenfold-tuning"
# A tuning that names a service (or inputs) not created yet looks again this often.
SERVICE_MISSING_RETRY_SECONDS = 30
# tenfold-runtime tune's exit codes (tune_cli.py): 1 no candidate met the constraints.
EXIT_NO_WINNER = 1


class TuningRefusedError(Exception):
    """A generation that cannot start: the reason (a condition reason) and the message."""

    def __init__(self, reason: str, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.reason, self.message, self.retry = reason, message, retry


@dataclass(frozen=True)
class TuningStart:
    """What one generation runs: its Job, the ConfigMap the Job reads, and where it began."""

    objects: list[dict[str, Any]]
    job: str
    service_generation: int


def parse_tuning(body: Mapping[str, Any]) -> InferenceTuningSpec:
    """The tuning's spec, or TuningRefusedError naming each bad field."""
    try:
        return parse_tuning_spec(body.get("spec") or {})
    except InvalidSpecError as invalid:
        raise TuningRefusedError("InvalidSpec", str(invalid)) from None


def _service(
    service: Mapping[str, Any] | None, tuning: InferenceTuningSpec, namespace: str
) -> InferenceService:
    if service is None:
        raise TuningRefusedError(
            "ServiceNotFound",
            f"InferenceService {tuning.service_name!r} does not exist in namespace "
            f"{namespace!r}; the tuning starts once it does",
            retry=True,
        )
    try:
        return parse_inference_service(service)
    except InvalidSpecError as invalid:
        raise TuningRefusedError("ServiceInvalid", f"the service is invalid: {invalid}") from None


def start(
    body: Mapping[str, Any],
    service_body: Mapping[str, Any] | None,
    *,
    default_image: str,
    inputs_key_found: bool = True,
) -> TuningStart:
    """The objects of this generation's search, or TuningRefusedError saying why none runs.

    `inputs_key_found`: the ConfigMap the load names exists and holds its key (read by the
    caller; irrelevant without one).
    """
    metadata = body["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    generation = int(metadata.get("generation") or 1)
    tuning = parse_tuning(body)
    service = _service(service_body, tuning, namespace)
    if service.spec.hardware.gpu_type != CPU:
        # The GPU runtime image (NGC Triton) carries neither perf_analyzer nor the
        # tritonserver layout `tenfold-runtime tune` starts: a Job there would only fail.
        raise TuningRefusedError(
            "GpuNotSupported",
            f"the service runs on gpuType {service.spec.hardware.gpu_type!r}: tuning runs on "
            "CPU services only for now (the GPU runtime image lacks perf_analyzer; "
            "docs/tuning.md)",
        )
    inputs = tuning.load.inputs
    if inputs is not None and not inputs_key_found:
        raise TuningRefusedError(
            "InputsNotFound",
            f"spec.load.inputs: ConfigMap {inputs.config_map_name!r} with key {inputs.key!r} "
            f"does not exist in namespace {namespace!r}; the tuning starts once it does",
            retry=True,
        )
    assert service_body is not None  # _service refused a missing one
    space = tuning_space(service.spec, tuning.search_space)
    try:
        validate_space(service_body["spec"], space)
    except SearchSpaceError as refused:
        raise TuningRefusedError("SearchSpaceRefused", str(refused)) from None
    try:
        job = build_tuning_job(
            name,
            namespace,
            generation,
            metadata["uid"],
            tuning,
            service.spec,
            precisions=len(space.precisions),
            default_image=default_image,
        )
    except ValueError as error:  # a gpuType the catalog lacks
        raise TuningRefusedError("ServiceInvalid", str(error)) from None
    config_map = build_tuning_config_map(
        name, namespace, generation, metadata["uid"], service_body, body["spec"]
    )
    return TuningStart(
        [config_map, job],
        tuning_job_name(name, generation),
        int((service_body.get("metadata") or {}).get("generation") or 0),
    )


def started_status(started: TuningStart, now: str) -> dict[str, Any]:
    """The status fields of a generation whose Job was just created (a new search's
    results replace the last one's)."""
    return {
        "job": started.job,
        "serviceGeneration": started.service_generation,
        "startedAt": now,
        "finishedAt": None,
        "grid": None,
        "stopped": None,
        "trials": None,
        "trialsOmitted": None,
        "winner": None,
        "patch": None,
        "applied": None,
    }


def started_conditions(job: str) -> list[ConditionUpdate]:
    """Searching: the Job runs."""
    message = f"Job {job} searches; its trials appear here when it ends"
    return [
        condition(ConditionType.PROGRESSING, True, "Searching", message),
        condition(ConditionType.READY, False, "Searching", message),
        condition(ConditionType.DEGRADED, False, "Searching", ""),
    ]


def refused_conditions(refused: TuningRefusedError) -> list[ConditionUpdate]:
    """A generation that cannot start: Degraded with the reason, nothing running."""
    return refusal_conditions(refused.reason, refused.message)


def job_finished(job: Mapping[str, Any]) -> str | None:
    """ "Complete" or "Failed" once the Job controller says so, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def _job_failure(job: Mapping[str, Any]) -> str:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return f"{cond.get('reason') or 'Failed'}: {cond.get('message') or ''}".strip(": ")
    return "the Job failed"


def terminated(pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The `tune` container's terminated state in the Job's (last) pod, if it has one."""
    found = None
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            state = (status.get("state") or {}).get("terminated")
            if status.get("name") == "tune" and state:
                found = state
    return found


@dataclass(frozen=True)
class JobOutcome:
    """The status fields and conditions a finished Job gives its tuning."""

    fields: dict[str, Any]
    conditions: list[ConditionUpdate]


def outcome(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> JobOutcome:
    """What the finished Job found: a winner, no winner, or why the search died."""
    state = terminated(pods) or {}
    message = str(state.get("message") or "")
    try:
        found = decode(message) if message else None
    except SummaryError:
        found = None
    if found is not None and "error" in found:
        return _failed("SearchRefused", f"tenfold-runtime tune refused its input: {found['error']}")
    if found is None:
        detail = _job_failure(job) if job_finished(job) == "Failed" else "the Job ended"
        exit_code, reason = state.get("exitCode"), state.get("reason")
        if exit_code is not None:
            detail += f"; container tune: {reason or 'terminated'}, exit code {exit_code}"
        if message:
            detail += f"; last output: {message[-600:]}"
        elif not state:
            detail += "; its pod is gone (deleted, or evicted)"
        return _failed("JobFailed", detail)
    winner = found["winner"]
    measured = sum(1 for t in found["trials"] if t["measured"])
    if winner is None:
        text = f"no candidate met the constraints ({measured} measured; {found['stopped']})"
        return JobOutcome(
            found,
            [
                condition(ConditionType.READY, False, "NoWinner", text),
                condition(ConditionType.DEGRADED, False, "NoWinner", ""),
                condition(ConditionType.PROGRESSING, False, "NoWinner", text),
            ],
        )
    text = f"winner {describe(winner)} ({measured} measured; {found['stopped']})"
    reason = "Recommended" if found["patch"] else "AlreadyBest"
    return JobOutcome(found, _done(reason, text))


def vanished(job: str) -> JobOutcome:
    """The Job is gone before it ended (deleted by hand): nothing to read."""
    return _failed("JobFailed", f"Job {job} was deleted before it ended")


def _done(reason: str, text: str) -> list[ConditionUpdate]:
    return [
        condition(ConditionType.READY, True, reason, text),
        condition(ConditionType.DEGRADED, False, reason, ""),
        condition(ConditionType.PROGRESSING, False, reason, text),
    ]


def _failed(reason: str, text: str) -> JobOutcome:
    return JobOutcome({}, refusal_conditions(reason, text))


def describe(trial: Mapping[str, Any]) -> str:
    """A trial in one line: its configuration and what it measured."""
    cost = trial.get("costPer1kRequests")
    return (
        f"{trial['precision']}, window {trial['maxQueueDelayMicroseconds']} us, batch "
        f"{trial['maxBatchSize']}, {trial['instancesPerReplica']} instance(s): "
        f"{trial.get('throughput', 0):g} req/s at p95 {trial.get('p95Ms', 0):g} ms"
        + (f", ${cost:g} per 1,000 requests" if cost is not None else "")
    )


def service_patch(patch_yaml: str) -> dict[str, Any]:
    """The spec part of the winner's patch, as the merge patch `apply` sends."""
    document = yaml.safe_load(patch_yaml)
    return {"spec": document["spec"]}


def may_apply(
    tuning: InferenceTuningSpec,
    status: Mapping[str, Any],
    service_body: Mapping[str, Any] | None,
) -> str | None:
    """None when `apply` may patch the service now, else why not.

    The service must consent (constants.TUNING_APPLY_ANNOTATION): the operator patches it
    with its own rights, and whoever may create an InferenceTuning in the namespace must not
    thereby change a service they could not edit themselves. A service edited since the
    search started is left alone: the winner was measured against the spec it had then, and
    a person's newer edit wins over a measurement of the old one.
    """
    if service_body is None:
        return "the service no longer exists"
    metadata = service_body.get("metadata") or {}
    consent = (metadata.get("annotations") or {}).get(constants.TUNING_APPLY_ANNOTATION)
    if consent != constants.TUNING_APPLY_ALLOWED:
        return (
            f"the InferenceService does not allow it: annotate it "
            f"{constants.TUNING_APPLY_ANNOTATION}={constants.TUNING_APPLY_ALLOWED} (only "
            "whoever may edit the service can, and a tuning's author may not); not applied, "
            "the patch is in status.patch"
        )
    current = int(metadata.get("generation") or 0)
    if current != status.get("serviceGeneration"):
        return (
            f"the service changed since the search started (generation "
            f"{status.get('serviceGeneration')} then, {current} now): not applied; "
            "the patch is in status.patch"
        )
    return None


def applied_conditions(text: str) -> list[ConditionUpdate]:
    """Ready: the winner is applied."""
    return _done("Applied", text)


def not_applied_conditions(why: str) -> list[ConditionUpdate]:
    """The winner stands, but apply did not patch the service: Degraded, with why."""
    return [
        condition(ConditionType.READY, True, "Recommended", why),
        condition(ConditionType.DEGRADED, True, "NotApplied", why),
        condition(ConditionType.PROGRESSING, False, "NotApplied", why),
    ]

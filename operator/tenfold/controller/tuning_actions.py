"""The reads and writes around an InferenceTuning; the decisions are in controller/tuning.py."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes.client.exceptions import ApiException

from tenfold import constants
from tenfold.controller import drift, kube
from tenfold.controller import reconcile as rc
from tenfold.controller import tuning as tn
from tenfold.controller.actions import apiserver_message, retry_for
from tenfold.controller.apply import apply_object
from tenfold.controller.conditions import MESSAGE_LIMIT, ConditionUpdate, merge_conditions
from tenfold.plan.tuning import tuning_selector

_log = logging.getLogger(__name__)
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _event(obj: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
    """A core/v1 Event about `obj` (a tuning, or the service it applied to)."""
    raw = cast(kopf.RawBody, dict(obj))
    kopf.event(kopf.Body(raw), type=kind, reason=reason, message=message[:MESSAGE_LIMIT])


def _one(index: Mapping[Any, Any], namespace: str, name: str) -> Mapping[str, Any] | None:
    found = list(index.get((namespace, name), ()))
    return found[0] if found else None


def _conditions(
    body: Mapping[str, Any], updates: list[ConditionUpdate], generation: int
) -> list[dict[str, Any]]:
    previous = (body.get("status") or {}).get("conditions") or []
    return merge_conditions(previous, updates, generation, rc.now_rfc3339())


def start_tuning(
    body: Mapping[str, Any],
    patch: kopf.Patch,
    services: Mapping[Any, Any],
    runtime_image: str,
) -> None:
    """Start this generation's search, or say in status why it cannot start."""
    metadata, status = body["metadata"], body.get("status") or {}
    generation = int(metadata.get("generation") or 1)
    if status.get("observedGeneration") == generation and status.get("job"):
        return  # a restart: this generation's Job exists (or has ended) already
    service = None
    spec = body.get("spec") or {}
    if isinstance(spec.get("serviceName"), str):
        service = _one(services, metadata["namespace"], spec["serviceName"])
    try:
        started = tn.start(
            body,
            service,
            default_image=runtime_image,
            inputs_key_found=_inputs_key_found(metadata["namespace"], spec),
        )
    except tn.TuningRefusedError as refused:
        try:  # an earlier generation's search must not run on for a spec since refused
            _delete_other_jobs(metadata["namespace"], metadata["name"], keep="")
        except ApiException as error:
            raise retry_for(error) from error
        patch.status["observedGeneration"] = generation
        patch.status["job"] = None
        patch.status["conditions"] = _conditions(body, tn.refused_conditions(refused), generation)
        if refused.retry:
            raise kopf.TemporaryError(
                refused.message, delay=tn.SERVICE_MISSING_RETRY_SECONDS
            ) from None
        return
    try:
        for obj in started.objects:  # in order: the Job mounts the ConfigMap before it
            apply_object(obj)
        _delete_other_jobs(metadata["namespace"], metadata["name"], started.job)
    except ApiException as error:
        raise retry_for(error) from error
    patch.status.update(tn.started_status(started, rc.now_rfc3339()))
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = _conditions(body, tn.started_conditions(started.job), generation)
    _event(body, "Normal", "Searching", f"started Job {started.job}")


def _inputs_key_found(namespace: str, spec: Mapping[str, Any]) -> bool:
    """Whether the ConfigMap the load names holds its key (True when it names none).

    A list by name, not a get: the operator lists ConfigMaps already and needs no new right;
    without this, the Job's pod would wait for a missing volume until its deadline.
    """
    inputs = (spec.get("load") or {}).get("inputs")
    if not isinstance(inputs, Mapping):
        return True
    name, key = inputs.get("configMapName"), inputs.get("key")
    try:
        found = kube.core().list_namespaced_config_map(
            namespace, field_selector=f"metadata.name={name}"
        )
    except ApiException as error:
        raise retry_for(error) from error
    return any(key in (item.data or {}) for item in found.items)


def _delete_other_jobs(namespace: str, tuning: str, keep: str) -> None:
    """An earlier generation's search still running stops: its results would be stale."""
    batch = kube.batch()
    jobs = batch.list_namespaced_job(namespace, label_selector=tuning_selector(tuning))
    for job in jobs.items:
        name = str(job.metadata.name) if job.metadata else keep
        if name != keep:
            batch.delete_namespaced_job(name, namespace, propagation_policy="Background")


def _tuning_body(namespace: str, name: str) -> dict[str, Any] | None:
    found = kube.unless_missing(
        lambda: kube.custom().get_namespaced_custom_object(
            constants.API_GROUP, constants.API_VERSION, namespace, constants.TUNING_PLURAL, name
        )
    )
    return None if found is None else dict(found)  # type: ignore[call-overload]


def observe_job(
    event_type: str | None, job: Mapping[str, Any], services: Mapping[Any, Any]
) -> None:
    """A tuning Job changed: once it has ended, write what it found into its tuning.

    Errors are logged, not raised: an event handler is not retried, and the tuning's own
    timer (check_tuning) reports a Job whose end this missed.
    """
    if event_type == "DELETED" or tn.job_finished(job) is None:
        return
    metadata = job.get("metadata") or {}
    namespace = str(metadata.get("namespace"))
    owner = drift.owner_of(job, constants.TUNING_KIND)
    if owner is None:
        return
    try:
        body = _tuning_body(namespace, owner)
        status = (body or {}).get("status") or {}
        if body is None or status.get("job") != metadata.get("name") or status.get("finishedAt"):
            return  # another generation's Job, or this one already reported
        report(body, tn.outcome(job, _pods_of(namespace, str(metadata["name"]))), services)
    except ApiException as error:
        _log.warning("tuning %s/%s: reporting its Job failed: %s", namespace, owner, error)


def check_tuning(body: Mapping[str, Any], services: Mapping[Any, Any]) -> None:
    """The tuning's timer: report a Job that ended (or vanished) while no event told us."""
    metadata, status = body["metadata"], body.get("status") or {}
    job_name = status.get("job")
    if not job_name or status.get("finishedAt"):
        return
    namespace = str(metadata["namespace"])
    try:
        job = _read_job(namespace, str(job_name))
        if job is None:
            report(body, tn.vanished(str(job_name)), services)
        elif tn.job_finished(job) is not None:
            report(body, tn.outcome(job, _pods_of(namespace, str(job_name))), services)
    except ApiException as error:
        raise retry_for(error) from error


def _read_job(namespace: str, name: str) -> dict[str, Any] | None:
    job = kube.unless_missing(lambda: kube.batch().read_namespaced_job(name, namespace))
    return None if job is None else dict(kube.api_client().sanitize_for_serialization(job))


def _pods_of(namespace: str, job: str) -> list[dict[str, Any]]:
    pods = kube.core().list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={job}")
    serialize = kube.api_client().sanitize_for_serialization
    return [serialize(pod) for pod in pods.items]


def report(body: Mapping[str, Any], found: tn.JobOutcome, services: Mapping[Any, Any]) -> None:
    """Write the outcome into the tuning's status, applying the winner when asked to."""
    metadata = body["metadata"]
    generation = int(metadata.get("generation") or 1)
    status = {**found.fields, "finishedAt": rc.now_rfc3339()}
    updates = found.conditions
    winner, patch_yaml = found.fields.get("winner"), found.fields.get("patch")
    tuning = tn.parse_tuning(body)
    if winner is not None and patch_yaml and str(tuning.action) == "apply":
        service = _one(services, metadata["namespace"], tuning.service_name)
        why = tn.may_apply(tuning, body.get("status") or {}, service)
        if why is None and service is not None:
            why = _apply(service, patch_yaml)
        if why is None:
            status["applied"] = True
            text = f"applied {tn.describe(winner)} to InferenceService {tuning.service_name}"
            updates = tn.applied_conditions(text)
            _event(body, "Normal", "Applied", text)
            assert service is not None
            _event(service, "Normal", "TuningApplied", text)
        else:
            updates = tn.not_applied_conditions(why)
            _event(body, "Warning", "NotApplied", why)
    status["conditions"] = _conditions(body, updates, generation)
    kube.custom().patch_namespaced_custom_object_status(
        constants.API_GROUP,
        constants.API_VERSION,
        metadata["namespace"],
        constants.TUNING_PLURAL,
        metadata["name"],
        {"status": status},
    )
    reason = next((u.reason for u in updates if u.type.value == "Ready"), "")
    _event(body, "Normal", "SearchEnded", reason)


def _apply(service: Mapping[str, Any], patch_yaml: str) -> str | None:
    """Patch the service with the winner through the tuning's field manager; None when done,
    else the apiserver's refusal."""
    metadata = service["metadata"]
    try:
        kube.custom().patch_namespaced_custom_object(
            constants.API_GROUP,
            constants.API_VERSION,
            metadata["namespace"],
            constants.PLURAL,
            metadata["name"],
            tn.service_patch(patch_yaml),
            field_manager=tn.TUNING_FIELD_MANAGER,
        )
    except ApiException as error:
        return f"the apiserver refused the patch: {apiserver_message(error)}"
    return None

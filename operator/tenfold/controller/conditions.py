"""Pure status builders: Deployment + pods in, InferenceService status out.

No cluster access here. `observe.py` fetches the objects; these functions decide what they mean
so every rule is unit-tested without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tenfold.api.enums import CacheMode
from tenfold.api.spec import InferenceServiceSpec
from tenfold.api.status import Condition, ConditionStatus, ConditionType
from tenfold.api.status import merge_conditions as merge_api_conditions
from tenfold.constants import (
    CACHE_HTTP_PORT,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
)

MESSAGE_LIMIT = 1024
# The reasons a waiting container never recovers by itself.
STUCK_WAITING_REASONS = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"}
)


@dataclass(frozen=True)
class ConditionUpdate:
    """A condition as computed now, before transition times are settled."""

    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str = ""


@dataclass(frozen=True)
class PodProblem:
    """Why pods cannot serve: the reason and the scheduler's or kubelet's own words."""

    reason: str
    message: str


def condition(kind: ConditionType, true: bool, reason: str, message: str = "") -> ConditionUpdate:
    """Shorthand for a True/False condition."""
    status = ConditionStatus.TRUE if true else ConditionStatus.FALSE
    return ConditionUpdate(kind, status, reason, message[:MESSAGE_LIMIT])


def merge_conditions(
    previous: Iterable[Mapping[str, Any]],
    updates: Iterable[ConditionUpdate],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """New conditions list, stamped with this generation and time (see api merge rules)."""
    stamped = [
        Condition(
            type=u.type,
            status=u.status,
            reason=u.reason,
            message=u.message,
            last_transition_time=now,
            observed_generation=generation,
        )
        for u in updates
    ]
    return merge_api_conditions(list(previous), stamped)


def _pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return PodProblem(cond.get("reason") or "Unschedulable", cond.get("message") or "")
    for container in (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    ):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING_REASONS:
            message = waiting.get("message") or ""
            return PodProblem(waiting["reason"], f"container {container.get('name')}: {message}")
    return None


def pod_problems(pods: Iterable[Mapping[str, Any]]) -> list[PodProblem]:
    """The distinct reasons pods are stuck, scheduler problems first."""
    found: dict[str, PodProblem] = {}
    for pod in pods:
        problem = _pod_problem(pod)
        if problem and problem.reason not in found:
            found[problem.reason] = problem
    return list(found.values())


def deployment_conditions(
    deployment: Mapping[str, Any] | None,
    pods: Iterable[Mapping[str, Any]],
    desired_replicas: int,
) -> list[ConditionUpdate]:
    """Ready, Progressing and Degraded from the Deployment's and pods' state."""
    if deployment is None:
        return [
            condition(
                ConditionType.READY, False, "DeploymentMissing", "waiting for the Deployment"
            ),
            condition(ConditionType.PROGRESSING, True, "Creating"),
        ]
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    observed = status.get("observedGeneration", 0) >= generation
    ready = status.get("readyReplicas") or 0
    updated = status.get("updatedReplicas") or 0
    wanted = spec.get("replicas", desired_replicas)
    rolled_out = observed and updated >= wanted and (status.get("replicas") or 0) <= wanted
    problems = pod_problems(pods)
    updates = [
        condition(
            ConditionType.PROGRESSING,
            not rolled_out,
            "RollingOut" if not rolled_out else "RolloutComplete",
            f"{updated}/{wanted} replicas updated",
        )
    ]
    if wanted == 0:
        updates.append(condition(ConditionType.READY, False, "ScaledToZero", "0 replicas wanted"))
    elif ready >= wanted and rolled_out:
        updates.append(condition(ConditionType.READY, True, "ReplicasReady", f"{ready} ready"))
    else:
        updates.append(
            condition(ConditionType.READY, False, "ReplicasNotReady", f"{ready}/{wanted} ready")
        )
    if problems:
        first = problems[0]
        updates.append(condition(ConditionType.DEGRADED, True, first.reason, first.message))
    else:
        updates.append(condition(ConditionType.DEGRADED, False, "AsExpected"))
    return updates


def refusal_conditions(reason: str, message: str) -> list[ConditionUpdate]:
    """Not ready, degraded, not progressing, all for `reason`: what the operator will not
    (or cannot) act on until something changes."""
    return [
        condition(ConditionType.READY, False, reason, message),
        condition(ConditionType.DEGRADED, True, reason, message),
        condition(ConditionType.PROGRESSING, False, reason, message),
    ]


def invalid_spec_conditions(message: str) -> list[ConditionUpdate]:
    """Conditions for a spec the operator refuses (e.g. over a cluster price override)."""
    return refusal_conditions("InvalidSpec", message)


API_REFUSED_REASON = "ApiRefused"


def api_refused_conditions(message: str) -> list[ConditionUpdate]:
    """Conditions while the apiserver refuses the plan (403, 422, ...): its own words."""
    return [
        condition(ConditionType.READY, False, API_REFUSED_REASON, message),
        condition(ConditionType.DEGRADED, True, API_REFUSED_REASON, message),
    ]


def with_refusal(
    updates: Iterable[ConditionUpdate],
    apply_error: str | None,
    previous: Iterable[Mapping[str, Any]],
) -> list[ConditionUpdate]:
    """The observed conditions, with the apiserver's refusal of the last apply in force.

    While status.applyError is set (the apply handler writes it, and only it), running pods
    do not make the service Ready or healthy; once it is gone, a Degraded left by it turns
    False. The status tick is the one writer of these conditions, so a tick racing the apply
    handler cannot drop a refusal from the list.
    """
    if apply_error:
        hidden = {ConditionType.DEGRADED, ConditionType.READY}
        kept = [update for update in updates if update.type not in hidden]
        return kept + api_refused_conditions(apply_error)
    updates = list(updates)
    refused_before = any(
        c.get("type") == ConditionType.DEGRADED.value and c.get("reason") == API_REFUSED_REASON
        for c in previous
    )
    if refused_before and all(u.type is not ConditionType.DEGRADED for u in updates):
        updates.append(condition(ConditionType.DEGRADED, False, "Applied", "the plan applied"))
    return updates


def price_conditions(
    refusal: str | None, previous: Iterable[Mapping[str, Any]]
) -> list[ConditionUpdate]:
    """PricesRefused: True while the cluster's price ConfigMap holds a refused price
    (api.cost.ClusterPrices.refusal); False once it no longer does. Never written for a
    service that has not seen a refused price."""
    if refusal:
        return [condition(ConditionType.PRICES_REFUSED, True, "InvalidClusterPrice", refusal)]
    seen = any(c.get("type") == ConditionType.PRICES_REFUSED.value for c in previous)
    return [condition(ConditionType.PRICES_REFUSED, False, "PricesValid")] if seen else []


def price_refusal_event(refusal: str | None, previous: Iterable[Mapping[str, Any]]) -> str | None:
    """The Warning to post: a refusal that is new or names other keys than the one already
    reported (not once per tick while it stays the same)."""
    if not refusal:
        return None
    for known in previous:
        if known.get("type") == ConditionType.PRICES_REFUSED.value:
            if known.get("status") == "True" and known.get("message") == refusal[:MESSAGE_LIMIT]:
                return None
    return refusal


def endpoints(name: str, namespace: str, spec: InferenceServiceSpec) -> dict[str, str]:
    """In-cluster URLs; HTTP goes through the cache sidecar when there is one."""
    host = f"{name}.{namespace}.svc"
    http_port = CACHE_HTTP_PORT if spec.cache.mode != CacheMode.NONE else TRITON_HTTP_PORT
    return {
        "http": f"http://{host}:{http_port}",
        "grpc": f"{host}:{TRITON_GRPC_PORT}",
        "metrics": f"http://{host}:{TRITON_METRICS_PORT}/metrics",
    }


def prepared_model(pods: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """What the prepare init container reported in its termination message, if any pod has.

    `tenfold-runtime prepare` writes a JSON summary (precision served, accuracy) to the
    termination log, which is the one way a pod's result reaches the API without extra RBAC.
    """
    for pod in pods:
        for container in (pod.get("status") or {}).get("initContainerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            if container.get("name") == "prepare" and terminated.get("exitCode") == 0:
                try:
                    report = json.loads(terminated.get("message") or "")
                except json.JSONDecodeError:
                    continue
                if isinstance(report, dict):
                    return report
    return None


# Until a pod's prepare init container has reported, nothing says what is served: the spec
# asks for a precision, but the guard may fall back along its ladder.
PRECISION_PENDING = (
    "no prepare report yet: the precision is set from the init container's termination "
    "message once the accuracy guard has chosen it"
)


def precision_status(report: Mapping[str, Any] | None) -> dict[str, str | None]:
    """status.precision (what the guard chose, never the spec's wish) and, while it is
    unknown, status.precisionReason saying why."""
    served = (report or {}).get("precision_served")
    if isinstance(served, str) and served:
        return {"precision": served, "precisionReason": None}
    return {"precision": None, "precisionReason": PRECISION_PENDING}


def accuracy_status(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """status.accuracy from the prepare report."""
    accuracy = (report or {}).get("accuracy")
    if not isinstance(accuracy, Mapping):
        return None
    return {
        "metric": str(accuracy.get("metric", "")),
        "mean": float(accuracy.get("mean", 0.0)),
        "min": float(accuracy.get("min", 0.0)),
        "decision": str((report or {}).get("decision", ""))[:MESSAGE_LIMIT],
    }

"""What the cluster runs for one InferenceService (reads only, no decisions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from tenfold import constants
from tenfold.controller.kube import core


@dataclass(frozen=True)
class Observed:
    """The Deployment and its pods as plain dicts (None: no Deployment yet)."""

    deployment: dict[str, Any] | None
    pods: list[dict[str, Any]]


# What the indexes keep of each object: only what a status tick, a repair or a tuning
# reads. Whole bodies (managedFields, a pod's spec, kubectl's last-applied copy of a spec)
# made the indexes much of the operator's memory at 1,000 services (docs/reliability.md).
SERVICE_METADATA_KEPT = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "labels",
)


def service_entry(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the services index keeps of an InferenceService: enough to plan it again."""
    metadata = body.get("metadata") or {}
    kept = {key: metadata[key] for key in SERVICE_METADATA_KEPT if key in metadata}
    annotations = metadata.get("annotations") or {}
    if constants.TUNING_APPLY_ANNOTATION in annotations:  # read by tuning.may_apply
        key = constants.TUNING_APPLY_ANNOTATION
        kept["annotations"] = {key: annotations[key]}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": kept,
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def deployment_entry(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the Deployments index keeps: its generation, wanted replicas and status
    (conditions.deployment_conditions)."""
    metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
    return {
        "metadata": {"name": metadata.get("name"), "generation": metadata.get("generation")},
        "spec": {key: spec[key] for key in ("replicas",) if key in spec},
        "status": dict(body.get("status") or {}),
    }


def pod_entry(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the pods index keeps: its status (conditions.pod_problems, prepared_model)."""
    return {
        "metadata": {"name": (body.get("metadata") or {}).get("name")},
        "status": dict(body.get("status") or {}),
    }


def observed(
    name: str, namespace: str, deployments: Mapping[Any, Any], pods: Mapping[Any, Any]
) -> Observed:
    """The service's Deployment and pods, from the operator's watch-fed indexes
    (handlers.py: deployments_by_service, pods_by_service), not from a GET per tick: an idle
    service costs the apiserver no request at all.

    An index maps (namespace, service name) to a store of bodies; a service with no
    Deployment yet has no entry.
    """
    key = (namespace, name)
    found = list(deployments.get(key, ()))
    deployment = dict(found[0]) if found else None
    return Observed(deployment, [dict(pod) for pod in pods.get(key, ())] if deployment else [])


def cluster_price_data(namespace: str, name: str) -> dict[str, str]:
    """The cluster's price ConfigMap's data (GPU type → USD/hour text); empty if absent.

    Read only: whether each value is a price is api.cost.parse_cluster_prices's to decide.
    """
    try:
        return dict(core().read_namespaced_config_map(name, namespace).data or {})
    except ApiException as error:
        if error.status in (403, 404):
            return {}
        raise

"""What the cluster runs for one InferenceService (reads only, no decisions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from tenfold.controller.kube import core


@dataclass(frozen=True)
class Observed:
    """The Deployment and its pods as plain dicts (None: no Deployment yet)."""

    deployment: dict[str, Any] | None
    pods: list[dict[str, Any]]


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

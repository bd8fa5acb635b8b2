"""Read what the cluster runs for one InferenceService (side effects only, no decisions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from tenfold.controller.kube import api_client, apps, core


@dataclass(frozen=True)
class Observed:
    """The Deployment and its pods as plain dicts (None: no Deployment yet)."""

    deployment: dict[str, Any] | None
    pods: list[dict[str, Any]]


def _as_dict(obj: Any) -> dict[str, Any]:
    return api_client().sanitize_for_serialization(obj)


def observe(name: str, namespace: str, pod_selector: str) -> Observed:
    """Fetch the Deployment named after the service and the pods its selector matches."""
    try:
        deployment = _as_dict(apps().read_namespaced_deployment(name, namespace))
    except ApiException as error:
        if error.status != 404:
            raise
        return Observed(None, [])
    pods = core().list_namespaced_pod(namespace, label_selector=pod_selector).items
    return Observed(deployment, [_as_dict(p) for p in pods])


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

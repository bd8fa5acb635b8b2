"""One place that knows how to reach the cluster."""

from __future__ import annotations

from functools import cache

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient


@cache
def api_client() -> client.ApiClient:
    """An ApiClient from the in-cluster service account, else from KUBECONFIG."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


@cache
def dynamic_client() -> DynamicClient:
    """A discovery-backed client for applying objects of any kind."""
    return DynamicClient(api_client())


def core() -> client.CoreV1Api:
    """The core/v1 API."""
    return client.CoreV1Api(api_client())


def custom() -> client.CustomObjectsApi:
    """The custom objects API (InferenceServices and their scale subresource)."""
    return client.CustomObjectsApi(api_client())


def batch() -> client.BatchV1Api:
    """The batch/v1 API (an InferenceTuning's Jobs)."""
    return client.BatchV1Api(api_client())

"""One place that knows how to reach the cluster."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

T = TypeVar("T")


# Connections the client keeps open for reuse: at least the threads that may call the
# apiserver at once (tests/unit/test_controller_kube.py adds them up). urllib3 keeps
# `connection_pool_maxsize` of them (the client's default is five per CPU, ten on two cores)
# and opens, then drops, one more TLS connection for each caller beyond that.
API_CONNECTIONS = 64


@cache
def api_client() -> client.ApiClient:
    """An ApiClient from the in-cluster service account, else from KUBECONFIG."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = API_CONNECTIONS
    return client.ApiClient(configuration)


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


def unless_missing(read: Callable[[], T]) -> T | None:
    """`read()`, or None when the apiserver answers 404 (any other error is raised)."""
    try:
        return read()
    except ApiException as error:
        if error.status == 404:
            return None
        raise

"""The apiserver client: enough pooled connections for every thread that calls it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenfold.autoscale import actuator
from tenfold.controller import actions, apply, kube, settings, status_loop

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_the_pool_holds_a_connection_for_every_thread_that_calls_the_apiserver():
    callers = (
        apply._APPLY_TOGETHER._max_workers  # one stage's applies at once
        + settings.APPLY_WORKERS  # kopf's threads for the sync handlers
        + status_loop._WRITES._max_workers
        + actions._TICK_IO._max_workers
        + actuator._AUTOSCALER_IO._max_workers
    )
    assert kube.API_CONNECTIONS >= callers


def test_the_client_keeps_api_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    # KUBECONFIG is read when the kubernetes package is imported: hand the file over directly.
    load = kube.config.load_kube_config
    monkeypatch.setattr(kube.config, "load_kube_config", lambda: load(config_file=str(kubeconfig)))
    kube.api_client.cache_clear()
    try:
        found = kube.api_client()
        assert found.configuration.connection_pool_maxsize == kube.API_CONNECTIONS
        assert found.rest_client.pool_manager.connection_pool_kw["maxsize"] == kube.API_CONNECTIONS
    finally:
        kube.api_client.cache_clear()

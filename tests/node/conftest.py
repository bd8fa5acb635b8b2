"""Fixtures for tests on the test bed's real node: a kubelet on containerd with CNI,
kube-proxy and CoreDNS, running images built from the repository's Dockerfiles.

- testbed (session): a test bed of its own (pytest-node-<pid>) with the real node; stopped,
  and its node removed, at the end. Only one real node runs on a machine at a time.
- images (session): the built images by short name ("operator", "runtime-cpu", ...) -> ref.
- operator (module): the chart installed with the built images; the operator pod's name.
- make_module_namespace (module): namespaces deleted at the end of the module.
- kubectl, k8s_api, namespace, make_namespace: from tests/cluster_fixtures.py.

Nothing here skips: a machine that cannot run the node fails `up` with what it lacks.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenfold_tools.testbed import Kubectl, Testbed, up
from tenfold_tools.testbed import down as testbed_down
from tenfold_tools.testbed.workloads import install_operator, node_images, uninstall_operator
from tests.cluster_fixtures import (
    SESSION_PREFIX,
    create_namespace,
    exported,
    k8s_api,
    kubectl,
    make_namespace,
    namespace,
    stop_orphaned_session_beds,
)

__all__ = ["k8s_api", "kubectl", "make_namespace", "namespace"]

HERE = Path(__file__).parent
# The host's routes and iptables rules before the session's node started; the teardown test
# compares the state after `down` with it.
HOST_STATE_AT_START: dict[str, str] = {}


def host_network_state() -> dict[str, str]:
    """The host's routing table and iptables rules (counters left out)."""
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    lines = [re.sub(r"\[\d+:\d+\]", "", line) for line in rules.splitlines()
             if not line.startswith("#")]  # fmt: skip
    return {"iptables": "\n".join(lines), "routes": routes}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/node as e2e and node (before -m selects)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.node)


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """A test bed with the real node, checked to be ours, with KUBECONFIG exported."""
    name = f"{SESSION_PREFIX}node-{os.getpid()}"
    stop_orphaned_session_beds()
    HOST_STATE_AT_START.update(host_network_state())
    bed = up(name, real_node=True)
    try:
        with exported(bed):
            yield bed
    finally:
        testbed_down(name)


@pytest.fixture(scope="session")
def images(testbed: Testbed) -> dict[str, str]:
    """Short name -> reference of each image the test bed's node holds."""
    return node_images(testbed)


@pytest.fixture(scope="module")
def operator(testbed: Testbed, images: dict[str, str]) -> Iterator[str]:
    """The chart installed with the built images; yields the operator pod's name."""
    pod = install_operator(testbed, images)
    try:
        yield pod
    finally:
        uninstall_operator(testbed)


@pytest.fixture(scope="module")
def make_module_namespace(kubectl: Kubectl) -> Iterator:
    """Namespaces that live as long as the module's fixtures (deleted at its end)."""
    created: list[str] = []

    def make(pod_security: str | None = None) -> str:
        name = create_namespace(kubectl, "serving", pod_security)
        created.append(name)
        return name

    yield make
    if created:  # one request for all: their pods terminate side by side
        kubectl("delete", "namespace", *created, "--wait=true", "--timeout=120s", check=False,
                timeout=150)  # fmt: skip

"""Fixtures for tests against the local test bed (tenfold_tools.testbed).

- testbed (session): starts a test bed of its own (pytest-<pid>) and stops it at the end. Its
  nodes are all KWOK's (--kwok-only): these tests check the operator's logic across dozens of
  services, more 2-CPU replicas than the machine's two real cores hold; tests/node runs pods
  on the real node. With
  TENFOLD_TESTBED_REUSE=1 it uses the one already up (`python -m tenfold_tools.testbed up`) and
  leaves it running. Exports KUBECONFIG and PATH (pinned kubectl, helm) for subprocesses.
- kubectl, k8s_api, namespace, make_namespace: from tests/cluster_fixtures.py.
- crd, operator, quiet_operator (module): the CRD installed, `tenfold run` cluster-wide.

Every fixture checks that its kubeconfig is the test bed's own before any request.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenfold_tools.testbed import Kubectl, Testbed, is_up, load, up
from tenfold_tools.testbed import down as testbed_down
from tests.cluster_fixtures import (
    SESSION_PREFIX,
    exported,
    k8s_api,
    kubectl,
    make_namespace,
    namespace,
    stop_orphaned_session_beds,
)
from tests.integration.operator_support import OperatorProcess, install_crd

__all__ = ["k8s_api", "kubectl", "make_namespace", "namespace"]

HERE = Path(__file__).parent
# Each session gets its own test bed (pytest-<pid>), so `pytest` never stops the one a
# demo, a developer or a parallel session runs; with reuse, the developer's one is the point.
REUSE_NAME = "default"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration as integration (before -m selects)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """The running test bed, checked to be ours, with KUBECONFIG exported."""
    reuse = os.environ.get("TENFOLD_TESTBED_REUSE") == "1"
    default = REUSE_NAME if reuse else f"{SESSION_PREFIX}{os.getpid()}"
    name = os.environ.get("TENFOLD_TESTBED_NAME", default)
    stop_orphaned_session_beds()
    bed = load(name) if reuse and is_up(name) else up(name, real_node=False)
    try:
        with exported(bed):
            yield bed
    finally:
        if not reuse:
            testbed_down(name)


@pytest.fixture(scope="module")
def crd(testbed: object, kubectl: Kubectl) -> None:
    """The CRD, installed once."""
    install_crd(kubectl)


@pytest.fixture(scope="module")
def operator(crd: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator running cluster-wide for one module's tests."""
    process = OperatorProcess(tmp_path_factory.mktemp("operator") / "operator.log").start()
    yield process
    # What it printed while it ran: kopf re-raises, as a traceback, a status tick's request
    # its own SIGTERM shutdown cut off (seen once with 100 services' ticks in flight); a
    # failure while running is what this module's tests are about.
    running = process.log_text()
    process.stop()
    assert "Traceback" not in running, running[-6000:]


@pytest.fixture
def quiet_operator(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The operator, with a check that the test caused no traceback in its output."""
    operator.new_output()
    yield operator
    output = operator.new_output()
    assert "Traceback" not in output, output[-6000:]

"""Fixtures for tests against the local test bed (tenfold_tools.testbed).

- testbed (session): starts a test bed of its own (pytest-<pid>) and stops it at the end. With
  TENFOLD_TESTBED_REUSE=1 it uses the one already up (`python -m tenfold_tools.testbed up`) and
  leaves it running. Exports KUBECONFIG and PATH (pinned kubectl, helm) for subprocesses.
- kubectl (session): kubectl(*args, input=None, check=True, timeout=120) -> CompletedProcess.
- k8s_api (session): a kubernetes.client.ApiClient for the test bed.
- namespace (function): a fresh namespace per test, deleted afterwards; parametrize it
  indirectly with a Pod Security level ("restricted", "baseline") to enforce one.
- make_namespace (function): make_namespace(pod_security=None) -> name, for several.

Every fixture checks that its kubeconfig is the test bed's own before any request.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tenfold_tools.testbed import Kubectl, Testbed, assert_is_testbed, is_up, load, up
from tenfold_tools.testbed import down as testbed_down
from tenfold_tools.testbed.health import wait_until
from tenfold_tools.testbed.layout import cache_root
from tenfold_tools.testbed.procs import is_alive

HERE = Path(__file__).parent
# Each session gets its own test bed (pytest-<pid>), so `pytest` never stops the one a
# demo, a developer or a parallel session runs; with reuse, the developer's one is the point.
SESSION_PREFIX = "pytest-"
REUSE_NAME = "default"
NAMESPACE_READY_TIMEOUT = 60.0


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration as integration (before -m selects)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


def _stop_orphaned_session_beds() -> None:
    """Stop test beds left by sessions that died before their teardown (kill -9, OOM)."""
    for state in (cache_root() / "testbed").glob(f"{SESSION_PREFIX}*"):
        pid = state.name.removeprefix(SESSION_PREFIX)
        if pid.isdigit() and not is_alive(int(pid)):
            testbed_down(state.name)


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """The running test bed, checked to be ours, with KUBECONFIG exported."""
    reuse = os.environ.get("TENFOLD_TESTBED_REUSE") == "1"
    default = REUSE_NAME if reuse else f"{SESSION_PREFIX}{os.getpid()}"
    name = os.environ.get("TENFOLD_TESTBED_NAME", default)
    _stop_orphaned_session_beds()
    bed = load(name) if reuse and is_up(name) else up(name)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in bed.env().items():
                patch.setenv(key, value)
            assert_is_testbed(bed, os.environ["KUBECONFIG"])
            yield bed
    finally:
        if not reuse:
            testbed_down(name)


@pytest.fixture(scope="session")
def kubectl(testbed: Testbed) -> Kubectl:
    """Run the pinned kubectl against the test bed; raises with stderr unless check=False."""
    return testbed.kubectl


@pytest.fixture(scope="session")
def k8s_api(testbed: Testbed) -> Iterator[object]:
    """A kubernetes.client.ApiClient loaded from the test bed's kubeconfig."""
    from kubernetes import config

    assert_is_testbed(testbed, testbed.kubeconfig)
    client = config.new_client_from_config(config_file=str(testbed.kubeconfig))
    yield client
    client.close()


def _namespace_name(test_name: str) -> str:
    """A unique DNS-1123 label derived from the test name."""
    stem = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].rstrip("-")
    return f"{stem or 't'}-{secrets.token_hex(3)}"


def _create_namespace(kubectl: Kubectl, name: str, pod_security: str | None) -> None:
    """Create the namespace and wait for its default ServiceAccount (pods need it)."""
    labels = {"tenfold.dev/test": "true"}
    if pod_security:
        labels["pod-security.kubernetes.io/enforce"] = pod_security
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    }
    kubectl("create", "-f", "-", input=json.dumps(manifest))
    wait_until(
        lambda: kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        f"the default ServiceAccount in {name}",
        timeout=NAMESPACE_READY_TIMEOUT,
        interval=0.2,
    )


@pytest.fixture
def make_namespace(
    kubectl: Kubectl, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """make_namespace(pod_security=None) -> name; every namespace is deleted after the test."""
    created: list[str] = []

    def make(pod_security: str | None = None) -> str:
        name = _namespace_name(request.node.name)
        _create_namespace(kubectl, name, pod_security)
        created.append(name)
        return name

    yield make
    for name in created:
        # Namespaces are unique per test: no need to wait for the deletion to finish.
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(make_namespace: Callable[..., str], request: pytest.FixtureRequest) -> str:
    """A fresh namespace; indirect parametrization sets its enforced Pod Security level."""
    return make_namespace(getattr(request, "param", None))

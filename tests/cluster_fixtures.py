"""Fixtures shared by every layer that runs against a test bed (tests/integration on KWOK
nodes, tests/node on the real node). Each layer's conftest defines `testbed` and imports
these, which then use that layer's test bed.

- kubectl (session): kubectl(*args, input=None, check=True, timeout=120) -> CompletedProcess.
- k8s_api (session): a kubernetes.client.ApiClient for the test bed.
- namespace (function): a fresh namespace per test, deleted afterwards; parametrize it
  indirectly with a Pod Security level ("restricted", "baseline") to enforce one.
- make_namespace (function): make_namespace(pod_security=None) -> name, for several.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator

import pytest

from tenfold_tools.testbed import Kubectl, Testbed, assert_is_testbed
from tenfold_tools.testbed import down as testbed_down
from tenfold_tools.testbed.health import wait_until
from tenfold_tools.testbed.layout import cache_root
from tenfold_tools.testbed.procs import is_alive

NAMESPACE_READY_TIMEOUT = 60.0
# Test beds of pytest sessions are named pytest-<pid> (KWOK nodes), pytest-node-<pid> (the
# real node) or pytest-crds-<pid> (a clean cluster per test, tests/integration/
# test_helm_upgrade.py), so a later session can tell a dead session's leftovers from a live one.
SESSION_PREFIX = "pytest-"
SESSION_BED = re.compile(rf"{SESSION_PREFIX}(?:node-|crds-)?(\d+)")


@contextlib.contextmanager
def exported(bed: Testbed) -> Iterator[Testbed]:
    """The test bed's KUBECONFIG and PATH in the environment for the body, checked first to
    be the test bed's own kubeconfig."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in bed.env().items():
            patch.setenv(key, value)
        assert_is_testbed(bed, os.environ["KUBECONFIG"])
        yield bed


def stop_orphaned_session_beds() -> None:
    """Stop test beds left by sessions that died before their teardown (kill -9, OOM)."""
    for state in (cache_root() / "testbed").glob(f"{SESSION_PREFIX}*"):
        match = SESSION_BED.fullmatch(state.name)
        if match and not is_alive(int(match.group(1))):
            testbed_down(state.name)


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


def create_namespace(kubectl: Kubectl, stem: str, pod_security: str | None = None) -> str:
    """A new namespace named after stem; its caller deletes it."""
    name = _namespace_name(stem)
    _create_namespace(kubectl, name, pod_security)
    return name


@pytest.fixture
def make_namespace(
    kubectl: Kubectl, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """make_namespace(pod_security=None) -> name; every namespace is deleted after the test."""
    created: list[str] = []

    def make(pod_security: str | None = None) -> str:
        name = create_namespace(kubectl, request.node.name, pod_security)
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

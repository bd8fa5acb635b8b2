"""The plain manifests: generated from the chart, and `kubectl apply -k manifests/` works."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenfold_tools import testbed as tb
from tenfold_tools.testbed import Kubectl
from tests.integration.operator_support import REPO_ROOT, get_json

pytestmark = pytest.mark.integration

MANIFESTS = REPO_ROOT / "manifests"
SCRIPT = REPO_ROOT / "hack" / "manifests.sh"
NAMESPACE = "tenfold-system"


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_manifests_match_the_chart(tmp_path: Path):
    subprocess.run(["bash", str(SCRIPT), str(tmp_path)], check=True, timeout=120)
    fresh, committed = _files(tmp_path), _files(MANIFESTS)
    assert sorted(fresh) == sorted(committed), "manifests/ is stale: run hack/manifests.sh"
    for name, text in fresh.items():
        assert committed[name] == text, f"manifests/{name} is stale: run hack/manifests.sh"


@pytest.fixture
def applied(testbed: tb.Testbed, kubectl: Kubectl) -> Iterator[None]:
    """`kubectl apply -k manifests/`, undone afterwards (the CRDs stay: other tests use them)."""
    kubectl("apply", "-k", str(MANIFESTS))
    yield
    kubectl("delete", "-f", str(MANIFESTS / "tenfold.yaml"), "--wait=false", check=False)
    # Waited for: a later `apply -k` into a terminating namespace would fail.
    kubectl("delete", "namespace", NAMESPACE, "--timeout=90s", check=False, timeout=120)


def test_kubectl_apply_k_installs_the_operator(applied: None, kubectl: Kubectl):
    labels = json.loads(kubectl("get", "namespace", NAMESPACE, "-o", "json").stdout)["metadata"]
    assert labels["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    kubectl(
        "wait", "-n", NAMESPACE, "--for=condition=Available", "--timeout=90s", "deployment/tenfold"
    )
    for kind, name in [
        ("serviceaccount", "tenfold"),
        ("configmap", "tenfold-gpu-prices"),
        ("role", "tenfold"),
        ("rolebinding", "tenfold"),
        ("service", "tenfold"),
    ]:
        get_json(kubectl, NAMESPACE, kind, name)
    for what in (
        "clusterrole/tenfold",
        "clusterrolebinding/tenfold",
        "crd/inferenceservices.serving.tenfold.dev",
        "crd/clusterkopfpeerings.kopf.dev",
    ):
        kubectl("get", what)
    # Applying again changes nothing: the manifests are stable under GitOps tools too.
    again = kubectl("apply", "-k", str(MANIFESTS)).stdout
    assert all(line.endswith("unchanged") for line in again.strip().splitlines()), again

"""GitOps: the user's YAML applied again changes nothing, renders are stable, pods are restricted.

Replicas live behind the scale subresource and the operator writes only status and its own
annotations, so a Git sync (client-side or server-side apply) of the unchanged manifest
neither shows a diff nor undoes a scale.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tenfold_tools.testbed import Kubectl
from tests.integration.operator_support import (
    REPO_ROOT,
    OperatorProcess,
    get_json,
    install_crd,
    load_manifest,
    settle,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.integration

# kopf polls a timer that is mid-run at deletion only every
# settings.background.cancellation_polling seconds (60 by default), so a deletion that lands
# during a status refresh takes up to a minute to clear the finalizer.
DELETE_TIMEOUT = 90

EXAMPLES = REPO_ROOT / "examples"
MINILM = EXAMPLES / "minilm-cpu.yaml"
# The InferenceService examples `tenfold render` turns into objects (an InferenceTuning
# renders nothing: the operator does not reconcile it yet).
VALID_EXAMPLES = sorted(
    p
    for p in EXAMPLES.glob("*.yaml")
    if not p.name.startswith("invalid") and "\nkind: InferenceService\n" in p.read_text()
)


@pytest.fixture(scope="module")
def operator(
    testbed: object, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The CRD and the operator, running cluster-wide for this module."""
    install_crd(kubectl)
    process = OperatorProcess(tmp_path_factory.mktemp("gitops") / "operator.log").start()
    yield process
    process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()[-6000:]


def _apply_args(mode: str) -> list[str]:
    return ["--server-side"] if mode == "server" else []


def _diff(kubectl: Kubectl, namespace: str, path: Path, mode: str) -> str:
    """`kubectl diff`, which exits 0 only when nothing would change."""
    result = kubectl("diff", "-n", namespace, "-f", str(path), *_apply_args(mode), check=False)
    assert result.returncode == 0, f"diff ({mode}-side):\n{result.stdout}{result.stderr}"
    return result.stdout


def _service(kubectl: Kubectl, namespace: str) -> dict:
    """The InferenceService with its managedFields (kubectl hides them by default)."""
    args = ("get", "-n", namespace, "inferenceservice", "minilm", "-o", "json")
    return json.loads(kubectl(*args, "--show-managed-fields").stdout)


def _user_fields(service: dict) -> list[dict]:
    """managedFields entries of the user's apply (not the operator's or kubectl scale's)."""
    return [
        {k: v for k, v in entry.items() if k != "time"}
        for entry in service["metadata"]["managedFields"]
        if entry["manager"] in ("kubectl", "kubectl-client-side-apply")
    ]


# A Git sync keeps one mode: Argo CD applies client-side by default, Flux server-side.
# (Switching modes on a live object rewrites kubectl's last-applied annotation once; that
# is kubectl's migration, not drift.)
@pytest.mark.parametrize("mode", ["client", "server"])
def test_reapplying_after_scale_changes_nothing(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, mode: str
):
    kubectl("apply", "-n", namespace, "-f", str(MINILM), *_apply_args(mode))
    wait_ready(kubectl, namespace, "minilm")
    kubectl("scale", "-n", namespace, "inferenceservice/minilm", "--replicas=2")
    wait_for(
        lambda: (
            get_json(kubectl, namespace, "deployment", "minilm")["status"].get("readyReplicas") == 2
        ),
        "the operator to run 2 ready replicas",
    )
    wait_ready(kubectl, namespace, "minilm")
    before = _service(kubectl, namespace)
    assert before["status"]["replicas"] == 2
    assert _user_fields(before), before["metadata"]["managedFields"]

    _diff(kubectl, namespace, MINILM, mode)
    applied = kubectl("apply", "-n", namespace, "-f", str(MINILM), *_apply_args(mode)).stdout
    if mode == "client":
        assert applied.strip().endswith("unchanged"), applied
    after = _service(kubectl, namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert _user_fields(after) == _user_fields(before)
    assert after["spec"]["replicas"] == 2
    _diff(kubectl, namespace, MINILM, mode)

    # The operator keeps the scale: still two replicas, still Ready, a few ticks later.
    settle(3)
    service = wait_ready(kubectl, namespace, "minilm")
    assert (service["spec"]["replicas"], service["status"]["replicas"]) == (2, 2)
    assert get_json(kubectl, namespace, "deployment", "minilm")["spec"]["replicas"] == 2
    kubectl("delete", "-n", namespace, "inferenceservice", "minilm", f"--timeout={DELETE_TIMEOUT}s")


def _render(path: Path, *args: str) -> str:
    command = [sys.executable, "-m", "tenfold.cli", "render", "-f", str(path), *args]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.mark.parametrize("example", VALID_EXAMPLES, ids=lambda p: p.stem)
def test_render_is_identical_twice(example: Path):
    first = _render(example, "-n", "team-a")
    assert first.strip()
    assert _render(example, "-n", "team-a") == first


def _pod_from(workload: dict) -> dict:
    """The workload's pod as the controller would create it (claims become emptyDirs)."""
    template = copy.deepcopy(workload["spec"]["template"])
    spec = template["spec"]
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        spec.setdefault("volumes", []).append({"name": claim["metadata"]["name"], "emptyDir": {}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": f"{workload['metadata']['name']}-pss"},
        "spec": spec,
    }


def _server_dry_run(kubectl: Kubectl, namespace: str, obj: dict) -> None:
    result = kubectl(
        "apply", "-n", namespace, "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False
    )
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    assert result.returncode == 0, f"{where} rejected: {result.stderr}"
    assert "Warning" not in result.stderr, f"{where}: {result.stderr}"


@pytest.mark.parametrize("namespace", ["restricted"], indirect=True)
@pytest.mark.parametrize("cache_mode", ["memory", "redis"])
def test_rendered_pods_pass_the_restricted_profile(
    kubectl: Kubectl, namespace: str, cache_mode: str, tmp_path: Path
):
    # enforce=restricted judges Pods; warn=restricted also judges workload pod templates.
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/warn=restricted")
    manifest = copy.deepcopy(load_manifest(MINILM))
    manifest["spec"]["cache"]["mode"] = cache_mode
    source = tmp_path / "service.yaml"
    source.write_text(yaml.safe_dump(manifest))
    objects = [o for o in yaml.safe_load_all(_render(source, "-n", namespace)) if o]
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    expected = {"Deployment"} | ({"StatefulSet"} if cache_mode == "redis" else set())
    assert {w["kind"] for w in workloads} == expected
    for workload in workloads:
        _server_dry_run(kubectl, namespace, workload)
        _server_dry_run(kubectl, namespace, _pod_from(workload))

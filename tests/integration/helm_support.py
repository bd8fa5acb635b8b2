"""Run the pinned helm against a test bed, and read the CRDs a release leaves behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tenfold_tools.testbed import Kubectl, load_versions
from tenfold_tools.testbed.layout import Binaries
from tests.integration.operator_support import REPO_ROOT

CHART = REPO_ROOT / "charts" / "tenfold"
# The CRDs the chart ships (templates/crds.yaml renders every file of its files/crds/).
CHART_CRDS = (
    "inferenceservices.serving.tenfold.dev",
    "inferencetunings.serving.tenfold.dev",
    "clusterkopfpeerings.kopf.dev",
)
KEEP = "helm.sh/resource-policy"
RELEASE_NAME = "meta.helm.sh/release-name"


def helm_binary() -> Path:
    """The pinned helm (no running test bed needed)."""
    return Binaries.for_versions(load_versions()).helm


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 180):
    """Run helm; raise with its output when it fails and check is set."""
    argv = [str(helm_binary()), *args]
    if kubeconfig:
        argv.append(f"--kubeconfig={kubeconfig}")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def chart_crd_annotations(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    """Annotations of each of the chart's CRDs the cluster holds, by name."""
    found = {}
    for name in CHART_CRDS:
        got = kubectl("get", "crd", name, "-o", "json", check=False)
        if got.returncode == 0:
            found[name] = json.loads(got.stdout)["metadata"].get("annotations") or {}
    return found

"""The chart's CRDs across releases: a clean install, crds.enabled=false, and the upgrade from
chart 0.1.0 (docs/install.md, "Upgrading").

Helm installs a chart's crds/ folder once and never upgrades it; since 0.2.0 the CRDs are
templates with `helm.sh/resource-policy: keep`. CRDs are cluster-wide and the session's test
bed holds those other tests applied, so each test here runs on a clean KWOK-only test bed of
its own (about 5 s to start and stop). tests/data/charts/tenfold-0.1.0.tgz is `helm package`
of the chart as 0.1.0 shipped it: the previous release.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tenfold_tools import testbed as tb
from tenfold_tools.testbed import Kubectl, wait_established
from tests.cluster_fixtures import SESSION_PREFIX
from tests.integration.helm_support import (
    CHART,
    CHART_CRDS,
    KEEP,
    RELEASE_NAME,
    chart_crd_annotations,
    helm,
)
from tests.integration.operator_support import REPO_ROOT, apply_manifest, load_manifest

pytestmark = pytest.mark.integration

PREVIOUS = REPO_ROOT / "tests" / "data" / "charts" / "tenfold-0.1.0.tgz"
MINILM = REPO_ROOT / "examples" / "minilm-cpu.yaml"
TUNING = REPO_ROOT / "examples" / "minilm-tuning.yaml"
RELEASE, NAMESPACE = "tenfold", "tenfold-system"
USERS = "ml"
# What docs/install.md tells users of Helm before 3.17 (no --take-ownership) to run once.
ADOPTED_CRDS = ("inferenceservices.serving.tenfold.dev", "clusterkopfpeerings.kopf.dev")


@pytest.fixture
def clean_bed() -> Iterator[tb.Testbed]:
    """A test bed of the test's own: no CRD but the apiserver's."""
    name = f"{SESSION_PREFIX}crds-{os.getpid()}"
    bed = tb.up(name, log=lambda _: None, real_node=False)
    try:
        tb.assert_is_testbed(bed, bed.kubeconfig)
        yield bed
    finally:
        tb.down(name, log=lambda _: None)


def run_helm(bed: tb.Testbed, *args: str, check: bool = True):
    """helm against the clean test bed, never the session's."""
    return helm(*args, kubeconfig=bed.kubeconfig, check=check)


def chart_crd_files() -> dict[str, dict[str, Any]]:
    """The CRDs the chart renders (its files/crds/), by name."""
    documents = [yaml.safe_load(p.read_text()) for p in (CHART / "files" / "crds").glob("*.yaml")]
    return {d["metadata"]["name"]: d for d in documents}


def previous_crd_files() -> dict[str, dict[str, Any]]:
    """The CRDs chart 0.1.0 installed (its crds/), by name."""
    with tarfile.open(PREVIOUS) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("tenfold/crds/")]
        documents = [yaml.safe_load(archive.extractfile(m).read()) for m in members]
    return {d["metadata"]["name"]: d for d in documents}


def assert_spec_is(kubectl: Kubectl, name: str, expected: dict[str, Any]) -> dict[str, Any]:
    """The served CRD's spec is the file's exactly (a property the file dropped would show);
    returns the live CRD."""
    wait_established(kubectl, f"crd/{name}")
    live = json.loads(kubectl("get", "crd", name, "-o", "json").stdout)
    for key, value in expected["spec"].items():
        if key == "names":  # the apiserver fills in listKind and singular
            assert value.items() <= live["spec"]["names"].items(), name
        else:
            assert live["spec"][key] == value, f"{name}: spec.{key} differs from the file's"
    return live


def assert_served_as_the_chart_ships_them(kubectl: Kubectl, release: str) -> None:
    """Every CRD of the chart is Established with the chart's schema, owned by the release and
    kept on uninstall."""
    files = chart_crd_files()
    assert sorted(files) == sorted(CHART_CRDS)
    for name, expected in files.items():
        annotations = assert_spec_is(kubectl, name, expected)["metadata"]["annotations"]
        assert annotations[KEEP] == "keep" and annotations[RELEASE_NAME] == release, name


def test_the_chart_renders_every_crd_kept_and_none_when_disabled():
    """No cluster: the CRD templates are the repository's crds/ plus kopf's, each with keep."""
    rendered = helm("template", RELEASE, str(CHART), "-n", NAMESPACE).stdout
    crds = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "CustomResourceDefinition"
    }
    assert sorted(crds) == sorted(CHART_CRDS)
    generated = [yaml.safe_load(p.read_text()) for p in (REPO_ROOT / "crds").glob("*.yaml")]
    expected = {**chart_crd_files(), **{d["metadata"]["name"]: d for d in generated}}
    for name, crd in crds.items():
        assert crd["metadata"].pop("annotations") == {KEEP: "keep"}, name
        assert crd == expected[name], f"{name}: the chart renders something else than its file"
    disabled = helm("template", RELEASE, str(CHART), "--set", "crds.enabled=false").stdout
    assert "CustomResourceDefinition" not in disabled
    refused = helm("template", RELEASE, str(CHART), "--set", "crds.keep=false", check=False)
    assert refused.returncode != 0 and "additional properties 'keep'" in refused.stderr


def test_install_on_a_clean_cluster_brings_every_crd(clean_bed: tb.Testbed):
    kubectl = clean_bed.kubectl
    assert chart_crd_annotations(kubectl) == {}
    install = ("install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace")
    # A peering object cannot be built before its CRD is served: a first install with more
    # than one replica fails before it creates anything (docs/install.md says what to run).
    ha = run_helm(clean_bed, *install, "--set", "replicaCount=2", check=False)
    assert ha.returncode != 0 and "ensure CRDs are installed first" in ha.stderr, ha.stderr
    assert chart_crd_annotations(kubectl) == {}
    run_helm(clean_bed, *install, "--wait", "--timeout=120s")
    assert_served_as_the_chart_ships_them(kubectl, RELEASE)
    run_helm(clean_bed, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
             "--set", "replicaCount=2", "--wait", "--timeout=120s")  # fmt: skip
    kubectl("get", "clusterkopfpeering", RELEASE)


def test_crds_disabled_installs_none(clean_bed: tb.Testbed):
    kubectl = clean_bed.kubectl
    run_helm(clean_bed, "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace",
             "--set", "crds.enabled=false", "--wait", "--timeout=120s")  # fmt: skip
    kubectl("get", "deployment", RELEASE, "-n", NAMESPACE)
    assert chart_crd_annotations(kubectl) == {}
    manifest = run_helm(clean_bed, "get", "manifest", RELEASE, "-n", NAMESPACE).stdout
    assert "CustomResourceDefinition" not in manifest


def snapshot(kubectl: Kubectl, *what: str) -> dict[str, Any]:
    """What must not change about a user's object: identity, version, spec."""
    found = json.loads(kubectl("get", "-n", USERS, *what, "-o", "json").stdout)
    meta = found["metadata"]
    return {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"], "spec": found["spec"]}


def holds(newer: Any, older: Any) -> bool:
    """Every field of `older` is in `newer` with the same value (maps compared key by key)."""
    if isinstance(older, dict) and isinstance(newer, dict):
        return all(key in newer and holds(newer[key], value) for key, value in older.items())
    return bool(newer == older)


def assert_kept(now: dict[str, Any], before: dict[str, Any]) -> None:
    """The stored object is untouched (same uid and resourceVersion: nothing wrote it) and
    every field it had reads the same. A field the newer schema adds with a default reads
    with that default: the apiserver defaults on read, it does not rewrite what is stored."""
    assert (now["uid"], now["resourceVersion"]) == (before["uid"], before["resourceVersion"])
    assert holds(now["spec"], before["spec"]), (now["spec"], before["spec"])


def adopt_by_hand(kubectl: Kubectl) -> None:
    """The one-time step for Helm before 3.17, as docs/install.md gives it."""
    for crd in ADOPTED_CRDS:
        kubectl("label", "crd", crd, "app.kubernetes.io/managed-by=Helm", "--overwrite")
        kubectl("annotate", "crd", crd, f"meta.helm.sh/release-name={RELEASE}",
                f"meta.helm.sh/release-namespace={NAMESPACE}", "--overwrite")  # fmt: skip


def current_chart_version() -> str:
    """`version` of charts/tenfold/Chart.yaml."""
    return yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]


@pytest.mark.parametrize("adoption", ["take-ownership", "label-and-annotate"])
def test_upgrade_from_0_1_0_brings_the_crds_and_keeps_every_service(
    clean_bed: tb.Testbed, adoption: str
):
    kubectl = clean_bed.kubectl
    assert PREVIOUS.is_file(), f"{PREVIOUS} is missing: the previous release to upgrade from"
    shown = yaml.safe_load(run_helm(clean_bed, "show", "chart", str(PREVIOUS)).stdout)
    assert shown["version"] == "0.1.0" != current_chart_version()
    run_helm(clean_bed, "install", RELEASE, str(PREVIOUS), "-n", NAMESPACE, "--create-namespace",
             "--wait", "--timeout=120s")  # fmt: skip
    before = chart_crd_annotations(kubectl)
    # 0.1.0 created its CRDs from crds/: not the release's, and no InferenceTuning kind. The
    # schemas are 0.1.0's here and the chart's after the upgrade (today the two
    # InferenceService schemas are the same; the check holds for the next change).
    assert sorted(before) == sorted(ADOPTED_CRDS) == sorted(previous_crd_files())
    assert not any(RELEASE_NAME in a or KEEP in a for a in before.values()), before
    for name, expected in previous_crd_files().items():
        assert_spec_is(kubectl, name, expected)
    kubectl("create", "namespace", USERS)
    apply_manifest(kubectl, USERS, load_manifest(MINILM))
    service = snapshot(kubectl, "inferenceservice", "minilm")

    upgrade = ("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--wait", "--timeout=120s")
    plain = run_helm(clean_bed, *upgrade, check=False)
    assert plain.returncode != 0 and "invalid ownership metadata" in plain.stderr, plain.stderr
    if adoption == "take-ownership":
        run_helm(clean_bed, *upgrade, "--take-ownership")
    else:
        adopt_by_hand(kubectl)
        run_helm(clean_bed, *upgrade)
    history = json.loads(run_helm(clean_bed, "history", RELEASE, "-n", NAMESPACE,
                                  "-o", "json").stdout)  # fmt: skip
    assert history[-1]["chart"] == f"tenfold-{current_chart_version()}"
    assert history[-1]["status"] == "deployed"
    assert_served_as_the_chart_ships_them(kubectl, RELEASE)
    apply_manifest(kubectl, USERS, load_manifest(TUNING))  # the new kind is served
    assert_kept(snapshot(kubectl, "inferenceservice", "minilm"), service)
    tuning = snapshot(kubectl, "inferencetuning", "minilm-cost")

    # Back to 0.1.0, whose manifest has no CRD: keep holds them; then forward again, plainly
    # (the release owns the CRDs from now on).
    run_helm(clean_bed, "rollback", RELEASE, "1", "-n", NAMESPACE, "--wait", "--timeout=120s")
    assert sorted(chart_crd_annotations(kubectl)) == sorted(CHART_CRDS)
    run_helm(clean_bed, *upgrade)
    assert_served_as_the_chart_ships_them(kubectl, RELEASE)

    uninstalled = run_helm(clean_bed, "uninstall", RELEASE, "-n", NAMESPACE, "--wait").stdout
    assert "kept due to the resource policy" in uninstalled, uninstalled
    gone = kubectl("get", "deployment", RELEASE, "-n", NAMESPACE, check=False)
    assert gone.returncode != 0, "the operator survived the uninstall"
    assert sorted(chart_crd_annotations(kubectl)) == sorted(CHART_CRDS)
    assert_kept(snapshot(kubectl, "inferenceservice", "minilm"), service)
    assert snapshot(kubectl, "inferencetuning", "minilm-cost") == tuning


def test_the_previous_chart_is_what_0_1_0_shipped():
    """No cluster: the archive stands for 0.1.0, CRDs in Helm's crds/ folder and no
    InferenceTuning."""
    with tarfile.open(PREVIOUS) as archive:
        names = archive.getnames()
    assert sorted(previous_crd_files()) == sorted(ADOPTED_CRDS)
    assert "tenfold/templates/crds.yaml" not in names

"""The Helm chart's files: CRD copies, documented values, RBAC without wildcards."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import REPO_ROOT

CHART = REPO_ROOT / "charts" / "tenfold"
RENDERED = REPO_ROOT / "manifests" / "tenfold.yaml"
KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w.-]*):(\s|$)")


def test_chart_ships_every_generated_crd_unchanged():
    chart_crds = CHART / "files" / "crds"
    generated = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    assert generated
    for source in generated:
        copy = chart_crds / source.name
        assert copy.is_file() and copy.read_text() == source.read_text(), (
            f"charts/tenfold/files/crds/{source.name} is stale: run hack/manifests.sh"
        )
    # kopf's peering CRD has no generator: the chart's copy is its only home.
    shipped = {p.name for p in chart_crds.glob("*.yaml")}
    assert shipped == {p.name for p in generated} | {"kopf.dev_clusterkopfpeerings.yaml"}


def _key_paths(node: object, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return []
    paths = []
    for key, child in node.items():
        paths.append(f"{prefix}{key}")
        paths += _key_paths(child, f"{prefix}{key}.")
    return paths


def test_every_value_has_a_comment_above_it():
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented, seen = [], 0
    for number, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if not match:
            continue
        seen += 1
        above = lines[number - 1].strip() if number else ""
        if not above.startswith("#"):
            undocumented.append(f"line {number + 1}: {match['key']}")
    assert not undocumented, undocumented
    # Every key is on its own line (no flow mapping hides a key from the check above).
    assert seen == len(_key_paths(yaml.safe_load("\n".join(lines))))


def _cluster_role() -> dict:
    documents = [d for d in yaml.safe_load_all(RENDERED.read_text()) if d]
    (role,) = [d for d in documents if d["kind"] == "ClusterRole"]
    return role


def test_cluster_role_has_no_wildcards():
    for rule in _cluster_role()["rules"]:
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            assert not any("*" in value for value in rule.get(field, [])), rule
    # The template itself: a wildcard behind a value would not show in the default render.
    assert "*" not in re.sub(r"(?m)#.*$", "", (CHART / "templates" / "rbac.yaml").read_text())


def _verbs(api_group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for rule in _cluster_role()["rules"]:
        if api_group in rule["apiGroups"] and resource in rule["resources"]:
            verbs |= set(rule["verbs"])
    return verbs


@pytest.mark.parametrize(
    ("api_group", "resource", "allowed"),
    [
        # Create only: the managed Redis password; no read, list or change of any Secret.
        ("", "secrets", {"create"}),
        ("", "nodes", set()),
        ("apiextensions.k8s.io", "customresourcedefinitions", {"list", "watch"}),
        # Each verb is one the code calls (docs/security.md, "What the operator may do").
        ("serving.tenfold.dev", "inferenceservices", {"list", "watch", "patch"}),
        ("serving.tenfold.dev", "inferenceservices/scale", {"patch"}),
        ("serving.tenfold.dev", "inferenceservices/status", {"patch"}),
        ("serving.tenfold.dev", "inferenceservices/finalizers", {"update"}),
        # Server-side apply (create and patch) and pruning (list, delete); the kinds a
        # service needs are watched for drift (controller/drift.py) and the status (the
        # Deployment); nothing is read by name or updated.
        ("apps", "deployments", {"list", "watch", "create", "patch", "delete"}),
        ("apps", "statefulsets", {"list", "watch", "create", "patch", "delete"}),
        ("", "services", {"list", "watch", "create", "patch", "delete"}),
        ("", "configmaps", {"list", "watch", "create", "patch", "delete"}),
        ("policy", "poddisruptionbudgets", {"list", "create", "patch", "delete"}),
        ("networking.k8s.io", "networkpolicies", {"list", "create", "patch", "delete"}),
        ("monitoring.coreos.com", "servicemonitors", {"list", "create", "patch", "delete"}),
        ("", "pods", {"list", "watch"}),
        ("", "events", {"create"}),
        ("events.k8s.io", "events", set()),
    ],
)
def test_cluster_role_grants_exactly(api_group: str, resource: str, allowed: set[str]):
    assert _verbs(api_group, resource) == allowed

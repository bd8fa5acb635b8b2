"""The CRD is generated from the models and the committed copy matches."""

from __future__ import annotations

import yaml

from tenfold.api.crd import build_crd, render_crd
from tests.conftest import REPO_ROOT

COMMITTED = REPO_ROOT / "crds" / "serving.tenfold.dev_inferenceservices.yaml"


def _walk(node, path=""):
    yield path, node
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _walk(child, f"{path}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _walk(child, f"{path}[{index}]")


def test_committed_crd_matches_generated():
    assert COMMITTED.read_text() == render_crd(), "run `make crds` and commit crds/"


def test_schema_is_structural():
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        if isinstance(node, dict):
            assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "$defs"} & set(node), path


def test_names_do_not_collide_with_kserve():
    names = build_crd()["spec"]["names"]
    assert "isvc" not in names["shortNames"]
    assert build_crd()["spec"]["group"] != "serving.kserve.io"


def test_scale_and_status_subresources():
    version = build_crd()["spec"]["versions"][0]
    scale = version["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert version["subresources"]["status"] == {}


def test_printer_columns():
    columns = [c["name"] for c in build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["Ready", "Replicas", "GPU", "Precision", "Cost/h", "Age"]


def test_descriptions_reach_the_schema():
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    window = spec["properties"]["batching"]["properties"]["maxQueueDelayMicroseconds"]
    assert "batching window" in window["description"]


def test_conditions_are_a_map_list_keyed_by_type():
    status = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    conditions = status["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_sections_default_so_cel_can_read_them():
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["budget"]["default"] == {}
    assert spec["properties"]["budget"]["properties"]["priceOverrides"]["default"] == {}
    assert "model" in spec["required"]


def test_render_is_stable_yaml():
    assert yaml.safe_load(render_crd()) == build_crd()


def test_committed_api_reference_matches_generated():
    from tenfold.api.reference import render_reference

    committed = (REPO_ROOT / "docs" / "api.md").read_text()
    assert committed == render_reference(), "run `make crds` and commit docs/api.md"


def test_every_object_field_has_a_type():
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        if isinstance(node, dict) and ("properties" in node or "additionalProperties" in node):
            assert node.get("type") == "object", path


def test_the_crd_defaults_what_the_api_defaults() -> None:
    """A field the apiserver fills must get the value the operator's own model gives it: a
    ladder-less guard once got `fallback: []` from the CRD, so no fallback at all."""
    from tenfold.api.resource import parse_spec

    crd = yaml.safe_load(COMMITTED.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    guard = spec["properties"]["quantization"]["properties"]["guard"]["properties"]
    parsed = parse_spec({"model": {"name": "m", "source": "/m"}})
    assert guard["fallback"]["default"] == [str(p) for p in parsed.quantization.guard.fallback]

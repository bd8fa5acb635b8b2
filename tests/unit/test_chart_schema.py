"""values.schema.json: a valid JSON Schema that accepts the defaults and rejects bad values."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import REPO_ROOT

CHART = REPO_ROOT / "charts" / "tenfold"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


@pytest.fixture
def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def _with(values: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(values)
    *parents, leaf = path.split(".")
    node = changed
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return changed


def test_schema_is_valid_json_schema(schema: dict[str, Any]):
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_defaults_and_sensible_values_pass(schema: dict[str, Any], values: dict[str, Any]):
    jsonschema.validate(values, schema)
    for path, value in [
        ("replicaCount", 3),
        ("prices", {"T4": 0.35, "A100-80GB": "3.2"}),
        ("image.pullPolicy", "Always"),
        ("resources.requests.memory", "1Gi"),
        ("serviceMonitor.interval", "15s"),
    ]:
        jsonschema.validate(_with(values, path, value), schema)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("replicaCount", -1),
        ("replicaCount", 0),
        ("replicaCount", "2"),
        ("image.pullPolicy", "Sometimes"),
        ("image.repository", ""),
        ("operator.tickSeconds", 0),
        ("operator.healthPort", 80),
        ("prices", {"T4": -0.1}),
        ("prices", {"T4": "cheap"}),
        ("serviceMonitor.enabled", "yes"),
        ("serviceMonitor.interval", "soon"),
        ("resources.requests.cpu", "lots"),
        ("imagePullSecrets", [{"secret": "x"}]),
        ("unknownKey", 1),
        ("service.unknownKey", 1),
    ],
)
def test_bad_values_are_rejected(
    schema: dict[str, Any], values: dict[str, Any], path: str, value: Any
):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_with(values, path, value), schema)

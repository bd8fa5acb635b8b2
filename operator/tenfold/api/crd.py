"""Generate the InferenceService CRD from the pydantic models.

pydantic's JSON schema uses `$ref`, `anyOf` for optionals and `title`s; a CRD needs a
structural OpenAPI v3 schema. `structural_schema` converts one into the other, and
`build_crd` adds the subresources, printer columns and the CEL rules from `rules.py`.
`crds/` holds the committed output; a unit test fails when it drifts.
"""

from __future__ import annotations

from typing import Any

import yaml

from tenfold import constants
from tenfold.api.resource import MAX_NAME_LENGTH
from tenfold.api.rules import cel_validations
from tenfold.api.spec import ApiModel, InferenceServiceSpec
from tenfold.api.status import InferenceServiceStatus
from tenfold.api.tuning import InferenceTuningSpec, InferenceTuningStatus

# JSON-schema keywords a structural CRD schema may carry.
_KEPT = (
    "type", "description", "enum", "default", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
    "minItems", "maxItems", "maxProperties", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
)  # fmt: skip


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline a `$ref`, keeping the referring node's own description and default."""
    if "$ref" not in node:
        return node
    target = dict(defs[node["$ref"].rsplit("/", 1)[-1]])
    target.update({k: v for k, v in node.items() if k != "$ref"})
    return target


def _drop_null_branch(node: dict[str, Any]) -> dict[str, Any]:
    """`X | None` becomes X: an absent field is how Kubernetes says "unset"."""
    branches = node.get("anyOf")
    if not branches:
        return node
    kept = [b for b in branches if b.get("type") != "null"]
    if len(kept) != 1:
        raise ValueError(f"cannot express a union in a structural schema: {node}")
    merged = {**kept[0], **{k: v for k, v in node.items() if k != "anyOf"}}
    if merged.get("default", 0) is None:
        merged.pop("default")
    return merged


def _convert_exclusive_bounds(node: dict[str, Any]) -> dict[str, Any]:
    # JSON Schema 2020-12 spells exclusive bounds as numbers; OpenAPI v3.0 as booleans.
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            node[flag] = node[bound]
            node[bound] = True
    return node


def structural_schema(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Convert one pydantic JSON-schema node into a structural CRD schema node."""
    node = _convert_exclusive_bounds(_resolve(_drop_null_branch(_resolve(node, defs)), defs))
    out = {key: node[key] for key in _KEPT if key in node}
    if "const" in node:
        out["enum"] = [node["const"]]
    if out.get("type") == "string" and "enum" in out and "maxLength" not in out:
        # The apiserver's CEL cost estimate knows a string's size only from maxLength; an
        # enum's longest value bounds it, so rules may walk lists of enum values.
        out["maxLength"] = max(len(str(value)) for value in out["enum"])
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {
            name: structural_schema(child, defs) for name, child in node["properties"].items()
        }
        if node.get("required"):
            out["required"] = list(node["required"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = structural_schema(node["additionalProperties"], defs)
    if "items" in node:
        out["items"] = structural_schema(node["items"], defs)
    if node.get("type") == "number":
        out.pop("format", None)
    return out


def model_schema(model: type[ApiModel]) -> dict:
    """The structural schema of one API model, camelCase as users write it."""
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    return structural_schema(raw, raw.get("$defs", {}))


def default_empty_containers(schema: dict[str, Any]) -> dict[str, Any]:
    """Give every optional object (whose fields are all optional) `default: {}` and every
    optional list `default: []`.

    The apiserver then fills nested defaults too, so CEL rules can read any field without
    `has()` guards, and the stored object shows the values the operator acts on.
    """
    required = set(schema.get("required", ()))
    for name, child in schema.get("properties", {}).items():
        if name not in required and "default" not in child:
            # An optional object with required fields of its own (a ConfigMap reference) has
            # no empty form: left out means absent.
            if child.get("type") == "object" and not child.get("required"):
                child["default"] = {}
            elif child.get("type") == "array":
                child["default"] = []
        default_empty_containers(child)
    return schema


def _spec_schema() -> dict[str, Any]:
    schema = default_empty_containers(model_schema(InferenceServiceSpec))
    schema["x-kubernetes-validations"] = cel_validations()
    return schema


def _printer_columns() -> list[dict[str, Any]]:
    ready = '.status.conditions[?(@.type=="Ready")].status'
    return [
        {"name": "Ready", "type": "string", "jsonPath": ready},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "GPU", "type": "string", "jsonPath": ".spec.hardware.gpuType"},
        {"name": "Precision", "type": "string", "jsonPath": ".status.precision"},
        {"name": "Cost/h", "type": "number", "jsonPath": ".status.costPerHour"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def build_crd() -> dict[str, Any]:
    """The complete InferenceService CustomResourceDefinition."""
    return _definition(
        constants.KIND,
        constants.PLURAL,
        constants.SINGULAR,
        list(constants.SHORT_NAMES),
        "InferenceService serves one model on Triton, quantized under an accuracy guard, "
        "batched, cached and autoscaled within a cost budget.",
        _spec_schema(),
        model_schema(InferenceServiceStatus),
        subresources={
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        columns=_printer_columns(),
        # Children are named <name>-config and <name>-redis.
        validations=[
            {
                "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
                "message": f"metadata.name must be at most {MAX_NAME_LENGTH} characters",
            }
        ],
    )


def build_tuning_crd() -> dict[str, Any]:
    """The InferenceTuning CustomResourceDefinition."""
    ready = '.status.conditions[?(@.type=="Ready")]'
    return _definition(
        constants.TUNING_KIND,
        constants.TUNING_PLURAL,
        constants.TUNING_SINGULAR,
        list(constants.TUNING_SHORT_NAMES),
        "InferenceTuning searches the cheapest configuration of one InferenceService that "
        "meets its p95 SLO and accuracy guard, and recommends or applies the winner.",
        default_empty_containers(model_schema(InferenceTuningSpec)),
        model_schema(InferenceTuningStatus),
        subresources={"status": {}},
        columns=[
            {"name": "Service", "type": "string", "jsonPath": ".spec.serviceName"},
            {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
            {"name": "Action", "type": "string", "jsonPath": ".spec.action"},
            {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
            {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason"},
            {"name": "Job", "type": "string", "jsonPath": ".status.job", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        validations=[],
    )


def _definition(
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    description: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    *,
    subresources: dict[str, Any],
    columns: list[dict[str, Any]],
    validations: list[dict[str, str]],
) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if validations:
        root["x-kubernetes-validations"] = validations
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{constants.API_GROUP}",
            "labels": {constants.LABEL_PART_OF: "tenfold"},
        },
        "spec": {
            "group": constants.API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": list(constants.CATEGORIES),
            },
            "versions": [
                {
                    "name": constants.API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_crd(kind: str = constants.KIND) -> str:
    """The CRD of `kind` as YAML, byte-stable for the golden test."""
    header = "# Generated by `tenfold crd` from operator/tenfold/api; do not edit by hand.\n"
    crd = build_tuning_crd() if kind == constants.TUNING_KIND else build_crd()
    return header + yaml.safe_dump(crd, sort_keys=True, width=100)

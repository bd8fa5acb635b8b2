"""The ConfigMap `<name>-config`: Triton's config.pbtxt and the prepare spec."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tenfold.api.prepare import PrepareSpec
from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan.labels import common_labels, config_map_name, object_meta
from tenfold.plan.prepare_spec import build_prepare_spec

CONFIG_PBTXT_KEY = "config.pbtxt"
PREPARE_JSON_KEY = "prepare.json"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no optional whitespace: equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def prepare_json(prepare: PrepareSpec) -> str:
    """The prepare spec as the init container reads it (`PrepareSpec.model_validate_json`)."""
    return canonical_json(prepare.model_dump(mode="json"))


def build_config_data(name: str, spec: InferenceServiceSpec) -> dict[str, str]:
    """The ConfigMap's data: everything the pods read at start."""
    prepare = build_prepare_spec(name, spec)
    return {CONFIG_PBTXT_KEY: prepare.config_pbtxt, PREPARE_JSON_KEY: prepare_json(prepare)}


def config_hash(data: dict[str, str]) -> str:
    """sha256 of the ConfigMap data; a pod annotation, so a config change rolls the pods."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def build_config_map(name: str, namespace: str, spec: InferenceServiceSpec) -> dict[str, Any]:
    """The ConfigMap `<name>-config` mounted at /etc/tenfold."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(config_map_name(name), namespace, common_labels(name, spec)),
        "data": build_config_data(name, spec),
    }

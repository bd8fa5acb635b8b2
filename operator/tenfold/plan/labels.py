"""Labels, names and metadata shared by every object of one InferenceService."""

from __future__ import annotations

import re
from typing import Any

from tenfold.api.spec import InferenceServiceSpec
from tenfold.constants import (
    ANNOTATION_PREFIX,
    API_GROUP,
    API_VERSION,
    KIND,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    LABEL_VERSION,
    MANAGED_BY,
)

APP_NAME = "tenfold-inference"
# Redis pods carry another app name so the inference selector never matches them.
REDIS_APP_NAME = "tenfold-redis"
PART_OF = "tenfold"
COMPONENT_INFERENCE = "inference"
COMPONENT_CACHE = "cache"
CONFIG_HASH_ANNOTATION = f"{ANNOTATION_PREFIX}/config-hash"

_LABEL_VALUE_MAX = 63
_NOT_LABEL_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_EDGE_CHARS = "._-"


def config_map_name(name: str) -> str:
    """Name of the ConfigMap holding config.pbtxt and prepare.json."""
    return f"{name}-config"


def redis_name(name: str) -> str:
    """Name of the operator-managed Redis StatefulSet and its Service."""
    return f"{name}-redis"


def label_value(text: str) -> str:
    """`text` made into a valid label value (63 chars, alphanumeric at both ends)."""
    cleaned = _NOT_LABEL_CHARS.sub("-", text)[:_LABEL_VALUE_MAX]
    return cleaned.strip(_EDGE_CHARS)


def selector_labels(name: str) -> dict[str, str]:
    """The immutable selector of the inference Deployment, Service, PDB and monitor."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: name}


def pod_selector(name: str) -> str:
    """The inference pods' selector as a string (status.selector, kubectl -l)."""
    return ",".join(f"{key}={value}" for key, value in selector_labels(name).items())


def child_selector(name: str) -> str:
    """Label selector of every object the plan makes for one InferenceService (pruning).

    Both label sets below carry these two labels, the inference objects' and Redis's alike.
    """
    return f"{LABEL_INSTANCE}={name},{LABEL_MANAGED_BY}={MANAGED_BY}"


def common_labels(name: str, spec: InferenceServiceSpec) -> dict[str, str]:
    """Recommended `app.kubernetes.io/*` labels of the inference objects and pods."""
    labels = {
        **selector_labels(name),
        LABEL_COMPONENT: COMPONENT_INFERENCE,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: PART_OF,
    }
    version = label_value(spec.model.version)
    if version:
        labels[LABEL_VERSION] = version
    return labels


def redis_selector_labels(name: str) -> dict[str, str]:
    """Selector of the operator-managed Redis pods."""
    return {LABEL_NAME: REDIS_APP_NAME, LABEL_INSTANCE: name}


def redis_labels(name: str) -> dict[str, str]:
    """Labels of the operator-managed Redis objects and pods."""
    return {
        **redis_selector_labels(name),
        LABEL_COMPONENT: COMPONENT_CACHE,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: PART_OF,
    }


def object_meta(
    name: str, namespace: str, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """`metadata` of a namespaced object; owner references are added by `with_owner`."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def owner_reference(name: str, uid: str, kind: str = KIND) -> dict[str, Any]:
    """Controller reference to the InferenceService (or another tenfold `kind`), so deleting
    it garbage-collects us."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def with_owner(obj: dict[str, Any], name: str, uid: str | None) -> dict[str, Any]:
    """`obj` with the InferenceService as its controller owner; unchanged when uid is None."""
    if uid is None:
        return obj
    metadata = {**obj["metadata"], "ownerReferences": [owner_reference(name, uid)]}
    return {**obj, "metadata": metadata}

"""The PodDisruptionBudget `<name>`: voluntary evictions take one pod at a time."""

from __future__ import annotations

from typing import Any

from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan.labels import common_labels, object_meta, selector_labels


def build_pdb(name: str, namespace: str, spec: InferenceServiceSpec) -> dict[str, Any]:
    """policy/v1 PodDisruptionBudget with maxUnavailable 1 over the inference pods."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(name, namespace, common_labels(name, spec)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(name)},
            # A pod that never became ready (bad model, no GPU) must not block node drains.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }

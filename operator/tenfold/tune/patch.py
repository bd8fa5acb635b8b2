"""The winner as a ready-to-commit patch of the InferenceService: only the fields that change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenfold.api.resource import parse_spec
from tenfold.tune.space import Candidate, candidate_spec


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of `after` whose values differ from `before`, nested maps compared key by key
    (lists are replaced whole, as a merge patch does)."""
    diff: dict[str, Any] = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            inner = changed_fields(old, value)
            if inner:
                diff[key] = inner
        elif value != old:
            diff[key] = value
    return diff


def build_patch(document: Mapping[str, Any], winner: Candidate) -> dict[str, Any] | None:
    """A merge patch of the manifest `document` that gives it the winner's configuration.

    It names the object (apiVersion, kind, metadata) so that it can be committed beside the
    manifest or applied with `kubectl patch --type merge --patch-file`; None when the service
    already runs the winner.
    """
    spec = document["spec"]
    # Compared as validated, defaults filled in: a field the YAML leaves to its default and
    # the winner keeps at that default is no change.
    before = parse_spec(spec).model_dump(mode="json", by_alias=True)
    after = candidate_spec(spec, winner).model_dump(mode="json", by_alias=True)
    diff = changed_fields(before, after)
    if not diff:
        return None
    metadata = {"name": document["metadata"]["name"]}
    if document["metadata"].get("namespace"):
        metadata["namespace"] = document["metadata"]["namespace"]
    return {
        "apiVersion": document["apiVersion"],
        "kind": document["kind"],
        "metadata": metadata,
        "spec": diff,
    }

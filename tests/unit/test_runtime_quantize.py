"""Precision rules and int8 conversion on a tiny module (no model download, milliseconds)."""

import pytest
import torch
from torch import nn

from tenfold.api.enums import Precision
from tenfold_runtime import quantize
from tenfold_runtime.quantize import Int8Scheme, UnsupportedPrecisionError


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).eval()


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("precision", [Precision.INT4, Precision.FP8])
def test_int4_and_fp8_are_refused_on_every_device_with_the_tables_reason(precision, device):
    with pytest.raises(UnsupportedPrecisionError, match=f"precision {precision} is not served"):
        quantize.check_supported(precision, device, Int8Scheme.WEIGHT_ONLY)
    with pytest.raises(UnsupportedPrecisionError, match="on an H200"):
        quantize.convert(_tiny(), precision, int8_scheme=Int8Scheme.WEIGHT_ONLY)


def test_dynamic_int8_is_cpu_only():
    with pytest.raises(UnsupportedPrecisionError, match="weight-only"):
        quantize.check_supported(Precision.INT8, "cuda", Int8Scheme.DYNAMIC)
    quantize.check_supported(Precision.MIXED, "cuda", Int8Scheme.WEIGHT_ONLY)
    assert quantize.default_int8_scheme("cuda") is Int8Scheme.WEIGHT_ONLY
    assert quantize.default_int8_scheme("cpu") is Int8Scheme.DYNAMIC


@pytest.mark.parametrize(
    "precision", [Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8, Precision.MIXED]
)
def test_cpu_precisions_are_accepted(precision):
    quantize.check_supported(precision, "cpu", Int8Scheme.DYNAMIC)


def test_unknown_device_is_refused():
    with pytest.raises(UnsupportedPrecisionError, match="unknown device"):
        quantize.check_supported(Precision.FP32, "tpu", Int8Scheme.DYNAMIC)


def test_matching_uses_shell_patterns():
    names = ["encoder.layer.0.output.dense", "encoder.layer.0.attention.self.query", "pooler.dense"]
    assert quantize.matching(names, ["encoder.layer.*.output.dense", "pooler.*"]) == [
        "encoder.layer.0.output.dense",
        "pooler.dense",
    ]


def test_most_sensitive_first_orders_by_drop_then_name():
    order = quantize.most_sensitive_first({"b": 0.1, "a": 0.1, "c": 0.3, "d": 0.0})
    assert order == ["c", "a", "b", "d"]


def test_choose_kept_layers_adds_layers_until_the_drop_fits():
    drops = {0: 0.05, 1: 0.03, 2: 0.009, 3: 0.001}
    kept, drop = quantize.choose_kept_layers(
        ["x", "y", "z", "w"], lambda keep: drops[len(keep)], max_drop=0.01, max_kept=4
    )
    assert kept == ["x", "y"]
    assert drop == 0.009


def test_choose_kept_layers_stops_at_the_cap_and_returns_the_best_try():
    kept, drop = quantize.choose_kept_layers(
        ["x", "y", "z"], lambda keep: 0.5 - 0.1 * len(keep), max_drop=0.01, max_kept=2
    )
    assert kept == ["x", "y"]
    assert drop == pytest.approx(0.3)


@pytest.mark.parametrize("scheme", list(Int8Scheme))
def test_to_int8_replaces_every_linear_except_the_kept_and_stays_close(scheme):
    model = _tiny()
    x = torch.randn(4, 16)
    converted = quantize.to_int8(model, scheme, keep=["2"])
    assert not isinstance(converted[0], nn.Linear)
    assert isinstance(converted[2], nn.Linear)
    assert isinstance(model[0], nn.Linear)  # the original is untouched
    with torch.inference_mode():
        cos = nn.functional.cosine_similarity(model(x), converted(x)).min()
    assert cos > 0.99


def test_convert_to_half_precisions_changes_the_dtype():
    model = _tiny()
    assert (
        quantize.convert(model, Precision.BF16, int8_scheme=Int8Scheme.DYNAMIC)[0].weight.dtype
        == torch.bfloat16
    )
    assert (
        quantize.convert(model, Precision.FP16, int8_scheme=Int8Scheme.DYNAMIC)[0].weight.dtype
        == torch.float16
    )
    assert model[0].weight.dtype == torch.float32


def test_layer_sensitivity_measures_each_layer_alone_and_restores_it():
    model = _tiny()
    seen = []

    def drop_of(module):
        seen.append([isinstance(m, nn.Linear) for m in module])
        return float(len(seen))

    result = quantize.layer_sensitivity(model, ["0", "2"], Int8Scheme.DYNAMIC, drop_of)
    assert result == {"0": 1.0, "2": 2.0}
    assert (seen[0][0], seen[0][2]) == (False, True)
    assert (seen[1][0], seen[1][2]) == (True, False)
    assert isinstance(model[0], nn.Linear) and isinstance(model[2], nn.Linear)

"""Precision conversion of a torch model: fp32, fp16, bf16, int8 (three schemes) and mixed.

fp8 and int4 are not served (api/serving.py says why, from a GPU run), so prepare refuses
them before anything here runs.

int8 on CPU uses torch's dynamic quantization kernels (fbgemm/x86): weights are stored as int8
and activations are quantized per batch at run time, which is what makes int8 faster here. Per
channel weight scales are the default because one scale per tensor measurably hurts MiniLM
(see docs/benchmarks.md). Weight-only int8 stores int8 weights and computes in floating point:
it saves memory on any device (the int8 path on CUDA).
"""

from __future__ import annotations

import copy
import fnmatch
import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum

import torch
from torch import nn
from torch.ao.nn.quantized import dynamic as qdynamic
from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

from tenfold.api.enums import Precision
from tenfold.api.serving import SERVING

log = logging.getLogger(__name__)


class UnsupportedPrecisionError(ValueError):
    """The requested precision cannot run on the requested device."""


class Int8Scheme(StrEnum):
    """How int8 is applied to the Linear layers."""

    DYNAMIC = "dynamic"  # int8 weights with one scale per output channel, int8 activations
    DYNAMIC_PER_TENSOR = "dynamic-per-tensor"  # one weight scale per tensor: the naive recipe
    WEIGHT_ONLY = "weight-only"  # int8 weights per channel, compute in float


def default_int8_scheme(device: str) -> Int8Scheme:
    """Dynamic int8 kernels exist only on CPU; on CUDA int8 means weight-only."""
    return Int8Scheme.DYNAMIC if device == "cpu" else Int8Scheme.WEIGHT_ONLY


def check_supported(precision: Precision, device: str, int8_scheme: Int8Scheme) -> None:
    """Raise UnsupportedPrecisionError when `precision` cannot run on `device` (pure)."""
    if device not in ("cpu", "cuda"):
        raise UnsupportedPrecisionError(f"unknown device {device!r}: expected cpu or cuda")
    if not SERVING.precision_served(precision):
        raise UnsupportedPrecisionError(SERVING.precision_messages()[str(precision)])
    uses_int8 = precision in (Precision.INT8, Precision.MIXED)
    if uses_int8 and device == "cuda" and int8_scheme is not Int8Scheme.WEIGHT_ONLY:
        raise UnsupportedPrecisionError(
            f"int8 scheme {int8_scheme} uses torch's CPU-only dynamic kernels; "
            f"on cuda use {Int8Scheme.WEIGHT_ONLY}"
        )


def check_device(device: str) -> None:
    """Raise UnsupportedPrecisionError when `device` is cuda and torch sees no GPU (I/O)."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UnsupportedPrecisionError("device cuda requested but torch sees no CUDA GPU")


def linear_names(model: nn.Module) -> list[str]:
    """Qualified names of every nn.Linear in `model`, in module order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def matching(names: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The names matched by any shell-style pattern (`encoder.layer.*.output.dense`)."""
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


class Int8WeightOnlyLinear(nn.Module):
    """A Linear whose weight is stored as int8 with one scale per output channel."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach()
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
        self.register_buffer("qweight", torch.round(weight / scale).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dequantize on the fly; the memory saving is the point, not the arithmetic."""
        weight = self.qweight.to(x.dtype) * self.scale.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return nn.functional.linear(x, weight, bias)


def quantize_linear(linear: nn.Linear, scheme: Int8Scheme) -> nn.Module:
    """The int8 replacement of one Linear layer under `scheme`."""
    if scheme is Int8Scheme.WEIGHT_ONLY:
        return Int8WeightOnlyLinear(linear)
    source = copy.copy(linear)  # from_float reads .qconfig; leave the original untouched
    source.qconfig = (
        per_channel_dynamic_qconfig if scheme is Int8Scheme.DYNAMIC else default_dynamic_qconfig
    )
    with warnings.catch_warnings():
        # torch 2.15 deprecates its quantized tensor dtypes in favour of torchao; the kernels
        # still ship and are the fastest int8 path on CPU here (docs/benchmarks.md).
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        return qdynamic.Linear.from_float(source)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put `new` at dotted path `name` inside `model`; returns the module it replaced."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, new)
    return old


def to_int8(model: nn.Module, scheme: Int8Scheme, keep: Iterable[str] = ()) -> nn.Module:
    """A copy of `model` with every Linear at int8 except the names in `keep`."""
    keep_set = set(keep)
    result = copy.deepcopy(model)
    for name in linear_names(result):
        if name not in keep_set:
            replace_module(result, name, quantize_linear(result.get_submodule(name), scheme))
    return result


def convert(
    model: nn.Module,
    precision: Precision,
    *,
    int8_scheme: Int8Scheme,
    keep: Sequence[str] = (),
) -> nn.Module:
    """A copy of the fp32 `model` at `precision` (the model is already on its device).

    For MIXED, `keep` names the Linear layers left at fp32 and the rest go to int8.
    """
    if precision is Precision.FP32:
        return copy.deepcopy(model)
    if precision is Precision.FP16:
        return copy.deepcopy(model).half()
    if precision is Precision.BF16:
        return copy.deepcopy(model).to(torch.bfloat16)
    if precision is Precision.INT8:
        return to_int8(model, int8_scheme)
    if precision is Precision.MIXED:
        return to_int8(model, int8_scheme, keep)
    raise UnsupportedPrecisionError(SERVING.precision_messages()[str(precision)])


def layer_sensitivity(
    model: nn.Module,
    names: Sequence[str],
    scheme: Int8Scheme,
    drop_of: Callable[[nn.Module], float],
) -> dict[str, float]:
    """The accuracy drop caused by quantizing each named layer alone.

    One copy of the model is reused: each layer is swapped to int8, measured and swapped
    back, which is far cheaper than a deep copy per layer.
    """
    work = copy.deepcopy(model)
    sensitivity: dict[str, float] = {}
    for index, name in enumerate(names, 1):
        original = replace_module(work, name, quantize_linear(work.get_submodule(name), scheme))
        sensitivity[name] = drop_of(work)
        replace_module(work, name, original)
        if index % 8 == 0 or index == len(names):
            log.info("sensitivity: %d/%d layers measured", index, len(names))
    return sensitivity


def most_sensitive_first(sensitivity: dict[str, float]) -> list[str]:
    """Layer names ordered from the largest drop to the smallest (ties by name)."""
    return sorted(sensitivity, key=lambda name: (-sensitivity[name], name))


def choose_kept_layers(
    ranked: Sequence[str],
    drop_with_kept: Callable[[list[str]], float],
    max_drop: float,
    max_kept: int,
) -> tuple[list[str], float]:
    """Keep the most sensitive layers at fp32, one more at a time, until the drop fits.

    Returns the kept names and the drop measured with them; when even `max_kept` layers are
    not enough, the last (best) try is returned and the guard will reject it.
    """
    kept: list[str] = []
    drop = drop_with_kept(kept)
    for name in ranked[:max_kept]:
        if drop <= max_drop:
            break
        kept.append(name)
        drop = drop_with_kept(kept)
    return kept, drop

"""What the runtime serves today, written out by hand: the oracle of the serving-table tests.

tests/unit/test_api_serving.py checks pydantic, `tenfold validate` and prepare against it;
tests/integration/test_serving_admission.py checks the real apiserver's CEL against it.
"""

from __future__ import annotations

from itertools import product

from tenfold.api.enums import Backend, GuardMetric, ModelFormat, Task

# The oracle: what the runtime serves today.
SERVED = {
    (task, "huggingface", backend)
    for task in ("embedding", "classification")
    for backend in ("python", "pytorch", "onnxruntime")
} | {("reranking", "huggingface", "python")}
# A user's ONNX or TorchScript file: on the Python backend, for every task but generation,
# on cpu only.
CPU_ONLY_FORMATS = {"onnx", "torchscript"}
SERVED |= {
    (task, fmt, "python")
    for task in ("embedding", "classification", "reranking")
    for fmt in CPU_ONLY_FORMATS
}
FITTING = {
    "embedding": {"cosine"},
    "classification": {"top1Agreement", "logitMSE"},
    "reranking": {"rankAgreement", "top1Agreement", "logitMSE"},
}
GPU_ONLY = {"tensorrt", "vllm"}
# "" leaves the guard metric unset: the task's default, never refused.
MATRIX = list(product(Task, ModelFormat, Backend, [*GuardMetric, ""], ("cpu", "L4")))
# Served on no device: fp8 and int4 failed prepare on an H200 (tools/tenfold_tools/gpu_check.py).
NOT_SERVED_PRECISIONS = {"fp8", "int4"}
# What each GPU's hardware runs, of the precisions tenfold serves (the catalog's facts).
HARDWARE = {
    "cpu": {"fp32", "fp16", "bf16", "int8", "mixed"},
    "T4": {"fp32", "fp16", "int8", "mixed"},
    "L4": {"fp32", "fp16", "bf16", "int8", "mixed"},
    "H200": {"fp32", "fp16", "bf16", "int8", "mixed"},
}
PRECISION_MATRIX = [
    (gpu, precision, fallback)
    for gpu in HARDWARE
    for precision in ("fp32", "bf16", "int8", "fp8", "int4")
    for fallback in ([], ["mixed", "fp16", "fp32"], ["fp8", "fp32"], ["int4"], ["fp8", "int4"])
]


def expected_fields(task: str, fmt: str, backend: str, metric: str, gpu: str) -> set[str]:
    """The fields a spec with these choices must be refused on (empty: it is served)."""
    fields = set()
    if task == "generation":
        fields.add("spec.model.task")
    if fmt not in ("huggingface", *CPU_ONLY_FORMATS):
        fields.add("spec.model.format")
    if backend in GPU_ONLY:
        fields.add("spec.runtime.backend")
    if not fields and (task, fmt, backend) not in SERVED:
        fields.add("spec.runtime.backend")  # each is served, but not together
    if fmt in CPU_ONLY_FORMATS and gpu != "cpu":
        fields.add("spec.model.format")
    if metric and task in FITTING and metric not in FITTING[task]:
        fields.add("spec.quantization.guard.metric")
    return fields


def spec_of(task: str, fmt: str, backend: str, metric: str, gpu: str) -> dict:
    """A spec with these choices and nothing else out of the ordinary."""
    return {
        "model": {"name": "m", "source": "/models/m", "task": task, "format": fmt},
        "runtime": {"backend": backend},
        "quantization": {"guard": {"metric": metric} if metric else {}},
        "hardware": {"gpuType": gpu, "gpusPerReplica": 0 if gpu == "cpu" else 1},
    }


def precision_fields(gpu: str, precision: str, fallback: list[str]) -> set[str]:
    """The fields a spec with this precision and fallback ladder must be refused on."""
    fields = set()
    if precision in NOT_SERVED_PRECISIONS or precision not in HARDWARE[gpu]:
        fields.add("spec.quantization.precision")
    if NOT_SERVED_PRECISIONS & set(fallback):
        fields.add("spec.quantization.guard.fallback")
    return fields


def precision_spec_of(gpu: str, precision: str, fallback: list[str]) -> dict:
    """A served embedding spec on `gpu` with this precision and fallback ladder."""
    spec = spec_of("embedding", "huggingface", "python", "cosine", gpu)
    spec["quantization"] = {"precision": precision, "guard": {"fallback": fallback}}
    return spec


# runtime.engine onnxruntime: tenfold's ONNX export run in the Python backend, for the tasks the
# onnxruntime backend exports, on cpu only, at the precisions that export serves.
ENGINE_SERVED = {(task, "huggingface", "python") for task in ("embedding", "classification")}
ENGINE_PRECISIONS = {"fp32", "int8", "mixed"}
ENGINE_MATRIX = list(
    product(Task, ModelFormat, Backend, ("cpu", "L4"), ("fp32", "int8", "mixed", "fp16", "bf16"))
)


def engine_fields(task: str, fmt: str, backend: str, gpu: str, precision: str) -> set[str]:
    """The fields a spec with `engine: onnxruntime` and these choices must be refused on."""
    fields = expected_fields(task, fmt, backend, "", gpu)
    if (task, fmt, backend) not in ENGINE_SERVED or gpu != "cpu":
        fields.add("spec.runtime.engine")
    if precision not in ENGINE_PRECISIONS:
        fields.add("spec.quantization.precision")
    return fields


def engine_spec_of(task: str, fmt: str, backend: str, gpu: str, precision: str) -> dict:
    """A spec with `engine: onnxruntime`, these choices and nothing else out of the ordinary."""
    spec = spec_of(task, fmt, backend, "", gpu)
    spec["runtime"]["engine"] = "onnxruntime"
    spec["quantization"]["precision"] = precision
    return spec

"""What the runtime serves today, written out by hand: the oracle of the serving-table tests.

tests/unit/test_api_serving.py checks pydantic, `tenfold validate` and prepare against it;
tests/integration/test_serving_admission.py checks the real apiserver's CEL against it.
"""

from __future__ import annotations

from itertools import product

from tenfold.api.enums import Backend, GuardMetric, ModelFormat, Task

# The oracle: what the runtime serves today.
SERVED = {("embedding", "huggingface", b) for b in ("python", "pytorch", "onnxruntime")}
FITTING = {"embedding": {"cosine"}, "classification": {"top1Agreement", "logitMSE"}}
GPU_ONLY = {"tensorrt", "vllm"}
MATRIX = list(product(Task, ModelFormat, Backend, GuardMetric, ("cpu", "L4")))


def expected_fields(task: str, fmt: str, backend: str, metric: str, gpu: str) -> set[str]:
    """The fields a spec with these choices must be refused on (empty: it is served)."""
    fields = set()
    if task != "embedding":
        fields.add("spec.model.task")
    if fmt != "huggingface":
        fields.add("spec.model.format")
    if backend in GPU_ONLY:
        fields.add("spec.runtime.backend")
    if task in FITTING and metric not in FITTING[task]:
        fields.add("spec.quantization.guard.metric")
    return fields


def spec_of(task: str, fmt: str, backend: str, metric: str, gpu: str) -> dict:
    """A spec with these choices and nothing else out of the ordinary."""
    return {
        "model": {"name": "m", "source": "/models/m", "task": task, "format": fmt},
        "runtime": {"backend": backend},
        "quantization": {"guard": {"metric": metric}},
        "hardware": {"gpuType": gpu, "gpusPerReplica": 0 if gpu == "cpu" else 1},
    }

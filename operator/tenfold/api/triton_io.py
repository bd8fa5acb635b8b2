"""The Triton I/O contract: the tensors each task serves and the backends' Triton names.

The operator's config.pbtxt (plan/triton_config.py) declares these tensors, and the runtime's
generated model.py and local runner serve and check the same ones; both import this module so
neither can drift from the other. The ensemble wiring of exported backends (token tensors,
step names) is in api/prepare.py, beside the prepare spec that carries it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tenfold.api.enums import Backend, Task


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output; dims exclude the batch dimension when batching is on."""

    name: str
    data_type: str  # a Triton DataType name, e.g. TYPE_FP32
    dims: tuple[int, ...]


@dataclass(frozen=True)
class TaskIO:
    """The tensors a task's model takes and returns."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


# The one place the Triton I/O of each task is defined; the runtime's model.py serves these
# names.
#
# An embedding is as wide as the model's hidden size, which only prepare knows: it loads the
# model. So the operator declares the width as -1, Triton's variable dimension, and prepare
# writes the loaded model's width into every config.pbtxt it writes (the served model, the
# ensemble and its encoder step), so Triton's metadata states the real shape. -1 and not a
# guess because -1 is true of every model and every backend accepts it: the python backend
# checks no output shape, the pytorch and onnxruntime backends take any size for a -1
# dimension, and an ensemble matches -1 against any width of its steps; a guess (MiniLM's
# 384) would be wrong metadata for any other model, and a shape error on the backends that
# check outputs against their config.
EMBEDDING_WIDTH = -1
TASK_IO: Mapping[Task, TaskIO] = {
    Task.EMBEDDING: TaskIO(
        inputs=(TensorSpec("TEXT", "TYPE_STRING", (1,)),),
        outputs=(TensorSpec("EMBEDDING", "TYPE_FP32", (EMBEDDING_WIDTH,)),),
    ),
    Task.CLASSIFICATION: TaskIO(
        inputs=(TensorSpec("TEXT", "TYPE_STRING", (1,)),),
        outputs=(TensorSpec("LOGITS", "TYPE_FP32", (-1,)),),
    ),
    # One row per query-document pair; the score is the cross-encoder's single logit.
    Task.RERANKING: TaskIO(
        inputs=(
            TensorSpec("QUERY", "TYPE_STRING", (1,)),
            TensorSpec("DOCUMENT", "TYPE_STRING", (1,)),
        ),
        outputs=(TensorSpec("SCORE", "TYPE_FP32", (1,)),),
    ),
    Task.GENERATION: TaskIO(
        inputs=(TensorSpec("TEXT", "TYPE_STRING", (1,)),),
        outputs=(TensorSpec("TEXT_OUTPUT", "TYPE_STRING", (1,)),),
    ),
}

# (platform, backend) as Triton's own auto-complete writes them; "" leaves a field unset.
BACKENDS: Mapping[Backend, tuple[str, str]] = {
    Backend.PYTHON: ("", "python"),
    Backend.PYTORCH: ("pytorch_libtorch", "pytorch"),
    Backend.ONNXRUNTIME: ("onnxruntime_onnx", "onnxruntime"),
    Backend.TENSORRT: ("tensorrt_plan", "tensorrt"),
    Backend.VLLM: ("", "vllm"),
}

"""Triton's config.pbtxt, built on Triton's own model-config protobuf, and the prepare spec.

Building the typed `ModelConfig` (instead of templating text) means a misspelt field fails
here, in a unit test, rather than when tritonserver loads the model in a pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tenfold.api.catalog import CPU
from tenfold.api.enums import Backend, QueueTimeoutAction, Task
from tenfold.api.prepare import GuardSettings, PrepareSpec
from tenfold.api.spec import BatchingSpec, InferenceServiceSpec
from tenfold.constants import MODEL_REPOSITORY_PATH
from tenfold.plan.source import runtime_source

# Names of the `parameters` entries the runtime's model.py reads (python backend).
# The precision asked for; the guard may serve another, which the manifest records.
PARAM_PRECISION = "precision_requested"
PARAM_TASK = "task"
PARAM_SEQUENCE_BUCKETS = "sequence_buckets"


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


# The one place the Triton I/O of each task is defined. The runtime's model.py must use
# the same names; the runtime engineer may adjust them here. 384 is MiniLM-L6's hidden size.
TASK_IO: Mapping[Task, TaskIO] = {
    Task.EMBEDDING: TaskIO(
        inputs=(TensorSpec("TEXT", "TYPE_STRING", (1,)),),
        outputs=(TensorSpec("EMBEDDING", "TYPE_FP32", (384,)),),
    ),
    Task.CLASSIFICATION: TaskIO(
        inputs=(TensorSpec("TEXT", "TYPE_STRING", (1,)),),
        outputs=(TensorSpec("LOGITS", "TYPE_FP32", (-1,)),),
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

_TIMEOUT_ACTIONS = {
    QueueTimeoutAction.REJECT: mc.ModelQueuePolicy.REJECT,
    QueueTimeoutAction.DELAY: mc.ModelQueuePolicy.DELAY,
}


def build_triton_config(spec: InferenceServiceSpec) -> mc.ModelConfig:
    """Triton's model configuration for the spec's model."""
    platform, backend = BACKENDS[spec.runtime.backend]
    config = mc.ModelConfig(
        name=spec.model.name,
        platform=platform,
        backend=backend,
        max_batch_size=spec.batching.max_batch_size,
    )
    io = TASK_IO[spec.model.task]
    config.input.extend(_model_input(t) for t in io.inputs)
    config.output.extend(_model_output(t) for t in io.outputs)
    # A batch limit of 0 tells Triton the model does not batch; a batcher would be rejected.
    if spec.batching.max_batch_size > 0:
        config.dynamic_batching.CopyFrom(build_dynamic_batching(spec.batching))
    config.instance_group.append(build_instance_group(spec))
    if spec.cache.response_cache_bytes > 0:
        config.response_cache.enable = True
    if spec.runtime.backend is Backend.PYTHON:
        for key, value in python_parameters(spec).items():
            config.parameters[key].string_value = value
    return config


def build_dynamic_batching(batching: BatchingSpec) -> mc.ModelDynamicBatching:
    """The dynamic batcher: the batching window, preferred sizes, priorities and queue."""
    queue = batching.queue_policy
    dynamic = mc.ModelDynamicBatching(
        max_queue_delay_microseconds=batching.max_queue_delay_microseconds,
        preferred_batch_size=batching.preferred_batch_sizes,
        default_queue_policy=mc.ModelQueuePolicy(
            timeout_action=_TIMEOUT_ACTIONS[queue.timeout_action],
            default_timeout_microseconds=queue.timeout_microseconds,
            allow_timeout_override=queue.allow_timeout_override,
            max_queue_size=queue.max_queue_size,
        ),
    )
    if batching.priority_levels > 0:
        dynamic.priority_levels = batching.priority_levels
        dynamic.default_priority_level = batching.default_priority_level
    return dynamic


def build_instance_group(spec: InferenceServiceSpec) -> mc.ModelInstanceGroup:
    """`count` model instances per pod, on each of the pod's GPUs or on its CPU."""
    hardware = spec.hardware
    if hardware.gpu_type == CPU:
        return mc.ModelInstanceGroup(
            kind=mc.ModelInstanceGroup.KIND_CPU, count=spec.runtime.instances_per_replica
        )
    return mc.ModelInstanceGroup(
        kind=mc.ModelInstanceGroup.KIND_GPU,
        count=spec.runtime.instances_per_replica,
        gpus=list(range(hardware.gpus_per_replica)),
    )


def python_parameters(spec: InferenceServiceSpec) -> dict[str, str]:
    """String parameters the runtime's model.py reads (Triton parameters are strings)."""
    params = {
        PARAM_PRECISION: spec.quantization.precision.value,
        PARAM_TASK: spec.model.task.value,
    }
    if spec.batching.sequence_buckets:
        buckets = sorted(set(spec.batching.sequence_buckets))
        params[PARAM_SEQUENCE_BUCKETS] = ",".join(str(b) for b in buckets)
    return params


def render_config_pbtxt(config: mc.ModelConfig) -> str:
    """config.pbtxt text (protobuf text format; map entries come out sorted by key)."""
    return text_format.MessageToString(config)


def build_config_pbtxt(spec: InferenceServiceSpec) -> str:
    """The spec's config.pbtxt as text."""
    return render_config_pbtxt(build_triton_config(spec))


def build_prepare_spec(name: str, spec: InferenceServiceSpec) -> PrepareSpec:
    """What the `prepare` init container of InferenceService `name` must build.

    The Triton model name is `spec.model.name`; `name` (the InferenceService) does not enter
    the prepare spec, so renaming a service does not change its config hash.
    """
    model, quantization = spec.model, spec.quantization
    guard = quantization.guard
    return PrepareSpec(
        model_name=model.name,
        source=runtime_source(model.source),
        format=model.format,
        task=model.task,
        version=model.version,
        precision=quantization.precision,
        keep_higher_precision=list(quantization.keep_higher_precision),
        guard=GuardSettings(
            metric=guard.metric,
            max_drop=guard.max_drop,
            calibration_samples=guard.calibration_samples,
            fallback=list(guard.fallback),
        ),
        backend=spec.runtime.backend,
        device="cpu" if spec.hardware.gpu_type == CPU else "cuda",
        max_batch_size=spec.batching.max_batch_size,
        config_pbtxt=build_config_pbtxt(spec),
        repository=MODEL_REPOSITORY_PATH,
    )


def _model_input(tensor: TensorSpec) -> mc.ModelInput:
    return mc.ModelInput(
        name=tensor.name, data_type=mc.DataType.Value(tensor.data_type), dims=tensor.dims
    )


def _model_output(tensor: TensorSpec) -> mc.ModelOutput:
    return mc.ModelOutput(
        name=tensor.name, data_type=mc.DataType.Value(tensor.data_type), dims=tensor.dims
    )

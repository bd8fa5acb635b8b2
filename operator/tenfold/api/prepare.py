"""The prepare spec: what the operator tells the `tenfold-runtime prepare` init container.

The operator writes it as JSON into the service's ConfigMap; the init container reads it from
PREPARE_SPEC_PATH. It is the one contract between the operator and the runtime, so both import
this model instead of agreeing on dict keys.
"""

from pydantic import BaseModel, ConfigDict, Field

from tenfold.api.enums import Backend, Engine, GuardMetric, ModelFormat, Precision, Task
from tenfold.api.triton_io import TASK_IO

# The pytorch and onnxruntime backends run tensors, not text: the served model is then a Triton
# ensemble of a Python-backend tokenizer and the exported encoder, wired by these names.
# `<name>__<index>` is the pytorch backend's naming convention; the ONNX graph uses the same.
TOKEN_IDS = "INPUT_IDS__0"
TOKEN_MASK = "ATTENTION_MASK__1"
EXPORTED_BACKENDS = (Backend.PYTORCH, Backend.ONNXRUNTIME)


def encoder_output(task: Task) -> str:
    """The exported encoder's output for `task`: the served output's name, pytorch-style
    (`EMBEDDING__0`, `LOGITS__0`); the ensemble maps it onto the served name."""
    return f"{TASK_IO[task].outputs[0].name}__0"


# The Triton string parameter naming the token-length buckets ("16,32,64").
SEQUENCE_BUCKETS_PARAMETER = "sequence_buckets"


def tokenizer_model_name(model_name: str) -> str:
    """The ensemble step that turns TEXT into token ids."""
    return f"{model_name}-tokenizer"


def encoder_model_name(model_name: str) -> str:
    """The ensemble step that runs the exported encoder (TorchScript or ONNX)."""
    return f"{model_name}-encoder"


class GuardSettings(BaseModel):
    """The accuracy guard as the runtime applies it."""

    model_config = ConfigDict(frozen=True)

    metric: GuardMetric = GuardMetric.COSINE
    max_drop: float = Field(0.01, ge=0, le=1, description="Largest allowed drop of the metric.")
    max_worst_drop: float | None = Field(
        None, ge=0, le=1, description="Largest allowed drop in the worst sample; None: unbounded."
    )
    calibration_samples: int = Field(64, ge=1, le=100_000)
    calibration_inputs: list[str] = Field(
        default_factory=list, description="Inputs to calibrate on; empty: the task's built-in set."
    )
    # The ladder the guard walks down when a precision fails its check.
    fallback: list[Precision] = Field(
        default_factory=lambda: [Precision.MIXED, Precision.FP16, Precision.FP32]
    )


class PrepareSpec(BaseModel):
    """Everything the init container needs to build a Triton model repository."""

    model_config = ConfigDict(frozen=True)

    model_name: str = Field(description="Triton model name (directory in the repository).")
    source: str = Field(description="Model source URI.")
    format: ModelFormat
    task: Task
    version: str = Field("1", description="Model version label, part of the cache key.")
    precision: Precision
    keep_higher_precision: list[str] = Field(
        default_factory=list, description="Layer name patterns kept at full precision (mixed)."
    )
    guard: GuardSettings = Field(default_factory=GuardSettings)
    backend: Backend = Backend.PYTHON
    engine: Engine = Field(
        Engine.TORCH,
        description="What runs the model in the Python backend: torch, or onnxruntime on the "
        "ONNX export the guard measured.",
    )
    device: str = Field("cpu", description="cpu or cuda: where the quantized model must run.")
    max_batch_size: int = Field(32, ge=0)
    config_pbtxt: str = Field(description="Triton config.pbtxt rendered by the operator.")
    step_configs: dict[str, str] = Field(
        default_factory=dict,
        description="config.pbtxt of each ensemble step by model name (exported backends).",
    )
    repository: str = Field("/models", description="Model repository path to write.")

"""Closed vocabularies of the API. String enums so YAML and JSON read naturally."""

from enum import StrEnum


class Precision(StrEnum):
    """Numeric precision the model is served at."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"
    INT4 = "int4"
    FP8 = "fp8"
    MIXED = "mixed"


class ModelFormat(StrEnum):
    """How the model artefact is stored at its source."""

    TORCHSCRIPT = "torchscript"
    ONNX = "onnx"
    HUGGINGFACE = "huggingface"
    PYTHON = "python"


class Task(StrEnum):
    """What the model computes; decides the accuracy metric and the Triton I/O."""

    EMBEDDING = "embedding"
    CLASSIFICATION = "classification"
    RERANKING = "reranking"  # a cross-encoder: one relevance score per query-document pair
    GENERATION = "generation"


class Backend(StrEnum):
    """Triton backend that executes the model."""

    PYTHON = "python"
    PYTORCH = "pytorch"
    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"
    VLLM = "vllm"


class Engine(StrEnum):
    """What runs the model inside the Python backend: torch (the default), or onnxruntime on
    the model tenfold exported to ONNX."""

    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"


class GuardMetric(StrEnum):
    """How the accuracy guard compares the quantized model with full precision."""

    COSINE = "cosine"
    TOP1_AGREEMENT = "top1Agreement"
    LOGIT_MSE = "logitMSE"
    # Per query, the Spearman correlation of the candidate's and fp32's document order.
    RANK_AGREEMENT = "rankAgreement"


class CacheMode(StrEnum):
    """Where the cache sidecar keeps entries."""

    NONE = "none"
    MEMORY = "memory"
    REDIS = "redis"


class AutoscalingMode(StrEnum):
    """auto acts, recommend only writes the decision to status, off leaves replicas alone."""

    AUTO = "auto"
    RECOMMEND = "recommend"
    OFF = "off"


class QueueTimeoutAction(StrEnum):
    """What Triton does with a request that waited past its queue timeout."""

    REJECT = "reject"
    DELAY = "delay"


class TuningMode(StrEnum):
    """How a tuning walks its grid: quick hill climbing, or every candidate."""

    QUICK = "quick"
    BRUTE = "brute"


class TuningObjective(StrEnum):
    """What a tuning optimizes: cost per 1,000 requests at the SLO, throughput at the SLO, p95."""

    COST = "cost"
    THROUGHPUT = "throughput"
    P95 = "p95"


class TuningAction(StrEnum):
    """What a tuning does with its winner: write it to status, or patch the service."""

    RECOMMEND = "recommend"
    APPLY = "apply"

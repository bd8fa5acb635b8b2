"""The InferenceService spec: the single source of truth for the CRD, validation and docs.

Every `Field(description=...)` here reaches `kubectl explain`, the generated reference docs and
the validation messages. Cross-field rules live in `rules.py` and are enforced twice from one
definition: by the pydantic validator below and, as CEL, by the apiserver itself.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tenfold.api.cost import hourly_cap
from tenfold.api.enums import (
    AutoscalingMode,
    Backend,
    CacheMode,
    Engine,
    GuardMetric,
    ModelFormat,
    Precision,
    QueueTimeoutAction,
    Task,
)
from tenfold.api.quantity import parse_quantity
from tenfold.api.rules import violations
from tenfold.api.sidecar import KUBERNETES_NAME

# RFC 1123 label: also a valid Triton model directory name.
DnsLabel = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
]
SOURCE_PATTERN = r"^(/|file://|pvc://|s3://|gs://|hf://|package://)\S+$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=32)]
ShortText = Annotated[str, StringConstraints(max_length=253)]
MAX_QUEUE_DELAY_US = 10_000_000
# A label key and a label value as the apiserver checks them in a pod's nodeSelector and
# tolerations: a name of at most 63 characters after an optional DNS-subdomain prefix of at
# most 253 (the second pattern). `[.]`, not a backslash: the same text is a CEL string.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_PREFIX_PATTERN = r"^([^/]{0,253}/)?[^/]*$"
LabelValue = Annotated[
    str, StringConstraints(pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", max_length=63)
]


def is_label_key(text: str) -> bool:
    """Whether `text` is a label key the apiserver accepts (python side of cel_label_key)."""
    return all(re.fullmatch(pattern, text) for pattern in (LABEL_KEY_PATTERN, LABEL_PREFIX_PATTERN))


def cel_label_key(expression: str) -> str:
    """CEL: the string `expression` is a label key (CRD side of is_label_key)."""
    return " && ".join(
        f"{expression}.matches('{pattern}')"
        for pattern in (LABEL_KEY_PATTERN, LABEL_PREFIX_PATTERN)
    )


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )


class ModelSpec(ApiModel):
    """Which model to serve and where it comes from."""

    name: DnsLabel = Field(description="Model name; also the Triton model name.")
    source: Annotated[str, StringConstraints(pattern=SOURCE_PATTERN, max_length=1024)] = Field(
        description=(
            "Where the weights are: an absolute path, file://, pvc://CLAIM/path, s3://, gs://, "
            "hf://org/name (read from the node's Hugging Face cache, offline) or "
            "package://NAME for a model shipped as a Python package."
        )
    )
    format: ModelFormat = Field(
        ModelFormat.HUGGINGFACE, description="How the weights are stored at the source."
    )
    task: Task = Field(
        Task.EMBEDDING, description="What the model computes; picks the accuracy metric and I/O."
    )
    version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]+$", max_length=63)] = Field(
        "1", description="Version label; part of the cache key, so a new one never hits."
    )


class RuntimeSpec(ApiModel):
    """The Triton server that runs the model."""

    image: ShortText | None = Field(
        None,
        description="Serving image (Triton plus tenfold-runtime); without a tag it gets "
        "<tritonVersion>-py3. Unset: the operator's default (the Helm chart's runtimeImage).",
    )
    triton_version: Annotated[str, StringConstraints(pattern=r"^[0-9]{2}\.[0-9]{2}$")] = Field(
        "24.10", description="Triton release (YY.MM); the image tag is <version>-py3."
    )
    backend: Backend = Field(
        Backend.PYTHON,
        description="Triton backend that executes the model. pytorch and onnxruntime serve "
        "an encoder exported by tenfold (TorchScript or ONNX) behind a tokenizer ensemble.",
    )
    engine: Engine = Field(
        Engine.TORCH,
        description="What runs the model inside the Python backend (backend python, format "
        "huggingface only): torch, or onnxruntime on the model tenfold exports to ONNX and "
        "guards (fp32, int8, mixed; CPU only).",
    )
    instances_per_replica: int = Field(
        1, ge=1, le=16, description="Model instances per pod (Triton instance_group count)."
    )
    extra_args: list[ShortText] = Field(
        default_factory=list,
        max_length=32,
        description="Extra tritonserver arguments, appended after tenfold's own.",
    )


# The ladder the guard walks down when the requested precision fails its check.
DEFAULT_FALLBACK = (Precision.MIXED, Precision.FP16, Precision.FP32)


class GuardSpec(ApiModel):
    """The accuracy guard: the quantized model is measured against full precision first."""

    metric: GuardMetric | None = Field(
        None,
        description="cosine (embeddings), top1Agreement or logitMSE (classifiers), "
        "rankAgreement (rerankers, which take the other two too); unset: the task's default "
        "(cosine, top1Agreement, rankAgreement).",
    )
    max_drop: float = Field(
        0.01, ge=0, le=1, description="Largest allowed drop of the metric versus fp32."
    )
    max_worst_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Largest allowed drop in the worst held-out calibration sample (the "
        "tail: one query or text); unset, only the mean drop is bounded.",
    )
    calibration_samples: int = Field(
        64, ge=1, le=100_000, description="Number of calibration inputs to measure on."
    )
    fallback: list[Precision] = Field(
        default_factory=lambda: list(DEFAULT_FALLBACK),
        max_length=7,
        description="Precisions tried in order when the requested one fails the guard.",
        # The CRD's default, so that a service applied without a ladder gets this one from
        # the apiserver too (a default_factory alone leaves no default in the schema, and
        # the CRD would default the list to []).
        json_schema_extra={"default": [str(p) for p in DEFAULT_FALLBACK]},
    )


class QuantizationSpec(ApiModel):
    """Numeric precision of the served model."""

    precision: Precision = Field(Precision.FP32, description="Precision to serve at.")
    keep_higher_precision: list[ShortText] = Field(
        default_factory=list,
        max_length=256,
        description="Layer name patterns kept at full precision when precision is mixed.",
    )
    guard: GuardSpec = Field(default_factory=GuardSpec, description="The accuracy guard.")


class QueuePolicySpec(ApiModel):
    """What Triton does when requests wait too long or the queue is full."""

    timeout_microseconds: int = Field(
        0, ge=0, le=3_600_000_000, description="Queue timeout per request; 0 waits forever."
    )
    timeout_action: QueueTimeoutAction = Field(
        QueueTimeoutAction.REJECT, description="reject or delay a request that timed out."
    )
    allow_timeout_override: bool = Field(
        False, description="Let clients set a shorter timeout per request."
    )
    max_queue_size: int = Field(
        0, ge=0, le=1_000_000, description="Queue length limit; 0 is unbounded."
    )


class BatchingSpec(ApiModel):
    """Triton's dynamic batcher: the batching window and its queue."""

    max_batch_size: int = Field(
        32, ge=0, le=4096, description="Largest batch Triton forms; 0 disables batching."
    )
    max_queue_delay_microseconds: int = Field(
        5000,
        ge=0,
        le=MAX_QUEUE_DELAY_US,
        description="The batching window: how long a request may wait for others.",
    )
    preferred_batch_sizes: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=list, max_length=16, description="Batch sizes Triton prefers to form."
    )
    priority_levels: int = Field(
        0, ge=0, le=16, description="Number of priority levels; 0 turns priorities off."
    )
    default_priority_level: int = Field(
        0, ge=0, le=16, description="Level of requests that name none (1..priorityLevels)."
    )
    queue_policy: QueuePolicySpec = Field(
        default_factory=QueuePolicySpec, description="Default queue policy."
    )
    sequence_buckets: list[Annotated[int, Field(ge=1, le=65536)]] = Field(
        default_factory=list,
        max_length=16,
        description="Token-length buckets: inputs are padded up to the nearest bucket.",
    )


class Toleration(ApiModel):
    """A Kubernetes toleration, passed through to the pods."""

    # The pod's own checks of a toleration, so that the apiserver refuses the service rather
    # than the operator's Deployment (tests/integration/test_bad_input_volume.py found them).
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.tolerationSeconds) || "
                    "(has(self.effect) && self.effect == 'NoExecute')",
                    "message": "tolerationSeconds needs effect NoExecute",
                    "fieldPath": ".tolerationSeconds",
                },
                {
                    "rule": f"!has(self.key) || self.key == '' || ({cel_label_key('self.key')})",
                    "message": "key must be a label key (an optional DNS prefix and '/', then "
                    "at most 63 letters, digits, '-', '_' or '.')",
                    "fieldPath": ".key",
                },
                {
                    "rule": "(has(self.key) && self.key != '') || "
                    "(has(self.operator) && self.operator == 'Exists')",
                    "message": "operator must be Exists when key is empty",
                    "fieldPath": ".operator",
                },
                {
                    "rule": "!has(self.operator) || self.operator != 'Exists' || "
                    "!has(self.value) || self.value == ''",
                    "message": "value must be empty when operator is Exists",
                    "fieldPath": ".value",
                },
            ]
        }
    )

    key: ShortText | None = None
    operator: Annotated[str, StringConstraints(pattern=r"^(Exists|Equal)$")] | None = None
    value: LabelValue | None = None
    effect: (
        Annotated[str, StringConstraints(pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$")]
        | None
    ) = None
    toleration_seconds: int | None = Field(
        None, description="Only with effect NoExecute: how long the pod stays once tainted."
    )

    @model_validator(mode="after")
    def _as_pods_check_it(self) -> Toleration:
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds needs effect NoExecute")
        if self.key and not is_label_key(self.key):
            raise ValueError(f"key must be a label key, not {self.key!r}")
        if not self.key and self.operator != "Exists":
            raise ValueError("operator must be Exists when key is empty")
        if self.operator == "Exists" and self.value:
            raise ValueError("value must be empty when operator is Exists")
        return self


class HardwareSpec(ApiModel):
    """Where the replicas run."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!has(self.nodeSelector) || "
                    f"self.nodeSelector.all(k, {cel_label_key('k')})",
                    "message": "nodeSelector keys must be label keys (an optional DNS prefix "
                    "and '/', then at most 63 letters, digits, '-', '_' or '.')",
                    "fieldPath": ".nodeSelector",
                }
            ]
        }
    )

    gpu_type: Annotated[str, StringConstraints(max_length=32)] = Field(
        "cpu", description="GPU type from the catalog (T4, L4, A10G, A100-80GB, H100...) or cpu."
    )
    gpus_per_replica: int = Field(
        1, ge=0, le=16, description="GPUs per replica; must be 0 for cpu and at least 1 otherwise."
    )
    cpu: Quantity = Field("2", description="CPU request per replica (Kubernetes quantity).")
    memory: Quantity = Field("4Gi", description="Memory request per replica.")
    spot: bool = Field(False, description="Allow spot capacity (priced at the spot rate).")
    node_selector: dict[ShortText, LabelValue] = Field(
        default_factory=dict,
        max_length=32,  # bounds the cost of the CEL check of its keys
        description="Extra node selector labels.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Extra tolerations."
    )

    @field_validator("cpu", "memory")
    @classmethod
    def _is_quantity(cls, value: str) -> str:
        parse_quantity(value)
        return value

    @field_validator("node_selector")
    @classmethod
    def _label_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(key for key in value if not is_label_key(key))
        if bad:
            raise ValueError(f"nodeSelector keys must be label keys, not {bad}")
        return value

    def cpu_cores(self) -> float:
        """CPU request in cores."""
        return parse_quantity(self.cpu)

    def memory_bytes(self) -> float:
        """Memory request in bytes."""
        return parse_quantity(self.memory)


class RedisSpec(ApiModel):
    """The Redis behind the cache sidecar."""

    # A volume claim of zero bytes is refused by the apiserver, so the managed Redis's
    # StatefulSet would be (found by tests/integration/test_bad_input_volume.py).
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.storage) || "
                    "quantity(self.storage).isGreaterThan(quantity('0'))",
                    "message": "storage must be more than zero",
                    "fieldPath": ".storage",
                }
            ]
        }
    )

    url: Annotated[str, StringConstraints(pattern=r"^rediss?://\S+$", max_length=512)] | None = (
        Field(None, description="External Redis URL; empty: an operator-managed Redis.")
    )
    storage: Quantity = Field("1Gi", description="Volume size of an operator-managed Redis.")

    credentials_secret: (
        Annotated[str, StringConstraints(pattern=KUBERNETES_NAME, max_length=253)] | None
    ) = Field(
        None,
        description=(
            "Secret in the service's namespace with the external Redis's `password` (and, for "
            "an ACL user, `username`); the sidecar reads it from its environment. Only with "
            "`url`: the operator-managed Redis gets a generated password of its own."
        ),
    )

    @field_validator("storage")
    @classmethod
    def _more_than_zero(cls, value: str) -> str:
        if parse_quantity(value) <= 0:
            raise ValueError("storage must be more than zero")
        return value


class CacheSpec(ApiModel):
    """Triton's response cache and tenfold's versioned cache sidecar."""

    response_cache_bytes: int = Field(
        0, ge=0, le=1 << 40, description="Triton's local response cache size; 0 turns it off."
    )
    mode: CacheMode = Field(CacheMode.NONE, description="Sidecar cache: none, memory or redis.")
    redis: RedisSpec = Field(default_factory=RedisSpec, description="Redis settings (mode redis).")
    ttl_seconds: int = Field(3600, ge=1, le=30 * 24 * 3600, description="How long an entry lives.")
    max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024 * 1024,
        le=1 << 40,
        description="Memory bound of the sidecar's in-memory LRU.",
    )


class AutoscalingSpec(ApiModel):
    """How replicas follow load."""

    mode: AutoscalingMode = Field(
        AutoscalingMode.AUTO,
        description="auto acts; recommend only writes the decision to status; off does nothing.",
    )
    min_replicas: int = Field(1, ge=0, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(4, ge=1, le=1000, description="Most replicas.")
    target_p95_latency_ms: float = Field(
        200, gt=0, le=600_000, description="p95 latency SLO per request, milliseconds."
    )
    target_queue_share: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Queue time per request allowed, as a share of the p95 latency SLO.",
    )
    target_pending_per_replica: float = Field(
        16, gt=0, le=100_000, description="Pending requests per replica before scaling up."
    )
    requests_per_replica: float | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="Requests/s one replica serves at full load (measure it with "
        "`tenfold-runtime bench`); the request-rate signal plans for 80% of it. Unset: the "
        "operator's default (TENFOLD_CAPACITY_PER_REPLICA).",
    )
    scale_up_stabilization_seconds: int = Field(
        0, ge=0, le=3600, description="Window over which scale-up takes the lowest proposal."
    )
    scale_down_stabilization_seconds: int = Field(
        300, ge=0, le=86_400, description="Window over which scale-down takes the highest."
    )
    max_scale_up_step: int = Field(
        4, ge=1, le=1000, description="Most replicas added by one decision."
    )


class BudgetSpec(ApiModel):
    """The hard cost cap: the autoscaler never runs more replicas than it pays for."""

    max_cost_per_hour: float | None = Field(
        None, gt=0, le=1_000_000, description="USD per hour the service may cost at most."
    )
    monthly_cap: float | None = Field(
        None, gt=0, le=1_000_000_000, description="USD per month (730 h) at most."
    )
    # Above 0 and finite: the rule prices-positive (api/rules.py), in CEL and in Python.
    price_overrides: dict[ShortText, float] = Field(
        default_factory=dict,
        max_length=64,
        description="USD per GPU-hour by GPU type (cpu: per vCPU-hour), over the catalog's; "
        "each above 0.",
    )

    def hourly_cap(self) -> float | None:
        """The tighter of the hourly cap and the monthly cap spread over 730 hours."""
        return hourly_cap(self.max_cost_per_hour, self.monthly_cap)


class MonitoringSpec(ApiModel):
    """Prometheus integration."""

    service_monitor: bool = Field(
        False, description="Create a prometheus-operator ServiceMonitor for the pods."
    )
    scrape_interval_seconds: int = Field(5, ge=1, le=300, description="Scrape interval.")


class InferenceServiceSpec(ApiModel):
    """Desired state of an InferenceService."""

    model: ModelSpec = Field(description="The model to serve.")
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, description="The Triton runtime.")
    quantization: QuantizationSpec = Field(
        default_factory=QuantizationSpec, description="Precision and its accuracy guard."
    )
    batching: BatchingSpec = Field(
        default_factory=BatchingSpec, description="Dynamic batching window and queue."
    )
    hardware: HardwareSpec = Field(default_factory=HardwareSpec, description="GPU type and size.")
    cache: CacheSpec = Field(default_factory=CacheSpec, description="Response and sidecar cache.")
    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec, description="Replica bounds and SLO targets."
    )
    budget: BudgetSpec = Field(default_factory=BudgetSpec, description="Cost cap.")
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Prometheus integration."
    )
    replicas: int | None = Field(
        None,
        ge=0,
        le=1000,
        description=(
            "Replica count, written through the scale subresource by the autoscaler or "
            "kubectl scale; leave it out of GitOps-managed YAML."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _tolerate_empty_sections(cls, data: Any) -> Any:
        # The apiserver stores `cache: {}` style sections; null means "use defaults".
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data

    @model_validator(mode="after")
    def _cross_field_rules(self) -> InferenceServiceSpec:
        problems = violations(self)
        if problems:
            raise ValueError("\n".join(f"{v.field_path}: {v.message}" for v in problems))
        return self

"""Names shared by every layer: the API group, label keys, annotation prefix, ports."""

from typing import Final

API_GROUP: Final = "serving.tenfold.dev"
API_VERSION: Final = "v1alpha1"
KIND: Final = "InferenceService"
PLURAL: Final = "inferenceservices"
SINGULAR: Final = "inferenceservice"
# KServe owns "isvc"; "tfis" keeps both operators usable in one cluster.
SHORT_NAMES: Final = ("tfis",)
CATEGORIES: Final = ("tenfold", "all")
# The configuration search of one InferenceService, run as a Job (controller/tuning.py).
TUNING_KIND: Final = "InferenceTuning"
TUNING_PLURAL: Final = "inferencetunings"
TUNING_SINGULAR: Final = "inferencetuning"
TUNING_SHORT_NAMES: Final = ("tftune",)

FIELD_MANAGER: Final = "tenfold"
ANNOTATION_PREFIX: Final = "tenfold.dev"
# An InferenceService's consent to be patched by `action: apply` tunings: set by whoever may
# edit the service, since an InferenceTuning's author may lack that right (docs/tuning.md).
TUNING_APPLY_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/tuning-apply"
TUNING_APPLY_ALLOWED: Final = "allowed"
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_VERSION: Final = "app.kubernetes.io/version"
MANAGED_BY: Final = "tenfold"

# GPU Feature Discovery writes the product name on every GPU node under this label.
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
GPU_RESOURCE: Final = "nvidia.com/gpu"

TRITON_HTTP_PORT: Final = 8000
TRITON_GRPC_PORT: Final = 8001
TRITON_METRICS_PORT: Final = 8002
CACHE_HTTP_PORT: Final = 8080
CACHE_METRICS_PORT: Final = 9090

MODEL_REPOSITORY_PATH: Final = "/models"
PREPARE_SPEC_PATH: Final = "/etc/tenfold/prepare.json"
PREPARE_MANIFEST_FILE: Final = "tenfold-manifest.json"

# tritonserver's own arguments in every pod; `tenfold_runtime.local` starts the same ones.
TRITON_BASE_ARGS: Final = (
    f"--model-repository={MODEL_REPOSITORY_PATH}",
    f"--http-port={TRITON_HTTP_PORT}",
    f"--grpc-port={TRITON_GRPC_PORT}",
    f"--metrics-port={TRITON_METRICS_PORT}",
    "--allow-metrics=true",
    "--model-control-mode=none",
    "--strict-readiness=true",
    # Request-latency quantiles, so the autoscaler and dashboards read p95 directly.
    "--metrics-config=summary_latencies=true",
)

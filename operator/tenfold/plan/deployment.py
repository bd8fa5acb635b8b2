"""The Deployment `<name>`: prepare init container, Triton, and the optional cache sidecar."""

from __future__ import annotations

from typing import Any

from tenfold import __version__
from tenfold.api.catalog import CPU, GpuCatalog, load_catalog
from tenfold.api.enums import CacheMode
from tenfold.api.footprint import cache_sidecar
from tenfold.api.sidecar import SidecarSettings
from tenfold.api.spec import InferenceServiceSpec, Toleration
from tenfold.constants import (
    CACHE_HTTP_PORT,
    CACHE_METRICS_PORT,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    MODEL_REPOSITORY_PATH,
    PREPARE_MANIFEST_FILE,
    PREPARE_SPEC_PATH,
    TRITON_BASE_ARGS,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
)
from tenfold.plan.configmap import build_config_data, config_hash
from tenfold.plan.labels import (
    CONFIG_HASH_ANNOTATION,
    common_labels,
    config_map_name,
    object_meta,
    selector_labels,
)
from tenfold.plan.redis import cache_redis_url, redis_credentials_env
from tenfold.plan.security import (
    container_security_context,
    pod_security_context,
    tmp_mount,
    tmp_volume,
)
from tenfold.plan.source import SOURCE_MOUNT_PATH, SOURCE_VOLUME, source_mount
from tenfold.plan.storage import models_size_limit, tmp_size_limit

CONFIG_VOLUME = "config"
CONFIG_MOUNT_PATH = PREPARE_SPEC_PATH.rsplit("/", 1)[0]
MODELS_VOLUME = "models"
SHM_VOLUME = "dshm"
# Triton drains in-flight requests for up to 30 s (--exit-timeout-secs); leave margin.
TERMINATION_GRACE_SECONDS = 45
# Endpoints controllers and proxies need a moment to stop sending before Triton stops.
PRE_STOP_SLEEP_SECONDS = 5

# The runtime image built from Dockerfile.runtime at this version; the chart overrides it.
DEFAULT_RUNTIME_IMAGE = f"tenfold/runtime:{__version__}"
RUNTIME_ENV = (
    # Weights come from the model source only; never reach the Hugging Face Hub.
    {"name": "HF_HUB_OFFLINE", "value": "1"},
    # Libraries write caches under $HOME; the root filesystem is read-only.
    {"name": "HOME", "value": "/tmp"},
)


def runtime_image(spec: InferenceServiceSpec, default_image: str = DEFAULT_RUNTIME_IMAGE) -> str:
    """The serving image: the spec's (`<image>:<tritonVersion>-py3` unless it has a tag or a
    digest), else the operator's default as given."""
    image = spec.runtime.image
    if image is None:
        return default_image
    last_segment = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last_segment:
        return image
    return f"{image}:{spec.runtime.triton_version}-py3"


def triton_command(spec: InferenceServiceSpec) -> list[str]:
    """tritonserver's command line: tenfold's flags, the response cache, then extraArgs."""
    command = ["tritonserver", *TRITON_BASE_ARGS]
    if spec.cache.response_cache_bytes > 0:
        command.append(f"--cache-config=local,size={spec.cache.response_cache_bytes}")
    return [*command, *spec.runtime.extra_args]


def sidecar_settings(name: str, namespace: str, spec: InferenceServiceSpec) -> SidecarSettings:
    """Settings of the cache sidecar; meaningful only when cache.mode is not none.

    The service's namespace and name go into every cache key, so services sharing one
    Redis neither read nor clean up each other's entries.
    """
    backend = CacheMode.MEMORY if spec.cache.mode is CacheMode.NONE else spec.cache.mode
    return SidecarSettings(
        listen=f"0.0.0.0:{CACHE_HTTP_PORT}",
        upstream=f"http://127.0.0.1:{TRITON_HTTP_PORT}",
        metrics_listen=f"0.0.0.0:{CACHE_METRICS_PORT}",
        backend=backend,
        redis_url=cache_redis_url(name, spec),
        ttl_seconds=spec.cache.ttl_seconds,
        max_bytes=spec.cache.max_bytes,
        manifest=f"{MODEL_REPOSITORY_PATH}/{spec.model.name}/{PREPARE_MANIFEST_FILE}",
        service_namespace=namespace,
        service_name=name,
    )


def build_deployment(
    name: str,
    namespace: str,
    spec: InferenceServiceSpec,
    *,
    replicas: int,
    surge: int = 1,
    catalog: GpuCatalog | None = None,
    hash_of_config: str | None = None,
    default_image: str = DEFAULT_RUNTIME_IMAGE,
) -> dict[str, Any]:
    """The Deployment `<name>` running Triton; `hash_of_config` defaults to the spec's.

    `default_image` serves services that name no image (the operator's TENFOLD_RUNTIME_IMAGE).
    """
    labels = common_labels(name, spec)
    digest = hash_of_config or config_hash(build_config_data(name, spec))
    annotations = {
        CONFIG_HASH_ANNOTATION: digest,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(TRITON_METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(name, namespace, labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(name)},
            # With a surge pod, never drop below the serving replicas: a new pod must be
            # Ready first. Without one (the budget's cap), replace the pods one at a time.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1 - surge, "maxSurge": surge},
            },
            "template": {
                "metadata": {"labels": dict(labels), "annotations": annotations},
                "spec": build_pod_spec(
                    name,
                    namespace,
                    spec,
                    catalog or load_catalog(),
                    runtime_image(spec, default_image),
                ),
            },
        },
    }


def build_pod_spec(
    name: str, namespace: str, spec: InferenceServiceSpec, catalog: GpuCatalog, image: str
) -> dict[str, Any]:
    """The pod: init `prepare`, `triton`, optional `cache`, placement and security."""
    affinity = node_affinity(spec, catalog)  # first: it names a gpuType the catalog lacks
    containers = [_triton_container(spec, image)]
    if spec.cache.mode is not CacheMode.NONE:
        containers.append(_cache_container(name, namespace, spec, image))
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        # Service env vars are unused and grow with every Service in the namespace.
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "initContainers": [_prepare_container(spec, image)],
        "containers": containers,
        "volumes": _volumes(name, spec, catalog),
        "topologySpreadConstraints": [spread_constraint(name)],
    }
    pod["affinity"] = affinity
    if spec.hardware.node_selector:
        pod["nodeSelector"] = dict(sorted(spec.hardware.node_selector.items()))
    tolerations = pod_tolerations(spec)
    if tolerations:
        pod["tolerations"] = tolerations
    return pod


def spread_constraint(name: str) -> dict[str, Any]:
    """Spread replicas over nodes when possible, so one node loss or drain takes few."""
    return {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        # A preference only: a cluster with one GPU node must still schedule every replica.
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": selector_labels(name)},
        # Count only pods of the same revision, so a rollout does not skew the spread.
        "matchLabelKeys": ["pod-template-hash"],
    }


def node_affinity(spec: InferenceServiceSpec, catalog: GpuCatalog) -> dict[str, Any]:
    """Required node affinity: the GPU type's product labels, or, on cpu, no GPU node at all.

    A CPU replica on a GPU node would block a GPU that costs ten times the CPU it uses.
    """
    gpu_type = spec.hardware.gpu_type
    if gpu_type == CPU:
        expression: dict[str, Any] = {"key": GPU_PRODUCT_LABEL, "operator": "DoesNotExist"}
    elif gpu_type not in catalog.gpus:
        raise ValueError(f"gpuType {gpu_type!r} is not in the GPU catalog")
    else:
        expression = {
            "key": GPU_PRODUCT_LABEL,
            "operator": "In",
            "values": list(catalog.gpus[gpu_type].product_labels),
        }
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [expression]}]
            }
        }
    }


def pod_tolerations(spec: InferenceServiceSpec) -> list[dict[str, Any]]:
    """The user's tolerations plus, on GPU types, the usual `nvidia.com/gpu` taint.

    Spot capacity is not tolerated automatically: spot taints differ per cloud, so users add
    theirs to hardware.tolerations (hardware.spot only changes the price the budget uses).
    """
    tolerations = [toleration_dict(t) for t in spec.hardware.tolerations]
    if spec.hardware.gpu_type != CPU:
        gpu = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        if gpu not in tolerations:
            tolerations.append(gpu)
    return tolerations


def toleration_dict(toleration: Toleration) -> dict[str, Any]:
    """A Toleration as the Kubernetes API spells it, unset fields left out."""
    return toleration.model_dump(by_alias=True, exclude_none=True)


def runtime_resources(spec: InferenceServiceSpec) -> dict[str, Any]:
    """Requests from hardware, a memory limit, and whole GPUs on GPU types."""
    hardware = spec.hardware
    requests: dict[str, Any] = {"cpu": hardware.cpu, "memory": hardware.memory}
    # No CPU limit: throttling inflates tail latency; memory is limited to keep neighbours safe.
    limits: dict[str, Any] = {"memory": hardware.memory}
    if hardware.gpu_type != CPU:
        # Quantities as strings, the way the apiserver returns them.
        requests[GPU_RESOURCE] = str(hardware.gpus_per_replica)
        limits[GPU_RESOURCE] = str(hardware.gpus_per_replica)
    return {"requests": requests, "limits": limits}


def _prepare_container(spec: InferenceServiceSpec, image: str) -> dict[str, Any]:
    mounts = [
        {"name": CONFIG_VOLUME, "mountPath": CONFIG_MOUNT_PATH, "readOnly": True},
        {"name": MODELS_VOLUME, "mountPath": MODEL_REPOSITORY_PATH},
        tmp_mount(),
    ]
    if source_mount(spec.model.source):
        mounts.append({"name": SOURCE_VOLUME, "mountPath": SOURCE_MOUNT_PATH, "readOnly": True})
    return {
        "name": "prepare",
        "image": image,
        "command": ["tenfold-runtime", "prepare", "--spec", PREPARE_SPEC_PATH],
        # Success writes its JSON report to the termination log (read into status); a crash
        # leaves that empty, and then the log tail tells `kubectl describe` why.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "env": [dict(e) for e in RUNTIME_ENV],
        # The accuracy guard runs the model on the serving device, so prepare needs the same
        # GPUs; init and app requests are not summed, so this costs no extra capacity.
        "resources": runtime_resources(spec),
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }


def _http_probe(path: str, port: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _triton_container(spec: InferenceServiceSpec, image: str) -> dict[str, Any]:
    return {
        "name": "triton",
        "image": image,
        "command": triton_command(spec),
        "env": [dict(e) for e in RUNTIME_ENV],
        "ports": [
            {"name": "http", "containerPort": TRITON_HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": TRITON_GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": TRITON_METRICS_PORT, "protocol": "TCP"},
        ],
        # Loading a large model can take minutes: the startup probe holds liveness off.
        "startupProbe": _http_probe("/v2/health/ready", "http", 5, 120),
        "readinessProbe": _http_probe("/v2/health/ready", "http", 5, 3),
        "livenessProbe": _http_probe("/v2/health/live", "http", 10, 3),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
        "resources": runtime_resources(spec),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": MODELS_VOLUME, "mountPath": MODEL_REPOSITORY_PATH, "readOnly": True},
            tmp_mount(),
            # The python backend passes tensors through shared memory.
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        ],
    }


def _cache_container(
    name: str, namespace: str, spec: InferenceServiceSpec, image: str
) -> dict[str, Any]:
    settings = sidecar_settings(name, namespace, spec)
    footprint = cache_sidecar(spec)
    assert footprint is not None, "a cache container without a cache mode"
    credentials = redis_credentials_env(name, spec)
    return {
        "name": "cache",
        "image": image,
        "command": ["tenfold-runtime", "cache", *settings.to_args()],
        **({"env": credentials} if credentials else {}),
        "ports": [
            {"name": "cache-http", "containerPort": CACHE_HTTP_PORT, "protocol": "TCP"},
            {"name": "cache-metrics", "containerPort": CACHE_METRICS_PORT, "protocol": "TCP"},
        ],
        # /healthz, not /readyz: Triton's own probe already gates the pod on Triton.
        "readinessProbe": _http_probe("/healthz", "cache-http", 5, 3),
        "livenessProbe": _http_probe("/healthz", "cache-http", 10, 3),
        # The Service's HTTP port is the sidecar's: it must keep answering, like Triton,
        # until endpoints and proxies have stopped sending to a terminating pod.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
        # Priced with the replica (api/cost.py), so the budget pays for what runs.
        "resources": footprint.resources(),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": MODELS_VOLUME, "mountPath": MODEL_REPOSITORY_PATH, "readOnly": True},
            tmp_mount(),
        ],
    }


def _volumes(name: str, spec: InferenceServiceSpec, catalog: GpuCatalog) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": CONFIG_VOLUME, "configMap": {"name": config_map_name(name)}},
        # Both scratch volumes are bounded by what the model can need (plan/storage.py).
        {"name": MODELS_VOLUME, "emptyDir": {"sizeLimit": models_size_limit(spec, catalog)}},
        tmp_volume(tmp_size_limit(spec, catalog)),
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
    ]
    mount = source_mount(spec.model.source)
    if mount:
        volumes.append(
            {
                "name": SOURCE_VOLUME,
                "persistentVolumeClaim": {"claimName": mount.claim, "readOnly": True},
            }
        )
    return volumes

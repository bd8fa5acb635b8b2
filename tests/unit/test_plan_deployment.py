"""The Deployment: containers, GPU placement, the cache sidecar and restricted security."""

from __future__ import annotations

from typing import Any

import pytest

from tenfold.api.catalog import GpuCatalog, load_catalog
from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan.deployment import build_deployment, runtime_image
from tenfold.plan.redis import build_redis_statefulset
from tests.unit.specs import make_spec

ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def pod_of(spec: InferenceServiceSpec, replicas: int = 1) -> dict[str, Any]:
    """The pod spec of the service `embed`'s Deployment."""
    deployment = build_deployment("embed", "ns", spec, replicas=replicas)
    return deployment["spec"]["template"]["spec"]


def containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container of the pod, init containers included, by name."""
    return {c["name"]: c for c in [*pod.get("initContainers", []), *pod["containers"]]}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What breaks the `restricted` Pod Security Standard (the checks expressible here)."""
    problems = []
    pod_ctx = pod.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"pod: {flag}")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: {kinds}")
    if pod_ctx.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("pod: seccompProfile")
    for name, container in containers(pod).items():
        problems += [f"{name}: {p}" for p in _container_violations(container, pod_ctx)]
    return problems


def _container_violations(container: dict[str, Any], pod_ctx: dict[str, Any]) -> list[str]:
    ctx = container.get("securityContext", {})
    problems = []
    if ctx.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation must be false")
    if ctx.get("privileged"):
        problems.append("privileged")
    if "ALL" not in ctx.get("capabilities", {}).get("drop", []):
        problems.append("capabilities must drop ALL")
    if set(ctx.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
        problems.append("adds capabilities")
    if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
        problems.append("runAsNonRoot")
    if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
        problems.append("runs as uid 0")
    if any(port.get("hostPort") for port in container.get("ports", [])):
        problems.append("hostPort")
    return problems


def test_metadata_selector_and_strategy() -> None:
    deployment = build_deployment("embed", "ns", make_spec(), replicas=3)
    assert deployment["apiVersion"] == "apps/v1"
    assert deployment["metadata"]["name"] == "embed"
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    selector = spec["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "tenfold-inference",
        "app.kubernetes.io/instance": "embed",
    }
    labels = spec["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "inference"
    assert labels["app.kubernetes.io/managed-by"] == "tenfold"
    assert labels["app.kubernetes.io/part-of"] == "tenfold"
    assert labels["app.kubernetes.io/version"] == "1"
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    at_the_cap = build_deployment("embed", "ns", make_spec(), replicas=2, surge=0)["spec"]
    assert at_the_cap["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8002"


def test_prepare_init_container() -> None:
    prepare = containers(pod_of(make_spec()))["prepare"]
    assert prepare["command"] == [
        "tenfold-runtime",
        "prepare",
        "--spec",
        "/etc/tenfold/prepare.json",
    ]
    assert prepare["image"] == "tenfold/runtime:0.1.0"
    mounts = {m["mountPath"]: m["name"] for m in prepare["volumeMounts"]}
    assert mounts["/etc/tenfold"] == "config"
    assert mounts["/models"] == "models"
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in prepare["env"]
    # A failed prepare explains itself in `kubectl describe`.
    assert prepare["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_volumes() -> None:
    volumes = {v["name"]: v for v in pod_of(make_spec())["volumes"]}
    assert volumes["config"] == {"name": "config", "configMap": {"name": "embed-config"}}
    # hardware.memory 4Gi: the model fits in it, so the repository and prepare's scratch
    # in twice that, the fetched weights and library caches in it plus 1 GiB.
    assert volumes["models"]["emptyDir"] == {"sizeLimit": "8192Mi"}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "5120Mi"}


@pytest.mark.parametrize(
    "hardware, models, tmp",
    [
        ({"memory": "16Gi"}, "32768Mi", "17408Mi"),
        ({"gpuType": "T4", "gpusPerReplica": 1, "memory": "8Gi"}, "32768Mi", "17408Mi"),
        ({"gpuType": "T4", "gpusPerReplica": 2}, "65536Mi", "33792Mi"),
    ],
)
def test_scratch_volumes_follow_the_memory_the_model_is_served_from(hardware, models, tmp):
    """On cpu the replica's memory bounds the model; on GPUs their memory does (T4: 16 GiB)."""
    volumes = {v["name"]: v for v in pod_of(make_spec(hardware=hardware))["volumes"]}
    assert volumes["models"]["emptyDir"]["sizeLimit"] == models
    assert volumes["tmp"]["emptyDir"]["sizeLimit"] == tmp


def test_triton_container_defaults() -> None:
    triton = containers(pod_of(make_spec()))["triton"]
    assert triton["command"] == [
        "tritonserver",
        "--model-repository=/models",
        "--http-port=8000",
        "--grpc-port=8001",
        "--metrics-port=8002",
        "--allow-metrics=true",
        "--model-control-mode=none",
        "--strict-readiness=true",
        "--metrics-config=summary_latencies=true",
    ]
    ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert triton["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in triton["env"]


def test_response_cache_and_extra_args_on_the_command_line() -> None:
    spec = make_spec(
        cache={"responseCacheBytes": 1048576}, runtime={"extraArgs": ["--log-verbose=1"]}
    )
    command = containers(pod_of(spec))["triton"]["command"]
    assert command[-2:] == ["--cache-config=local,size=1048576", "--log-verbose=1"]


def test_cpu_has_no_gpu_resources_and_avoids_gpu_nodes() -> None:
    pod = pod_of(make_spec(hardware={"cpu": "4", "memory": "8Gi"}))
    triton = containers(pod)["triton"]
    assert triton["resources"]["requests"] == {"cpu": "4", "memory": "8Gi"}
    for container in containers(pod).values():
        resources = container["resources"]
        assert "nvidia.com/gpu" not in resources.get("limits", {})
        assert "nvidia.com/gpu" not in resources.get("requests", {})
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    expression = terms["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert expression == {"key": "nvidia.com/gpu.product", "operator": "DoesNotExist"}
    assert "tolerations" not in pod


@pytest.mark.parametrize("gpu_type", ["T4", "A100-80GB", "H100"])
def test_gpu_type_sets_affinity_limits_and_toleration(gpu_type: str) -> None:
    pod = pod_of(make_spec(hardware={"gpuType": gpu_type, "gpusPerReplica": 2}))
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    (term,) = terms["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {
            "key": "nvidia.com/gpu.product",
            "operator": "In",
            "values": list(load_catalog().gpus[gpu_type].product_labels),
        }
    ]
    resources = containers(pod)["triton"]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "2"
    assert resources["requests"]["nvidia.com/gpu"] == "2"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]


def test_node_selector_and_user_tolerations() -> None:
    hardware = {
        "gpuType": "L4",
        "gpusPerReplica": 1,
        "nodeSelector": {"pool": "inference"},
        "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
    }
    pod = pod_of(make_spec(hardware=hardware))
    assert pod["nodeSelector"] == {"pool": "inference"}
    assert pod["tolerations"][0] == {"key": "spot", "operator": "Exists", "effect": "NoSchedule"}
    assert len(pod["tolerations"]) == 2


def test_no_sidecar_by_default() -> None:
    assert [c["name"] for c in pod_of(make_spec())["containers"]] == ["triton"]


def test_memory_sidecar() -> None:
    pod = pod_of(make_spec(cache={"mode": "memory", "ttlSeconds": 60}))
    cache = containers(pod)["cache"]
    assert cache["command"][:2] == ["tenfold-runtime", "cache"]
    args = cache["command"][2:]
    assert "--backend=memory" in args
    assert "--ttl-seconds=60" in args
    assert "--manifest=/models/minilm/tenfold-manifest.json" in args
    # The cache keys name the service: another namespace's `embed` gets other keys.
    assert "--service-namespace=ns" in args
    assert "--service-name=embed" in args
    assert not any(a.startswith("--redis-url") for a in args)
    ports = {p["name"]: p["containerPort"] for p in cache["ports"]}
    assert ports == {"cache-http": 8080, "cache-metrics": 9090}
    assert cache["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "cache-http"}


def test_redis_sidecar_urls() -> None:
    external = make_spec(cache={"mode": "redis", "redis": {"url": "redis://cache.example:6379"}})
    managed = make_spec(cache={"mode": "redis"})
    external_args = containers(pod_of(external))["cache"]["command"]
    managed_args = containers(pod_of(managed))["cache"]["command"]
    assert "--redis-url=redis://cache.example:6379" in external_args
    assert "--redis-url=redis://embed-redis:6379/0" in managed_args


@pytest.mark.parametrize(
    "sections",
    [
        {},
        {"hardware": {"gpuType": "H100", "gpusPerReplica": 1}, "cache": {"mode": "memory"}},
        {"cache": {"mode": "redis"}, "model": {"name": "m", "source": "pvc://claim/dir"}},
    ],
)
def test_restricted_pod_security(sections: dict[str, Any]) -> None:
    pod = pod_of(make_spec(**sections))
    assert restricted_violations(pod) == []
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["fsGroup"] == 1000
    assert pod["terminationGracePeriodSeconds"] > 0
    for container in containers(pod).values():
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


def test_checker_catches_a_privileged_container() -> None:
    pod = pod_of(make_spec())
    pod["containers"][0]["securityContext"] = {"privileged": True}
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert len(restricted_violations(pod)) >= 4


def test_pvc_source_is_mounted_read_only() -> None:
    pod = pod_of(make_spec(model={"name": "m", "source": "pvc://weights/minilm"}))
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model-source"]["persistentVolumeClaim"] == {
        "claimName": "weights",
        "readOnly": True,
    }
    mounts = containers(pod)["prepare"]["volumeMounts"]
    assert {"name": "model-source", "mountPath": "/mnt/tenfold/source", "readOnly": True} in mounts


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("tenfold/runtime", "tenfold/runtime:24.10-py3"),
        ("registry:5000/tenfold/runtime", "registry:5000/tenfold/runtime:24.10-py3"),
        ("tenfold/runtime:dev", "tenfold/runtime:dev"),
        ("tenfold/runtime@sha256:" + "0" * 64, "tenfold/runtime@sha256:" + "0" * 64),
    ],
)
def test_runtime_image(image: str, expected: str) -> None:
    assert runtime_image(make_spec(runtime={"image": image})) == expected


def test_managed_redis_pod_is_restricted_too() -> None:
    statefulset = build_redis_statefulset("embed", "ns", make_spec(cache={"mode": "redis"}))
    pod = statefulset["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_gpu_type_missing_from_the_catalog_is_an_error() -> None:
    full = load_catalog()
    cpu_only = GpuCatalog(source="test", cpu=full.cpu, gpus={})
    spec = make_spec(hardware={"gpuType": "L4", "gpusPerReplica": 1})
    with pytest.raises(ValueError, match="L4"):
        build_deployment("embed", "ns", spec, replicas=1, catalog=cpu_only)


def test_replicas_spread_over_nodes() -> None:
    (constraint,) = pod_of(make_spec())["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "kubernetes.io/hostname"
    assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
    assert constraint["labelSelector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "tenfold-inference",
            "app.kubernetes.io/instance": "embed",
        }
    }


def test_unset_image_uses_the_operators_default() -> None:
    assert runtime_image(make_spec(), "example/runtime:1.2.3") == "example/runtime:1.2.3"
    deployment = build_deployment(
        "embed", "ns", make_spec(), replicas=1, default_image="example/runtime:1.2.3"
    )
    pod = deployment["spec"]["template"]["spec"]
    images = {c["image"] for c in pod["initContainers"] + pod["containers"]}
    assert images == {"example/runtime:1.2.3"}


def test_every_container_behind_the_service_drains_before_it_stops() -> None:
    """Triton (gRPC) and the sidecar (HTTP) both wait out endpoint removal on termination."""
    pod = build_deployment("embed", "ns", make_spec(cache={"mode": "memory"}), replicas=1)
    containers = pod["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["triton", "cache"]
    for container in containers:
        assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0

"""Service, PodDisruptionBudget, ServiceMonitor and the operator-managed Redis."""

from __future__ import annotations

from typing import Any

from tenfold.api.sidecar import REDIS_PASSWORD_ENV, REDIS_USERNAME_ENV
from tenfold.controller.config import OperatorConfig
from tenfold.plan import build_plan, pod_selector
from tenfold.plan.deployment import build_deployment
from tenfold.plan.pdb import build_pdb
from tenfold.plan.redis import (
    REDIS_IMAGE,
    build_redis_auth_secret,
    build_redis_service,
    build_redis_statefulset,
    cache_redis_url,
    redis_auth_secret_name,
    redis_credentials_env,
    wants_managed_redis,
)
from tenfold.plan.service import build_service
from tenfold.plan.service_monitor import build_service_monitor
from tests.unit.specs import make_spec

SELECTOR = {"app.kubernetes.io/name": "tenfold-inference", "app.kubernetes.io/instance": "embed"}


def port_map(service: dict[str, Any]) -> dict[str, int]:
    """Service port numbers by name."""
    return {p["name"]: p["port"] for p in service["spec"]["ports"]}


def test_service_without_sidecar() -> None:
    service = build_service("embed", "ns", make_spec())
    assert (service["kind"], service["metadata"]["name"]) == ("Service", "embed")
    assert service["spec"]["selector"] == SELECTOR
    assert SELECTOR.items() <= service["metadata"]["labels"].items()
    assert port_map(service) == {"http": 8000, "grpc": 8001, "metrics": 8002}


def test_service_with_sidecar() -> None:
    service = build_service("embed", "ns", make_spec(cache={"mode": "memory"}))
    assert port_map(service) == {
        "http": 8000,
        "grpc": 8001,
        "metrics": 8002,
        "cache-http": 8080,
        "cache-metrics": 9090,
    }


def test_service_selects_the_deployments_pods() -> None:
    spec = make_spec()
    service = build_service("embed", "ns", spec)
    template = build_deployment("embed", "ns", spec, replicas=1)["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_pdb() -> None:
    pdb = build_pdb("embed", "ns", make_spec())
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["kind"] == "PodDisruptionBudget"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == {"matchLabels": SELECTOR}


def test_no_service_monitor_by_default() -> None:
    assert build_service_monitor("embed", "ns", make_spec()) is None


def test_service_monitor_endpoints() -> None:
    spec = make_spec(monitoring={"serviceMonitor": True, "scrapeIntervalSeconds": 15})
    monitor = build_service_monitor("embed", "ns", spec)
    assert monitor is not None
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"] == {"matchLabels": SELECTOR}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s"}
    ]


def test_service_monitor_scrapes_the_sidecar() -> None:
    spec = make_spec(monitoring={"serviceMonitor": True}, cache={"mode": "redis"})
    monitor = build_service_monitor("embed", "ns", spec)
    assert monitor is not None
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics", "cache-metrics"]


def test_managed_redis_only_without_url() -> None:
    assert not wants_managed_redis(make_spec())
    assert not wants_managed_redis(make_spec(cache={"mode": "memory"}))
    assert wants_managed_redis(make_spec(cache={"mode": "redis"}))
    external = make_spec(cache={"mode": "redis", "redis": {"url": "rediss://r.example:6380/1"}})
    assert not wants_managed_redis(external)
    assert cache_redis_url("embed", external) == "rediss://r.example:6380/1"
    assert cache_redis_url("embed", make_spec(cache={"mode": "redis"})) == (
        "redis://embed-redis:6379/0"
    )
    assert cache_redis_url("embed", make_spec(cache={"mode": "memory"})) is None


def test_redis_statefulset() -> None:
    spec = make_spec(cache={"mode": "redis", "redis": {"storage": "5Gi"}})
    statefulset = build_redis_statefulset("embed", "ns", spec)
    assert (statefulset["kind"], statefulset["metadata"]["name"]) == ("StatefulSet", "embed-redis")
    body = statefulset["spec"]
    assert body["serviceName"] == "embed-redis"
    (claim,) = body["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    (container,) = body["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    # Redis pods must never be picked up by the inference Service or PDB.
    assert not SELECTOR.items() <= body["template"]["metadata"]["labels"].items()
    assert container["image"] == REDIS_IMAGE


def test_the_operators_redis_image_reaches_the_statefulset() -> None:
    spec = make_spec(cache={"mode": "redis"})
    objects = build_plan("embed", "ns", spec, replicas=1, redis_image="example/redis:7")
    (statefulset,) = [o for o in objects if o["kind"] == "StatefulSet"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "example/redis:7"
    assert OperatorConfig.from_env({"TENFOLD_REDIS_IMAGE": "example/redis:7"}).redis_image == (
        "example/redis:7"
    )
    assert OperatorConfig.from_env({}).redis_image == REDIS_IMAGE


def test_redis_service_selects_redis_pods() -> None:
    spec = make_spec(cache={"mode": "redis"})
    service = build_redis_service("embed", "ns", spec)
    template = build_redis_statefulset("embed", "ns", spec)["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    assert service["metadata"]["name"] == "embed-redis"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert port_map(service) == {"redis": 6379}


def test_pod_selector_string_matches_the_selector() -> None:
    assert pod_selector("embed") == (
        "app.kubernetes.io/name=tenfold-inference,app.kubernetes.io/instance=embed"
    )


def test_the_managed_redis_requires_its_generated_password() -> None:
    spec = make_spec(cache={"mode": "redis"})
    secret = build_redis_auth_secret("embed", "ns", "s3cret")
    assert secret["metadata"]["name"] == redis_auth_secret_name("embed") == "embed-redis-auth"
    assert secret["stringData"] == {"password": "s3cret", "auth.conf": "requirepass s3cret\n"}
    template = build_redis_statefulset("embed", "ns", spec)["spec"]["template"]["spec"]
    (container,) = template["containers"]
    # The password reaches redis-server in a file, never in its argv.
    assert container["args"][0] == "/etc/tenfold/redis/auth.conf"
    assert "--protected-mode" not in container["args"]
    assert not any("s3cret" in arg for arg in container["args"])
    (auth,) = [v for v in template["volumes"] if v["name"] == "auth"]
    assert auth["secret"]["secretName"] == "embed-redis-auth"
    assert auth["secret"]["defaultMode"] == 0o440
    (probe_login,) = container["env"]
    assert probe_login["name"] == "REDISCLI_AUTH"
    assert probe_login["valueFrom"]["secretKeyRef"]["name"] == "embed-redis-auth"


def test_the_sidecar_logs_in_from_a_secret() -> None:
    managed = redis_credentials_env("embed", make_spec(cache={"mode": "redis"}))
    assert [(e["name"], e["valueFrom"]["secretKeyRef"]["name"]) for e in managed] == [
        (REDIS_PASSWORD_ENV, "embed-redis-auth")
    ]
    external = make_spec(
        cache={
            "mode": "redis",
            "redis": {"url": "rediss://r.example:6380/1", "credentialsSecret": "team-redis"},
        }
    )
    env = redis_credentials_env("embed", external)
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env} == {
        REDIS_PASSWORD_ENV: "team-redis",
        REDIS_USERNAME_ENV: "team-redis",
    }
    anonymous = make_spec(cache={"mode": "redis", "redis": {"url": "redis://r:6379/0"}})
    assert redis_credentials_env("embed", anonymous) == []
    # And the Deployment's sidecar carries them.
    pod = build_deployment("embed", "ns", external, replicas=1)["spec"]["template"]["spec"]
    (sidecar,) = [c for c in pod["containers"] if c["name"] == "cache"]
    assert sidecar["env"] == env


def test_only_the_services_own_pods_may_reach_its_redis() -> None:
    spec = make_spec(cache={"mode": "redis"})
    objects = build_plan("embed", "ns", spec, replicas=1)
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    (statefulset,) = [o for o in objects if o["kind"] == "StatefulSet"]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    body = policy["spec"]
    redis_pods = statefulset["spec"]["template"]["metadata"]["labels"]
    serving_pods = deployment["spec"]["template"]["metadata"]["labels"]
    assert body["podSelector"]["matchLabels"].items() <= redis_pods.items()
    assert body["policyTypes"] == ["Ingress"]
    (rule,) = body["ingress"]
    (peer,) = rule["from"]
    # A pod selector alone: the policy's own namespace, never another one.
    assert set(peer) == {"podSelector"}
    assert peer["podSelector"]["matchLabels"].items() <= serving_pods.items()
    assert not peer["podSelector"]["matchLabels"].items() <= redis_pods.items()
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    other = build_plan("other", "ns", spec, replicas=1)
    (other_deployment,) = [o for o in other if o["kind"] == "Deployment"]
    other_pods = other_deployment["spec"]["template"]["metadata"]["labels"]
    assert not peer["podSelector"]["matchLabels"].items() <= other_pods.items()
    assert not any(
        o["kind"] == "NetworkPolicy" for o in build_plan("e", "ns", make_spec(), replicas=1)
    )
